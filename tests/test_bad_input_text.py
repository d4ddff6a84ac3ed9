"""The bad-input suite for text: every kind of wrong text input a user can give sslab, each case run through the CLI.

The contract is test_bad_input.py's: an error case exits non-zero with exactly one stderr line `error: ...` naming
the problem, prints no traceback and leaves nothing half-written (no new run folder, no `*.tmp`/`*.part` file).
Inputs that are unusual but valid (quoted commas and line breaks in CSV fields, Windows line endings, a byte-order
mark, a vocabulary larger than the corpus can fill, a prompt of unseen characters) must work instead.

Text comes from the shared SST-2 training file when the data root has it, else from generated sentences; every
pretraining is tiny (the `tiny` model, batch 8, context 32, vocabulary 300, a 2 s budget or 0.01 epochs).
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sslab.cli import main

from cli_contract import assert_error, files_of, leftovers, run_cli  # noqa: F401

TINY = ["--backbone", "tiny", "--batch-size", "8", "context=32", "vocab_size=300"]
GPT = ["--method", "gpt", *TINY, "--epochs", "0.01"]
BERT = ["--method", "bert", *TINY, "--budget", "2s"]
BERT_STUDY = ["--method", "bert", "--backbone", "tiny", "--batch-size", "8", "--budget", "2s", "pretrain.context=32",
              "pretrain.vocab_size=300"]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SSLAB_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)  # a default runs/ folder would land in the temp dir


# ---------------------------------------------------------------------------------------------------------------
# helpers (the contract of tests/test_bad_input.py)
# ---------------------------------------------------------------------------------------------------------------
def assert_ok(result) -> str:
    code, stdout, err = result
    assert code == 0, err
    assert "Traceback" not in stdout + err and "error:" not in err
    return stdout


# ---------------------------------------------------------------------------------------------------------------
# text to build the inputs from
# ---------------------------------------------------------------------------------------------------------------
_WORDS = ["the", "film", "story", "actor", "scene", "plot", "music", "camera", "director", "audience", "moment",
          "character", "ending", "script", "performance", "comedy", "drama", "screen", "minutes", "picture", "good",
          "bad", "funny", "dull", "warm", "cold", "bright", "slow", "sharp", "clever", "honest", "quiet", "strange"]


@pytest.fixture(scope="module")
def sentences() -> list[tuple[int, str]]:
    """300 labelled sentences: SST-2's first training lines, or seeded word salad when the data root lacks it."""
    sst = Path(os.environ.get("SSLAB_DATA_ROOT", "/nonexistent")) / "sentences" / "stsa.binary.train"
    if sst.is_file():
        lines = sst.read_text().splitlines()[:300]
        return [(int(ln[0]), ln[2:]) for ln in lines]
    rng = np.random.default_rng(0)
    return [(i % 2, " ".join(rng.choice(_WORDS, rng.integers(6, 20)))) for i in range(300)]


def corpus_file(path: Path, sentences, n: int = 300) -> Path:
    path.write_text("".join(f"{s}\n" for _, s in sentences[:n]))
    return path


def labelled_file(path: Path, sentences) -> Path:
    path.write_text("".join(f"{y} {s}\n" for y, s in sentences))
    return path


