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
    std = zn.std(dim=0)
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
