"""Cross-process helpers used inside losses, so callers never change when training goes multi-process."""
from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every process along dim 0, with gradients flowing back to each process."""
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of `x` over every process (no gradient; in place for many processes, `x` itself for one)."""
    if world_size() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over every process (no gradient; `x` itself for one process)."""
    if world_size() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x = x / world_size()
    return x
