"""The `sslab` command line: one-line errors and a non-zero exit for user mistakes, and a tiny real study."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_contract import assert_one_line_error, run_cli


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SSLAB_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)  # any default runs/ folder lands in the temp dir


def _png(path: Path, seed: int = 0, size: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(arr, mode="L").save(path)


def test_missing_data_folder(capsys, tmp_path):
    code, _, err = run_cli(capsys, "pretrain", "--data", tmp_path / "no-such-folder", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "data folder not found")


def test_empty_data_folder(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "study", "--data", tmp_path / "empty", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "no images found")


def test_unreadable_image(capsys, tmp_path):
    data = tmp_path / "imgs"
    (data / "cat").mkdir(parents=True)
    (data / "cat" / "x.png").write_bytes(b"not an image")
    _png(data / "dog" / "y.png")
    code, _, err = run_cli(capsys, "pretrain", "--data", data, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "cannot read image")
    assert "x.png" in err


def test_unknown_method(capsys, tmp_path):
    code, _, err = run_cli(capsys, "pretrain", "--data", "digits", "--method", "nope", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "unknown method 'nope'")


def test_unknown_backbone(capsys, tmp_path):
    code, _, err = run_cli(capsys, "pretrain", "--data", "digits", "--backbone", "resnet-zz", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "unknown backbone")


def test_bad_override(capsys, tmp_path):
    code, _, err = run_cli(capsys, "study", "--data", "digits", "--out", tmp_path / "o", "pretrain.batch_size=0")
    assert_one_line_error(code, err, "pretrain.batch_size")
    assert not (tmp_path / "o").exists()


def test_override_without_equals(capsys, tmp_path):
    code, _, err = run_cli(capsys, "study", "--data", "digits", "--out", tmp_path / "o", "pretrain.lr")
    assert_one_line_error(code, err, "key=value")


def test_invalid_yaml_config(capsys, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("pretrain: [unclosed\n  lr: 1\n")
    code, _, err = run_cli(capsys, "study", "--config", cfg, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "invalid YAML")


def test_missing_config_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "study", "--config", tmp_path / "nope.yaml", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "config file not found")


@pytest.mark.parametrize("budget,msg", [("-5", "positive"), ("abc", "invalid duration"), ("0", "positive")])
def test_bad_budget(capsys, tmp_path, budget, msg):
    code, _, err = run_cli(capsys, "study", "--data", "digits", "--budget", budget, "--out", tmp_path / "o")
    assert_one_line_error(code, err, msg)


def test_unknown_option(capsys):
    code, _, err = run_cli(capsys, "study", "--frobnicate", "3")
    assert_one_line_error(code, err, "--frobnicate")


def test_unknown_command(capsys):
    code, _, err = run_cli(capsys, "frobnicate")
    assert_one_line_error(code, err, "frobnicate")


def test_out_folder_with_files(capsys, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "something.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "pretrain", "--data", "digits", "--out", out)
    assert_one_line_error(code, err, "already holds files")
    assert "--resume" in err and (out / "something.txt").read_text() == "keep me"
    code, _, err = run_cli(capsys, "study", "--data", "digits", "--out", out)  # a study has no --resume to offer
    assert_one_line_error(code, err, "already holds files")
    assert "--resume" not in err and "--overwrite" in err


@pytest.mark.parametrize("args, contains", [
    (["study", "--data", "nope.csv"], "data folder not found: nope.csv"),
    (["study", "--protocol", "knnn"], "unknown name 'knnn'"),
    (["study", "--data", "digits", "--pretrain-data", "no/such/folder"], "data folder not found: no/such/folder"),
    (["pretrain", "--data", "nope.npz"], "npz file not found"),
    (["pretrain", "--method", "gpt", "--data", "nope.txt"], "text data not found: nope.txt"),
    (["pretrain", "--method", "gpt", "--data", "sst2", "--corpus", "nope.txt"], "text data not found: nope.txt"),
], ids=["study-data", "study-protocol", "study-pretrain-data", "pretrain-npz", "pretrain-text", "pretrain-corpus"])
def test_bad_input_is_named_before_a_full_out_folder(capsys, tmp_path, args, contains):
    """A missing data path or an unknown name is the error, not the --out folder that already holds files (which
    is left as it was)."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "something.txt").write_text("keep me")
    code, _, err = run_cli(capsys, *args, "--out", out)
    assert_one_line_error(code, err, contains)
    assert [p.name for p in out.iterdir()] == ["something.txt"]


