"""The pretraining loop, for any data kind and any method: Lightning Fabric for devices, precision and
distribution; cosine schedule with warm-up and a floor; gradient clipping and accumulation; a wall-clock budget;
atomic checkpoints and exact resume; NaN/inf and collapse guards. The data kind gives batches (`batch(idx)`),
counts its units (`units(batch)`) and describes itself (`meta()`); the method makes its pretext views and returns
its loss. Nothing here knows what an item is.

`trainer` holds the loop (`Trainer`, `pretrain`), `runs` what a run folder holds and how its networks are
rebuilt, `state` the device set-up and the whole-model state under DDP or FSDP."""
from sslab.engine.runs import (load_backbone, load_encoder, load_method, method_from_info, read_run_info,
                               run_info)
from sslab.engine.state import make_fabric, to_device
from sslab.engine.trainer import PROBE_ITEMS, Interrupted, Trainer, lr_at, pretrain

__all__ = ["PROBE_ITEMS", "Interrupted", "Trainer", "load_backbone", "load_encoder", "load_method", "lr_at",
           "make_fabric", "method_from_info", "pretrain", "read_run_info", "run_info", "to_device"]
