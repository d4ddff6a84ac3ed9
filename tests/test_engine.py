"""The pretraining loop on real data (scikit-learn's 8x8 digits), checkpoints, and config loading."""
import json
import os
import shutil
import signal

import pytest
import torch

import sslab
from sslab import PretrainConfig, SslabError, StudyConfig, load_config
from sslab.checkpoint import load_checkpoint, load_weights
from sslab.config import EvalConfig, parse_duration
from sslab.engine import Interrupted
from sslab.methods import METHODS, register
from sslab.methods.simclr import SimCLR


def _cfg(**kw) -> PretrainConfig:
    base = dict(method="simclr", epochs=1, budget=None, batch_size=64, backbone="resnet-xs", log_every=5)
    base.update(kw)
    return PretrainConfig(**base)


@pytest.fixture(scope="module")
def run1(digits, tmp_path_factory):
    """One 1-epoch SimCLR run (seed 0), shared by the read-only checks."""
    out = tmp_path_factory.mktemp("run1")
    res = sslab.pretrain(digits.train, _cfg(), out, show_progress=False, data_spec="digits")
    return out, res


@pytest.fixture
def faulty_method():
    """A SimCLR that turns its loss into NaN, raises or gets a SIGINT once it has been called a given number of
    times."""

    @register("test-faulty")
    class Faulty(SimCLR):
        def __init__(self, backbone, nan_after=None, raise_at=None, nan_at=(), signal_at=None):
            super().__init__(backbone)
            self.calls, self.nan_after, self.raise_at, self.nan_at = 0, nan_after, raise_at, set(nan_at)
            self.signal_at = signal_at

        def forward(self, x1, x2):
            self.calls += 1
            if self.raise_at is not None and self.calls == self.raise_at:
                raise RuntimeError("simulated crash")
            if self.calls == self.signal_at:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of a step
            loss = super().forward(x1, x2)
            if (self.nan_after is not None and self.calls > self.nan_after) or self.calls in self.nan_at:
                loss = loss * float("nan")
            return loss

    yield "test-faulty"
    METHODS.pop("test-faulty", None)


# ------------------------------------------------------------------------------------- pretrain
def test_pretrain_writes_run(run1, digits):
    out, res = run1
    for rel in ("run.json", "backbone.safetensors", "metrics.jsonl", "checkpoint/model.safetensors",
                "checkpoint/state.pt", "checkpoint/checkpoint.json"):
        assert (out / rel).is_file(), rel
    assert not list(out.rglob(".*tmp*"))  # no temp files left behind by the atomic writes
    steps_per_epoch = len(digits.train) // 64
    assert res["steps"] == steps_per_epoch and res["epochs"] == pytest.approx(1.0)
    assert res["items"] == len(digits.train) and res["unit"] == "images" and res["batch_size"] == 64
    info = json.loads((out / "run.json").read_text())
    assert info["method"] == "simclr" and info["backbone"] == "resnet-xs" and info["data"] == "digits"
    assert info["in_chans"] == 1 and info["image_size"] == 8
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1] + list(range(5, steps_per_epoch + 1, 5))
    assert rows == res["history"]
    for r in rows:
        assert {"loss", "emb_std", "eff_rank", "lr", "epoch", "time"} <= set(r)
        assert r["loss"] > 0 and r["emb_std"] > 0 and r["eff_rank"] >= 1
    digest = json.loads((out / "checkpoint" / "checkpoint.json").read_text())
    assert set(digest) == {"model.safetensors", "state.pt"}


def test_saved_backbone_reloads(run1, digits):
    out, _ = run1
    bb, info = sslab.load_backbone(out)
    saved = load_weights(out / "backbone.safetensors")
    for k, v in bb.state_dict().items():
        assert torch.equal(v, saved[k]), k
    weights, _ = load_checkpoint(out / "checkpoint")
    for k, v in saved.items():
        assert torch.equal(weights["backbone." + k], v), k
    x = torch.from_numpy(digits.test.x[:4]).permute(0, 3, 1, 2).float() / 255
    assert bb.eval()(x).shape == (4, bb.dim)


def test_state_pt_loads_with_weights_only(run1):
    out, res = run1
    state = torch.load(out / "checkpoint" / "state.pt", weights_only=True)
    assert state["step"] == res["steps"]
    assert {"optimizer", "elapsed", "g_data", "g_aug", "torch_rng", "history"} <= set(state)
    assert json.loads(state["history"]) == res["history"]


