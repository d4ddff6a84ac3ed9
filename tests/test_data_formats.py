"""Data sets in their authors' own formats (issue 22): two-column label/text files without a header (.txt with a tab,
.tsv, .csv; either column order), a labelled CSV whose label column has a name sslab does not know (`question,kind`),
columns named by --text-column / --label-column, corpora that stay corpora, COCO's own captions layout, the GPT
default for text and an image-text study whose named probe set cannot be had."""
from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sslab.cli import _default_method, main
from sslab.data import load_data
from sslab.data.pairs import is_pairs_spec, load_pairs
from sslab.data.text import load_text
from sslab.errors import SslabError

ROOT = Path(os.environ.get("SSLAB_DATA_ROOT", "/nonexistent"))
FLICKR = ROOT / "flickr8k-1k"
needs_flickr = pytest.mark.skipif(not (FLICKR / "captions.csv").is_file(), reason="flickr8k-1k not in the data root")

GOOD = ["a warm , funny film", "great acting and a clever plot", "moving and beautifully shot", "a real joy to watch"]
BAD = ["a dull , lifeless mess", "boring and far too long", "the plot makes no sense", "a waste of good time"]
QUESTIONS = {"HUM": "Who wrote the novel", "LOC": "Where is the city of", "NUM": "How many people live in",
             "DESC": "What does the word mean in", "ENTY": "What animal is shown on", "ABBR": "What does the acronym"}


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SSLAB_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)


def sentiment(n: int = 60) -> list[tuple[str, str]]:
    """(sentence, 0|1) rows, as SST-2's authors ship them."""
    return [(f"{GOOD[i % 4]} number {i}", "1") if i % 2 else (f"{BAD[i % 4]} number {i}", "0") for i in range(n)]


def write_rows(path: Path, rows, sep: str, label_first: bool = False) -> Path:
    """One row a line, no header; fields with a comma quoted in a CSV (the others never quoted)."""
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter=sep, lineterminator="\n", quoting=csv.QUOTE_MINIMAL if sep == "," else
                       csv.QUOTE_NONE)
        w.writerows((lab, text) if label_first else (text, lab) for text, lab in rows)
    return path


# ---------------------------------------------------------------------------------------------------------------
# two columns, no header
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix,sep", [(".txt", "\t"), (".tsv", "\t"), (".csv", ",")])
@pytest.mark.parametrize("label_first", [False, True])
def test_headerless_label_and_text_in_either_order(tmp_path, capsys, suffix, sep, label_first):
    f = write_rows(tmp_path / f"my{suffix}", sentiment(), sep, label_first)
    s = load_text(f)
    assert s.train.classes == ["0", "1"] and (len(s.train), len(s.test)) == (48, 12)
    everything = dict(zip(s.train.texts + s.test.texts, [s.train.classes[y] for y in list(s.train.y) + list(s.test.y)]))
    assert everything == dict(sentiment())  # every row kept, the first one too (it is no header), labels right
    label, text = ("1", "2") if label_first else ("2", "1")
    assert f"my{suffix}: no header; label = column {label} (2 values), text = column {text}" in capsys.readouterr().out


