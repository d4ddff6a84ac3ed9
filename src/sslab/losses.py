"""Self-supervised losses as small modules. Each one gathers across processes itself (see `dist.gather`),
so a method calls `loss(z1, z2)` the same way on one CPU or on many GPUs."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslab import dist


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross entropy (SimCLR). For each of the 2N views the positive is its
    partner view and the negatives are the other 2N-2 views of the (global) batch."""

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        n = z1.shape[0]
        offset = dist.rank() * n
        g1, g2 = dist.gather(z1), dist.gather(z2)
        big = g1.shape[0]
        local = torch.cat([z1, z2])  # (2n, d) queries
        keys = torch.cat([g1, g2])  # (2N, d) global keys
        logits = local @ keys.T / self.temperature
        idx = torch.arange(n, device=z1.device) + offset
        self_idx = torch.cat([idx, idx + big])
        pos_idx = torch.cat([idx + big, idx])
        logits[torch.arange(2 * n, device=z1.device), self_idx] = float("-inf")
        return F.cross_entropy(logits, pos_idx)


class NegativeCosineLoss(nn.Module):
    """BYOL / SimSiam regression loss: 2 - 2 cos(p, z), target `z` detached by the caller's design."""

    def forward(self, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=1).mean()


class VICRegLoss(nn.Module):
    """Variance-Invariance-Covariance regularisation (Bardes et al. 2022). Returns the weighted sum; the
    three terms of the last call are kept in `self.terms` for logging and tests."""

    def __init__(self, sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0, eps: float = 1e-4):
        super().__init__()
        self.sim_weight, self.var_weight, self.cov_weight, self.eps = sim_weight, var_weight, cov_weight, eps
        self.terms: dict[str, float] = {}

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        inv = F.mse_loss(z1, z2)
        z1, z2 = dist.gather(z1), dist.gather(z2)
        var = variance_term(z1, self.eps) + variance_term(z2, self.eps)
        cov = covariance_term(z1) + covariance_term(z2)
        self.terms = {"invariance": inv.item(), "variance": var.item(), "covariance": cov.item()}
        return self.sim_weight * inv + self.var_weight * var + self.cov_weight * cov


def variance_term(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Mean hinge on the per-dimension standard deviation: zero once every dimension has std >= 1."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1 - std).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal covariances divided by the dimension."""
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / (n - 1)
    off = cov - torch.diag(torch.diag(cov))
    return off.pow(2).sum() / d
