"""Tests for sslab.data.text: named sets on the shared data, file/folder/glob loaders, the label heuristic, verified
downloads (file:// mirror), tokenizers, token streams (memmap blocks) and tokenized examples."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sslab.data import text as T
from sslab.data.streams import Examples, TokenBlocks, encode_examples, write_token_stream
from sslab.data.text import TEXT_KNOWN, TextData, is_text_spec, load_corpus, load_text, split_corpus
from sslab.data.tokenizers import continuation_table, train_tokenizer
from sslab.errors import SslabError

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SSLAB_DATA_ROOT", REPO.parent / "shared" / "data"))
SST = SHARED / "sentences"
SHAKES = SHARED / "tinyshakespeare" / "input.txt"
WIKI = SHARED / "wikitext-2"

BERT = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
        "mask_token": "[MASK]"}
ROBERTA = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
           "mask_token": "<mask>", "cls_token": "<s>", "sep_token": "</s>"}
GPT = {"eos_token": "<|endoftext|>", "pad_token": "<|pad|>", "unk_token": "<|unk|>"}


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def need(*paths: Path) -> None:
    for p in paths:
        if not p.exists():
            pytest.skip(f"shared data file not found: {p}")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def sentiment_lines(n: int = 40) -> list[tuple[str, str]]:
    """Deterministic (label, sentence) pairs, two classes."""
    good = ["a warm , funny film", "great acting and a clever plot", "moving and beautifully shot", "pure joy"]
    bad = ["a dull , lifeless mess", "boring and far too long", "the plot makes no sense", "a waste of time"]
    return [("pos", f"{good[i % 4]} number {i}") if i % 2 else ("neg", f"{bad[i % 4]} number {i}") for i in range(n)]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """Real sentences for tokenizer training: the first 3,000 of SST-2 train."""
    need(SST / "stsa.binary.train")
    return [ln.split(" ", 1)[1] for ln in (SST / "stsa.binary.train").read_text(encoding="utf-8").splitlines()[:3000]]


@pytest.fixture(scope="module")
def wordpiece(corpus):
    return train_tokenizer(corpus, "wordpiece", 1000, BERT, lowercase=True)


@pytest.fixture(scope="module")
def bpe(corpus):
    return train_tokenizer(corpus, "bpe", 600, ROBERTA)


@pytest.fixture(scope="module")
def char():
    need(SHAKES)
    return train_tokenizer([SHAKES.read_text(encoding="utf-8")[:200_000]], "char", 1000, GPT)


# ----------------------------------------------------------------------------------------------
# named sets on the shared data
# ----------------------------------------------------------------------------------------------
def test_sst2_named():
    need(SST / "stsa.binary.train", SST / "stsa.binary.dev", SST / "stsa.binary.test")
    s = load_text("sst2", root=SHARED)
    assert (len(s.train), len(s.test)) == (6920 + 872, 1821)
    assert s.train.classes == s.test.classes == ["negative", "positive"]
    assert s.train.y.dtype == np.int64 and set(s.train.y.tolist()) == {0, 1}
    assert s.train.texts[0].startswith("a stirring , funny and finally") and s.train.y[0] == 1
    assert s.train.texts[6920] == "one long string of cliches ." and s.train.y[6920] == 0  # dev follows train
    assert s.test.texts[0] == "no movement , no yuks , not much of anything ."
    assert s.train.kind == "text" and s.train.docs is None and s.train.name == "sst2"
    assert load_text("SST-2", root=SHARED).train.texts == s.train.texts  # alias


def test_trec_named():
    need(SST / "TREC.train", SST / "TREC.test")
    s = load_text("trec", root=SHARED)
    assert (len(s.train), len(s.test)) == (5452, 500)
    assert s.train.classes == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert np.bincount(s.train.y, minlength=6).min() > 0 and len(np.unique(s.test.y)) == 6
    assert s.train.texts[0] == "How did serfdom develop in and then leave Russia ?"
    assert s.train.classes[s.train.y[0]] == "DESC"
    assert any("sister" in t and "city" in t for t in s.train.texts)  # the one non-UTF-8 line is read


def test_tinyshakespeare_named():
    need(SHAKES)
    s = load_text("tiny-shakespeare", root=SHARED)
    assert s.train.y is None and s.test.y is None and s.train.classes == []
    blocks = T._blocks(SHAKES.read_text(encoding="utf-8"))
    assert len(blocks) == 7222 and s.train.texts + s.test.texts == blocks  # order kept, nothing lost
    assert s.train.texts[0] == "First Citizen:\nBefore we proceed any further, hear me speak."
    chars = [sum(map(len, p.texts)) for p in (s.train, s.test)]
    assert 0.09 < chars[1] / sum(chars) < 0.11  # the last 10 % of the characters, cut between speeches
    assert s.train.doc_ids() == list(range(len(s.train)))


def test_wikitext2_named():
    need(WIKI / "valid.txt", WIKI / "test.txt")
    s = load_text("wikitext2", root=SHARED)
    assert (len(s.train), len(s.test)) == (2461, 2891)
    assert s.train.y is None and all(t and t == t.strip() for t in s.train.texts)
    assert s.train.texts[0] == "= Homarus gammarus =" and s.train.texts[2] == "= = Description = ="
    assert s.train.docs[:3] == [0, 0, 0] and max(s.train.docs) + 1 == 60 and max(s.test.docs) + 1 == 62
    assert s.train.docs == sorted(s.train.docs)
    starts = [t for t, d, prev in zip(s.train.texts[1:], s.train.docs[1:], s.train.docs) if d != prev]
    assert all(t.startswith("= ") and not t.startswith("= =") for t in starts)


def test_is_text_spec(tmp_path):
    for name in TEXT_KNOWN + ("Tiny-Shakespeare", "wikitext2", "sst-2", "SST2", "TREC"):
        assert is_text_spec(name)
    for name in ("cifar10", "digits", "fashion-mnist", "", "nope"):
        assert not is_text_spec(name)
    for suffix in (".txt", ".text", ".csv", ".tsv", ".jsonl"):
        assert is_text_spec(str(write(tmp_path / f"f{suffix}", "x\n")))
    assert not is_text_spec(tmp_path / "absent.txt")
    (tmp_path / "a.npz").write_bytes(b"PK")
    assert not is_text_spec(tmp_path / "a.npz")
    write(tmp_path / "lab" / "pos" / "1.txt", "good")
    write(tmp_path / "flat" / "1.txt", "text")
    write(tmp_path / "split" / "train" / "pos" / "1.txt", "good")
    (tmp_path / "img" / "cat").mkdir(parents=True)
    (tmp_path / "img" / "cat" / "1.png").write_bytes(b"\x89PNG")
    (tmp_path / "empty").mkdir()
    assert is_text_spec(tmp_path / "lab") and is_text_spec(tmp_path / "flat") and is_text_spec(tmp_path / "split")
    assert not is_text_spec(tmp_path / "img") and not is_text_spec(tmp_path / "empty")
    assert is_text_spec(str(tmp_path / "flat" / "*.txt"))
    assert not is_text_spec(str(tmp_path / "img" / "*" / "*.png")) and not is_text_spec(str(tmp_path / "zz*.txt"))


# ----------------------------------------------------------------------------------------------
# the label heuristic for .txt files
# ----------------------------------------------------------------------------------------------
def test_label_heuristic_real_files(tmp_path):
    need(SST / "stsa.binary.train", SST / "TREC.test", SHAKES, WIKI / "valid.txt")
    s = load_text(SST / "stsa.binary.train")  # no known suffix: read as .txt
    assert s.train.classes == ["0", "1"] and len(s.train) + len(s.test) == 6920
    assert s.train.texts[0] == "a stirring , funny and finally transporting re-imagining of beauty and the beast " \
                               "and 1930s horror films"
    s = load_text(shutil.copy(SST / "TREC.test", tmp_path / "trec.txt"))
    assert s.train.classes == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"] and len(s.train) + len(s.test) == 500
    assert all(not t.startswith(("NUM", "LOC", "DESC")) for t in s.train.texts)
    for f in (SHAKES, WIKI / "valid.txt", WIKI / "test.txt"):
        s = load_text(f)
        assert s.train.y is None and s.test is None and s.train.classes == []
    assert len(load_text(SHAKES).train) == 7222  # blank-line separated speeches


def test_label_heuristic_synthetic(tmp_path):
    trec = [f"{c}:{f} {q} {i} ?" for i, (c, f, q) in enumerate(
        [("DESC", "manner", "How did it happen"), ("HUM", "ind", "Who was he"), ("LOC", "city", "Where is it")] * 10)]
    s = load_text(write(tmp_path / "trec.txt", "\n".join(trec) + "\n"))
    assert s.train.classes == ["DESC", "HUM", "LOC"] and s.train.texts[0].startswith(("How", "Who", "Where"))
    tab = "\n".join(f"{lab}\t{t}" for lab, t in sentiment_lines())
    s = load_text(write(tmp_path / "tab.txt", tab))
    assert s.train.classes == ["neg", "pos"] and len(s.train) == 32 and len(s.test) == 8
    ft = "\n".join(f"__label__{lab} {t}" for lab, t in sentiment_lines())
    assert load_text(write(tmp_path / "ft.txt", ft)).train.classes == ["neg", "pos"]
    nums = "\n".join(f"{[2, 10, 1][i % 3]} text {i}" for i in range(30))
    assert load_text(write(tmp_path / "num.txt", nums)).train.classes == ["1", "2", "10"]  # numeric order
    unlabelled = {
        "prose.txt": "\n".join(f"{['The', 'A'][i % 2]} cat number {i} sat down ." for i in range(40)),
        "numbered.txt": "\n".join(f"{i} line number {i}" for i in range(40)),  # every "label" distinct
        # 3 first words used once: 92 % of the lines start with a label, too few for a labelled file
        "once.txt": "\n".join(f"{['x', 'y'][i % 2] if i > 2 else 'zqr'[i]} text {i}" for i in range(40)),
        "speaker.txt": "\n".join(f"Speaker{i % 2}: line {i}" for i in range(40)),  # "Name:" is no label token
        "echo.txt": "\n".join(f"{['red', 'blue'][i % 2]} and {['red', 'blue'][i % 2]} again {i}" for i in range(40)),
    }
    for name, body in unlabelled.items():
        s = load_text(write(tmp_path / name, body + "\n"))
        assert s.train.y is None and s.test is None, name
        assert len(s.train) == body.count("\n") + 1 and s.train.texts[0] == body.split("\n")[0], name
    with pytest.raises(SslabError, match="only one class"):
        load_text(write(tmp_path / "one.txt", "\n".join(f"1 sentence {i}" for i in range(30))))


def test_label_heuristic_small_files_and_lines_without_labels(tmp_path, capsys):
    """A labelled file of a handful of lines is labelled; in one whose lines (95 % of them) start with a label, a line
    without one is an error that names it, not a reason to read the whole file as an unlabelled corpus."""
    s = load_text(write(tmp_path / "short.txt", "\n".join(f"{lab} {t}" for lab, t in sentiment_lines(6))))
    assert s.train.classes == ["neg", "pos"] and len(s.train) + len(s.test) == 6
    assert "short.txt: `label text` lines; label = the first word (2 classes)" in capsys.readouterr().out
    lines = [f"{lab} {t}" for lab, t in sentiment_lines(40)]
    for k, bad in ((4, "a film without its label"), (30, "pos"), (17, "this one")):  # prose, no text, a word once
        body = lines[:k] + [bad] + lines[k:]
        msg = _err(write(tmp_path / "gap.txt", "\n\n".join(body[:3]) + "\n" + "\n".join(body[3:])),
                   f"gap.txt: line {k + 3} does not start with a label")  # 2 blank lines above it
        assert "labels 'neg', 'pos'" in msg and repr(bad) in msg
    need(SST / "stsa.binary.train")
    real = (SST / "stsa.binary.train").read_text(encoding="utf-8").splitlines()
    real.insert(20, "this row has no label at all just words")
    _err(write(tmp_path / "sst.txt", "\n".join(real)), "sst.txt: line 21 does not start with a label")


def test_latin1_files(tmp_path, capsys):
    """A user's text file that is not UTF-8 but has no control bytes (TREC as its authors ship it) is read as Latin-1
    (cp1252), said in one line; TREC's COARSE:fine labels are read as the coarse classes, said in one line."""
    raw = "\n".join(f"{['DESC:manner', 'HUM:ind', 'LOC:city', 'HUM:gr'][i % 4]} Question {i} caf\xe9 \u201c?\u201d"
                     for i in range(40)).encode("cp1252")
    (tmp_path / "t.txt").write_bytes(raw)
    s = load_text(tmp_path / "t.txt")
    assert s.train.classes == ["DESC", "HUM", "LOC"] and "café \u201c?\u201d" in s.train.texts[0]  # cp1252's quotes
    out = capsys.readouterr().out.splitlines()
    assert out == [f"t.txt is not valid UTF-8 (byte offset {raw.index(0xE9)}): read as Latin-1 (cp1252)",
                   "t.txt: `label text` lines; label = the first word's part before ':' (3 classes, of 4 distinct "
                   "first words), text = the rest"]
    write(tmp_path / "docs" / "a" / "1.txt", "fine")
    (tmp_path / "docs" / "b").mkdir()
    for i in range(2):
        (tmp_path / "docs" / "b" / f"{i}.txt").write_bytes(b"na\xefve " + bytes([48 + i]))
    s = load_text(tmp_path / "docs")
    assert "naïve 0" in s.train.texts + s.test.texts
    assert capsys.readouterr().out == ("docs: 2 files read as Latin-1 (cp1252) (the first: 0.txt is not valid UTF-8 "
                                       "(byte offset 2))\n")
    need(SST / "TREC.train")
    s = load_text(shutil.copy(SST / "TREC.train", tmp_path / "TREC.txt"))
    assert s.train.classes == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"] and len(s.train) + len(s.test) == 5452
    out = capsys.readouterr().out
    assert "TREC.txt is not valid UTF-8 (byte offset 3695): read as Latin-1 (cp1252)" in out
    assert "label = the first word's part before ':' (6 classes, of 50 distinct first words)" in out