def test_headerless_file_with_a_broken_line_names_it(tmp_path):
    rows = sentiment()
    lines = [f"{t}\t{y}" for t, y in rows]
    lines[30] = lines[30].replace("\t", " ")  # line 31 lost its tab
    (tmp_path / "my.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(SslabError, match="line 31 has 1 tab-separated fields, the other lines 2"):
        load_text(tmp_path / "my.txt")


def test_corpus_txt_stays_a_corpus(tmp_path, capsys):
    prose = [f"The {w} walked along the river bank and thought about day {i} ." for i, w in
             enumerate(["man", "woman", "child", "dog", "teacher"] * 12)]
    cases = {
        "plain.txt": prose,
        "some-tabs.txt": [ln + ("\tsee note" if i % 7 == 0 else "") for i, ln in enumerate(prose)],  # 1 line in 7
        "prose-both-sides.txt": [f"{ln}\t{ln[::-1]}" for ln in prose],  # every line has a tab: no label column
        "many-values.txt": [f"{ln}\tv{i % 20}" for i, ln in enumerate(prose)],  # 20 values in 60 rows: too many
    }
    for name, lines in cases.items():
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        s = load_text(tmp_path / name)
        assert s.train.y is None and s.test is None and len(s.train) == len(lines), name
    assert "label =" not in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------
# a header with names sslab does not know; columns named by option
# ---------------------------------------------------------------------------------------------------------------
def trec_csv(path: Path, n: int = 120, header: str = "question,kind") -> Path:
    kinds = list(QUESTIONS)
    rows = [f'"{QUESTIONS[kinds[i % 6]]} case {i} ?",{kinds[i % 6]}' for i in range(n)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_question_kind_csv_infers_the_label_column(tmp_path, capsys):
    s = load_text(trec_csv(tmp_path / "trec.csv"))
    assert s.train.classes == sorted(QUESTIONS) and len(s.train) + len(s.test) == 120
    assert all(t.endswith("?") for t in s.train.texts)
    out = capsys.readouterr().out
    assert "trec.csv: label = column 'kind' (6 values), text = column 'question'" in out
    # neither name known: the text is the column of long free text, the label the one of few short values
    s = load_text(trec_csv(tmp_path / "t2.csv", header="q,k"))
    assert s.train.classes == sorted(QUESTIONS) and s.train.texts[0].endswith("?")
    # JSON Lines: the same inference on its fields
    lines = [json.dumps({"id": i, "kind": k, "question": f"{QUESTIONS[k]} case {i} ?"})
             for i, k in enumerate(list(QUESTIONS) * 20)]
    (tmp_path / "q.jsonl").write_text("\n".join(lines) + "\n")
    assert load_text(tmp_path / "q.jsonl").train.classes == sorted(QUESTIONS)


def test_columns_named_by_option(tmp_path, capsys):
    f = trec_csv(tmp_path / "trec.csv")
    with_extra = tmp_path / "extra.csv"  # two label-like columns: the fewest values win unless one is named
    lines = f.read_text().splitlines()
    with_extra.write_text("\n".join([lines[0] + ",split"] + [ln + f",{['a', 'b'][i % 2]}"
                                                             for i, ln in enumerate(lines[1:])]) + "\n")
    assert load_text(with_extra).train.classes == ["a", "b"]
    assert load_text(with_extra, label_column="KIND").train.classes == sorted(QUESTIONS)
    assert load_text(with_extra, text_column="question", label_column="2").train.classes == sorted(QUESTIONS)
    headerless = write_rows(tmp_path / "h.tsv", sentiment(), "\t")
    assert load_text(headerless, text_column="1", label_column="2").train.classes == ["0", "1"]
    assert load_data(str(with_extra), kind="text", label_column="kind").train.classes == sorted(QUESTIONS)
    with pytest.raises(SslabError, match=r"no column 'kinds' \(--label-column\); found columns 'question', 'kind'"):
        load_text(f, label_column="kinds")
    with pytest.raises(SslabError, match="found 2 columns and no header"):
        load_text(headerless, label_column="label")
    with pytest.raises(SslabError, match="name the same column"):
        load_text(f, text_column="question", label_column="1")
    with pytest.raises(SslabError, match="named text set"):
        load_text("sst2", label_column="label")


def test_no_text_column_error_names_columns_found_and_looked_for(tmp_path):
    (tmp_path / "ids.csv").write_text("id,code\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
    with pytest.raises(SslabError) as e:
        load_text(tmp_path / "ids.csv")
    msg = str(e.value)
    assert "no text column" in msg and "'id', 'code'" in msg and "sentence" in msg and "\n" not in msg


# ---------------------------------------------------------------------------------------------------------------
# the text default and a study on a headerless file, through the CLI
# ---------------------------------------------------------------------------------------------------------------
def test_a_text_file_of_another_suffix_is_text(tmp_path):
    """TREC as its authors ship it (`train_5500.label`, cp1252): a file whose suffix says nothing is text when its
    first bytes read as text; a binary file of an unknown suffix is not."""
    from sslab.data.text import is_text_spec

    raw = "\n".join(f"{['DESC:manner', 'HUM:ind'][i % 2]} Question {i} caf\xe9 ?" for i in range(40))
    (tmp_path / "train_5500.label").write_bytes(raw.encode("cp1252"))
    assert is_text_spec(tmp_path / "train_5500.label")
    assert _default_method(str(tmp_path / "train_5500.label"), None) == "gpt"
    s = load_data(str(tmp_path / "train_5500.label"))
    assert s.train.classes == ["DESC", "HUM"] and len(s.train) + len(s.test) == 40
    (tmp_path / "blob.dat").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.label").write_bytes(b"")
    assert not is_text_spec(tmp_path / "blob.dat") and not is_text_spec(tmp_path / "empty.label")
    with pytest.raises(SslabError, match="unsupported data file"):
        load_data(str(tmp_path / "blob.dat"))


def test_a_json_list_of_examples_is_text(tmp_path):
    """A .json file of examples, a list of objects or an object holding one (`{"data": [...]}`), is read as JSON
    Lines are; a COCO captions .json stays image-text pairs."""
    import json

    rows = sentiment(40)
    for i, doc in enumerate(([{"review": t, "stars": y} for t, y in rows],
                             {"version": 2, "data": [{"review": t, "stars": y} for t, y in rows]})):
        f = tmp_path / f"reviews{i}.json"
        f.write_text(json.dumps(doc))
        assert _default_method(str(f), None) == "gpt"
        s = load_data(str(f))
        assert s.train.classes == ["0", "1"] and len(s.train) + len(s.test) == 40
    coco = tmp_path / "captions.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}],
                                "annotations": [{"image_id": 1, "caption": "a cat"}]}))
    assert is_pairs_spec(str(coco)) and _default_method(str(coco), None) == "clip"


