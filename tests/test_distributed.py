"""Multi-process correctness: for EVERY registered method, one training step on a global batch split over 2
processes (gloo, CPU, DDP) gives the same loss, the same parameter gradients and the same buffers (MoCo queue,
DINO centre) as 1 process on the whole batch (BatchNorm in eval mode: see tests/dist_worker.py). This is the bug class the anchor
libraries kept shipping: gradients scaled by 1/world_size, no backward through all_gather, or statistics (VICReg
variance/covariance, Barlow cross-correlation, Sinkhorn, DINO centring) taken over the local batch only.
A method added to the registry is covered without touching this file. Also: `sslab pretrain --devices 2` on CPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sslab

WORKER = Path(__file__).with_name("dist_worker.py")
METHODS = sorted(sslab.METHODS)


def _run_worker(tmp: Path, world: int, names: list[str] = (), bug: str = "") -> dict:
    init, out = tmp / f"init-{world}-{bug}", tmp / f"out-{world}-{bug}.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLAB_TEST_BUG": bug}
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(r), str(world), str(init), str(out), *names], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(world)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return torch.load(out, weights_only=True)


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    return _run_worker(tmp, 1), _run_worker(tmp, 2)


def test_registry_is_covered(one_and_two):
    single, double = one_and_two
    assert set(single) == set(double) == set(sslab.METHODS) and len(METHODS) >= 12


@pytest.mark.parametrize("name", METHODS)
def test_two_processes_match_one(one_and_two, name):
    single, double = one_and_two[0][name], one_and_two[1][name]
    torch.testing.assert_close(double["loss"], single["loss"], rtol=1e-5, atol=1e-6)
    assert single["no_grad"] == double["no_grad"] == []  # every trainable parameter gets a gradient
    assert set(single["grads"]) == set(double["grads"]) and single["grads"]
    # gradients relative to the method's largest gradient entry: 1e-4 catches a 1/world_size or local-only error,
    # and tolerates the float noise of gradients that are zero in theory (e.g. a bias right before Barlow Twins'
    # per-dimension standardisation)
    scale = max(g.abs().max() for g in single["grads"].values()).clamp_min(1e-8)
    for k, g in single["grads"].items():
        torch.testing.assert_close(double["grads"][k] / scale, g / scale, rtol=0, atol=1e-4, msg=lambda m: f"{k}: {m}")
    assert set(single["buffers"]) == set(double["buffers"])
    for k, b in single["buffers"].items():
        if b.is_floating_point():
            torch.testing.assert_close(double["buffers"][k], b, rtol=1e-4, atol=1e-5, msg=lambda m: f"{k}: {m}")
        else:
            assert torch.equal(double["buffers"][k], b), k


@pytest.mark.parametrize("bug", ["local", "no-backward"])
def test_the_check_catches_the_classic_bugs(tmp_path, bug):
    """The check has teeth: with `dist.gather` replaced by a local-only version, or by an all_gather that does not
    send gradients back to the other processes, SimCLR's 2-process step no longer matches 1 process."""
    single = _run_worker(tmp_path, 1, ["simclr"])["simclr"]
    double = _run_worker(tmp_path, 2, ["simclr"], bug=bug)["simclr"]
    same_loss = torch.allclose(double["loss"], single["loss"], rtol=1e-5, atol=1e-6)
    same_grads = all(torch.allclose(double["grads"][k], g, rtol=1e-3, atol=1e-6) for k, g in single["grads"].items())
    assert not (same_loss and same_grads)
    if bug == "no-backward":  # the loss is right; only the gradients are wrong (the bug users found late)
        assert same_loss and not same_grads


def test_pretrain_on_two_cpu_processes(tmp_path):
    """`sslab pretrain --devices 2` on the CPU: Fabric launches 2 gloo processes; both stop at the same step of
    a time budget, and one run folder comes out."""
    out = tmp_path / "run"
    exe = Path(sys.executable).with_name("sslab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sslab.cli"]
    r = subprocess.run([*cmd, "pretrain", "--data", "digits", "--backbone", "resnet-xs",
                        "--budget", "6s", "--devices", "2", "--out", str(out), "batch_size=32",
                        "checkpoint_every=1"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["devices"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(torch.isfinite(torch.tensor(row["loss"])) for row in rows)
    assert (out / "backbone.safetensors").is_file() and (out / "checkpoint" / "checkpoint.json").is_file()