def test_txt_corpus_documents(tmp_path):
    s = load_text(write(tmp_path / "c.txt", "\n\nfirst doc line one\nline two\n\n \n\nsecond doc\n\n"))
    assert s.train.texts == ["first doc line one\nline two", "second doc"] and s.test is None
    s = load_text(write(tmp_path / "l.txt", "one line\r\n  two line  \r\nthree\r\n"))
    assert s.train.texts == ["one line", "two line", "three"]
    s = load_text(write(tmp_path / "bom.txt", "\ufeffhello\n"))
    assert s.train.texts == ["hello"]


# ----------------------------------------------------------------------------------------------
# csv / tsv / jsonl / folders / globs
# ----------------------------------------------------------------------------------------------
def _write_csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_csv_and_tsv(tmp_path):
    rows = [[str(i), t, lab] for i, (lab, t) in enumerate(sentiment_lines())]
    rows[0][1] = 'quoted, with "quotes",\nand a line break'
    s = load_text(_write_csv(tmp_path / "d.csv", ["id", "Sentence", "Sentiment"], rows))
    assert s.train.classes == ["neg", "pos"] and len(s.train) == 32 and len(s.test) == 8
    everything = s.train.texts + s.test.texts
    assert 'quoted, with "quotes",\nand a line break' in everything and len(everything) == 40
    s2 = load_text(_write_csv(tmp_path / "d.tsv", ["TEXT", "label"], [[r[1], r[2]] for r in rows], "\t"))
    assert sorted(s2.train.texts) == sorted(s.train.texts) and s2.train.y.tolist() == s.train.y.tolist()
    s3 = load_text(_write_csv(tmp_path / "u.csv", ["review", "stars_note"], [[r[1], "x"] for r in rows]))
    assert s3.train.y is None and s3.test is None and len(s3.train) == 40  # no label column: unlabelled
    nums = _write_csv(tmp_path / "n.csv", ["text", "y"], [[f"t{i}", [10, 2, 1][i % 3]] for i in range(30)])
    assert load_text(nums).train.classes == ["1", "2", "10"]


