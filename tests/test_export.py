"""`sslab export RUN --format onnx|torchscript|timm|hf` (sslab.export): each export of a tiny image run (digits) and a
tiny text run (TREC) gives what sslab's encoder gives, on a batch size other than the one traced; bad input is one
error line."""
import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import sslab
from sslab import PretrainConfig
from sslab.engine import load_encoder
from sslab.export import SIDECAR, TRACE_BATCH

from cli_contract import assert_error, files_of, run_cli  # noqa: E402

ROOT = Path(os.environ.get("SSLAB_DATA_ROOT", "../shared/data"))
HAS_TREC = (ROOT / "sentences" / "TREC.train").is_file()
TOL = 1e-4
BATCH = 5  # not TRACE_BATCH: the batch axis must be dynamic
SENTENCES = ["How far is it from Denver to Aspen ?", "What is a fear of heights called ?",
             "Who wrote Hamlet ?", "When did the Berlin Wall fall ?", "Name a flying mammal ."]


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.delenv("SSLAB_DEBUG", raising=False)


def _image_run(digits, out: Path, backbone: str) -> Path:
    cfg = PretrainConfig(method="simclr", epochs=1, budget=None, batch_size=32, backbone=backbone, log_every=5,
                         max_images=128)  # 4 steps
    sslab.pretrain(digits.train, cfg, out, show_progress=False, data_spec="digits")
    return out


@pytest.fixture(scope="module")
def runs(digits, tmp_path_factory):
    """Tiny runs: SimCLR on digits with sslab's ResNet, with a timm ResNet and with sslab's (timm) ViT; BERT on TREC."""
    tmp = tmp_path_factory.mktemp("export")
    out = {"image": _image_run(digits, tmp / "image", "resnet-xs"),
           "timm": _image_run(digits, tmp / "timm", "timm:test_resnet"),
           "vit": _image_run(digits, tmp / "vit", "vit-mini")}
    if HAS_TREC:
        from sslab.data import load_data
        from sslab.methods import prepare_pretraining

        cfg = PretrainConfig(method="bert", backbone="tiny", batch_size=16, context=32, vocab_size=500, log_every=5,
                             lr=2e-3, lr_scaling="none", channels_last=False, epochs=1, budget=None, max_items=64)
        prep = prepare_pretraining(load_data("trec", ROOT, kind="text"), cfg, tmp / "text")
        sslab.pretrain(prep.train, cfg, tmp / "text", show_progress=False, data_spec="trec", val_data=prep.val)
        out["text"] = tmp / "text"
    return out


def _inputs(kind: str, digits, folder: Path):
    """(sslab encoder's input, the export's inputs by name) for BATCH test items: digits as uint8 NHWC for sslab and
    float NCHW in [0, 1] for the export; TREC questions tokenized by the tokenizer the export carries, padded."""
    if kind != "text":
        raw = torch.from_numpy(digits.test.x[:BATCH])
        return raw, {"images": raw.permute(0, 3, 1, 2).float().div(255)}
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(str(folder / "tokenizer"))
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    assert int(batch["attention_mask"].min()) == 0  # some rows padded
    return batch, batch


def _export(capsys, run: Path, fmt: str, out: Path, *extra) -> dict:
    code, stdout, err = run_cli(capsys, "export", run, "--format", fmt, "--out", out, *extra)
    assert code == 0, err
    assert str(out) in stdout
    side = json.loads((out / SIDECAR).read_text())
    assert side["format"] == fmt and side["torch_version"] == torch.__version__
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(side["files"])
    return side


def _need(runs, kind):
    if kind not in runs:
        pytest.skip("TREC not in the data root")


