"""MoCo / Barlow Twins / SwAV / DINO pieces against hand-written references, multi-crop in the engine, and a short
training run of every method added with them on scikit-learn's digits."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sslab
from sslab import PretrainConfig, build_backbone, build_method
from sslab.heads import KeyQueue, multicrop_forward
from sslab.health import embedding_health
from sslab.losses import BarlowTwinsLoss, DINOLoss, InfoNCELoss, SwAVLoss, sinkhorn, teacher_temperature
from sslab.methods import METHODS, register
from sslab.methods.dino import DINO

NEW_METHODS = ["moco-v2", "moco-v3", "simsiam", "barlow-twins", "swav", "dino"]


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _model(name, **kw):
    torch.manual_seed(0)
    return build_method(name, build_backbone("resnet-xs", 1), **kw)


# ------------------------------------------------------------------------------------- InfoNCE
def _unit(a):
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def infonce_reference(q, k, negatives, t):
    """Loop: -log( exp(q.k_pos / t) / sum over candidates ); candidates = queue (MoCo v2) or all batch keys (v3)."""
    q, k = _unit(q), _unit(k)
    losses = []
    for i in range(len(q)):
        cands = [k[i]] + list(_unit(negatives)) if negatives is not None else list(k)
        pos = 0 if negatives is not None else i
        logits = [float(q[i] @ c) / t for c in cands]
        losses.append(-(logits[pos] - math.log(sum(math.exp(x) for x in logits))))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("temperature", [0.2, 1.0])
@pytest.mark.parametrize("with_queue", [True, False])
def test_infonce_matches_reference(temperature, with_queue):
    q, k, neg = _randn(5, 4, seed=1), _randn(5, 4, seed=2), 3 * _randn(7, 4, seed=3)
    got = InfoNCELoss(temperature)(q, k, neg if with_queue else None).item()
    want = infonce_reference(q.numpy(), k.numpy(), neg.numpy() if with_queue else None, temperature)
    assert got == pytest.approx(want, rel=1e-5)


def test_infonce_hand_computed():
    # q = k = (1, 0), one negative (0, 1), T = 1: -log(e / (e + 1))
    q = torch.tensor([[2.0, 0.0]])
    assert InfoNCELoss(1.0)(q, q, torch.tensor([[0.0, 5.0]])).item() == pytest.approx(math.log1p(math.exp(-1)), abs=1e-6)


def test_moco_v3_loss_is_scaled_by_two_tau():
    model = _model("moco-v3").train()
    x1, x2 = torch.rand(8, 1, 16, 16), torch.rand(8, 1, 16, 16)
    torch.manual_seed(1)
    loss = model(x1, x2)
    q1 = model.predictor(model.projector(model.backbone(x1)))
    q2 = model.predictor(model.projector(model.backbone(x2)))
    k1, k2 = model.keys(x1), model.keys(x2)
    ref = infonce_reference(q1.detach().numpy(), k2.numpy(), None, 0.2) + infonce_reference(
        q2.detach().numpy(), k1.numpy(), None, 0.2)
    assert loss.item() == pytest.approx(2 * 0.2 * ref, rel=1e-4)


# ---------------------------------------------------------------------------------- MoCo queue
def test_key_queue_enqueues_and_wraps():
    q = KeyQueue(5, 2)
    assert torch.allclose(q.keys.norm(dim=1), torch.ones(5))  # random unit keys to start with
    a = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    q.push(a)
    assert int(q.ptr) == 3 and int(q.count) == 3 and not q.full
    assert torch.allclose(q.keys[:3], F.normalize(a, dim=1))
    b = torch.tensor([[-1.0, 0.0], [0.0, -1.0], [-2.0, -2.0]])
    q.push(b)
    assert int(q.ptr) == 1 and q.full  # 6 pushed into 5 slots: the pointer wrapped
    nb = F.normalize(b, dim=1)
    assert torch.allclose(q.keys[3], nb[0]) and torch.allclose(q.keys[4], nb[1]) and torch.allclose(q.keys[0], nb[2])
    assert torch.allclose(q.keys[1:3], F.normalize(a, dim=1)[1:])  # untouched until the pointer comes round
    q.push(torch.arange(14.0).view(7, 2) + 1)  # more keys than slots: the newest 5 are kept
    assert int(q.ptr) == 1
    assert torch.allclose(q.keys, F.normalize(torch.arange(14.0).view(7, 2) + 1, dim=1)[2:].roll(1, dims=0))


def test_moco_v2_enqueues_both_views_in_training_only():
    model = _model("moco-v2", queue_size=40).train()
    x1, x2 = torch.rand(8, 1, 16, 16), torch.rand(8, 1, 16, 16)
    before = model.queue.keys.clone()
    model(x1, x2)
    assert int(model.queue.ptr) == 16
    assert torch.allclose(model.queue.keys[:16].norm(dim=1), torch.ones(16))
    assert torch.equal(model.queue.keys[16:], before[16:])
    model(x1, x2)
    model(x1, x2)
    assert int(model.queue.ptr) == 48 % 40
    model.eval()
    model(x1, x2)
    assert int(model.queue.ptr) == 8
    assert "queue.keys" in model.state_dict() and "queue.ptr" in model.state_dict()  # checkpointed


# ------------------------------------------------------------------------------- Barlow Twins
def _whitened(n, d, seed):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    q, _ = torch.linalg.qr(x - x.mean(0))
    return (q * math.sqrt(n - 1)).float()


def test_barlow_twins_zero_for_identical_whitened_views():
    z = _whitened(64, 8, seed=0)
    loss = BarlowTwinsLoss()
    assert loss(z, z.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(3 * z + 1, z).item() == pytest.approx(0.0, abs=1e-6)  # batch-normalised: scale/shift free


def test_barlow_twins_positive_otherwise():
    loss = BarlowTwinsLoss(lambd=5e-3)
    z = _whitened(64, 8, seed=0)
    assert loss(z, _whitened(64, 8, seed=1)).item() > 1.0  # unrelated views: diagonal far from 1
    c = z.clone()
    c[:, 1] = c[:, 0]  # two correlated dimensions: off-diagonal terms
    assert loss(c, c).item() > 2 * 5e-3 * 0.9
    # hand-computed: z2 = -z1 gives diagonal -1 -> (1 - (-1))^2 = 4 per dimension, off-diagonal 0
    assert loss(z, -z).item() == pytest.approx(4 * 8, rel=1e-4)


def test_barlow_twins_invariant_to_permuting_the_batch():
    z1, z2 = _randn(32, 6, seed=2), _randn(32, 6, seed=3)
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(4))
    loss = BarlowTwinsLoss()
    assert loss(z1[perm], z2[perm]).item() == pytest.approx(loss(z1, z2).item(), rel=1e-5)
    assert loss(z1, z2[perm]).item() != pytest.approx(loss(z1, z2).item(), rel=1e-3)


# ------------------------------------------------------------------------------------ Sinkhorn
def _scores(b=64, k=8, d=16, seed=5):
    z = F.normalize(_randn(b, d, seed=seed), dim=1)
    c = F.normalize(_randn(k, d, seed=seed + 1), dim=1)
    return z @ c.T


def test_sinkhorn_rows_sum_to_one_columns_equipartitioned():
    s = _scores()
    q = sinkhorn(s, iters=3, epsilon=0.05)
    assert q.shape == (64, 8) and (q >= 0).all()
    assert torch.allclose(q.sum(1), torch.ones(64), atol=1e-5)
    cols = q.sum(0)
    assert cols.sum().item() == pytest.approx(64, rel=1e-5)
    # columns approach B/K = 8 as the iterations go on (roughly after SwAV's 3, exactly after many)
    assert ((cols > 4) & (cols < 16)).all()
    err = [(sinkhorn(s, iters=i).sum(0) - 8).abs().max().item() for i in (1, 3, 10, 100)]
    assert err[0] > err[1] > err[2] > err[3] and err[3] < 1e-3
    assert torch.allclose(sinkhorn(s, iters=3, epsilon=0.5).sum(0), torch.full((8,), 8.0), atol=0.05)  # smoother


def test_sinkhorn_has_no_gradient_and_swav_loss_swaps():
    s = _scores().requires_grad_(True)
    assert not sinkhorn(s).requires_grad
    s1, s2 = _scores(seed=7).requires_grad_(True), _scores(seed=9).requires_grad_(True)
    loss = SwAVLoss(temperature=0.1)([s1, s2])
    q1, q2 = sinkhorn(s1), sinkhorn(s2)
    ref = (-(q1 * F.log_softmax(s2 / 0.1, 1)).sum(1).mean() - (q2 * F.log_softmax(s1 / 0.1, 1)).sum(1).mean()) / 2
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    loss.backward()
    assert s1.grad.abs().sum() > 0 and s2.grad.abs().sum() > 0


def test_swav_prototypes_normalised_and_frozen_first_steps():
    model = _model("swav", freeze_prototypes_steps=2).train()
    x1, x2 = torch.rand(8, 1, 16, 16), torch.rand(8, 1, 16, 16)
    for step in range(3):
        model.zero_grad()
        model(x1, x2).backward()
        assert torch.allclose(model.prototypes.weight.norm(dim=1), torch.ones(300), atol=1e-5)
        assert (model.prototypes.weight.grad.abs().sum() == 0) == (step < 2), step
        model.after_step(step / 10)
    assert int(model.steps) == 3 and "steps" in model.state_dict()


def test_swav_queue_used_once_full():
    model = _model("swav", queue_size=16).train()
    x1, x2 = torch.rand(8, 1, 16, 16), torch.rand(8, 1, 16, 16)
    model(x1, x2)
    assert not model.queues[0].full
    model(x1, x2)
    assert all(q.full for q in model.queues)
    assert torch.isfinite(model(x1, x2))


# ---------------------------------------------------------------------------------------- DINO
def test_teacher_temperature_schedule():
    assert teacher_temperature(0.0) == pytest.approx(0.04)
    assert teacher_temperature(0.15) == pytest.approx(0.055)
    assert teacher_temperature(0.3) == pytest.approx(0.07)
    assert teacher_temperature(1.0) == pytest.approx(0.07)
    assert teacher_temperature(0.5, warmup=0.0) == pytest.approx(0.07)
    values = [teacher_temperature(p / 20) for p in range(21)]
    assert all(a <= b for a, b in zip(values, values[1:]))


def test_dino_center_update_formula():
    loss = DINOLoss(4, center_momentum=0.9).train()
    t1 = _randn(6, 4, seed=10)
    loss.update_center(t1)
    assert torch.allclose(loss.center, 0.1 * t1.mean(0, keepdim=True), atol=1e-6)
    t2 = _randn(6, 4, seed=11)
    expected = 0.9 * loss.center + 0.1 * t2.mean(0, keepdim=True)
    loss.update_center(t2)
    assert torch.allclose(loss.center, expected, atol=1e-6)
    # forward updates the centre with all teacher outputs in training mode, not in eval mode
    teacher, student = [_randn(6, 4, seed=12), _randn(6, 4, seed=13)], [_randn(6, 4, seed=s) for s in (14, 15, 16)]
    before = loss.center.clone()
    loss(student, teacher)
    assert torch.allclose(loss.center, 0.9 * before + 0.1 * torch.cat(teacher).mean(0, keepdim=True), atol=1e-6)
    loss.eval()
    before = loss.center.clone()
    loss(student, teacher)
    assert torch.equal(loss.center, before)


def test_dino_loss_reference_and_progress():
    loss = DINOLoss(5).eval()
    loss.center.fill_(0.3)
    teacher = [_randn(4, 5, seed=20), _randn(4, 5, seed=21)]
    student = [_randn(4, 5, seed=s) for s in (22, 23, 24)]

    def ref(t):
        tq = [F.softmax((o - 0.3) / t, 1) for o in teacher]
        terms = [-(tq[i] * F.log_softmax(student[j] / 0.1, 1)).sum(1).mean() for i in range(2) for j in range(3) if i != j]
        return (sum(terms) / len(terms)).item()

    assert loss(student, teacher).item() == pytest.approx(ref(0.04), rel=1e-5)
    loss.progress.fill_(0.9)
    assert loss(student, teacher).item() == pytest.approx(ref(0.07), rel=1e-5)
    model = _model("dino")
    model.after_step(0.15)
    assert float(model.loss.progress) == pytest.approx(0.15)


# ----------------------------------------------------------------------------------- multi-crop
@pytest.mark.parametrize("name", ["swav", "dino"])
def test_multicrop_methods_take_local_views(name):
    model = _model(name).train()
    assert model.num_local_crops == 2
    g = torch.Generator().manual_seed(0)
    views = [torch.rand(8, 1, 16, 16, generator=g) for _ in range(2)] + [torch.rand(8, 1, 8, 8, generator=g)
                                                                       for _ in range(3)]
    loss = model(*views)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
    assert _model(name, local_crops=0).num_local_crops == 0
    assert METHODS["simclr"](build_backbone("resnet-xs", 1)).num_local_crops == 0


def test_multicrop_forward_batches_by_resolution():
    calls = []

    def net(x):
        calls.append(tuple(x.shape))
        return x.flatten(1)[:, :2]

    views = [torch.rand(3, 1, 6, 6), torch.rand(3, 1, 6, 6), torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)]
    out = multicrop_forward(net, views)
    assert calls == [(6, 1, 6, 6), (6, 1, 4, 4)]
    assert all(torch.equal(o, v.flatten(1)[:, :2]) for o, v in zip(out, views))


def test_engine_builds_local_views(digits, tmp_path):
    seen = []

    @register("test-multicrop-spy")
    class Spy(DINO):
        def forward(self, *views):
            seen.append([tuple(v.shape[1:]) for v in views])
            return super().forward(*views)

    try:
        cfg = PretrainConfig(method="test-multicrop-spy", method_args={"local_crops": 3, "local_crop_size": 6},
                             epochs=1, budget=None, batch_size=256, backbone="resnet-xs", max_images=512)
        sslab.pretrain(digits.train, cfg, tmp_path, show_progress=False)
    finally:
        METHODS.pop("test-multicrop-spy", None)
    assert seen and all(s == [(1, 8, 8)] * 2 + [(1, 6, 6)] * 3 for s in seen)


# ------------------------------------------------------------------------------ digits training
@pytest.mark.parametrize("name", NEW_METHODS)
def test_method_trains_on_digits_without_collapse(name, digits, tmp_path):
    cfg = PretrainConfig(method=name, epochs=3, budget=None, batch_size=128, backbone="resnet-xs")
    res = sslab.pretrain(digits.train, cfg, tmp_path, show_progress=False)
    assert res["steps"] == 3 * (len(digits.train) // 128)
    assert all(math.isfinite(r["loss"]) for r in res["history"])
    bb, _ = sslab.load_backbone(tmp_path)
    x = torch.from_numpy(digits.test.x).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        h = embedding_health(bb.eval()(x))
    assert h["effective_rank"] > 3, h