def test_jsonl(tmp_path):
    labels = [0, "1", 1.0, "0"]  # ints, strings and integral floats name the same classes
    lines = [json.dumps({"Label": labels[i % 4], "Text": t, "extra": None}) for i, (_, t) in enumerate(sentiment_lines())]
    s = load_text(write(tmp_path / "d.jsonl", "\n".join(lines) + "\n\n"))
    assert s.train.classes == ["0", "1"] and len(s.train) + len(s.test) == 40
    assert sorted(s.train.texts + s.test.texts) == sorted(t for _, t in sentiment_lines())
    assert np.bincount(s.train.y).tolist() == [16, 16]
    s = load_text(write(tmp_path / "u.jsonl", "\n".join(json.dumps({"content": f"doc {i}"}) for i in range(5))))
    assert s.train.texts == [f"doc {i}" for i in range(5)] and s.train.y is None


def test_folders(tmp_path):
    for i, (lab, t) in enumerate(sentiment_lines()):
        write(tmp_path / "lab" / lab / f"{i:03d}.txt", t + "\n")
    write(tmp_path / "lab" / "pos" / ".hidden.txt", "ignored")
    write(tmp_path / "lab" / "pos" / "notes.md", "ignored")
    s = load_text(tmp_path / "lab")
    assert s.train.classes == ["neg", "pos"] and (len(s.train), len(s.test)) == (32, 8)
    assert "ignored" not in s.train.texts + s.test.texts and s.train.name == "lab"
    for split in ("train", "test"):
        for i in range(3):
            write(tmp_path / "split" / split / "a" / f"{i}.txt", f"{split} a {i}")
            write(tmp_path / "split" / split / "b" / f"{i}.txt", f"{split} b {i}")
    s = load_text(tmp_path / "split")
    assert s.train.texts[0] == "train a 0" and s.test.texts[-1] == "test b 2" and s.test.y.tolist() == [0] * 3 + [1] * 3
    for i in range(3):
        write(tmp_path / "flat" / f"{i}.txt", f"document {i}\nsecond line\n")
    s = load_text(tmp_path / "flat")
    assert s.train.texts[2] == "document 2\nsecond line" and s.train.y is None and s.test is None


