"""Collapse diagnosis: alignment / uniformity, collapse_status, and deliberately broken settings being flagged."""
import math

import pytest
import torch

import sslab
from sslab import PretrainConfig, SslabError
from sslab.checkpoint import load_checkpoint
from sslab.health import alignment, collapse_status, embedding_health, uniformity
from sslab.methods import METHODS, register
from sslab.methods.simclr import SimCLR


def _cfg(**kw) -> PretrainConfig:
    base = dict(epochs=1.5, budget=None, batch_size=64, backbone="resnet-xs", log_every=5, lr=1e-2)
    base.update(kw)
    return PretrainConfig(**base)


# ------------------------------------------------------------------------------- metrics by hand
def test_alignment_by_hand():
    x = torch.randn(16, 8)
    assert alignment(x, x) == pytest.approx(0.0, abs=1e-6)
    assert alignment(x, 3 * x) == pytest.approx(0.0, abs=1e-6)  # scale-free: features are L2-normalised
    assert alignment(x, -x) == pytest.approx(4.0, abs=1e-5)  # antipodal pairs
    e = torch.eye(2)
    assert alignment(e[:1], e[1:]) == pytest.approx(2.0, abs=1e-6)  # orthogonal unit vectors: |a-b|^2 = 2


def test_uniformity_by_hand():
    two = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert uniformity(two) == pytest.approx(-8.0, abs=1e-5)  # log exp(-2 * 4)
    assert uniformity(torch.ones(10, 4)) == pytest.approx(0.0, abs=1e-6)  # all identical: the worst value
    square = torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1]])  # pair distances^2: 2 (x4) and 4 (x2)
    assert uniformity(square) == pytest.approx(math.log((4 * math.exp(-4) + 2 * math.exp(-8)) / 6), abs=1e-5)
    assert uniformity(torch.randn(256, 16)) < uniformity(torch.randn(256, 16) * 0.01 + 1)


def test_collapse_status_on_synthetic_embeddings():
    g = torch.Generator().manual_seed(0)
    iso = torch.randn(512, 64, generator=g)
    assert collapse_status(embedding_health(iso)) == "ok"
    rank1 = torch.randn(512, 1, generator=g) * torch.randn(1, 64, generator=g)  # every row on one line
    h = embedding_health(rank1)
    assert h["effective_rank"] < 1.5 and collapse_status(h) == "collapsed"
    point = torch.ones(512, 64) + 1e-4 * torch.randn(512, 64, generator=g)  # all images on (almost) one point
    assert collapse_status(embedding_health(point)) == "collapsed"
    two_dirs = torch.randn(512, 2, generator=g) @ torch.randn(2, 64, generator=g)  # rank 2: warning
    assert collapse_status(embedding_health(two_dirs)) == "warning"
    assert collapse_status({"effective_rank": float("nan"), "std_mean": 0.1, "std_ideal": 0.1, "dim": 4}) == "collapsed"


# ------------------------------------------------------------------------------- the engine
def _statuses(res):
    return {r.get("collapse", "ok") for r in res["history"]}


def _run(digits, tmp_path, **kw):
    """Pretrain; a collapse stop counts as 'collapsed'."""
    try:
        res = sslab.pretrain(digits.train, _cfg(**kw), tmp_path, show_progress=False)
    except SslabError as e:
        assert "representation collapsed" in str(e) and "\n" not in str(e)
        return {"collapsed"}, None
    return _statuses(res), res


@pytest.mark.parametrize("method,broken", [("simsiam", {"stop_gradient": False}), ("byol", {"predictor": False})])
def test_broken_settings_are_flagged_defaults_are_not(digits, tmp_path, method, broken):
    # seed-robust: flagged for seeds 0-2 at 5 epochs (3 were not enough for SimSiam under fused AdamW)
    bad, _ = _run(digits, tmp_path / "broken", method=method, method_args=broken, epochs=5)
    assert bad & {"warning", "collapsed"}, bad
    good, res = _run(digits, tmp_path / "default", method=method)
    assert good == {"ok"}, good
    for r in res["history"]:
        assert {"align", "uniform", "proj_std", "proj_rank"} <= set(r)
        assert 0 <= r["align"] <= 4 and -4 <= r["uniform"] <= 0


@pytest.fixture
def collapsing_method():
    """A SimCLR whose representation becomes one constant vector from its 10th optimiser step on."""

    class Const(torch.nn.Module):
        def __init__(self, net, owner):
            super().__init__()
            self.net, self.owner = net, [owner]

        def forward(self, x):
            out = self.net(x)
            return out * 0 + 1 if self.owner[0].steps >= 10 else out

    @register("test-collapsing")
    class Collapsing(SimCLR):
        def __init__(self, backbone):
            super().__init__(backbone)
            self.steps = 0
            self.backbone = Const(backbone, self)
            self.backbone.dim = backbone.dim

        def after_step(self, progress):
            self.steps += 1

    yield "test-collapsing"
    METHODS.pop("test-collapsing", None)


def test_collapse_stops_run_and_keeps_last_good_checkpoint(digits, tmp_path, collapsing_method, caplog):
    cfg = _cfg(method=collapsing_method, epochs=2, checkpoint_every=1e-6, lr=4e-3)
    with caplog.at_level("WARNING", logger="sslab"):
        with pytest.raises(SslabError, match=r"representation collapsed at step 20 \(") as exc:
            sslab.pretrain(digits.train, cfg, tmp_path, show_progress=False)
    assert "\n" not in str(exc.value) and "last checkpoint kept in" in str(exc.value)
    assert sum("collapse" in r.message for r in caplog.records) == 1  # one line per streak, not per probe
    _, state = load_checkpoint(tmp_path / "checkpoint")
    assert state["step"] == 9  # the collapsed model (steps 10..20) never overwrote it


def test_collapse_stop_can_be_switched_off(digits, tmp_path, collapsing_method):
    res = sslab.pretrain(digits.train, _cfg(method=collapsing_method, epochs=1, collapse_stop=False, lr=4e-3),
                         tmp_path, show_progress=False)
    assert [r.get("collapse") for r in res["history"] if r["step"] >= 10] == ["collapsed"] * 3
    assert all("collapse" not in r for r in res["history"] if r["step"] < 10)
