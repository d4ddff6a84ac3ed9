"""Projection / prediction heads and the momentum (EMA) update shared by the methods."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn


def mlp(dims: list[int], last_bn: bool = False) -> nn.Sequential:
    """Linear-BN-ReLU blocks between consecutive `dims`; the last layer is linear (optionally BN'd)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        last = i == len(dims) - 2
        layers.append(nn.Linear(a, b, bias=last and not last_bn))
        if not last:
            layers += [nn.BatchNorm1d(b), nn.ReLU()]
        elif last_bn:
            layers.append(nn.BatchNorm1d(b, affine=False))
    return nn.Sequential(*layers)


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of `module` to be updated only by `ema_update`."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, m: float) -> None:
    """target <- m * target + (1 - m) * online, for parameters and float buffers (BN statistics)."""
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.mul_(m).add_(po.detach(), alpha=1 - m)
    for bo, bt in zip(online.buffers(), target.buffers()):
        if bt.dtype.is_floating_point:
            bt.mul_(m).add_(bo, alpha=1 - m)
        else:
            bt.copy_(bo)


def cosine_momentum(progress: float, base: float = 0.99, final: float = 1.0) -> float:
    """BYOL's schedule: momentum rises from `base` to `final` along a half cosine as progress goes 0 -> 1."""
    progress = min(max(progress, 0.0), 1.0)
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2