def test_glob_corpus(tmp_path):
    write(tmp_path / "g" / "b.txt", "b one\n\nb two\n")
    write(tmp_path / "g" / "a.txt", "a line\nanother\n")
    write(tmp_path / "g" / "c.csv", "text\nfrom csv\n")
    s = load_text(str(tmp_path / "g" / "*.txt"))
    assert s.train.texts == ["a line", "another", "b one", "b two"] and s.train.docs == [0, 1, 2, 3]
    s = load_text(str(tmp_path / "g" / "*"))
    assert s.train.texts[-1] == "from csv" and s.train.y is None and s.test is None


def test_fixed_split_is_stable_and_stratified(tmp_path):
    body = "\n".join(f"{['x', 'y', 'z'][i % 3] if i < 90 else 'x'} example {i}" for i in range(100))
    f = write(tmp_path / "s.txt", body)
    one, two = load_text(f), load_text(f)
    assert one.test.texts == two.test.texts and one.train.texts == two.train.texts
    assert np.bincount(one.test.y).tolist() == [8, 6, 6]  # 20 % of 40 / 30 / 30
    assert not set(one.train.texts) & set(one.test.texts)


def test_corpus_extra_and_pretrain_texts(tmp_path):
    f = write(tmp_path / "lab.txt", "\n".join(f"{lab} {t}" for lab, t in sentiment_lines()))
    c1 = write(tmp_path / "c1.txt", "extra one\n\nextra two\n")
    c2 = write(tmp_path / "c2.txt", "lonely line\n")
    s = load_text(f, corpus=[c1, str(c2)])
    assert s.train.extra == ["extra one", "extra two", "lonely line"] and len(s.train.y) == len(s.train.texts) == 32
    texts, docs = s.train.pretrain_texts()
    assert texts == s.train.texts + s.train.extra and docs == list(range(35))
    assert s.test.extra == []
    assert load_corpus(str(c1)) == ["extra one", "extra two"]
    if (WIKI / "valid.txt").is_file():
        wiki = load_text("wikitext-2", root=SHARED)
        arts = load_corpus(["wikitext-2"], root=SHARED)
        assert len(arts) == 60 and arts[0].startswith("= Homarus gammarus =\nHomarus gammarus , known")
        _, d = wiki.train.pretrain_texts()
        assert d == wiki.train.docs
    data = TextData(["aaaa", "bb", "cc", "dddd"], None, docs=[0, 0, 1, 2])
    sp = split_corpus(data, 0.25)
    assert sp.train.texts == ["aaaa", "bb", "cc"] and sp.train.docs == [0, 0, 1]
    assert sp.test.texts == ["dddd"] and sp.test.docs == [0]