def csv_file(path: Path, sentences, header="text,label", n: int = 40) -> Path:
    rows = [header] + [f'"{s}",{"pos" if y else "neg"}' for y, s in sentences[:n]]
    path.write_text("\n".join(rows) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------------
# bad text data, found while loading (before any file is written)
# ---------------------------------------------------------------------------------------------------------------
def _make(root: Path, case: str, sentences) -> Path:
    """Build the bad text source `case` under `root`; return what to pass as --data."""
    good = "".join(f"{s}\n" for _, s in sentences[:50]).encode()
    if case == "invalid-utf8":
        p = root / "bad.txt"
        # a Latin-1 byte at offset len(good) + 3, and a control byte: no text in any encoding (text that is only
        # not UTF-8 is read as Latin-1: test_text_data.test_latin1_files)
        p.write_bytes(good + b"caf\xe9 au lait\x01\n" + good)
    elif case == "empty-file":
        p = root / "empty.txt"
        p.write_bytes(b"")
    elif case == "only-blank-lines":
        p = root / "blank.txt"
        p.write_text("\n  \n\t\n\r\n\n")
    elif case == "single-12mb-line":
        p = root / "oneline.txt"
        p.write_bytes(b"word " * (12 * 2**20 // 5))
    elif case == "csv-without-text-column":  # no known name and no column of free text ('comment' would be one)
        p = root / "t.csv"
        p.write_text("id,code,label\n" + "".join(f"{i},{i % 7},{['neg', 'pos'][y]}\n" for i, (y, _) in
                                                  enumerate(sentences[:40])))
    elif case == "csv-with-many-columns":  # the error lists the first 8 columns and how many there are
        p = root / "t.csv"
        p.write_text(",".join(f"c{j}" for j in range(90)) + "\n"
                     + "".join(",".join(str((i + j) % 7) for j in range(90)) + "\n" for i in range(40)))
    elif case == "txt-line-without-label":  # `label text` lines, one (line 21) without its label
        p = labelled_file(root / "t.txt", sentences[:60])
        rows = p.read_text().splitlines()
        rows[20] = rows[20].split(" ", 1)[1]
        p.write_text("\n".join(rows) + "\n")
    elif case == "csv-label-missing":
        p = csv_file(root / "t.csv", sentences)
        rows = p.read_text().splitlines()
        rows[3] = rows[3].rsplit(",", 1)[0] + ","  # line 4: an empty label field
        p.write_text("\n".join(rows) + "\n")
    elif case == "csv-ragged-row":
        p = csv_file(root / "t.csv", sentences)
        rows = p.read_text().splitlines()
        rows[4] += ",extra"  # line 5: three fields
        p.write_text("\n".join(rows) + "\n")
    elif case == "csv-unterminated-quote":
        p = csv_file(root / "t.csv", sentences)
        rows = p.read_text().splitlines()
        rows[10] = '"never closed, pos'  # swallows the rest of the file into one field
        p.write_text("\n".join(rows) + "\n")
    elif case == "csv-label-column-all-distinct":
        p = root / "t.csv"
        p.write_text("text,label\n" + "".join(f'"{s}",{i}\n' for i, (_, s) in enumerate(sentences[:30])))
    elif case == "tsv-bad-row":
        p = root / "t.tsv"
        rows = ["sentence\tlabel"] + [f"{s}\t{y}" for y, s in sentences[:30]]
        rows[7] = rows[7].replace("\t", " ")  # line 8: the tab lost
        p.write_text("\n".join(rows) + "\n")
    elif case == "jsonl-bad-json":
        p = root / "t.jsonl"
        rows = [json.dumps({"text": s, "label": y}) for y, s in sentences[:30]]
        rows[2] = rows[2][:-1]  # line 3: the closing brace lost
        p.write_text("\n".join(rows) + "\n")
    elif case == "jsonl-not-an-object":
        p = root / "t.jsonl"
        rows = [json.dumps({"text": s, "label": y}) for y, s in sentences[:30]]
        rows[5] = json.dumps([sentences[5][1], 1])
        p.write_text("\n".join(rows) + "\n")
    elif case == "jsonl-text-not-a-string":
        p = root / "t.jsonl"
        rows = [json.dumps({"text": s, "label": y}) for y, s in sentences[:30]]
        rows[3] = json.dumps({"text": None, "label": 1})
        p.write_text("\n".join(rows) + "\n")
    elif case == "json-not-a-list-of-examples":
        p = root / "t.json"
        p.write_text(json.dumps({"texts": [s for _, s in sentences[:30]], "version": 1}))
    elif case == "json-text-not-a-string":
        p = root / "t.json"
        records = [{"text": s, "label": y} for y, s in sentences[:30]]
        records[6]["text"] = 7
        p.write_text(json.dumps(records))
    elif case == "parquet-text-missing":
        import pyarrow as pa
        import pyarrow.parquet as pq

        p = root / "train.parquet"
        texts = [s for _, s in sentences[:30]]
        texts[4] = None
        pq.write_table(pa.table({"text": texts, "label": [y for y, _ in sentences[:30]]}), p)
    elif case == "missing-file":
        p = root / "nope.txt"
    elif case == "glob-matching-nothing":
        return Path(str(root / "shards" / "*.txt"))
    elif case == "folder-without-txt":
        p = root / "docs"
        p.mkdir()
        (p / "notes.md").write_text("some notes\n")
        (p / "data.json").write_text("{}\n")
    elif case == "npz-for-a-text-method":
        p = root / "data.npz"
        p.write_bytes(b"PK\x03\x04 not really")
    else:
        raise AssertionError(case)
    return p


DATA_CASES = {  # case -> words the error line must contain
    "invalid-utf8": ["bad.txt", "not valid UTF-8", "byte offset {offset}"],
    "empty-file": ["empty.txt is empty"],
    "only-blank-lines": ["only blank lines"],
    "single-12mb-line": ["line 1 is 12.0 MB long", "line breaks"],
    "csv-without-text-column": ["no text column", "found columns: 'id', 'code', 'label'", "looked for text, sentence"],
    "csv-with-many-columns": ["no text column", "'c0', 'c1'", "'c7', ... (90 columns)"],
    "txt-line-without-label": ["t.txt: line 21 does not start with a label", "labels '0', '1'"],
    "csv-label-missing": ["line 4", "empty label"],
    "csv-ragged-row": ["line 5 has 3 fields", "header has 2"],
    "csv-unterminated-quote": ["cannot parse as CSV near line 12", "quote left open"],
    "csv-label-column-all-distinct": ["every label value is distinct"],
    "tsv-bad-row": ["line 8 has 1 fields", "TSV"],
    "jsonl-bad-json": ["line 3 is not valid JSON"],
    "jsonl-not-an-object": ["line 6 is not a JSON object"],
    "jsonl-text-not-a-string": ["line 4 has no text string"],
    "json-not-a-list-of-examples": ["t.json: a .json file of text must hold a list of objects"],
    "json-text-not-a-string": ["t.json: record 7 has no text string in 'text'"],
    "parquet-text-missing": ["train.parquet: row 5 has no text string in 'text'"],
    "missing-file": ["text data not found", "nope.txt"],
    "glob-matching-nothing": ["no files match"],
    "folder-without-txt": ["no .txt files in folder"],
    "npz-for-a-text-method": ["unsupported text file", "data.npz"],
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_text_data(capsys, tmp_path, sentences, case):
    data = _make(tmp_path, case, sentences)
    out = tmp_path / "o"
    offset = len("".join(f"{s}\n" for _, s in sentences[:50]).encode()) + 3
    words = [w.format(offset=offset) for w in DATA_CASES[case]]
    assert_error(run_cli(capsys, "pretrain", "--data", data, *GPT, "--out", out), *words, root=tmp_path, out=out)


def test_labelled_file_with_one_class(capsys, tmp_path, sentences):
    """Labels in a `label text` file or a CSV column, all the same: no study can be made from one class."""
    txt = tmp_path / "one.txt"
    txt.write_text("".join(f"1 {s}\n" for _, s in sentences[:40]))
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "study", "--data", txt, *BERT_STUDY, "--out", out), "every line has the label '1'",
                 "only one class", root=tmp_path, out=out)
    csv = tmp_path / "one.csv"
    csv.write_text("text,label\n" + "".join(f'"{s}",pos\n' for _, s in sentences[:40]))
    assert_error(run_cli(capsys, "study", "--data", csv, *BERT_STUDY, "--out", out), "only one class ('pos')",
                 root=tmp_path, out=out)


@pytest.mark.parametrize("cmd", ["pretrain", "study"])
def test_unknown_label_column(capsys, tmp_path, sentences, cmd):
    """--label-column naming no column: one line naming the columns found (a header's, or a headerless file's
    count and first row)."""
    data = csv_file(tmp_path / "q.csv", sentences, header="question,kind")
    out = tmp_path / "o"
    args = GPT if cmd == "pretrain" else BERT_STUDY
    assert_error(run_cli(capsys, cmd, "--data", data, *args, "--label-column", "label", "--out", out),
                 "no column 'label' (--label-column)", "found columns 'question', 'kind'", root=tmp_path, out=out)
    headerless = tmp_path / "h.tsv"
    headerless.write_text("".join(f"{s}\t{y}\n" for y, s in sentences[:60]))
    assert_error(run_cli(capsys, cmd, "--data", headerless, *args, "--text-column", "sentence", "--out", out),
                 "no column 'sentence' (--text-column)", "found 2 columns and no header", root=tmp_path, out=out)


def test_columns_for_an_image_method(capsys, tmp_path):
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", "--data", "digits", "--method", "simclr", "--label-column", "kind",
                         "--out", out), "--label-column", "simclr trains on image data", root=tmp_path, out=out)