@pytest.mark.parametrize("kind", ["image", "text"])
def test_onnx_matches_the_encoder_in_onnxruntime(runs, digits, kind, capsys, tmp_path):
    import onnxruntime as ort

    _need(runs, kind)
    side = _export(capsys, runs[kind], "onnx", tmp_path / "onnx")
    enc, _ = load_encoder(runs[kind])
    ref_in, feeds = _inputs(kind, digits, tmp_path / "onnx")
    assert [i["name"] for i in side["inputs"]] == list(feeds)
    assert side["inputs"][0]["shape"][0] == "batch" and side["output_dim"] == enc.dim and side["opset"] >= 17
    assert [i["dtype"] for i in side["inputs"]] == [str(v.dtype).removeprefix("torch.") for v in feeds.values()]
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
    with torch.no_grad():
        ref = enc(ref_in).numpy()
    assert got.shape == (BATCH, enc.dim) and BATCH != TRACE_BATCH
    diff = float(np.abs(got - ref).max())
    print(f"onnx {kind}: max abs diff {diff:.3g} (batch {BATCH})")
    assert diff < TOL and side["check"]["max_abs_diff"] < TOL


@pytest.mark.parametrize("kind", ["image", "text"])
def test_torchscript_matches_the_encoder(runs, digits, kind, capsys, tmp_path):
    _need(runs, kind)
    _export(capsys, runs[kind], "torchscript", tmp_path / "ts")
    enc, _ = load_encoder(runs[kind])
    ref_in, feeds = _inputs(kind, digits, tmp_path / "ts")
    model = torch.jit.load(str(tmp_path / "ts" / "model.pt"))
    with torch.no_grad():
        got, ref = model(*feeds.values()), enc(ref_in)
    diff = float((got - ref).abs().max())
    print(f"torchscript {kind}: max abs diff {diff:.3g} (batch {BATCH})")
    assert got.shape == ref.shape and diff < TOL


@pytest.mark.parametrize("kind", ["timm", "vit"])
def test_timm_round_trip(runs, digits, kind, capsys, tmp_path):
    """timm rebuilds the network from the folder (local-dir:) and from its weights file (pretrained_cfg_overlay) and
    gives sslab's features on pixels normalised as the pretrained_cfg says."""
    import timm

    out = tmp_path / "timm"
    side = _export(capsys, runs[kind], "timm", out)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["num_features"] == side["output_dim"] and cfg["pretrained_cfg"]["input_size"] == [1, 8, 8]
    by_dir = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    by_file = timm.create_model(cfg["architecture"], pretrained=True, **cfg["model_args"], pretrained_cfg_overlay=dict(
        cfg["pretrained_cfg"], file=str(out / "model.safetensors"))).eval()
    data = timm.data.resolve_data_config({}, model=by_dir)
    raw, feeds = _inputs("image", digits, out)
    x = (feeds["images"] - torch.tensor(data["mean"]).view(1, -1, 1, 1)) / torch.tensor(data["std"]).view(1, -1, 1, 1)
    enc, _ = load_encoder(runs[kind])
    with torch.no_grad():
        ref = enc(raw)
        for model in (by_dir, by_file):
            diff = float((model(x) - ref).abs().max())
            print(f"timm {kind}: max abs diff {diff:.3g}")
            assert diff < TOL