# ----------------------------------------------------------------------------------------------
# verified download from a file:// mirror
# ----------------------------------------------------------------------------------------------
def test_download_from_mirror(tmp_path, monkeypatch, _cache):
    repo, commit, folder, _ = T._SOURCES["sst2"]
    mirror = tmp_path / "mirror"
    src = mirror / repo / commit / folder
    src.mkdir(parents=True)
    names = ["stsa.binary.train", "stsa.binary.dev", "stsa.binary.test"]
    for n in names:
        (src / n).write_text("0 not the real file\n")
    monkeypatch.setattr(T, "GITHUB_RAW", mirror.as_uri() + "/")
    empty_root = tmp_path / "empty-root"
    with pytest.raises(SslabError, match="checksum mismatch"):
        load_text("sst2", root=empty_root)
    dl = _cache / "downloads" / "sst2"
    assert list(dl.iterdir()) == []  # nothing unverified or partial left behind
    with pytest.raises(SslabError, match="download is disabled"):
        load_text("sst2", root=empty_root, download=False)
    if not all((SST / n).is_file() for n in names):
        return
    for n in names:
        shutil.copy(SST / n, src / n)
        assert hashlib.sha256((src / n).read_bytes()).hexdigest() == T._SHA256[n]
    s = load_text("sst2", root=empty_root)
    assert (len(s.train), len(s.test)) == (7792, 1821)
    assert sorted(p.name for p in dl.iterdir()) == sorted(names)
    shutil.rmtree(mirror)  # the second load reads the verified cache copy
    assert load_text("sst2", root=empty_root, download=False).test.texts == s.test.texts


