"""Never lose a run: SIGKILL at a random point and `--resume` ends bit-identical to an uninterrupted run; a
corrupt latest checkpoint falls back to the previous good one; a rotation cut short still resumes.

What makes the resume exact on the CPU (all saved in checkpoint/state.pt, loaded with weights_only=True):
model and optimiser state, step (which fixes the schedule position and the epoch's data order, drawn from a
generator seeded by seed and epoch), the augmentation generator of every process, the global torch RNG, and the
method's buffers (EMA targets, queues, centres: part of the model state). Same thread count, deterministic kernels."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import sslab
from sslab import PretrainConfig
from sslab.checkpoint import load_checkpoint, load_weights, save_checkpoint

ARGS = ["pretrain", "--data", "digits", "--backbone", "resnet-xs", "--epochs", "2", "--seed", "3",
        "batch_size=32", "log_every=5", "checkpoint_every=0.3"]


def _cmd() -> list[str]:
    exe = Path(sys.executable).with_name("sslab")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sslab.cli"]


def _env(tmp: Path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "SSLAB_CACHE": str(tmp / "cache")}


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]  # wall-clock time differs, nothing else


MASKED = ["--method", "mae", "--backbone", "vit-tiny/4", "--epochs", "0.5"]  # masks drawn from the saved generator


@pytest.mark.parametrize("method", [[], MASKED], ids=["default", "mae"])
def test_sigkill_then_resume_is_bit_identical(tmp_path, method):
    env = _env(tmp_path)
    full, killed = tmp_path / "full", tmp_path / "killed"
    args = [*ARGS, *method]
    r = subprocess.run([*_cmd(), *args, "--out", str(full)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    total_steps = torch.load(full / "checkpoint" / "state.pt", weights_only=True)["step"]

    proc = subprocess.Popen([*_cmd(), *args, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoint" / "checkpoint.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(random.Random().uniform(0.2, 1.5))  # a random point after the first checkpoint
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    _, state = load_checkpoint(killed / "checkpoint")
    assert 0 < state["step"] < total_steps

    r = subprocess.run([*_cmd(), *args, "--out", str(killed), "--resume"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = load_weights(full / "backbone.safetensors"), load_weights(killed / "backbone.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    wa, _ = load_checkpoint(full / "checkpoint")
    wb, _ = load_checkpoint(killed / "checkpoint")
    for k in wa:  # the whole method: heads, predictor, EMA target, BatchNorm statistics
        assert torch.equal(wa[k], wb[k]), k
    assert _rows(killed) == _rows(full)  # metrics too: no duplicated or missing rows


def test_sigterm_saves_and_resume_spends_only_the_rest_of_the_budget(tmp_path):
    """SIGTERM a few steps after the first checkpoint (the next periodic one is a minute away): the step is
    finished and a checkpoint written, one line says so and how to continue, exit status 143. `--resume` continues
    from that step (the rows before it are not trained again) on the clock already spent, so the whole run uses
    about its budget."""
    env, run, budget = _env(tmp_path), tmp_path / "run", 10
    args = ["pretrain", "--data", "digits", "--backbone", "resnet-xs", "--budget", f"{budget}s", "--seed", "3",
            "batch_size=32", "log_every=5", "--out", str(run)]
    proc = subprocess.Popen([*_cmd(), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (run / "checkpoint" / "checkpoint.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, err[-2000:]
    _, state = load_checkpoint(run / "checkpoint")
    assert state["step"] > 1 and 1 < state["elapsed"] < budget
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"SIGTERM: stopped after step {state['step']} ") and "checkpoint saved in" in err
    assert err.strip().endswith("to continue, run the same command with --resume"), err
    done = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]

    r = subprocess.run([*_cmd(), *args, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[: len(done)] == done  # times included: the steps before the checkpoint were not trained again
    later = [row for row in rows if row["step"] > state["step"]]
    assert later and later[0]["time"] > state["elapsed"]  # the clock goes on from the time spent
    _, final = load_checkpoint(run / "checkpoint")
    assert final["step"] > state["step"] and budget <= final["elapsed"] < budget + 5


def _two_checkpoints(tmp_path) -> tuple[Path, dict]:
    digits = sslab.load_images("digits")
    cfg = PretrainConfig(method="simclr", epochs=1, budget=None, batch_size=64, backbone="resnet-xs", log_every=5,
                         checkpoint_every=1e-6)
    run = tmp_path / "run"
    sslab.pretrain(digits.train, cfg, run, show_progress=False)
    return run, digits


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path, capsys):
    run, digits = _two_checkpoints(tmp_path)
    latest = torch.load(run / "checkpoint" / "state.pt", weights_only=True)["step"]
    prev = torch.load(run / "checkpoint.prev" / "state.pt", weights_only=True)["step"]
    assert prev < latest
    data = bytearray((run / "checkpoint" / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (run / "checkpoint" / "model.safetensors").write_bytes(bytes(data))
    messages = []
    _, state = load_checkpoint(run / "checkpoint", log=messages.append)
    assert state["step"] == prev
    assert len(messages) == 1 and "corrupt" in messages[0] and "previous good checkpoint" in messages[0]
    cfg = PretrainConfig(method="simclr", epochs=2, budget=None, batch_size=64, backbone="resnet-xs", log_every=5)
    res = sslab.pretrain(digits.train, cfg, run, resume=True, show_progress=False)
    assert res["steps"] == 2 * latest
    err = capsys.readouterr().err
    assert "corrupt" in err and f"(step {prev})" in err


def test_rotation_cut_short_still_resumes(tmp_path):
    """A crash between the two renames of a checkpoint rotation leaves checkpoint.tmp (complete) and
    checkpoint.prev: the newest complete one is used."""
    run, _ = _two_checkpoints(tmp_path)
    latest = torch.load(run / "checkpoint" / "state.pt", weights_only=True)["step"]
    os.replace(run / "checkpoint", run / "checkpoint.tmp")
    _, state = load_checkpoint(run / "checkpoint")
    assert state["step"] == latest


def test_failed_checkpoint_write_keeps_the_old_one(tmp_path, monkeypatch):
    """A full disk while writing a checkpoint: a one-line error, the previous checkpoint intact, no temp files."""
    folder = tmp_path / "checkpoint"
    save_checkpoint(folder, {"w": torch.ones(3)}, {"step": 1})
    import sslab.atomic

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sslab.atomic.os, "fsync", full_disk)
    with pytest.raises(sslab.SslabError, match="No space left on device") as exc:
        save_checkpoint(folder, {"w": torch.zeros(3)}, {"step": 2})
    assert "\n" not in str(exc.value)
    monkeypatch.undo()
    weights, state = load_checkpoint(folder)
    assert state["step"] == 1 and torch.equal(weights["w"], torch.ones(3))
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.parametrize("payload", ["pickle-exec", "torch-save-exec"])
def test_checkpoint_crafted_to_run_code_does_not(tmp_path, payload):
    """A state.pt that would execute code when unpickled (with valid checksums, so only the loader stands in the
    way) is refused with a one-line error, and the code never runs."""
    folder = tmp_path / "checkpoint"
    save_checkpoint(folder, {"w": torch.ones(1)}, {"step": 1})
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import io
    import pickle

    if payload == "pickle-exec":
        data = pickle.dumps({"step": 1, "x": Evil()})
    else:
        buf = io.BytesIO()
        torch.save({"step": 1, "x": Evil()}, buf)
        data = buf.getvalue()
    (folder / "state.pt").write_bytes(data)
    digest = json.loads((folder / "checkpoint.json").read_text())
    import hashlib

    digest["state.pt"] = hashlib.sha256(data).hexdigest()
    (folder / "checkpoint.json").write_text(json.dumps(digest))
    shutil.rmtree(tmp_path / "checkpoint.prev", ignore_errors=True)
    with pytest.raises(sslab.SslabError, match="cannot be loaded safely") as exc:
        load_checkpoint(folder)
    assert "\n" not in str(exc.value)
    assert not marker.exists()