def test_text_data_defaults_to_gpt(tmp_path):
    f = write_rows(tmp_path / "my.txt", sentiment(), "\t")
    assert _default_method(str(f), None) == "gpt" and _default_method("sst2", None) == "gpt"


def test_study_on_a_headerless_file_reaches_training(tmp_path, capsys):
    f = write_rows(tmp_path / "my.txt", sentiment(80), "\t")
    out = tmp_path / "run"
    code = main(["study", "--data", str(f), "--budget", "2s", "--out", str(out), "pretrain.backbone=tiny",
                 "pretrain.context=32", "pretrain.vocab_size=300", "eval.fractions=[1.0]", "eval.seeds=1",
                 "eval.protocols=[knn]", "eval.baselines=[]"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "my.txt: no header; label = column 2 (2 values), text = column 1" in cap.out
    res = json.loads((out / "results.json").read_text())
    assert res["data"]["classes"] == ["0", "1"] and res["pretrain"]["method"] == "gpt"
    # the columns named by option reach the study's loader and are recorded in its config
    q = trec_csv(tmp_path / "q.csv")
    code = main(["pretrain", "--data", str(q), "--label-column", "kind", "--text-column", "question", "--method",
                 "gpt", "--backbone", "tiny", "--epochs", "0.01", "context=32", "vocab_size=300", "--out",
                 str(tmp_path / "pre")])
    assert code == 0, capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# COCO's own layout
# ---------------------------------------------------------------------------------------------------------------
def coco_tree(tmp_path: Path, missing: bool = False) -> Path:
    """A few Flickr8k-1k images in COCO's layout: annotations/captions_{train,val}2017.json, train2017/, val2017/
    (images left out with `missing`)."""
    import csv

    with open(FLICKR / "captions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    files = sorted({r["image"] for r in rows})[:10]
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for split, names in (("train2017", files[:7]), ("val2017", files[7:])):
        (root / split).mkdir()
        if not missing:
            for n in names:
                shutil.copy(FLICKR / "images" / n, root / split / n)
        ids = {n: 1000 * (split == "val2017") + i for i, n in enumerate(names)}
        doc = {"info": {}, "licenses": [], "images": [{"id": ids[n], "file_name": n, "height": 1, "width": 1}
                                                      for n in names],
               "annotations": [{"id": k, "image_id": ids[r["image"]], "caption": r["caption"]}
                               for k, r in enumerate(rows) if r["image"] in ids]}
        (root / "annotations" / f"captions_{split}.json").write_text(json.dumps(doc))
    return root


@needs_flickr
def test_coco_layout_loads_as_it_is(tmp_path):
    root = coco_tree(tmp_path)
    assert is_pairs_spec(str(root)) and _default_method(str(root), None) == "clip"
    s = load_pairs(str(root), image_size=16)
    assert len(s.train) + len(s.test) == 10 and s.train.skipped["missing_images"] == 0
    assert len(s.train.captions) + len(s.test.captions) == 50  # 5 captions an image, train and val together
    one = load_pairs(str(root / "annotations" / "captions_train2017.json"), image_size=16)
    assert len(one.train) + len(one.test) == 7 and one.train.skipped["missing_images"] == 0


@needs_flickr
def test_coco_layout_without_its_images_says_where_it_looked(tmp_path):
    root = coco_tree(tmp_path, missing=True)
    with pytest.raises(SslabError) as e:
        load_pairs(str(root))
    msg = str(e.value)
    assert "0 readable images (10 missing" in msg and str(root / "train2017") in msg and str(root / "val2017") in msg


@needs_flickr
@pytest.mark.parametrize("images,text", [("Flicker8k_Dataset", ""), ("Flickr8k_Dataset", "Flickr8k_text"),
                                          ("images", "")])
def test_flickr8k_own_layout_is_image_caption_pairs(tmp_path, images, text):
    """Flickr8k as its archives unpack: Flickr8k.token.txt (`<image>#<k><TAB><caption>`, beside its lemmatised
    copy; in Flickr8k_text/ or not) beside the image folder: pairs, never one class of images."""
    import csv

    with open(FLICKR / "captions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    files = sorted({r["image"] for r in rows})[:6]
    root = tmp_path / "flickr"
    (root / images).mkdir(parents=True)
    for n in files:
        shutil.copy(FLICKR / "images" / n, root / images / n)
    lines = [f"{r['image']}#{k % 5}\t{r['caption']}" for k, r in enumerate(r for r in rows if r["image"] in files)]
    lines.append(f"{files[0]}.1#0\tan image Flickr8k names and does not ship")
    (root / text).mkdir(exist_ok=True)
    (root / text / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    (root / text / "Flickr8k.lemma.token.txt").write_text("\n".join(lines[:5]) + "\n")
    (root / text / "Flickr_8k.trainImages.txt").write_text("\n".join(files) + "\n")
    assert is_pairs_spec(str(root)) and _default_method(str(root), None) == "clip"
    for spec in (root, root / text / "Flickr8k.token.txt"):
        s = load_data(str(spec), image_size=16)
        assert s.train.kind == "pairs" and len(s.train) + len(s.test) == 6
        assert len(s.train.captions) + len(s.test.captions) == 30
        assert s.train.skipped == {"missing_images": 1, "unreadable_images": 0, "captions_skipped": 1}
    (root / text / "Flickr8k.token.txt").write_text("\n".join(lines[:3] + ["no tab here"] + lines[3:]) + "\n")
    with pytest.raises(SslabError, match=r"Flickr8k.token.txt:4: not '<image>#<k><TAB><caption>'"):
        load_data(str(root))


# ---------------------------------------------------------------------------------------------------------------
# an image-text study whose named probe set cannot be had
# ---------------------------------------------------------------------------------------------------------------
def _pair_folder(tmp_path: Path) -> Path:
    import numpy as np
    from PIL import Image

    d = tmp_path / "pairs"
    (d / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for c, rgb in {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}.items():
        for k in range(6):
            px = np.clip(np.array(rgb) + rng.integers(-15, 16, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(d / "images" / f"{c}{k}.png")
            rows.append(f"{c}{k}.png,a {c} square")
    (d / "captions.csv").write_text("image,caption\n" + "\n".join(rows) + "\n")
    return d


def test_pair_study_skips_a_named_probe_it_cannot_download(tmp_path, capsys, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("SSLAB_DATA_ROOT", str(tmp_path / "empty-root"))  # no cifar10 here: it must be downloaded
    out = tmp_path / "run"
    code = main(["study", "--data", str(_pair_folder(tmp_path)), "--out", str(out), "--backbone", "resnet-xs",
                 "--epochs", "1", "probe_data=cifar10", "pretrain.early_stop=null", "pretrain.batch_size=8"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "probe_data skipped (cifar10 could not be loaded: download of" in cap.out
    res = json.loads((out / "results.json").read_text())
    assert "no network" in res["probe_skipped"] and res["probe"] is None and res["runs"] == []
    assert set(res["run_evaluations"]) == {"retrieval"}
    assert "Probe skipped: cifar10 could not be loaded" in (out / "report.html").read_text()


# ---------------------------------------------------------------------------------------------------------------
# Parquet, as the Hugging Face Hub serves data sets
# ---------------------------------------------------------------------------------------------------------------
def _hf_parquet(path: Path, columns: dict, features: dict) -> Path:
    """A Parquet file as Hugging Face's datasets writes it: its features (ClassLabel names) in the schema's
    metadata under b"huggingface"."""
    import json

    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns).replace_schema_metadata(
        {b"huggingface": json.dumps({"info": {"features": features}}).encode()})
    pq.write_table(table, path)
    return path


def test_parquet_text_as_the_hub_serves_it(tmp_path, capsys):
    """GLUE's SST-2 layout: data/train-*.parquet, validation-*, and a test split whose labels are withheld (-1):
    the ClassLabel names are the classes, the validation split is the test split (said), one file alone works."""
    rows = sentiment(60)
    feats = {"idx": {"_type": "Value"}, "sentence": {"_type": "Value"},
             "label": {"names": ["negative", "positive"], "_type": "ClassLabel"}}
    cols = {"idx": list(range(60)), "sentence": [t for t, _ in rows], "label": [int(y) for _, y in rows]}
    d = tmp_path / "glue-sst2"
    _hf_parquet(d / "data" / "train-00000-of-00001.parquet", cols, feats)
    _hf_parquet(d / "data" / "validation-00000-of-00001.parquet", {k: v[:20] for k, v in cols.items()}, feats)
    _hf_parquet(d / "data" / "test-00000-of-00001.parquet", {**{k: v[:20] for k, v in cols.items()},
                                                             "label": [-1] * 20}, feats)
    assert _default_method(str(d), None) == "gpt"
    s = load_data(str(d))
    assert s.train.classes == ["negative", "positive"] and len(s.train) == 60 and len(s.test) == 20
    assert s.train.name == "glue-sst2" and s.test.texts[0] == rows[0][0]
    assert capsys.readouterr().out == ("test-00000-of-00001.parquet: no labels ('label' is -1 or empty in every row):"
                                       " the next split is the test split\n")
    one = load_data(str(d / "data" / "train-00000-of-00001.parquet"))
    assert len(one.train) + len(one.test) == 60


def test_parquet_images_as_the_hub_serves_them(tmp_path, capsys):
    """An image set's Parquet files: Hugging Face's Image feature ({bytes, path}) and a ClassLabel label, decoded
    as a folder's images are; said in one line."""
    import io as _io

    import numpy as np
    from PIL import Image

    def png(v):
        buf = _io.BytesIO()
        Image.fromarray(np.full((12, 12), v, np.uint8)).save(buf, "PNG")
        return {"bytes": buf.getvalue(), "path": None}

    feats = {"image": {"_type": "Image"}, "label": {"names": ["dark", "light"], "_type": "ClassLabel"}}
    d = tmp_path / "shades"
    _hf_parquet(d / "train-00000-of-00001.parquet",
                {"image": [png(10 + i if i % 2 else 200 + i) for i in range(20)], "label": [i % 2 for i in range(20)]},
                {"image": feats["image"], "label": {"names": ["light", "dark"], "_type": "ClassLabel"}})
    _hf_parquet(d / "test-00000-of-00001.parquet", {"image": [png(5), png(250)], "label": [1, 0]},
                {"image": feats["image"], "label": {"names": ["light", "dark"], "_type": "ClassLabel"}})
    assert _default_method(str(d), None) is None  # images: the image recipe's method
    s = load_data(str(d))
    assert s.train.classes == ["light", "dark"] and s.train.x.shape == (20, 12, 12, 1)
    assert s.train.y.tolist() == [i % 2 for i in range(20)] and s.test.y.tolist() == [1, 0]
    assert int(s.test.x[0].mean()) == 5 and s.train.name == "shades"
    assert capsys.readouterr().out == ("train-00000-of-00001.parquet: Parquet, 20 images in 'image', labels 'label' "
                                       "(2 classes); test-00000-of-00001.parquet the test split\n")
    # a row whose bytes are no image is left out, as a folder's unreadable image is, said in the line
    _hf_parquet(d / "train-00000-of-00001.parquet",
                {"image": [png(10 + i if i % 2 else 200 + i) for i in range(20)] + [{"bytes": b"junk"}],
                 "label": [i % 2 for i in range(21)]},
                {"image": feats["image"], "label": {"names": ["light", "dark"], "_type": "ClassLabel"}})
    t = load_data(str(d))
    assert len(t.train) == 20 and len(t.test) == 2
    assert "20 images in 'image' (1 unreadable left out; the first: cannot read image train-00000-of-00001.parquet " \
           "row 21" in capsys.readouterr().out


def test_parquet_layouts_and_rows_without_labels(tmp_path, capsys):
    """The Hub's other layouts: a configuration's folder (`plain_text/train-*.parquet`) and the converted one
    (`default/train/0000.parquet`); files of two configurations are an error naming them; rows labelled -1 in a
    labelled split are left out, said in one line."""
    rows = sentiment(40)
    feats = {"text": {"_type": "Value"}, "label": {"names": ["neg", "pos"], "_type": "ClassLabel"}}
    cols = {"text": [t for t, _ in rows], "label": [int(y) for _, y in rows]}
    conv = tmp_path / "imdb"
    _hf_parquet(conv / "default" / "train" / "0000.parquet", {**cols, "label": [-1] * 4 + cols["label"][4:]}, feats)
    _hf_parquet(conv / "default" / "test" / "0000.parquet", {k: v[:10] for k, v in cols.items()}, feats)
    s = load_data(str(conv))
    assert len(s.train) == 36 and len(s.test) == 10 and s.train.classes == ["neg", "pos"]
    assert capsys.readouterr().out == "0000.parquet: 4 rows without a label in 'label' (-1 or empty) left out\n"
    cfg = tmp_path / "emotion"
    _hf_parquet(cfg / "split" / "train-00000-of-00001.parquet", cols, feats)
    _hf_parquet(cfg / "split" / "test-00000-of-00001.parquet", cols, feats)
    assert len(load_data(str(cfg)).test) == 40
    _hf_parquet(cfg / "unsplit" / "train-00000-of-00001.parquet", cols, feats)
    with pytest.raises(SslabError, match=r"Parquet files of 2 configurations \(split, unsplit\); give the folder"):
        load_data(str(cfg))


def test_json_of_any_size_or_lines(tmp_path):
    """A .json list written on one line past the line limit of .txt files (json.dump), JSON Lines saved as .json
    (Hugging Face's to_json), and a .json nested too deep to be examples: an error line, no traceback."""
    import json

    from sslab.data.text import MAX_LINE_BYTES

    rows = sentiment(40)
    long = [{"text": t + " " + "x" * (MAX_LINE_BYTES // 30), "label": y} for t, y in rows]
    (tmp_path / "big.json").write_text(json.dumps(long))
    assert len(load_data(str(tmp_path / "big.json")).train.texts[0]) > MAX_LINE_BYTES // 30
    (tmp_path / "lines.json").write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in rows))
    assert load_data(str(tmp_path / "lines.json")).train.classes == ["0", "1"]
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SslabError, match="must hold a list of objects"):
        load_data(str(tmp_path / "deep.json"), kind="text")
