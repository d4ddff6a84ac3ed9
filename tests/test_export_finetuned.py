"""`sslab evaluate --save-model` keeps the best seed's fine-tuned model of each fraction (sslab.evaluate.saved), and
`sslab export RUN --model FILE` exports its tuned encoder with its head: on a tiny digits run the ONNX model's class
scores match sslab's within 1e-4 in onnxruntime and give the same accuracy; bad model files are one error line."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import sslab
from sslab import PretrainConfig
from sslab.cli import main
from sslab.evaluate.saved import ModelKeeper, model_stem
from sslab.export import SIDECAR, load_classifier

from cli_contract import assert_error, run_cli  # noqa: E402

TOL = 1e-4
ITEMS = 40  # test items compared between onnxruntime and sslab
# a plateau-rule fine-tune run of a few dozen steps: 10% of digits' training images, 100 held out for validation
TINY = ["val_items=100", "finetune_min_steps=5", "finetune_images=1280", "check_images=64", "finetune_patience=1",
        "finetune_lr_drops=0", "batch_size=32"]


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.delenv("SSLAB_DEBUG", raising=False)


@pytest.fixture(scope="module")
def tuned(digits, tmp_path_factory):
    """A tiny SimCLR run on digits, evaluated by fine-tuning at 10% labels with two seeds and --save-model."""
    run = tmp_path_factory.mktemp("tuned") / "run"
    cfg = PretrainConfig(method="simclr", epochs=1, budget=None, batch_size=32, backbone="resnet-xs", log_every=5,
                         max_images=128)
    sslab.pretrain(digits.train, cfg, run, show_progress=False, data_spec="digits")
    code = main(["evaluate", str(run), "--labels", "0.1", "--protocol", "finetune", "--baselines", "none",
                 "--seeds", "2", "--save-model", *TINY])
    assert code == 0
    return run


def test_the_best_seed_is_kept_with_its_description(tuned):
    rows = [r for r in json.loads((tuned / "results.json").read_text())["runs"] if r["protocol"] == "finetune"]
    assert sorted(r["seed"] for r in rows) == [0, 1] and all("model" not in r for r in rows)
    best = max(rows, key=lambda r: (r["val_acc"], -r["seed"]))
    about = json.loads((tuned / "models" / "finetune-10pct.json").read_text())
    assert about["protocol"] == "finetune" and about["fraction"] == 0.1 and about["chosen_by"] == "val_acc"
    assert about["seed"] == best["seed"] and about["val_acc"] == best["val_acc"]
    assert about["test_acc"] == best["test_acc"] and about["seeds_compared"] == [0, 1]
    assert about["classes"] == [str(c) for c in range(10)] and about["weights"] == "finetune-10pct.safetensors"
    assert sorted(p.name for p in (tuned / "models").iterdir()) == ["finetune-10pct.json",
                                                                     "finetune-10pct.safetensors"]


def test_the_kept_model_gives_its_recorded_test_accuracy(tuned, digits):
    model, about = load_classifier(tuned, tuned / "models" / "finetune-10pct.safetensors")
    with torch.no_grad():
        pred = torch.cat([model(torch.from_numpy(digits.test.x[i : i + 256])).argmax(1)
                          for i in range(0, len(digits.test), 256)])
    acc = float((pred.numpy() == digits.test.y).mean())
    assert abs(acc - about["test_acc"]) <= 1 / len(digits.test) and about["classes"][3] == "3"


def test_onnx_export_of_the_fine_tuned_model_matches_in_onnxruntime(tuned, digits, capsys, tmp_path):
    import onnxruntime as ort

    file = tuned / "models" / "finetune-10pct.safetensors"
    code, stdout, err = run_cli(capsys, "export", tuned, "--format", "onnx", "--model", file, "--out", tmp_path / "o")
    assert code == 0, err
    side = json.loads((tmp_path / "o" / SIDECAR).read_text())
    assert side["outputs"][0]["name"] == "scores" and side["output_dim"] == 10 and side["head"] is None
    assert side["model"]["protocol"] == "finetune" and side["model"]["class_names"] == [str(c) for c in range(10)]
    assert side["check"]["max_abs_diff"] <= TOL and "load_classifier" in side["check"]["against"]
    raw, y = torch.from_numpy(digits.test.x[:ITEMS]), digits.test.y[:ITEMS]
    session = ort.InferenceSession(str(tmp_path / "o" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": raw.permute(0, 3, 1, 2).float().div(255).numpy()})[0]
    model, _ = load_classifier(tuned, file)
    with torch.no_grad():
        ref = model(raw).numpy()
    diff = float(np.abs(got - ref).max())
    print(f"onnx fine-tuned classifier: max abs diff {diff:.3g} on {ITEMS} test images")
    assert got.shape == (ITEMS, 10) and diff <= TOL
    assert (got.argmax(1) == y).mean() == (ref.argmax(1) == y).mean()
    # torchscript takes the same file
    code, _, err = run_cli(capsys, "export", tuned, "--format", "torchscript", "--model", file, "--out", tmp_path / "t")
    assert code == 0, err
    with torch.no_grad():
        ts = torch.jit.load(str(tmp_path / "t" / "model.pt"))(raw.permute(0, 3, 1, 2).float().div(255)).numpy()
    assert float(np.abs(ts - ref).max()) <= TOL


def test_the_keeper_keeps_the_best_seed_and_merges_with_an_earlier_one(tmp_path):
    """Validation accuracy chooses (a tie keeps the first seed); a protocol without a model is listed as not kept;
    `merge` (an evaluation of some seeds only) keeps an earlier better model."""
    def offer(keeper, protocol, seed, val, fraction=0.01):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
        keeper.offer(protocol, fraction, seed, 20, {"val_acc": val, "test_acc": 0.5, "train_acc": 1.0}, model,
                     ["a", "b"], "toy")
        return model

    keeper = ModelKeeper(tmp_path)
    offer(keeper, "fixmatch", 0, 0.5)
    best = offer(keeper, "fixmatch", 1, 0.7)
    offer(keeper, "fixmatch", 2, 0.7)
    keeper.offer("selftrain", 0.01, 0, 20, {"val_acc": 0.9, "test_acc": 0.9}, best, ["a", "b"], "toy")  # not kept
    keeper.offer("finetune", 8.0, 0, 16, {"val_acc": 0.9, "test_acc": 0.9}, None, ["a", "b"], "toy")
    about = json.loads((tmp_path / "models" / "fixmatch-1pct.json").read_text())
    assert about["seed"] == 1 and about["seeds_compared"] == [0, 1, 2] and about["val_acc"] == 0.7
    state = load_file(str(tmp_path / "models" / "fixmatch-1pct.safetensors"))
    assert torch.equal(state["head.weight"], best[1].weight) and torch.equal(state["encoder.weight"], best[0].weight)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["fixmatch-1pct.json",
                                                                       "fixmatch-1pct.safetensors"]
    assert any("finetune: the protocol returns no model" in line for line in keeper.lines())
    again = ModelKeeper(tmp_path, merge=True)
    offer(again, "fixmatch", 3, 0.6)
    about = json.loads((tmp_path / "models" / "fixmatch-1pct.json").read_text())
    assert about["seed"] == 1 and about["seeds_compared"] == [0, 1, 2, 3]
    assert model_stem("finetune", 8.0) == "finetune-8-per-class" and model_stem("finetune", 0.005) == \
        "finetune-0.5pct" and model_stem("finetune", 1.0) == "finetune-100pct"


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_model_files_are_one_error_line(tuned, capsys, tmp_path):
    def export(model, fmt="onnx", *extra):
        return run_cli(capsys, "export", tuned, "--format", fmt, "--model", model, "--out", tmp_path / "o", *extra)

    assert_error(export(tmp_path / "missing.safetensors"), "model file not found", root=tmp_path, out=tmp_path / "o")
    (tmp_path / "notes.safetensors").write_text("not weights")
    assert_error(export(tmp_path / "notes.safetensors"), "not a safetensors file", root=tmp_path, out=tmp_path / "o")
    save_file({"weight": torch.zeros(3, 7)}, str(tmp_path / "head-only.safetensors"))
    assert_error(export(tmp_path / "head-only.safetensors"), "not a fine-tuned classifier", root=tmp_path,
                 out=tmp_path / "o")
    state = load_file(str(tuned / "models" / "finetune-10pct.safetensors"))
    name = next(k for k, v in state.items() if k.startswith("encoder.") and v.ndim == 4)
    save_file({**state, name: torch.zeros(*state[name].shape[:-1], state[name].shape[-1] + 2)},
              str(tmp_path / "wrong.safetensors"))
    assert_error(export(tmp_path / "wrong.safetensors"), "does not fit this run's resnet-xs encoder", "another shape",
                 root=tmp_path, out=tmp_path / "o")
    save_file({**state, "head.weight": torch.zeros(10, 5)}, str(tmp_path / "narrow.safetensors"))
    assert_error(export(tmp_path / "narrow.safetensors"), "5 features", root=tmp_path, out=tmp_path / "o")
    good = tuned / "models" / "finetune-10pct.safetensors"
    assert_error(export(good, "onnx", "--head", tmp_path / "head-only.safetensors"), "not both", root=tmp_path,
                 out=tmp_path / "o")
    assert_error(export(good, "hf"), "onnx or torchscript", root=tmp_path, out=tmp_path / "o")


def test_save_model_without_a_trained_protocol_is_one_error_line(tuned, capsys, tmp_path):
    before = sorted(Path(tuned / "models").iterdir())
    assert_error(run_cli(capsys, "evaluate", tuned, "--protocol", "knn", "--baselines", "none", "--save-model"),
                 "--save-model", "finetune or fixmatch", root=tmp_path)
    assert sorted(Path(tuned / "models").iterdir()) == before