def test_a_head_makes_the_export_output_class_scores(runs, digits, capsys, tmp_path):
    import onnxruntime as ort
    import timm

    enc, _ = load_encoder(runs["timm"])
    g = torch.Generator().manual_seed(0)
    head = {"weight": torch.randn(3, enc.dim, generator=g), "bias": torch.randn(3, generator=g)}
    save_file(head, str(tmp_path / "head.safetensors"))
    raw, feeds = _inputs("image", digits, tmp_path)
    with torch.no_grad():
        ref = enc(raw) @ head["weight"].T + head["bias"]
    side = _export(capsys, runs["timm"], "onnx", tmp_path / "onnx", "--head", tmp_path / "head.safetensors")
    assert side["outputs"][0]["name"] == "scores" and side["output_dim"] == 3 and side["head"]["classes"] == 3
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert float(np.abs(session.run(None, {"images": feeds["images"].numpy()})[0] - ref.numpy()).max()) < TOL
    _export(capsys, runs["timm"], "timm", tmp_path / "timm", "--head", tmp_path / "head.safetensors")
    model = timm.create_model(f"local-dir:{tmp_path / 'timm'}", pretrained=True).eval()
    data = timm.data.resolve_data_config({}, model=model)
    x = (feeds["images"] - torch.tensor(data["mean"]).view(1, -1, 1, 1)) / torch.tensor(data["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        assert model.num_classes == 3 and float((model(x) - ref).abs().max()) < TOL


def test_hf_export_loads_in_transformers(runs, capsys, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from sslab.nets.text import pool

    _need(runs, "text")
    side = _export(capsys, runs["text"], "hf", tmp_path / "hf")
    model, tok = AutoModel.from_pretrained(tmp_path / "hf").eval(), AutoTokenizer.from_pretrained(tmp_path / "hf")
    batch = dict(tok(SENTENCES, padding=True, return_tensors="pt"))
    enc, _ = load_encoder(runs["text"])
    with torch.no_grad():
        h = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        diff = float((pool(h, batch["attention_mask"], side["pooling"]) - enc(batch)).abs().max())
    assert diff < TOL and side["check"]["max_abs_diff"] < TOL
    save_file({"weight": torch.ones(2, enc.dim), "bias": torch.zeros(2)}, str(tmp_path / "head.safetensors"))
    side = _export(capsys, runs["text"], "hf", tmp_path / "hf-head", "--head", tmp_path / "head.safetensors")
    assert (tmp_path / "hf-head" / "classifier.safetensors").is_file() and side["head"]["classes"] == 2
    print(f"hf text: max abs diff {diff:.3g}")


def test_an_export_replaces_an_earlier_one_whole(runs, capsys, tmp_path):
    out = tmp_path / "ts"
    _export(capsys, runs["image"], "torchscript", out)
    (out / "stale.txt").write_text("from before")
    _export(capsys, runs["image"], "torchscript", out)
    assert not (out / "stale.txt").exists() and not list(tmp_path.glob(".*tmp"))
    assert (runs["image"] / "export").exists() is False  # --out given: nothing written into the run


# ------------------------------------------------------------------------------------------------ bad input
def test_a_folder_without_weights_is_one_error_line(runs, capsys, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(runs["image"] / "run.json", bare / "run.json")
    assert_error(run_cli(capsys, "export", bare, "--format", "onnx"), "no trained weights", "backbone.safetensors",
                 root=tmp_path, out=bare / "export")
    assert_error(run_cli(capsys, "export", tmp_path / "missing", "--format", "onnx"), "not found", root=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_error(run_cli(capsys, "export", empty, "--format", "onnx"), "run.json", root=tmp_path)


def test_an_unknown_format_lists_the_valid_ones(runs, capsys, tmp_path):
    assert_error(run_cli(capsys, "export", runs["image"], "--format", "tflite", "--out", tmp_path / "x"), "tflite",
                 "onnx, torchscript, timm, hf", root=tmp_path, out=tmp_path / "x")


def test_timm_and_hf_refuse_runs_they_do_not_fit(runs, capsys, tmp_path):
    assert_error(run_cli(capsys, "export", runs["image"], "--format", "timm", "--out", tmp_path / "t"), "timm",
                 "resnet-xs", root=tmp_path, out=tmp_path / "t")
    assert_error(run_cli(capsys, "export", runs["image"], "--format", "hf", "--out", tmp_path / "h"), "text runs",
                 root=tmp_path, out=tmp_path / "h")
    if "text" in runs:
        assert_error(run_cli(capsys, "export", runs["text"], "--format", "timm", "--out", tmp_path / "t"),
                     "image runs", root=tmp_path, out=tmp_path / "t")


def test_onnx_without_onnxruntime_names_the_package(runs, capsys, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert_error(run_cli(capsys, "export", runs["image"], "--format", "onnx", "--out", tmp_path / "o"),
                 "pip install onnxruntime", root=tmp_path, out=tmp_path / "o")


def test_bad_out_and_head_are_one_error_line(runs, capsys, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    before = files_of(taken)
    assert_error(run_cli(capsys, "export", runs["image"], "--format", "torchscript", "--out", taken),
                 "not an sslab export", root=tmp_path)
    assert files_of(taken) == before
    save_file({"weight": torch.zeros(3, 7), "bias": torch.zeros(3)}, str(tmp_path / "head.safetensors"))
    assert_error(run_cli(capsys, "export", runs["image"], "--format", "onnx", "--out", tmp_path / "o", "--head",
                         tmp_path / "head.safetensors"), "7 features", root=tmp_path, out=tmp_path / "o")
