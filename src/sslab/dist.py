"""Devices and processes: the device one process computes on, and cross-process helpers used inside losses, so
callers never change when training goes multi-process."""
from __future__ import annotations

import warnings

import torch
import torch.distributed as dist

# torch >= 2.x marks torch.distributed.nn.functional.all_gather deprecated in favour of a private API; it is still
# the public differentiable all_gather, so keep it and do not repeat the notice in every process
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather is deprecated")


def default_device() -> str:
    """The device a single process evaluates on: the GPU when there is one, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


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


def global_mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """This process's share of a mean over the *global* batch: its sum `total` divided by the average count per
    process, so that data-parallel gradient averaging gives the exact mean even when processes hold different
    numbers of items (masked tokens, word pairs); a plain per-process mean would weight them unequally."""
    count = count.detach().float().reshape(1)
    if world_size() > 1:
        count = all_reduce_sum(count.clone()) / world_size()
    return total / count[0].clamp_min(1.0)


def broadcast_float(value: float, src: int = 0) -> float:
    """`value` as process `src` has it (the value itself for one process)."""
    if world_size() == 1:
        return value
    t = _for_backend(torch.tensor([value], dtype=torch.float64))
    dist.broadcast(t, src)
    return float(t.item())


def all_gather_list(x: torch.Tensor) -> list[torch.Tensor]:
    """`x` from every process as a list, rank order (no gradient; `[x]` for one process). For small state."""
    if world_size() == 1:
        return [x]
    x = _for_backend(x)
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x)
    return [p.cpu() for p in parts]


def _for_backend(x: torch.Tensor) -> torch.Tensor:
    """`x` on the device the process group's backend communicates from (NCCL: this process's GPU)."""
    return x.cuda() if dist.get_backend() == "nccl" else x