# ---------------------------------------------------------------------------------------------------------------
# extra corpora (--corpus)
# ---------------------------------------------------------------------------------------------------------------
def test_corpus_file_that_does_not_exist(capsys, tmp_path, sentences):
    data = corpus_file(tmp_path / "c.txt", sentences)
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", "--data", data, *GPT, "--corpus", tmp_path / "missing.txt",
                         "--out", out), "text data not found", "missing.txt", root=tmp_path, out=out)


def test_corpus_file_not_utf8(capsys, tmp_path, sentences):
    data = corpus_file(tmp_path / "c.txt", sentences)
    bad = tmp_path / "extra.txt"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", "--data", data, *GPT, "--corpus", bad, "--out", out),
                 "extra.txt is not valid UTF-8", "byte offset 0", root=tmp_path, out=out)


@pytest.mark.parametrize("cmd", ["pretrain", "study"])
def test_corpus_with_an_image_method(capsys, tmp_path, sentences, cmd):
    """Image methods cannot use an extra text corpus: refused rather than silently ignored."""
    extra = corpus_file(tmp_path / "c.txt", sentences)
    out = tmp_path / "o"
    assert_error(run_cli(capsys, cmd, "--data", "digits", "--method", "simclr", "--backbone", "resnet-xs",
                         "--epochs", "0.01", "--corpus", extra, "--out", out),
                 "--corpus adds unlabelled text for text methods", "simclr trains on image data",
                 root=tmp_path, out=out)


