"""Losses, heads and embedding health checked against hand-written references and hand-computed numbers."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from sslab.health import embedding_health
from sslab.heads import cosine_momentum, ema_update, mlp, momentum_copy
from sslab.losses import NegativeCosineLoss, NTXentLoss, VICRegLoss, covariance_term, variance_term


# ----------------------------------------------------------------------------------------- NT-Xent
def ntxent_reference(z1: np.ndarray, z2: np.ndarray, temperature: float) -> float:
    """Plain loop over the 2N views: -log softmax of the partner view, the view itself excluded."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    losses = []
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        sims = {j: float(z[i] @ z[j]) / temperature for j in range(2 * n) if j != i}
        log_denominator = math.log(sum(math.exp(s) for s in sims.values()))
        losses.append(-(sims[pos] - log_denominator))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 2.0])
def test_ntxent_matches_reference_loop(temperature):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    got = NTXentLoss(temperature)(z1, z2).item()
    assert got == pytest.approx(ntxent_reference(z1.numpy(), z2.numpy(), temperature), rel=1e-5)


def test_ntxent_hand_computed_tiny_case():
    # N=2, T=1, c = 1/sqrt(2). Views (normalised): a0=(1,0), a1=(0,1), b0=(c,c), b1=(-c,c); pairs (a0,b0), (a1,b1).
    #   a0: others a1:0, b0:+c (pos), b1:-c  -> -c + log(1 + e^c + e^-c)
    #   a1: others a0:0, b0:+c, b1:+c (pos)  -> -c + log(1 + 2e^c)
    #   b0: others a0:+c (pos), a1:+c, b1:0  -> -c + log(1 + 2e^c)
    #   b1: others a0:-c, a1:+c (pos), b0:0  -> -c + log(1 + e^c + e^-c)
    # e^c = 2.02811, e^-c = 0.49307: mean = -c + (log(3.52118) + log(5.05622)) / 2
    #   = -0.70711 + (1.25880 + 1.62061) / 2 ≈ 0.73260
    c = 1 / math.sqrt(2)
    expected = -c + (math.log(1 + math.exp(c) + math.exp(-c)) + math.log(1 + 2 * math.exp(c))) / 2
    assert expected == pytest.approx(0.73260, abs=1e-4)
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[3.0, 3.0], [-0.5, 0.5]])  # un-normalised on purpose: the loss normalises
    assert NTXentLoss(temperature=1.0)(z1, z2).item() == pytest.approx(expected, abs=1e-6)


def test_ntxent_invariant_to_permuting_pairs():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(10, 8, generator=g), torch.randn(10, 8, generator=g)
    perm = torch.randperm(10, generator=g)
    loss = NTXentLoss(0.3)
    assert loss(z1[perm], z2[perm]).item() == pytest.approx(loss(z1, z2).item(), rel=1e-6)
    # ... but permuting only one side breaks the pairs and changes the loss
    assert loss(z1, z2[perm]).item() != pytest.approx(loss(z1, z2).item(), rel=1e-3)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_ntxent_identical_embeddings_give_log_2n_minus_1(n):
    z = torch.ones(n, 4)
    for t in (0.1, 1.0):
        assert NTXentLoss(t)(z, z.clone()).item() == pytest.approx(math.log(2 * n - 1), abs=1e-5)


def test_ntxent_temperature_scaling():
    g = torch.Generator().manual_seed(2)
    z1 = torch.randn(8, 16, generator=g)
    z2 = z1 + 0.05 * torch.randn(8, 16, generator=g)  # positives well aligned
    losses = [NTXentLoss(t)(z1, z2).item() for t in (0.05, 0.2, 1.0, 5.0, 1e4)]
    # aligned positives: sharper softmax (lower T) -> lower loss, monotonically
    assert all(a < b for a, b in zip(losses, losses[1:]))
    assert losses[0] < 0.05
    # T -> inf: every logit equal -> log(2N - 1)
    assert losses[-1] == pytest.approx(math.log(15), abs=1e-3)
    # the loss only sees cos / T: scaling the embeddings changes nothing
    assert NTXentLoss(0.2)(5 * z1, 0.1 * z2).item() == pytest.approx(losses[1], rel=1e-5)


