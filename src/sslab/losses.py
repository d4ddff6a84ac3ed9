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
    """BYOL / SimSiam regression loss: 2 - 2 cos(p, z), with the target `z` detached (stop-gradient) unless
    `stop_gradient=False` (the known way to make SimSiam collapse)."""

    def __init__(self, stop_gradient: bool = True):
        super().__init__()
        self.stop_gradient = stop_gradient

    def forward(self, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return 2 - 2 * F.cosine_similarity(p, z.detach() if self.stop_gradient else z, dim=1).mean()


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


class InfoNCELoss(nn.Module):
    """InfoNCE of queries `q` against keys `k` (both L2-normalised here; keys carry no gradient by the caller's
    design). Without `negatives` (MoCo v3) the keys are gathered over processes and query i's positive is key i of
    the global batch; with `negatives` (a (K, d) queue, MoCo v2) the logits are [q_i.k_i, q_i.negatives]."""

    def __init__(self, temperature: float = 0.2):
        super().__init__()
        self.temperature = temperature

    def forward(self, q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor | None = None) -> torch.Tensor:
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        if negatives is None:
            logits = q @ dist.gather(k).T
            labels = torch.arange(len(q), device=q.device) + dist.rank() * len(q)
        else:
            negatives = F.normalize(negatives.to(q.dtype), dim=1)
            logits = torch.cat([(q * k).sum(1, keepdim=True), q @ negatives.T], dim=1)
            labels = torch.zeros(len(q), dtype=torch.long, device=q.device)
        return F.cross_entropy(logits / self.temperature, labels)


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins (Zbontar et al. 2021): the cross-correlation of the two views' batch-normalised projections
    (statistics over the gathered batch) is pushed to the identity: sum (1 - C_ii)^2 + lambda * sum_{i!=j} C_ij^2."""

    def __init__(self, lambd: float = 5e-3, eps: float = 1e-5):
        super().__init__()
        self.lambd, self.eps = lambd, eps

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        z1, z2 = dist.gather(z1.float()), dist.gather(z2.float())
        n = z1.shape[0]
        z1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + self.eps)
        z2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + self.eps)
        c = z1.T @ z2 / n
        on = (torch.diagonal(c) - 1).pow(2).sum()
        off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
        return on + self.lambd * off


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, iters: int = 3, epsilon: float = 0.05) -> torch.Tensor:
    """SwAV's Sinkhorn-Knopp: soft assignments Q (B, K) of B samples (over all processes) to K prototypes whose
    rows sum to 1 and whose columns each sum to about B / K (equipartition)."""
    q = torch.exp(scores.float() / epsilon).T  # (K, B)
    k, b = q.shape[0], q.shape[1] * dist.world_size()
    q /= dist.all_reduce_sum(q.sum())
    for _ in range(iters):
        q /= dist.all_reduce_sum(q.sum(dim=1, keepdim=True))
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    return (q * b).T


class SwAVLoss(nn.Module):
    """Swapped prediction: the Sinkhorn codes of each global view (first `n_global` of `scores`, each (B, K)
    prototype scores) are predicted from every other view by a softmax at `temperature`. `extra` optionally
    holds queued scores per global view, appended before Sinkhorn (only the batch's codes are used)."""

    def __init__(self, temperature: float = 0.1, epsilon: float = 0.05, iters: int = 3):
        super().__init__()
        self.temperature, self.epsilon, self.iters = temperature, epsilon, iters

    def forward(self, scores: list[torch.Tensor], n_global: int = 2, extra: list[torch.Tensor] | None = None):
        codes = []
        for i in range(n_global):
            s = scores[i].detach()
            if extra is not None:
                s = torch.cat([s, extra[i].to(s.dtype)])
            codes.append(sinkhorn(s, self.iters, self.epsilon)[: len(scores[i])])
        return swapped_cross_entropy(codes, [F.log_softmax(s.float() / self.temperature, dim=1) for s in scores])


def swapped_cross_entropy(targets: list[torch.Tensor], log_probs: list[torch.Tensor]) -> torch.Tensor:
    """Mean over pairs (i, j), i != j, of the cross entropy between target distribution `targets[i]` (one per
    global view) and the prediction `log_probs[j]` (one per view): SwAV's swapped prediction, DINO's distillation."""
    total, terms = 0.0, 0
    for i, q in enumerate(targets):
        for j, lp in enumerate(log_probs):
            if j != i:
                total = total - (q * lp).sum(1).mean()
                terms += 1
    return total / terms


def teacher_temperature(progress: float, start: float = 0.04, end: float = 0.07, warmup: float = 0.3) -> float:
    """DINO's teacher temperature: linear from `start` to `end` over the first `warmup` of progress, then `end`."""
    if warmup <= 0 or progress >= warmup:
        return end
    return start + (end - start) * max(progress, 0.0) / warmup


class DINOLoss(nn.Module):
    """DINO self-distillation: cross entropy between the centred, sharpened teacher outputs of the global views and
    the student outputs of every other view. The centre is an EMA (`center_momentum`) of the teacher's batch mean
    (all-reduced over processes), updated in training mode; the teacher temperature follows `teacher_temperature`
    of the `progress` buffer, which the method sets after each step."""

    def __init__(self, out_dim: int, student_temp: float = 0.1, teacher_temp: float = 0.07,
                 warmup_teacher_temp: float = 0.04, warmup: float = 0.3, center_momentum: float = 0.9):
        super().__init__()
        self.student_temp, self.teacher_temp, self.warmup_teacher_temp = student_temp, teacher_temp, warmup_teacher_temp
        self.warmup, self.center_momentum = warmup, center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("progress", torch.zeros(()))

    def forward(self, student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
        t = teacher_temperature(float(self.progress), self.warmup_teacher_temp, self.teacher_temp, self.warmup)
        targets = [F.softmax((o.float() - self.center) / t, dim=1).detach() for o in teacher]
        logp = [F.log_softmax(o.float() / self.student_temp, dim=1) for o in student]
        if self.training:
            self.update_center(torch.cat(teacher))
        return swapped_cross_entropy(targets, logp)

    @torch.no_grad()
    def update_center(self, teacher: torch.Tensor) -> None:
        batch_center = dist.all_reduce_mean(teacher.float().mean(0, keepdim=True))
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)


class CLIPLoss(nn.Module):
    """CLIP's symmetric InfoNCE (Radford et al. 2021): image i and text i are the positive pair of the (global)
    batch; cross-entropy over texts for each image and over images for each text, averaged. `logit_scale` is the
    learnt log inverse temperature. Each process scores its own rows against the gathered batch (open_clip's local
    loss with gathered features), which with DDP's gradient averaging is the global batch's loss exactly."""

    def forward(self, img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        img, txt = F.normalize(img.float(), dim=1), F.normalize(txt.float(), dim=1)
        scale = logit_scale.float().exp()
        labels = torch.arange(len(img), device=img.device) + dist.rank() * len(img)
        per_image = scale * img @ dist.gather(txt).T
        per_text = scale * txt @ dist.gather(img).T
        return (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2


class SigLIPLoss(nn.Module):
    """SigLIP's pairwise sigmoid loss (Zhai et al. 2023): every (image, text) pair of the global batch is a binary
    problem, positive on the diagonal, with a learnt scale and bias; summed over the texts of each image and
    averaged over images (the paper's normalisation)."""

    def forward(self, img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor) -> torch.Tensor:
        img, txt = F.normalize(img.float(), dim=1), F.normalize(txt.float(), dim=1)
        logits = logit_scale.float().exp() * img @ dist.gather(txt).T + logit_bias.float()
        n = len(img)
        signs = -torch.ones_like(logits)
        signs[torch.arange(n, device=img.device), torch.arange(n, device=img.device) + dist.rank() * n] = 1
        return -F.logsigmoid(signs * logits).sum(1).mean()