# ---------------------------------------------------------------------------------------------------------------
# settings that do not fit text: kinds, sizes, vocabularies, contexts
# ---------------------------------------------------------------------------------------------------------------
def test_text_method_on_image_data(capsys, tmp_path):
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", "--data", "digits", *BERT, "--out", out),
                 "digits is an image data set", "text methods need text", root=tmp_path, out=out)


def test_image_method_on_text_data(capsys, tmp_path, sentences):
    data = corpus_file(tmp_path / "c.txt", sentences)
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", "--data", data, "--method", "simclr", "--out", out),
                 "c.txt", "text method", root=tmp_path, out=out)  # it names the file and what can use it


@pytest.mark.parametrize("cmd", ["pretrain", "study"])
def test_unknown_text_model_size(capsys, tmp_path, sentences, cmd):
    data = labelled_file(tmp_path / "l.txt", sentences)
    out = tmp_path / "o"
    assert_error(run_cli(capsys, cmd, "--data", data, "--method", "bert", "--backbone", "huge", "--out", out),
                 "unknown text model size 'huge'", "tiny", "mini", "small", root=tmp_path, out=out)


@pytest.mark.parametrize("method,words", [("gpt", ["vocab_size >= 259", "got 10"]),
                                          ("bert", ["vocab_size 10 is too small", "100% of its tokens", "[UNK]"])])
def test_vocabulary_too_small(capsys, tmp_path, sentences, method, words):
    data = corpus_file(tmp_path / "c.txt", sentences)
    out = tmp_path / "o"
    args = [a for a in (GPT if method == "gpt" else BERT) if a not in ("--method", "gpt", "bert")]
    assert_error(run_cli(capsys, "pretrain", "--data", data, "--method", method, *args, "vocab_size=10",
                         "--out", out), *words, root=tmp_path, out=out)