def test_same_seed_is_bit_identical_other_seed_differs(run1, digits, tmp_path):
    out, _ = run1
    a = load_weights(out / "backbone.safetensors")
    sslab.pretrain(digits.train, _cfg(), tmp_path / "same", show_progress=False)
    b = load_weights(tmp_path / "same" / "backbone.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sslab.pretrain(digits.train, _cfg(seed=1), tmp_path / "other", show_progress=False)
    c = load_weights(tmp_path / "other" / "backbone.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_resume_extends_run(run1, digits, tmp_path):
    out, res1 = run1
    run = tmp_path / "run"
    shutil.copytree(out, run)
    res2 = sslab.pretrain(digits.train, _cfg(epochs=2), run, resume=True, show_progress=False)
    assert res2["steps"] == 2 * res1["steps"]
    assert len(res2["history"]) > len(res1["history"])
    assert res2["history"][: len(res1["history"])] == res1["history"]
    steps = [r["step"] for r in res2["history"]]
    assert steps == sorted(set(steps)) and res1["steps"] < steps[-1] <= res2["steps"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows == res2["history"]  # the checkpoint's rows, then the new ones
    assert torch.load(run / "checkpoint" / "state.pt", weights_only=True)["step"] == res2["steps"]


def test_resume_after_crash_is_exact(digits, tmp_path, faulty_method):
    """A 2-epoch run that crashes mid-way and is resumed ends bit-identical to an uninterrupted 2-epoch run:
    model, optimiser, step, data order, augmentation and global RNG state are all restored."""
    kw = dict(method=faulty_method, epochs=2, checkpoint_every=1e-6)
    full = sslab.pretrain(digits.train, _cfg(**kw), tmp_path / "full", show_progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sslab.pretrain(digits.train, _cfg(**kw, method_args={"raise_at": 30}), tmp_path / "crash", show_progress=False)
    assert torch.load(tmp_path / "crash" / "checkpoint" / "state.pt", weights_only=True)["step"] == 29
    res = sslab.pretrain(digits.train, _cfg(**kw), tmp_path / "crash", resume=True, show_progress=False)
    assert res["steps"] == full["steps"]
    assert [r["step"] for r in res["history"]] == [r["step"] for r in full["history"]]
    assert [r["loss"] for r in res["history"]] == [r["loss"] for r in full["history"]]
    a = load_weights(tmp_path / "full" / "backbone.safetensors")
    b = load_weights(tmp_path / "crash" / "backbone.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sigint_finishes_the_step_saves_and_resumes_exactly(digits, tmp_path, faulty_method):
    """Ctrl-C mid-step: the step is finished, the periodic checkpoint written (not due for an hour), Interrupted
    raised (exit status 130) with the handler the caller had put back; resuming ends bit-identical to a run that
    was never stopped."""
    kw = dict(method=faulty_method, checkpoint_every=3600)
    full = sslab.pretrain(digits.train, _cfg(**kw), tmp_path / "full", show_progress=False)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted) as exc:
        sslab.pretrain(digits.train, _cfg(**kw, method_args={"signal_at": 7}), tmp_path / "stop", show_progress=False)
    assert exc.value.exit_code == 130 and signal.getsignal(signal.SIGINT) is before
    assert str(exc.value).startswith("SIGINT: stopped after step 7 ") and "checkpoint saved in" in str(exc.value)
    assert torch.load(tmp_path / "stop" / "checkpoint" / "state.pt", weights_only=True)["step"] == 7
    res = sslab.pretrain(digits.train, _cfg(**kw), tmp_path / "stop", resume=True, show_progress=False)
    assert res["steps"] == full["steps"] and [r["loss"] for r in res["history"]] == [r["loss"] for r in full["history"]]
    a, b = load_checkpoint(tmp_path / "full" / "checkpoint")[0], load_checkpoint(tmp_path / "stop" / "checkpoint")[0]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_nan_loss_stops_with_error_and_keeps_checkpoint(digits, tmp_path, faulty_method):
    cfg = _cfg(method=faulty_method, method_args={"nan_after": 3}, checkpoint_every=1e-6)
    with pytest.raises(SslabError, match=r"loss became nan at step 3") as exc:
        sslab.pretrain(digits.train, cfg, tmp_path, show_progress=False)
    assert "\n" not in str(exc.value) and "checkpoint" in str(exc.value)
    weights, state = load_checkpoint(tmp_path / "checkpoint")
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    backbone = load_weights(tmp_path / "backbone.safetensors")
    assert all(torch.isfinite(v).all() for v in backbone.values() if v.is_floating_point())
    sslab.load_backbone(tmp_path)  # the run folder is still usable


def test_nonfinite_batch_can_be_skipped(digits, tmp_path, faulty_method):
    """on_nonfinite=skip: the bad batch's update is dropped, training goes on, and the count is reported."""
    cfg = _cfg(method=faulty_method, method_args={"nan_at": [4, 9]}, on_nonfinite="skip")
    res = sslab.pretrain(digits.train, cfg, tmp_path, show_progress=False)
    assert res["batches_skipped"] == 2 and res["steps"] == len(digits.train) // 64  # skipped steps still count
    weights = load_weights(tmp_path / "backbone.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_skipping_stops_after_too_many_bad_batches(digits, tmp_path, faulty_method):
    cfg = _cfg(method=faulty_method, method_args={"nan_after": 2}, on_nonfinite="skip", max_skipped=4)
    with pytest.raises(SslabError, match=r"at step 5 \(4 bad batches in a row\); stopped, last good checkpoint"):
        sslab.pretrain(digits.train, cfg, tmp_path, show_progress=False)


class _InfGrad(torch.autograd.Function):
    """Identity forward; the gradient flowing back through it becomes infinite."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * float("inf")


@pytest.mark.parametrize("clip", [None, 1.0], ids=["no-clip", "clip"])
def test_nonfinite_gradient_stops(digits, tmp_path, clip):
    """A finite loss whose gradient is not is caught too, before the optimiser step spoils the weights; with
    clipping on, through the total norm that clipping computes."""
    @register("test-badgrad")
    class BadGrad(SimCLR):
        def forward(self, x1, x2):
            return self.loss(self.projector(_InfGrad.apply(self.backbone(x1))), self.projector(self.backbone(x2)))

    try:
        with pytest.raises(SslabError, match=r"a gradient became non-finite at step 0; stopped"):
            sslab.pretrain(digits.train, _cfg(method="test-badgrad", grad_clip=clip), tmp_path, show_progress=False)
    finally:
        METHODS.pop("test-badgrad", None)


def test_budget_stops_on_time(digits, tmp_path):
    res = sslab.pretrain(digits.train, _cfg(epochs=None, budget=2), tmp_path, show_progress=False)
    assert 2.0 <= res["seconds"] < 10.0  # stops at the first step boundary past the budget (loose: loaded CI)
    assert res["steps"] > 0
    assert (tmp_path / "backbone.safetensors").is_file()


def test_pretrain_rejects_too_few_images(digits, tmp_path):
    with pytest.raises(SslabError, match="at least 2 images"):
        sslab.pretrain(digits.train, _cfg(max_images=1), tmp_path, show_progress=False)


# ------------------------------------------------------------------------------------ checkpoints
def _flip_byte(path, pos=None):
    data = bytearray(path.read_bytes())
    pos = len(data) // 2 if pos is None else pos
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("victim", ["model.safetensors", "state.pt"])
def test_corrupt_checkpoint_is_detected(run1, tmp_path, victim):
    ckpt = tmp_path / "checkpoint"
    shutil.copytree(run1[0] / "checkpoint", ckpt)
    load_checkpoint(ckpt)
    _flip_byte(ckpt / victim)
    with pytest.raises(SslabError, match="corrupt"):
        load_checkpoint(ckpt)


def test_incomplete_checkpoint(run1, tmp_path):
    ckpt = tmp_path / "checkpoint"
    shutil.copytree(run1[0] / "checkpoint", ckpt)
    (ckpt / "checkpoint.json").unlink()
    with pytest.raises(SslabError, match="no complete checkpoint"):
        load_checkpoint(ckpt)
    with pytest.raises(SslabError, match="no complete checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def test_load_weights_errors(tmp_path):
    with pytest.raises(SslabError, match="weights not found"):
        load_weights(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(SslabError, match="cannot read weights"):
        load_weights(tmp_path / "junk.safetensors")


def test_load_backbone_needs_run_json(tmp_path):
    with pytest.raises(SslabError, match="not a pretraining run"):
        sslab.load_backbone(tmp_path)


# ----------------------------------------------------------------------------------------- config
def test_load_config_yaml_and_overrides(tmp_path):
    f = tmp_path / "recipe.yaml"
    f.write_text("data: digits\npretrain:\n  method: byol\n  lr: 0.01\n  budget: 5m\neval:\n  seeds: 2\n")
    cfg = load_config(StudyConfig, f, ["pretrain.lr=1e-3", "eval.fractions=[1.0, 0.1, 0.1]", "pretrain.epochs=3"])
    assert cfg.data == "digits"
    assert cfg.pretrain.method == "byol" and cfg.pretrain.lr == 1e-3 and cfg.pretrain.budget == 300.0
    assert cfg.pretrain.epochs == 3
    assert cfg.eval.seeds == 2 and cfg.eval.fractions == [0.1, 1.0]  # sorted, de-duplicated
    assert cfg.pretrain.batch_size == PretrainConfig().batch_size  # untouched defaults survive the merge
    assert load_config(PretrainConfig, overrides=["budget=null", "epochs=2"]).budget is None


def test_load_config_base_then_file(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("lr: 0.5\n")
    cfg = load_config(PretrainConfig, f, base={"lr": 0.1, "seed": 7})
    assert cfg.lr == 0.5 and cfg.seed == 7


@pytest.mark.parametrize("text", ["pretrain: [unclosed\n", "a: b: c\n", "key: 'open\n"])
def test_invalid_yaml_is_one_line_error(tmp_path, text):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(SslabError, match="invalid YAML") as exc:
        load_config(StudyConfig, f)
    assert "\n" not in str(exc.value)


def test_config_file_must_be_a_mapping(tmp_path):
    f = tmp_path / "list.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(SslabError, match="mapping"):
        load_config(StudyConfig, f)


def test_missing_config_file(tmp_path):
    with pytest.raises(SslabError, match="config file not found"):
        load_config(StudyConfig, tmp_path / "nope.yaml")


@pytest.mark.parametrize("cls,overrides,match", [
    (StudyConfig, ["pretrain.bogus=1"], "pretrain.bogus"),
    (StudyConfig, ["nonsense=1"], "nonsense"),
    (PretrainConfig, ["batch_size=0"], "batch_size"),
    (StudyConfig, ["pretrain.batch_size=0"], "pretrain.batch_size"),
    (PretrainConfig, ["budget=-5"], "positive"),
    (PretrainConfig, ["budget=0"], "positive"),
    (PretrainConfig, ["budget=abc"], "invalid duration"),
    (PretrainConfig, ["lr=-1"], "lr"),
    (PretrainConfig, ["warmup=1.0"], "warmup"),
    (EvalConfig, ["fractions=[0.0, 0.5]"], "fractions"),
    (EvalConfig, ["fractions=[1.5]"], "fractions"),
    (EvalConfig, ["seeds=0"], "seeds"),
    (PretrainConfig, ["no_equals_sign"], "key=value"),
    (StudyConfig, ["data=digits", "data.x=1"], "not a section"),
])
def test_invalid_settings(cls, overrides, match):
    with pytest.raises(SslabError, match=match) as exc:
        load_config(cls, overrides=overrides)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("overrides,match", [(["protocols=[knn,svm]"], "protocols: unknown name 'svm'"),
                                             (["baselines=[scratch,random]"], "baselines: unknown name 'random'")])
def test_protocols_and_baselines_are_checked_against_the_registry(overrides, match):
    """The settings name protocols and baselines as strings; the registry decides which exist (a protocol
    registered with register_protocol becomes selectable), checked before anything runs."""
    from sslab.evaluate import PROTOCOLS, check_names, register_protocol

    cfg = load_config(EvalConfig, overrides=overrides)
    with pytest.raises(SslabError, match=match) as exc:
        check_names(cfg)
    assert "\n" not in str(exc.value) and "knn" in str(exc.value) or "scratch" in str(exc.value)
    register_protocol("svm", PROTOCOLS["linear"].fn, frozen=True)
    try:
        if "svm" in overrides[0]:
            check_names(cfg)  # now registered: accepted
    finally:
        PROTOCOLS.pop("svm")


def test_direct_construction_validates():
    with pytest.raises(SslabError, match="positive"):
        PretrainConfig(budget=-5)
    cfg = PretrainConfig(budget="90s")
    assert cfg.budget == 90.0


@pytest.mark.parametrize("value,seconds", [("90s", 90.0), ("5m", 300.0), ("1.5h", 5400.0), ("90", 90.0), (" 2 m ", 120.0),
                                           (".5s", 0.5), (90, 90), (2.5, 2.5), (None, None)])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["abc", "5 minutes", "1d", "-5", "-5s", "", "5mm", "1e3", "m", "0", "0s", -1, 0])
def test_parse_duration_rejects(value):
    with pytest.raises(SslabError):
        parse_duration(value)
