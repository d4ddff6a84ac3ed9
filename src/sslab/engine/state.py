"""Devices and the whole model's state: Lightning Fabric set-up, batches moved to the device, the full model and
optimiser state under DDP or FSDP (saved and restored), and the NaN/inf verdict all processes share."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sslab import dist
from sslab.config import PretrainConfig
from sslab.dist import default_device
from sslab.errors import SslabError


def make_fabric(cfg: PretrainConfig):
    from lightning_fabric import Fabric

    accelerator = default_device() if cfg.accelerator == "auto" else cfg.accelerator
    precision = cfg.precision or ("bf16-mixed" if accelerator == "cuda" else "32-true")
    try:
        fabric = Fabric(accelerator=accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, precision=precision,
                        strategy=cfg.strategy)
    except (ValueError, RuntimeError, TypeError) as e:  # unknown strategy, more devices than the machine has, ...
        raise SslabError(f"cannot set up devices={cfg.devices} strategy={cfg.strategy}: {str(e).splitlines()[0]}") from None
    fabric.launch()
    return fabric


def to_device(batch: Any, device) -> Any:
    """A raw batch (a tensor, or a dict / list of them) on `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _sharded(fabric) -> bool:
    return "FSDP" in type(fabric.strategy).__name__


def full_state(fabric, train_model, model, opt) -> tuple[dict, dict]:
    """The whole model's and optimiser's state: the module's own under DDP or one process; under FSDP the full
    (unsharded) state gathered to the CPU through PyTorch's distributed-checkpoint API (every process calls it)."""
    if not _sharded(fabric):
        return model.state_dict(), opt.state_dict()
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    module = train_model._forward_module
    return get_model_state_dict(module, options=opts), get_optimizer_state_dict(module, opt.optimizer, options=opts)


def load_full_state(fabric, train_model, model, opt, weights: dict, opt_state: dict) -> None:
    if not _sharded(fabric):
        model.load_state_dict(weights)
        opt.load_state_dict(opt_state)
        return
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)

    opts = StateDictOptions(full_state_dict=True)
    module = train_model._forward_module
    set_model_state_dict(module, weights, options=opts)
    set_optimizer_state_dict(module, opt.optimizer, opt_state, options=opts)


def submodule_state(model: torch.nn.Module, sub: torch.nn.Module, state: dict) -> dict:
    """The entries of a full state dict that belong to `sub` (e.g. the backbone), with its own key names."""
    prefix = next(name for name, m in model.named_modules() if m is sub)
    return {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")} if prefix else dict(state)


def nonfinite(loss: torch.Tensor, model: torch.nn.Module, grad_norm: torch.Tensor | None = None) -> bool:
    """True when the loss or any gradient is NaN/inf in any process (DDP has already averaged the gradients);
    `grad_norm`: the total gradient norm clipping computed (finite exactly when every gradient is)."""
    ok = torch.isfinite(loss.detach()).all()
    if grad_norm is not None:
        ok = ok & torch.isfinite(grad_norm.detach())
    elif grads := [p.grad for p in model.parameters() if p.grad is not None]:
        ok = ok & torch.isfinite(torch.stack([g.detach().float().abs().sum() for g in grads]).sum())
    return bool(dist.all_reduce_sum((~ok).float().reshape(1)).item() > 0)


def tensorboard(out: Path):
    """A TensorBoard writer in out/tb when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tb"))