def test_vocabulary_larger_than_the_corpus_fills(capsys, tmp_path, sentences):
    """vocab_size is an upper bound: 40 short sentences cannot fill 100,000 BPE tokens, the trained vocabulary is
    smaller and the model is sized from it."""
    data = corpus_file(tmp_path / "c.txt", sentences, n=40)
    out = tmp_path / "o"
    assert_ok(run_cli(capsys, "pretrain", "--data", data, *GPT, "vocab_size=100000", "--out", out))
    from sslab.methods.text import load_tokenizer

    info = json.loads((out / "run.json").read_text())
    hf = json.loads((out / "hf" / "config.json").read_text())
    assert 259 < info["vocab_size"] == len(load_tokenizer(out / "tokenizer")) == hf["vocab_size"] < 5000
    assert not leftovers(tmp_path)


def test_context_longer_than_the_text(capsys, tmp_path, sentences):
    data = corpus_file(tmp_path / "c.txt", sentences, n=40)
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", "--data", data, *GPT, "context=100000", "--out", out),
                 "fewer than two blocks of 100001", "lower the context", root=tmp_path, out=out)


def test_context_too_short_for_bert(capsys, tmp_path, sentences):
    """[CLS] A [SEP] B [SEP] needs 3 special tokens and 2 of each segment: found before the tokenizer is trained."""
    data = corpus_file(tmp_path / "c.txt", sentences)
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", "--data", data, *BERT, "context=2", "--out", out),
                 "context 2 is too short for bert", "at least 7", root=tmp_path, out=out)


def test_context_of_two_tokens_trains_gpt(capsys, tmp_path, sentences):
    """The shortest context the config accepts is a valid (if useless) GPT: 2 inputs, 2 next-token targets."""
    data = corpus_file(tmp_path / "c.txt", sentences, n=20)
    out = tmp_path / "o"
    assert_ok(run_cli(capsys, "pretrain", "--data", data, *GPT, "context=2", "--out", out))
    assert json.loads((out / "run.json").read_text())["context"] == 2


# ---------------------------------------------------------------------------------------------------------------
# trained runs: generate and evaluate on bad inputs
# ---------------------------------------------------------------------------------------------------------------
def _train(tmp_path_factory, sentences, name: str, args: list[str]) -> Path:
    base = tmp_path_factory.mktemp(name)
    data = labelled_file(base / "l.txt", sentences)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSLAB_CACHE", str(base / "cache"))
        mp.chdir(base)
        assert main(["pretrain", "--data", str(data), *args, "--out", str(base / "run")]) == 0
    return base / "run"


@pytest.fixture(scope="module")
def gpt_trained(tmp_path_factory, sentences):
    return _train(tmp_path_factory, sentences, "gpt", GPT)


@pytest.fixture(scope="module")
def bert_trained(tmp_path_factory, sentences):
    return _train(tmp_path_factory, sentences, "bert", BERT)