# ----------------------------------------------------------------------------------------------
# bad input: one-line SslabError each
# ----------------------------------------------------------------------------------------------
def _err(spec, match: str, **kw) -> str:
    with pytest.raises(SslabError, match=match) as info:
        load_text(spec, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_bad_files(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\nbad \xff byte\x00\n")  # not UTF-8, and a control byte: no text (else Latin-1)
    assert "bad.txt" in _err(bad, r"not valid UTF-8 \(byte offset 14")
    (tmp_path / "empty.txt").write_bytes(b"")
    _err(tmp_path / "empty.txt", "is empty")
    write(tmp_path / "blank.txt", "\n  \n\t\n")
    _err(tmp_path / "blank.txt", "only blank lines")
    (tmp_path / "long.txt").write_bytes(b"short\n" + b"x" * (T.MAX_LINE_BYTES + 2**19) + b"\n")
    _err(tmp_path / "long.txt", "line 2 is 10.5 MB long")
    _err(tmp_path / "absent.txt", "not found")
    _err(str(tmp_path / "nothing-*.txt"), "no files match")
    (tmp_path / "nofiles" / "sub").mkdir(parents=True)
    write(tmp_path / "nofiles" / "readme.md", "x")
    _err(tmp_path / "nofiles", r"no \.txt files")
    write(tmp_path / "mixed" / "top.txt", "x")
    write(tmp_path / "mixed" / "cls" / "a.txt", "y")
    _err(tmp_path / "mixed", "both")
    (tmp_path / "x.npz").write_bytes(b"PK")
    _err(tmp_path / "x.npz", "unsupported text file")
    write(tmp_path / "lab" / "only" / "a.txt", "y")
    write(tmp_path / "lab" / "only" / "b.txt", "z")
    _err(tmp_path / "lab", "only one class")
    write(tmp_path / "emptydoc" / "a.txt", "")
    _err(tmp_path / "emptydoc", "a.txt is empty")


def test_bad_tables(tmp_path):
    msg = _err(_write_csv(tmp_path / "a.csv", ["id", "words", "label"], [[1, "x", 0], [2, "y", 1]]),
               "no text column")
    assert "'id', 'words', 'label'" in msg
    _err(_write_csv(tmp_path / "nohdr.csv", ["a movie", "1"], [["b movie", "0"]]), "first row must be a header")
    _err(_write_csv(tmp_path / "emptylab.csv", ["text", "label"], [["a", "0"], ["b", ""], ["c", "1"]]),
         r"line 3 \(column 'label'\) has an empty label")
    _err(_write_csv(tmp_path / "one.csv", ["text", "label"], [["a", "x"], ["b", "x"]]), "only one class")
    _err(_write_csv(tmp_path / "ids.csv", ["text", "label"], [[f"t{i}", f"id{i}"] for i in range(10)]),
         "every label value is distinct")
    write(tmp_path / "ragged.csv", "text,label\na,0\nb,1,extra\n")
    _err(tmp_path / "ragged.csv", "line 3 has 3 fields, the header has 2")
    write(tmp_path / "hdr.csv", "text,label\n")
    _err(tmp_path / "hdr.csv", "no data rows")
    write(tmp_path / "a.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": null}\n')
    _err(tmp_path / "a.jsonl", "line 2 .* has an empty label")
    write(tmp_path / "b.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": [1]}\n')
    _err(tmp_path / "b.jsonl", r"label \[1\] is not a class name or integer")
    write(tmp_path / "c.jsonl", '{"text": "a"}\n{"text": oops}\n')
    _err(tmp_path / "c.jsonl", "line 2 is not valid JSON")
    write(tmp_path / "d.jsonl", '["text", "a"]\n')
    _err(tmp_path / "d.jsonl", "line 1 is not a JSON object")
    write(tmp_path / "e.jsonl", '{"body": "a"}\n{"title": "b"}\n')
    _err(tmp_path / "e.jsonl", "line 2 has no text string")
    write(tmp_path / "f.jsonl", '{"title": "a"}\n')
    assert "'title'" in _err(tmp_path / "f.jsonl", "no text field")


# ----------------------------------------------------------------------------------------------
# tokenizers
# ----------------------------------------------------------------------------------------------
def test_char_tokenizer(char, tmp_path):
    assert char.convert_ids_to_tokens([0, 1, 2]) == ["<|endoftext|>", "<|pad|>", "<|unk|>"]
    n_chars = len(set(SHAKES.read_text(encoding="utf-8")[:200_000]))
    assert len(char) == char.vocab_size == 3 + n_chars  # vocab_size 1000 is only an upper bound
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n  All:  Speak!"
    ids = char(text)["input_ids"]
    assert len(ids) == len(text) and char.decode(ids) == text  # one token per character, exact round trip
    assert char("Z\té")["input_ids"][1:] == [char.unk_token_id] * 2  # unseen characters
    tokens = char.convert_ids_to_tokens(list(range(3, len(char))))
    assert tokens == sorted(tokens)  # characters in code point order, after the specials
    small = train_tokenizer(["aaaa bbb cc d\n"], "char", 3 + 3, GPT)
    assert len(small) == 6 and small.convert_ids_to_tokens([3, 4, 5]) == [" ", "a", "b"]  # most frequent kept
    assert small("cab")["input_ids"] == [2, 4, 5]


def test_wordpiece_tokenizer(wordpiece):
    assert wordpiece.convert_ids_to_tokens(list(range(5))) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(wordpiece) == 1000 and wordpiece.pad_token_id == 0 and wordpiece.mask_token_id == 4
    enc = wordpiece("The film is charmingly uneventful")
    toks = wordpiece.convert_ids_to_tokens(enc["input_ids"])
    assert toks[0] == "[CLS]" and toks[-1] == "[SEP]" and any(t.startswith("##") for t in toks)
    assert wordpiece.decode(enc["input_ids"], skip_special_tokens=True) == "the film is charmingly uneventful"
    pair = wordpiece("a b", "c")
    assert pair["token_type_ids"] == [0, 0, 0, 0, 1, 1]
    assert wordpiece.convert_ids_to_tokens(pair["input_ids"])[3] == "[SEP]"


def test_bpe_tokenizer(bpe):
    assert bpe.convert_ids_to_tokens(list(range(5))) == ["<s>", "</s>", "<pad>", "<unk>", "<mask>"]
    assert bpe.cls_token_id == 0 and bpe.sep_token_id == 1 and len(bpe) == 600
    text = "Byte-level BPE never fails: naïve café 東京 🙂\n\ttabs  and  spaces."
    enc = bpe(text)
    assert enc["input_ids"][0] == 0 and enc["input_ids"][-1] == 1
    assert bpe.unk_token_id not in enc["input_ids"]
    assert bpe.decode(enc["input_ids"], skip_special_tokens=True) == text  # lossless
    assert "Ġfilm" in bpe.get_vocab()
    gpt = train_tokenizer(["hello world"] * 20, "bpe", 300, GPT)
    assert gpt("hello")["input_ids"] == gpt("hello", add_special_tokens=False)["input_ids"]  # no cls/sep: nothing added


def test_tokenizer_reload(wordpiece, bpe, char, tmp_path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    text = "To be , or not to be : that is the question ."
    for name, tok in (("wp", wordpiece), ("bpe", bpe), ("char", char)):
        tok.save_pretrained(tmp_path / name)
        assert (tmp_path / name / "tokenizer.json").is_file()
        for cls in (PreTrainedTokenizerFast, AutoTokenizer):
            again = cls.from_pretrained(tmp_path / name)
            assert again(text)["input_ids"] == tok(text)["input_ids"], (name, cls)
            assert again("a", "b")["input_ids"] == tok("a", "b")["input_ids"]
            assert len(again) == len(tok) and again.pad_token_id == tok.pad_token_id
            assert again.decode(again(text)["input_ids"]) == tok.decode(tok(text)["input_ids"])


def test_tokenizer_errors(corpus):
    with pytest.raises(SslabError, match="vocab_size >= 261"):
        train_tokenizer(corpus, "bpe", 100, BERT)
    tiny = train_tokenizer(corpus[:200], "wordpiece", 20, BERT)  # the alphabet is cut to fit the budget
    assert len(tiny) <= 20 and tiny.unk_token_id in tiny("zebra")["input_ids"]
    with pytest.raises(SslabError, match="no room"):
        train_tokenizer(corpus, "char", 5, BERT)
    with pytest.raises(SslabError, match="needs an unk_token"):
        train_tokenizer(corpus, "wordpiece", 500, {"pad_token": "[PAD]"})
    with pytest.raises(SslabError, match="unknown tokenizer kind"):
        train_tokenizer(corpus, "sentencepiece", 500, BERT)
    with pytest.raises(SslabError, match="unknown special token kind"):
        train_tokenizer(corpus, "bpe", 500, {"start_token": "<s>"})
    with pytest.raises(SslabError, match="no text"):
        train_tokenizer(["", "  "], "wordpiece", 500, BERT)
    big = train_tokenizer(corpus[:50], "wordpiece", 30000, BERT)
    assert len(big) == big.vocab_size < 30000  # the corpus cannot fill it: the real size is reported


def test_continuation_table(wordpiece, bpe, char):
    for tok in (wordpiece, bpe, char):
        table = continuation_table(tok)
        assert table.dtype == torch.bool and table.shape == (len(tok),)
        assert not table[tok.all_special_ids].any()
    wp = continuation_table(wordpiece)
    vocab = wordpiece.get_vocab()
    cont = [t for t in vocab if t.startswith("##")]
    assert cont and all(wp[vocab[t]] for t in cont)
    assert not wp[[vocab[t] for t in vocab if not t.startswith("##")]].any()
    bt = continuation_table(bpe)
    v = bpe.get_vocab()
    assert not bt[v["Ġthe"]] and bt[v["the"]] and not bt[v[","]] and not bt[v["Ġ"]] and not bt[v["Ċ"]]
    assert bt[v["©"]]  # 0xA9: the second byte of é (Ã©)
    ids = bpe("uneventful", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1 and bt[ids[1:]].all()  # one word: every piece after the first continues it
    ct = continuation_table(char)
    c = char.get_vocab()
    assert ct[c["a"]] and ct[c["Z"]] and not ct[c[" "]] and not ct[c["\n"]] and not ct[c[","]]


# ----------------------------------------------------------------------------------------------
# token streams and blocks
# ----------------------------------------------------------------------------------------------
def test_token_stream_layout(char, tmp_path):
    eos = char.eos_token_id
    ids = lambda s: char(s, add_special_tokens=False)["input_ids"]
    path = write_token_stream(char, ["ab", "c", "", "de"], tmp_path / "s" / "train.bin", eos, docs=[7, 7, 8, 9])
    stream = np.fromfile(path, dtype=np.uint16)
    assert stream.tolist() == ids("abc") + [eos] + ids("de") + [eos]  # empty document skipped
    assert np.fromfile(tmp_path / "s" / "train.doc.bin", dtype=np.int32).tolist() == [0, 0, 0, 0, 1, 1, 1]
    meta = json.loads((tmp_path / "s" / "train.meta.json").read_text())
    assert meta == {"dtype": "uint16", "n_tokens": 7, "n_docs": 2, "vocab_size": len(char), "sep_id": eos}
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["train.bin", "train.doc.bin", "train.meta.json"]
    # no separators, one document per text, and chunking does not change the stream
    texts = [f"line {i}" for i in range(25)]
    a = write_token_stream(char, texts, tmp_path / "a.bin", None)
    b = write_token_stream(char, iter(texts), tmp_path / "b.bin", None, chunk=4)
    assert a.read_bytes() == b.read_bytes() and np.fromfile(a, np.uint16).tolist() == ids("".join(texts))
    assert np.fromfile(tmp_path / "b.doc.bin", np.int32).tolist() == [i for i in range(25) for _ in range(6 + (i > 9))]
    docs = [0, 0, 0, 1, 1, 2]  # a document spanning chunk boundaries
    c1 = write_token_stream(char, texts[:6], tmp_path / "c1.bin", eos, docs=docs, chunk=2)
    c2 = write_token_stream(char, texts[:6], tmp_path / "c2.bin", eos, docs=docs)
    assert c1.read_bytes() == c2.read_bytes()
    assert (tmp_path / "c1.doc.bin").read_bytes() == (tmp_path / "c2.doc.bin").read_bytes()


def test_token_stream_errors_keep_old_file(char, tmp_path):
    path = write_token_stream(char, ["abc"], tmp_path / "t.bin", None)
    before = path.read_bytes()
    with pytest.raises(SslabError, match="different lengths"):
        write_token_stream(char, ["x", "y"], path, None, docs=[0])
    with pytest.raises(SslabError, match="must be strings"):
        write_token_stream(char, ["x", 3], path, None)
    with pytest.raises(SslabError, match="no tokens"):
        write_token_stream(char, ["", ""], path, None)
    with pytest.raises(SslabError, match="outside the vocabulary"):
        write_token_stream(char, ["x"], path, len(char))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_token_stream_int32_for_large_vocab(tmp_path):
    class Big:  # a tokenizer with a vocabulary over 65,536 ids
        def __len__(self):
            return 70_000

        def __call__(self, batch, **kw):
            return {"input_ids": [[69_999, len(t)] for t in batch]}

    path = write_token_stream(Big(), ["a", "bcd"], tmp_path / "big.bin", 65_536)
    assert np.fromfile(path, np.int32).tolist() == [69_999, 1, 65_536, 69_999, 3, 65_536]
    blocks = TokenBlocks(path, 2)
    assert blocks.batch(torch.tensor([1]))["ids"].tolist() == [[65_536, 69_999, 3]]


def test_token_blocks(char, tmp_path):
    texts = SHAKES.read_text(encoding="utf-8")[:20_000].split("\n\n")
    path = write_token_stream(char, texts, tmp_path / "train.bin", char.eos_token_id)
    stream = np.fromfile(path, np.uint16).astype(np.int64)
    doc = np.fromfile(tmp_path / "train.doc.bin", np.int32)
    blocks = TokenBlocks(path, 64)
    assert blocks.n_tokens == stream.size and len(blocks) == (stream.size - 1) // 64
    assert blocks.kind == "text" and blocks.unit == "tokens"
    idx = torch.tensor([0, 3, len(blocks) - 1])
    b = blocks.batch(idx)
    assert b["ids"].shape == b["doc"].shape == (3, 65) and b["ids"].dtype == b["doc"].dtype == torch.int64
    for row, i in enumerate(idx.tolist()):
        assert b["ids"][row].tolist() == stream[i * 64: i * 64 + 65].tolist()
        assert b["doc"][row].tolist() == doc[i * 64: i * 64 + 65].tolist()
    assert blocks.units(b) == 3 * 64
    every = blocks.batch(torch.arange(len(blocks)))["ids"]
    assert every[:, :-1].reshape(-1).tolist() == stream[: len(blocks) * 64].tolist()  # blocks tile the stream
    assert (every[:-1, -1] == every[1:, 0]).all()  # the extra target token is the next block's first
    assert char.decode(b["ids"][0]).startswith(texts[0][:30])
    # file-backed: read-only memmaps, and pickling (DataLoader workers) does not copy the tokens
    assert isinstance(blocks._ids, np.memmap) and Path(blocks._ids.filename) == path.resolve()
    assert blocks._ids.mode == "r" and isinstance(blocks._docs, np.memmap)
    with pytest.raises(ValueError):
        blocks._ids[0] = 1
    blob = pickle.dumps(blocks)
    assert len(blob) < 2000 < path.stat().st_size
    again = pickle.loads(blob)
    assert isinstance(again._ids, np.memmap) and torch.equal(again.batch(idx)["ids"], b["ids"])
    assert len(TokenBlocks(path, stream.size - 1)) == 1 and len(TokenBlocks(path, stream.size)) == 0
    with pytest.raises(SslabError, match="out of range"):
        blocks.batch(torch.tensor([len(blocks)]))
    with pytest.raises(SslabError, match="cannot read token stream"):
        TokenBlocks(tmp_path / "absent.bin", 8)
    with open(path, "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(SslabError, match="rewrite it"):
        TokenBlocks(path, 8)


# ----------------------------------------------------------------------------------------------
# tokenized labelled examples
# ----------------------------------------------------------------------------------------------
def test_encode_examples(wordpiece):
    data = TextData(["a good film", "bad", "the plot makes no sense at all , really " * 20], np.array([1, 0, 0]),
                    ["negative", "positive"], "toy")
    ex = encode_examples(wordpiece, data, max_len=16)
    assert isinstance(ex, Examples) and len(ex) == 3 and ex.kind == "text" and ex.unit == "sequences"
    assert ex.input_ids.shape == ex.attention_mask.shape == (3, 16) and ex.input_ids.dtype == torch.int64
    lens = ex.attention_mask.sum(1).tolist()
    assert lens[2] == 16 and lens[1] == 3  # truncated to max_len; [CLS] bad [SEP]
    assert ex.input_ids[2, 15] == wordpiece.sep_token_id and ex.input_ids[2, 0] == wordpiece.cls_token_id
    assert (ex.input_ids[1, 3:] == wordpiece.pad_token_id).all() and (ex.attention_mask[1, 3:] == 0).all()
    assert ex.input_ids[0, : lens[0]].tolist() == wordpiece("a good film")["input_ids"]  # right padding
    b = ex.batch(torch.tensor([1, 0]))
    assert b["input_ids"].shape == (2, lens[0]) and set(b) == {"input_ids", "attention_mask"}  # trimmed
    assert ex.units(b) == lens[0] + lens[1]
    assert ex.batch([2])["input_ids"].shape == (1, 16)
    assert ex.y.tolist() == [1, 0, 0] and ex.classes == ["negative", "positive"] and ex.texts == data.texts
    raw = encode_examples(wordpiece, data, max_len=16, add_special_tokens=False)
    assert raw.input_ids[1, 0] != wordpiece.cls_token_id and raw.attention_mask[1].sum() == 1
    empty = encode_examples(wordpiece, TextData([], np.zeros(0, np.int64)), 8)
    assert len(empty) == 0
    with pytest.raises(SslabError, match="max_len"):
        encode_examples(wordpiece, data, 0)


def test_encode_examples_named_sst2(wordpiece):
    need(SST / "stsa.binary.test")
    test = load_text("sst2", root=SHARED).test
    ex = encode_examples(wordpiece, test, max_len=64)
    assert len(ex) == 1821 and ex.input_ids.shape[1] <= 64 and (ex.attention_mask.sum(1) >= 3).all()
    assert (ex.input_ids[ex.attention_mask == 0] == wordpiece.pad_token_id).all()