def test_ntxent_gradients_flow_to_both_views():
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(4, 3, generator=g, requires_grad=True)
    z2 = torch.randn(4, 3, generator=g, requires_grad=True)
    NTXentLoss()(z1, z2).backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0


# ------------------------------------------------------------------------------ negative cosine
def test_negative_cosine_values():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(5, 7, generator=g)
    loss = NegativeCosineLoss()
    assert loss(z.clone(), z).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(3 * z, z).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert loss(-z, z).item() == pytest.approx(4.0, abs=1e-6)
    orth_p, orth_z = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert loss(orth_p, orth_z).item() == pytest.approx(2.0, abs=1e-6)


def test_negative_cosine_stops_gradient_into_target():
    g = torch.Generator().manual_seed(5)
    p = torch.randn(4, 6, generator=g, requires_grad=True)
    z = torch.randn(4, 6, generator=g, requires_grad=True)
    NegativeCosineLoss()(p, z).backward()
    assert z.grad is None
    assert p.grad is not None and p.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------- VICReg
def _whitened(n: int, d: int, std: float, seed: int) -> torch.Tensor:
    """n x d batch whose centred columns are orthogonal with per-column std `std` (exactly decorrelated)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(x - x.mean(0))  # columns orthonormal and (being in the span of centred x) centred
    return (q * std * math.sqrt(n - 1)).float()


def test_vicreg_invariance_zero_for_identical_views():
    g = torch.Generator().manual_seed(6)
    z = torch.randn(32, 8, generator=g)
    loss = VICRegLoss()
    out = loss(z, z.clone())
    assert loss.terms["invariance"] == 0.0
    assert set(loss.terms) == {"invariance", "variance", "covariance"}
    t = loss.terms
    assert out.item() == pytest.approx(25 * t["invariance"] + 25 * t["variance"] + 1 * t["covariance"], rel=1e-5)


def test_vicreg_invariance_is_mse():
    z1, z2 = torch.zeros(4, 2), torch.ones(4, 2) * 2
    loss = VICRegLoss()
    loss(z1, z2)
    assert loss.terms["invariance"] == pytest.approx(4.0)


def test_vicreg_variance_zero_when_std_at_least_one():
    z = _whitened(64, 8, std=1.5, seed=7)
    assert torch.allclose(z.std(0), torch.full((8,), 1.5), atol=1e-4)
    assert variance_term(z).item() == 0.0
    loss = VICRegLoss()
    loss(z, _whitened(64, 8, std=2.0, seed=8))
    assert loss.terms["variance"] == 0.0


def test_vicreg_collapsed_embeddings():
    row = torch.tensor([[0.3, -1.2, 2.0, 0.7]])
    z = row.repeat(16, 1)
    # std = sqrt(0 + eps) = 0.01 per dimension -> hinge 0.99 per view
    assert variance_term(z).item() == pytest.approx(0.99, abs=1e-4)
    loss = VICRegLoss(sim_weight=2.0, var_weight=3.0, cov_weight=5.0)
    total = loss(z, z.clone())
    assert loss.terms["variance"] == pytest.approx(1.98, abs=1e-3)
    assert loss.terms["covariance"] == pytest.approx(0.0, abs=1e-8)
    assert total.item() == pytest.approx(3.0 * 1.98, abs=3e-3)


def test_vicreg_covariance_zero_when_decorrelated_positive_when_correlated():
    z = _whitened(128, 6, std=1.0, seed=9)
    assert covariance_term(z).item() == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(10)
    c = torch.randn(128, 6, generator=g)
    c[:, 1] = c[:, 0] + 0.1 * c[:, 1]  # dims 0 and 1 strongly correlated
    # off-diagonal cov(0,1) ≈ 1 appears twice: sum of squares ≈ 2, divided by d = 6
    assert covariance_term(c).item() > 0.2
    loss = VICRegLoss()
    loss(z, z)
    decorrelated = loss.terms["covariance"]
    loss(c, c)
    assert loss.terms["covariance"] > 0.4 > decorrelated


def test_covariance_term_hand_computed():
    # two perfectly correlated dims with variance 1 each: cov matrix [[1,1],[1,1]] -> (1^2 + 1^2) / 2 = 1
    col = torch.tensor([-1.0, 0.0, 1.0])  # sample variance 1
    z = torch.stack([col, col], dim=1)
    assert covariance_term(z).item() == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------------------------- heads
def test_ema_update_parameters_and_buffers():
    torch.manual_seed(11)
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target = momentum_copy(online)
    assert all(not p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    online.train()
    online(torch.randn(10, 3))  # moves BN running stats and num_batches_tracked
    old_t = {k: v.clone() for k, v in target.state_dict().items()}
    on = {k: v.clone() for k, v in online.state_dict().items()}
    m = 0.9
    ema_update(online, target, m)
    new_t = target.state_dict()
    for k, v in new_t.items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, m * old_t[k] + (1 - m) * on[k], atol=1e-6), k
            assert not torch.equal(v, old_t[k]), k
        else:  # integer buffers (num_batches_tracked) are copied
            assert torch.equal(v, on[k]), k
    assert int(new_t["1.num_batches_tracked"]) == 1
    # online untouched
    for k, v in online.state_dict().items():
        assert torch.equal(v, on[k])


def test_ema_update_extremes():
    torch.manual_seed(12)
    online = nn.Linear(3, 2)
    target = momentum_copy(online)
    with torch.no_grad():
        online.weight.add_(1.0)
    before = target.weight.clone()
    ema_update(online, target, 1.0)
    assert torch.equal(target.weight, before)
    ema_update(online, target, 0.0)
    assert torch.equal(target.weight, online.weight)


def test_cosine_momentum_schedule():
    assert cosine_momentum(0.0) == pytest.approx(0.99)
    assert cosine_momentum(1.0) == pytest.approx(1.0)
    assert cosine_momentum(0.0, base=0.9) == pytest.approx(0.9)
    assert cosine_momentum(0.5, base=0.9) == pytest.approx(0.95)
    assert cosine_momentum(-1.0, 0.9) == pytest.approx(0.9) and cosine_momentum(2.0, 0.9) == pytest.approx(1.0)
    values = [cosine_momentum(p / 50, 0.9) for p in range(51)]
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert values[1] > values[0] and values[-1] > values[-2]


def test_mlp_shapes_and_layers():
    head = mlp([8, 16, 4])
    assert head(torch.randn(5, 8)).shape == (5, 4)
    assert [type(m) for m in head] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert head[0].bias is None and head[3].bias is not None
    deep = mlp([8, 32, 32, 3], last_bn=True)
    assert deep(torch.randn(5, 8)).shape == (5, 3)
    assert isinstance(deep[-1], nn.BatchNorm1d) and not deep[-1].affine
    assert deep[-2].bias is None
    assert sum(isinstance(m, nn.Linear) for m in deep) == 3
    single = mlp([6, 2])
    assert len(single) == 1 and single(torch.randn(3, 6)).shape == (3, 2)


# -------------------------------------------------------------------------------------- health
def test_health_rank_one_embeddings():
    g = torch.Generator().manual_seed(13)
    scale = torch.rand(256, 1, generator=g) + 0.5  # positive: every row points the same way
    z = scale * torch.randn(1, 32, generator=g)
    h = embedding_health(z)
    assert h["dim"] == 32
    assert h["effective_rank"] == pytest.approx(1.0, abs=0.01)
    assert h["std_mean"] == pytest.approx(0.0, abs=1e-5)
    assert h["std_ideal"] == pytest.approx(32 ** -0.5)


def test_health_isotropic_gaussian():
    g = torch.Generator().manual_seed(14)
    z = torch.randn(2048, 64, generator=g)
    h = embedding_health(z, full=True)
    assert 50 < h["effective_rank"] <= 64
    assert h["std_mean"] == pytest.approx(h["std_ideal"], rel=0.05)
    assert len(h["std_per_dim"]) == 64 and len(h["singular_values"]) == 64
