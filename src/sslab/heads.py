"""Projection / prediction heads and the momentum (EMA) update shared by the methods."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from sslab import dist


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


class NormLinear(nn.Module):
    """Linear layer without bias whose weight rows are L2-normalised on the fly (weight norm with g = 1, the
    last layer of the DINO head); deep-copies cleanly, unlike `nn.utils.weight_norm`."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, nn.functional.normalize(self.weight, dim=1))


class DINOHead(nn.Module):
    """DINO projection head: MLP -> L2-normalised bottleneck -> weight-normalised linear layer to `out_dim`."""

    def __init__(self, in_dim: int, out_dim: int = 1024, hidden_dim: int = 512, bottleneck_dim: int = 128):
        super().__init__()
        self.mlp = mlp([in_dim, hidden_dim, hidden_dim, bottleneck_dim])
        self.last = NormLinear(bottleneck_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(nn.functional.normalize(self.mlp(x), dim=1))


class KeyQueue(nn.Module):
    """A FIFO ring of `size` L2-normalised vectors (registered buffers, so checkpoints keep it). `push` gathers
    across processes first; `count` is how many rows hold pushed (not initial) vectors, capped at `size`."""

    def __init__(self, size: int, dim: int, random_init: bool = True):
        super().__init__()
        init = nn.functional.normalize(torch.randn(size, dim), dim=1) if random_init else torch.zeros(size, dim)
        self.register_buffer("keys", init)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @property
    def full(self) -> bool:
        return int(self.count) >= self.keys.shape[0]

    @torch.no_grad()
    def push(self, k: torch.Tensor) -> None:
        k = nn.functional.normalize(dist.gather(k.detach()).float(), dim=1)[-self.keys.shape[0]:]
        size = self.keys.shape[0]
        idx = (self.ptr + torch.arange(len(k), device=k.device)) % size
        self.keys[idx] = k.to(self.keys.dtype)
        self.ptr.copy_((self.ptr + len(k)) % size)
        self.count.copy_(torch.clamp(self.count + len(k), max=size))


def multicrop_forward(net: nn.Module, views) -> list[torch.Tensor]:
    """`net` applied to each view, consecutive views of one resolution run as one batch (shared BN statistics)."""
    outs: list[torch.Tensor] = []
    i = 0
    while i < len(views):
        j = i
        while j < len(views) and views[j].shape == views[i].shape:
            j += 1
        outs += list(net(torch.cat(views[i:j])).chunk(j - i))
        i = j
    return outs