def test_resume_without_checkpoint(capsys, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    code, _, err = run_cli(capsys, "pretrain", "--data", "digits", "--out", out, "--resume")
    assert_one_line_error(code, err, "nothing to resume")


def test_report_without_results(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    code, _, err = run_cli(capsys, "report", tmp_path / "run")
    assert_one_line_error(code, err, "results.json")


def test_report_missing_folder(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", tmp_path / "nope")
    assert_one_line_error(code, err, "not found")


def test_evaluate_missing_run(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "nope")
    assert_one_line_error(code, err, "run folder not found")


def test_evaluate_folder_that_is_not_a_run(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "run")
    assert_one_line_error(code, err, "not a pretraining run")


def test_study_on_unlabeled_folder(capsys, tmp_path):
    data = tmp_path / "flat"
    for i in range(4):
        _png(data / f"img{i}.png", seed=i)
    code, _, err = run_cli(capsys, "study", "--data", data, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "labelled")


def test_methods_lists_registered(capsys):
    code, out, err = run_cli(capsys, "methods")
    assert code == 0 and err == ""
    for name in ("simclr", "byol", "vicreg", "resnet-xs", "timm:"):
        assert name in out


def test_help_exits_zero(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "study" in out and "pretrain" in out


def test_real_process_exit_code_and_no_traceback(tmp_path):
    """The installed entry point, in its own process: exit status 2, one `error:` line, no traceback."""
    exe = Path(sys.executable).with_name("sslab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sslab.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SSLAB_DEBUG", None)
    proc = subprocess.run(cmd + ["pretrain", "--data", "digits", "--method", "nope", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown method 'nope'"), proc.stderr


def test_end_to_end_tiny_study(capsys, tmp_path, monkeypatch):
    import sslab.data
    import sslab.studies.job

    loads = []
    real = sslab.data.load_data

    def counted(spec, *a, **kw):
        loads.append(spec)
        return real(spec, *a, **kw)

    monkeypatch.setattr(sslab.data, "load_data", counted)  # the loaders' lazy imports
    monkeypatch.setattr(sslab.studies.job, "load_data", counted)
    out = tmp_path / "study"
    code, stdout, err = run_cli(capsys, "study", "--data", "digits", "--budget", "4s", "--seeds", "1", "--out", out,
                                "eval.finetune_epochs=3", "eval.finetune_min_steps=20", "eval.linear_steps=200")
    assert code == 0, err
    assert "Traceback" not in err
    assert stdout.count("report:") == 1 and stdout.strip().splitlines()[-1] == f"report: {out / 'report.html'}"
    assert loads == ["digits"]  # the data is loaded once, its run evaluations (energy) included
    assert "Energy of compatible and incompatible pairs:\n  two views of one image: " in stdout
    for rel in ("results.json", "report.html", "backbone.safetensors", "run.json", "metrics.jsonl"):
        assert (out / rel).is_file(), rel
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs and "accuracy_vs_fraction.png" in pngs
    html = (out / "report.html").read_text()
    for name in pngs:
        assert f"plots/{name}" in html

    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    fractions = [0.01, 0.1, 1.0]
    for init in ("ssl", "scratch", "scratch+aug", "pixels"):
        got = sorted({r["fraction"] for r in runs if r["init"] == init})
        assert got == fractions, init
    ssl_protocols = {(r["protocol"], r["fraction"]) for r in runs if r["init"] == "ssl"}
    # consistency training by default, where some training items are unlabelled
    assert ssl_protocols == {(p, f) for p in ("knn", "linear", "finetune") for f in fractions} | {
        ("fixmatch", f) for f in fractions[:2]}
    for r in runs:
        assert isinstance(r["test_acc"], float) and 0.0 <= r["test_acc"] <= 1.0, r
        assert r["seed"] == 0
    assert results["pretrain"]["seconds"] >= 4.0
    assert results["findings"] and all(isinstance(s, str) for s in results["findings"])
    assert results["command"].startswith("sslab")

    # rebuild the report from results.json alone
    (out / "report.html").unlink()
    code, stdout, err = run_cli(capsys, "report", out)
    assert code == 0, err
    assert (out / "report.html").is_file() and "report:" in stdout

    # re-evaluate the saved run with a different protocol set
    code, stdout, err = run_cli(capsys, "evaluate", out, "--labels", "0.1", "--protocol", "knn,linear",
                                "--baselines", "none", "--seeds", "1")
    assert code == 0, err
    again = json.loads((out / "results.json").read_text())
    assert {(r["init"], r["protocol"], r["fraction"]) for r in again["runs"]} == {("ssl", "knn", 0.1), ("ssl", "linear", 0.1)}
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in again["runs"])
    assert again["pretrain"] == results["pretrain"]  # kept from the study's results.json


def test_evaluate_options_override_only_what_is_given(capsys, tmp_path, monkeypatch):
    """`sslab evaluate --config mae` evaluates the recipe's fractions and baselines; an option overrides only what
    the user passed, and no option and no config gives EvalConfig's defaults."""
    from sslab.config import EvalConfig

    seen = []

    def fake_evaluate_run(run, cfg, data, data_root, seeds=None, save_model=False):
        seen.append(cfg)
        return {"runs": [], "summary": []}

    monkeypatch.setattr("sslab.api.evaluate_run", fake_evaluate_run)
    monkeypatch.setattr("sslab.report.print_summary", lambda results: None)
    tmp_path.joinpath("run").mkdir()
    assert run_cli(capsys, "evaluate", tmp_path / "run", "--config", "mae")[0] == 0
    assert seen[-1].fractions == [0.01, 1.0] and seen[-1].baselines == ["scratch", "raw"]
    assert run_cli(capsys, "evaluate", tmp_path / "run", "--config", "mae", "--labels", "0.1")[0] == 0
    assert seen[-1].fractions == [0.1] and seen[-1].baselines == ["scratch", "raw"]
    assert run_cli(capsys, "evaluate", tmp_path / "run", "--baselines", "none")[0] == 0
    assert seen[-1].fractions == EvalConfig().fractions and seen[-1].baselines == []


def test_pretrain_without_data_uses_the_recipes_data():
    """`sslab pretrain --method clip` with no --data pretrains on the data set its recipe names (flickr8k-1k), as
    `sslab study` does; a method whose recipe names none falls back to the kind's default."""
    from sslab.cli import _recipe_data

    assert _recipe_data(None, "clip") == "flickr8k-1k"
    assert _recipe_data(None, "mae") == "cifar10" and _recipe_data("vicreg", "simclr") == "fashion-mnist"
    assert _recipe_data(None, "no-such-method") is None