@pytest.fixture()
def gpt_run(gpt_trained, tmp_path):
    shutil.copytree(gpt_trained, tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture()
def bert_run(bert_trained, tmp_path):
    shutil.copytree(bert_trained, tmp_path / "run")
    return tmp_path / "run"


GENERATE_CASES = {  # case -> (options, words of the error line)
    "prompt-longer-than-context": (["--prompt", "the film is good and the story is bad " * 20],
                                   ["prompt is", "tokens long", "context of 32"]),
    "prompt-empty": (["--prompt", ""], ["prompt is empty"]),
    "tokens-zero": (["--tokens", "0"], ["--tokens", "greater than or equal to 1"]),
    "tokens-negative": (["--tokens", "-5"], ["--tokens"]),
    "top-k-zero": (["--top-k", "0"], ["--top-k"]),
    "temperature-negative": (["--temperature", "-1"], ["--temperature"]),
}


@pytest.mark.parametrize("case", list(GENERATE_CASES))
def test_generate_bad_options(capsys, tmp_path, gpt_run, case):
    opts, words = GENERATE_CASES[case]
    before = files_of(gpt_run)
    assert_error(run_cli(capsys, "generate", gpt_run, *opts), *words, root=tmp_path)
    assert files_of(gpt_run) == before


def test_generate_with_unseen_characters(capsys, tmp_path, gpt_run):
    """Byte-level BPE has no unknown token: a prompt of characters the corpus never had still generates."""
    prompt = "Ünïcödé ✓ 映画 😀"
    stdout = assert_ok(run_cli(capsys, "generate", gpt_run, "--prompt", prompt, "--tokens", "5", "--top-k", "3"))
    assert stdout.startswith(prompt)


def test_generate_on_a_bert_run(capsys, tmp_path, bert_run):
    assert_error(run_cli(capsys, "generate", bert_run, "--prompt", "the film", "--tokens", "5"),
                 "bert runs do not generate text", root=tmp_path)


def test_generate_on_a_folder_that_is_not_a_run(capsys, tmp_path):
    (tmp_path / "notarun").mkdir()
    assert_error(run_cli(capsys, "generate", tmp_path / "notarun"), "not a pretraining run", root=tmp_path)
    assert_error(run_cli(capsys, "generate", tmp_path / "missing"), "run folder not found", root=tmp_path)


def test_generate_without_tokenizer(capsys, tmp_path, gpt_run):
    (gpt_run / "tokenizer" / "tokenizer.json").unlink()
    assert_error(run_cli(capsys, "generate", gpt_run, "--tokens", "5"), "no tokenizer", "tokenizer.json missing",
                 root=tmp_path)


def test_evaluate_without_tokenizer(capsys, tmp_path, sentences, bert_run):
    (bert_run / "tokenizer" / "tokenizer.json").unlink()
    data = labelled_file(tmp_path / "l.txt", sentences)
    before = files_of(bert_run)
    assert_error(run_cli(capsys, "evaluate", bert_run, "--data", data, "--protocol", "knn", "--baselines", "none",
                         "--seeds", "1", "--labels", "1.0"), "no tokenizer", "tokenizer.json missing", root=tmp_path)
    assert files_of(bert_run) == before


def test_evaluate_text_run_on_image_data(capsys, tmp_path, bert_run):
    before = files_of(bert_run)
    assert_error(run_cli(capsys, "evaluate", bert_run, "--data", "digits", "--baselines", "none"),
                 "digits is an image data set", root=tmp_path)
    assert files_of(bert_run) == before


def test_evaluate_text_run_on_an_unlabelled_corpus(capsys, tmp_path, sentences, gpt_run):
    data = corpus_file(tmp_path / "c.txt", sentences)
    before = files_of(gpt_run)
    assert_error(run_cli(capsys, "evaluate", gpt_run, "--data", data, "--baselines", "none"),
                 "evaluation needs labelled data", "unlabelled corpus", root=tmp_path)
    assert files_of(gpt_run) == before


# ---------------------------------------------------------------------------------------------------------------
# valid but unusual: quoted CSV fields, Windows line endings, a byte-order mark
# ---------------------------------------------------------------------------------------------------------------
def test_quoted_csv_with_windows_line_endings_loads_and_pretrains(capsys, tmp_path, sentences):
    """Commas, doubled quotes and line breaks inside quoted fields; CRLF row ends; a UTF-8 byte-order mark."""
    from sslab.data.text import load_text

    special = ['she said, "fine", and left', "two\r\nlines, one text", 'a "quoted" word']
    texts = special + [s for _, s in sentences[:57]]
    body = "".join('"' + t.replace('"', '""') + f'",{"pos" if i % 2 else "neg"}\r\n' for i, t in enumerate(texts))
    p = tmp_path / "quoted.csv"
    p.write_bytes(b"\xef\xbb\xbf" + ("text,label\r\n" + body).encode())
    splits = load_text(p)
    got = sorted(splits.train.texts + splits.test.texts)
    assert got == sorted(t.replace("\r\n", "\n") for t in texts)
    assert splits.train.classes == ["neg", "pos"] and len(splits.train) + len(splits.test) == 60

    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes("".join(f"{y} {s}\r\n" for y, s in sentences[:60]).encode())
    lf = labelled_file(tmp_path / "lf.txt", sentences[:60])
    a, b = load_text(crlf), load_text(lf)
    assert a.train.texts == b.train.texts and a.train.y.tolist() == b.train.y.tolist()

    out = tmp_path / "o"
    assert_ok(run_cli(capsys, "pretrain", "--data", p, *GPT, "--out", out))
    assert (out / "backbone.safetensors").is_file() and not leftovers(tmp_path)
