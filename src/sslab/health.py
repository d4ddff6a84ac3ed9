"""Embedding health: is the representation spread out, or collapsing onto a few directions?"""
from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def embedding_health(z: torch.Tensor, full: bool = False) -> dict:
    """`std_mean`: mean per-dimension std of L2-normalised embeddings (1/sqrt(dim) when spread evenly, 0 when
    collapsed); `effective_rank`: RankMe (Garrido et al. 2023), exp of the entropy of the normalised singular
    values (1 = collapsed onto a line, dim = full use of every dimension)."""
    z = z.float()
    zn = F.normalize(z, dim=1)
    std = zn.std(dim=0) if len(zn) > 1 else torch.zeros(zn.shape[1], device=zn.device)  # one item: no spread
    s = torch.linalg.svdvals(z - z.mean(dim=0))
    p = s / s.sum().clamp_min(1e-12) + 1e-12
    out = {
        "dim": z.shape[1],
        "std_mean": std.mean().item(),
        "std_ideal": z.shape[1] ** -0.5,
        "effective_rank": torch.exp(-(p * p.log()).sum()).item(),
    }
    if full:
        out["std_per_dim"] = std.tolist()
        out["singular_values"] = s.tolist()
    return out


@torch.no_grad()
def alignment(a: torch.Tensor, b: torch.Tensor) -> float:
    """Alignment (Wang & Isola 2020): E ||f(x) - f(y)||^2 over positive pairs (a_i, b_i) of L2-normalised
    embeddings. 0 = every pair maps to one point; 4 = every pair is antipodal. Lower is better."""
    a, b = F.normalize(a.float(), dim=1), F.normalize(b.float(), dim=1)
    return (a - b).pow(2).sum(dim=1).mean().item()


@torch.no_grad()
def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """Uniformity (Wang & Isola 2020): log E exp(-t ||f(x) - f(x')||^2) over distinct pairs of L2-normalised
    embeddings. 0 = all embeddings identical (collapsed); more negative = spread more evenly over the sphere
    (two antipodal points: -4t = -8)."""
    zn = F.normalize(z.float(), dim=1)
    if len(zn) < 2:
        return 0.0
    return torch.pdist(zn).pow(2).mul(-t).exp().mean().log().item()


# Thresholds of `collapse_status`, relative to the ideal per-dimension std 1/sqrt(dim) of L2-normalised
# embeddings, and absolute for the effective rank (so they hold for 64-d backbone features and 512-d projections
# alike). See `collapse_status` for the evidence behind them.
WARN_RANK = 3.0  # warning: fewer than ~3 directions carry the representation
WARN_STD_FRAC = 0.1  # warning: std_mean < 10% of the ideal
COLLAPSED_RANK = 1.5  # collapsed: effective rank < 1.5 (one direction carries everything) ...
COLLAPSED_STD_FRAC = 0.02  # ... or std_mean < 2% of the ideal (every image maps to nearly one point)


def collapse_status(h: dict) -> str:
    """'ok' | 'warning' | 'collapsed' for an `embedding_health` result:
    collapsed when effective_rank < 1.5 or std_mean < 0.02 * std_ideal; warning when effective_rank < 3 or
    std_mean < 0.1 * std_ideal; ok otherwise (NaN reads as collapsed).

    Evidence (eval-mode probe of 512 images; backbone features are post-ReLU, so their std sits well below the
    ideal even when healthy): healthy runs -- SimCLR on fashion-mnist (resnet-s2, 8.7 epochs): backbone rank
    53-67 of 128, std 0.28-0.6 x ideal; SimCLR / BYOL / SimSiam on digits (resnet-xs, dim 64): backbone rank
    >= 22, std >= 0.24 x ideal, projection rank >= 7.7, std >= 0.13 x ideal after the first step. Broken
    settings on digits: SimSiam without stop-gradient drives its projections to std 0.03 -> 0.014 x ideal
    (rank ~2 early), BYOL without predictor holds them at 0.04-0.05 x ideal, while their backbone features
    stay healthy-looking -- which is why the engine checks the projections too for those methods
    (`Method.check_projection`). Healthy SimCLR, MoCo v2/v3, SwAV, DINO, VICReg and Barlow Twins on digits keep
    backbone std >= 0.28 x ideal and rank >= 36. The engine gives no verdict before step 10 (fresh heads under
    eval-mode BatchNorm look squeezed: healthy projections read 0.01-0.05 x ideal at steps 1-5)."""
    rank, std, ideal = h["effective_rank"], h["std_mean"], h["std_ideal"]
    if not (rank == rank and std == std):  # NaN
        return "collapsed"
    if rank < COLLAPSED_RANK or std < COLLAPSED_STD_FRAC * ideal:
        return "collapsed"
    if rank < WARN_RANK or std < WARN_STD_FRAC * ideal:
        return "warning"
    return "ok"
