"""The pretraining loop, for any data kind and any method: Lightning Fabric for devices, precision and
distribution; cosine schedule with warm-up and a floor; gradient clipping and accumulation; a wall-clock budget;
atomic checkpoints and exact resume; NaN/inf and collapse guards. The data kind gives batches (`batch(idx)`),
counts its units (`units(batch)`) and describes itself (`meta()`); the method makes its pretext views and returns
its loss. Nothing here knows what an item is."""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslab import dist
from sslab.checkpoint import has_checkpoint, load_checkpoint, load_weights, save_checkpoint, save_weights
from sslab.config import PretrainConfig, scaled_lr
from sslab.errors import SslabError
from sslab.methods import Method, build_for_data
from sslab.progress import Progress

log = logging.getLogger("sslab")
COLLAPSE_PATIENCE = 3  # consecutive "collapsed" probes before a run with collapse_stop is stopped
COLLAPSE_GRACE_STEPS = 10  # no collapse verdict on probes before this step
PROBE_ITEMS = 512  # items in the fixed batch the method's probe sees


def lr_at(progress: float, base: float, warmup: float, floor: float = 0.0) -> float:
    """Linear warm-up to `base`, then cosine decay to `floor * base`."""
    if progress < warmup:
        return base * progress / warmup
    t = (progress - warmup) / max(1e-8, 1 - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def make_fabric(cfg: PretrainConfig):
    from lightning_fabric import Fabric

    accelerator = cfg.accelerator
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    precision = cfg.precision or ("bf16-mixed" if accelerator == "cuda" else "32-true")
    try:
        fabric = Fabric(accelerator=accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, precision=precision,
                        strategy=cfg.strategy)
    except (ValueError, RuntimeError, TypeError) as e:  # unknown strategy, more devices than the machine has, ...
        raise SslabError(f"cannot set up devices={cfg.devices} strategy={cfg.strategy}: {str(e).splitlines()[0]}") from None
    fabric.launch()
    return fabric


def run_info(cfg: PretrainConfig, meta: dict, data_spec: str) -> dict:
    """run.json: what rebuilds the run's networks (method, backbone, the data kind's meta) and its settings."""
    return {"method": cfg.method, "method_args": cfg.method_args, "backbone": cfg.backbone, **meta,
            "data": data_spec, "config": cfg.model_dump()}


def read_run_info(run_dir: str | Path) -> dict:
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        raise SslabError(f"{run_dir} is not a pretraining run (no readable run.json)") from None
    info["run_dir"] = str(run_dir)
    return info


def method_from_info(info: dict) -> Method:
    """A freshly initialised method of the architecture and data description a run recorded in run.json."""
    cfg = PretrainConfig.model_validate(info["config"]) if "config" in info else None
    return build_for_data(info["method"], info["backbone"], info.get("method_args", {}), info, cfg)


def _pretrained(run_dir: str | Path) -> tuple[Method, dict]:
    """A run's method rebuilt from run.json with the pretrained backbone weights (`backbone.safetensors`)."""
    info = read_run_info(run_dir)
    model = method_from_info(info)
    try:
        model.backbone.load_state_dict(load_weights(Path(run_dir) / "backbone.safetensors"))
    except RuntimeError:  # e.g. a T5 run saved before its backbone became the whole encoder-decoder
        raise SslabError(f"{run_dir}: backbone.safetensors does not fit the {info.get('method')} network this sslab "
                         "version builds (a run from an older version?); pretrain it again") from None
    return model, info


def load_encoder(run_dir: str | Path) -> tuple[torch.nn.Module, dict]:
    """The pretrained encoder of a run (`encoder()` of its method, backbone weights from
    `run_dir/backbone.safetensors`): a module from a raw batch of the run's data kind to features, in eval mode."""
    model, info = _pretrained(run_dir)
    return model.encoder().eval(), info


def load_backbone(run_dir: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild a pretrained backbone (the network transfer starts from) from `run_dir/run.json` and
    `run_dir/backbone.safetensors`."""
    model, info = _pretrained(run_dir)
    return model.backbone, info


def load_method(run_dir: str | Path) -> tuple[Method, dict]:
    """Rebuild the full pretrained method (backbone + projector and any other heads) of a run from
    `run_dir/run.json` and the last checkpoint `run_dir/checkpoint/model.safetensors`, in eval mode."""
    info = read_run_info(run_dir)
    model = method_from_info(info)
    weights, _ = load_checkpoint(Path(run_dir) / "checkpoint")
    model.load_state_dict(weights)
    return model.eval(), info


def to_device(batch: Any, device) -> Any:
    """A raw batch (a tensor, or a dict / list of them) on `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _call(model, inputs):
    return model(**inputs) if isinstance(inputs, dict) else model(*inputs)


def _split(out) -> tuple[torch.Tensor, dict]:
    """A method's output: the loss, and the other named values to log."""
    if isinstance(out, dict):
        return out["loss"], {k: v for k, v in out.items() if k != "loss"}
    return out, {}


def _plain(v) -> float:
    return float(v.detach().float().item()) if isinstance(v, torch.Tensor) else float(v)


def pretrain(data, cfg: PretrainConfig, out: str | Path, resume: bool = False, data_spec: str = "",
             show_progress: bool = True, val_data=None) -> dict:
    """Pretrain `cfg.method` on the items of `data` (any data kind; labels unused) and write the run to `out`:
    run.json, backbone.safetensors, checkpoint/ (model + optimiser + RNG state) and metrics.jsonl. The method's
    probe sees a fixed batch of `val_data` (held-out items) when given, else of `data`."""
    out = Path(out)
    if cfg.early_stop and not getattr(val_data, "from_train", False):
        raise SslabError(f"early_stop: {cfg.method} holds out no part of its training data to choose weights on "
                         "(only the test split, which must not choose anything)")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    fabric = make_fabric(cfg)
    device = fabric.device
    n = len(data) if cfg.max_items is None else min(len(data), cfg.max_items)
    if n < 2:
        raise SslabError(f"need at least 2 {data.unit} to pretrain, got {n}")
    batch = min(cfg.batch_size, n)
    micro = math.ceil(batch / cfg.accumulate)
    meta = data.meta(limit=n)
    info = run_info(cfg, meta, data_spec)
    model = build_for_data(cfg.method, cfg.backbone, cfg.method_args, info, cfg)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.sync_batchnorm and fabric.world_size > 1:  # before the optimiser sees the parameters
        if device.type == "cpu":
            raise SslabError("pretrain.sync_batchnorm needs GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    opt = model.configure_optimizer(cfg)
    train_model = torch.compile(model) if cfg.compile else model
    train_model, opt = fabric.setup(train_model, opt)
    steps_per_epoch = max(1, n // (batch * fabric.world_size))
    base_lr = scaled_lr(cfg, batch * fabric.world_size)
    total_steps = math.ceil(cfg.epochs * steps_per_epoch) if cfg.epochs else None
    budget = cfg.budget if not cfg.epochs else None
    if total_steps is None and budget is None:
        raise SslabError("set either epochs or budget")
    # a host synchronisation per step is free on the CPU; on an accelerator the NaN/inf guard reads its verdict
    # only at logging steps and before checkpoints (and every step with on_nonfinite=skip, which needs it)
    check_every_step = device.type == "cpu" or cfg.on_nonfinite == "skip"

    g_data = torch.Generator().manual_seed(cfg.seed)
    g_aug = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + fabric.global_rank)
    step, elapsed_before, history, resumed_best = 0, 0.0, [], None
    ckpt = out / "checkpoint"
    if resume:
        weights, state = load_checkpoint(ckpt, log=_say if fabric.global_rank == 0 else None)
        _load_state(fabric, train_model, model, opt, weights, state["optimizer"])
        step, elapsed_before = state["step"], state["elapsed"]
        g_data.set_state(state["g_data"])
        aug_states = state.get("g_aug_ranks")
        if aug_states is not None and len(aug_states) != fabric.world_size:
            raise SslabError(f"checkpoint was written by {len(aug_states)} processes; resume it with as many "
                             f"(got {fabric.world_size})")
        g_aug.set_state(aug_states[fabric.global_rank] if aug_states is not None else state["g_aug"])
        torch.set_rng_state(state["torch_rng"])
        history = json.loads(state["history"])
        resumed_best = state.get("early_stop")
    if fabric.global_rank == 0:
        (out / "run.json").write_text(json.dumps(info, indent=2))
    probe_src = val_data if val_data is not None and len(val_data) > 0 else data
    probe_n = n if probe_src is data else len(probe_src)
    probe = to_device(probe_src.batch(torch.randperm(probe_n, generator=torch.Generator().manual_seed(0))[:PROBE_ITEMS]),
                      device)
    collapsed_streak, warned = 0, ""  # warned: the non-ok status last reported (one line per streak)
    key, mode = model.select  # early_stop: the probe value that picks the weights, and the best so far
    sign = 1.0 if mode == "min" else -1.0
    best = json.loads(resumed_best) if resume and resumed_best else {"value": math.inf, "step": 0, "since": 0}

    def progress_at(s: int, elapsed: float) -> float:
        if total_steps:
            return s / total_steps
        return min(1.0, elapsed / budget)

    saved_step = -1

    def save(elapsed: float) -> None:
        nonlocal saved_step
        saved_step = step
        # every process's view-sampling stream, so a multi-process resume continues each one exactly
        aug_states = dist.all_gather_list(g_aug.get_state())
        weights, opt_state = _full_state(fabric, train_model, model, opt)  # a collective under FSDP
        if fabric.global_rank != 0:
            return
        state = {"optimizer": opt_state, "step": step, "elapsed": elapsed, "g_data": g_data.get_state(),
                 "g_aug": g_aug.get_state(), "torch_rng": torch.get_rng_state(), "history": json.dumps(history),
                 "early_stop": json.dumps(best)}
        if fabric.world_size > 1:
            state["g_aug_ranks"] = list(aug_states)
        save_checkpoint(ckpt, weights, state)
        save_weights(out / "backbone.safetensors", _submodule_state(model, model.backbone, weights), {"run": info})
        model.export(out)

    def batches():
        epoch = step // steps_per_epoch
        while True:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
            perm = perm[fabric.global_rank :: fabric.world_size]
            start = step % steps_per_epoch if epoch == step // steps_per_epoch else 0
            for i in range(start, steps_per_epoch):
                yield perm[i * batch : (i + 1) * batch]
            epoch += 1

    # process 0 writes the metrics; on resume: the checkpoint's rows, then new ones
    metrics_file = open(out / "metrics.jsonl" if fabric.global_rank == 0 else os.devnull, "w")
    for row in history:
        metrics_file.write(json.dumps(row) + "\n")
    tb = _tensorboard(out) if fabric.global_rank == 0 else None
    t0 = time.time() - elapsed_before
    last_save = elapsed_before  # in seconds since t0, like clock()

    def clock() -> float:
        """Seconds since the run started, as process 0 sees them (the same number in every process)."""
        return dist.broadcast_float(time.time() - t0) if fabric.world_size > 1 else time.time() - t0

    def check(loss, grad_norm=None) -> bool:
        """The NaN/inf guard (the same verdict in every process): stop, or (on_nonfinite=skip) return True."""
        nonlocal skipped
        if not _nonfinite(loss, model, grad_norm):
            skipped = 0
            return False
        skipped += 1
        what = f"loss became {_plain(loss)}" if not torch.isfinite(loss).all() else "a gradient became non-finite"
        if cfg.on_nonfinite == "stop" or skipped >= cfg.max_skipped:
            why = "" if cfg.on_nonfinite == "stop" else f" ({skipped} bad batches in a row)"
            raise SslabError(f"{what} at step {step}{why}; stopped, last good checkpoint kept in {ckpt}")
        progress_bar.message(f"{what} at step {step}: batch skipped ({skipped} in a row)")
        return True

    progress_bar = Progress("pretrain", show_progress and fabric.global_rank == 0)
    model.train()
    skipped = batches_skipped = 0  # non-finite batches: in a row, and in all
    units = 0  # the data kind's units trained on by this process
    last_loss, status_now = float("nan"), "ok"
    try:
        for idx in batches():
            # one clock for all processes (rank 0's), so every process stops at the same step
            elapsed = clock()
            p = progress_at(step, elapsed)
            if p >= 1.0:
                break
            lr = lr_at(p, base_lr, cfg.warmup, cfg.min_lr)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            parts = [idx[i : i + micro] for i in range(0, len(idx), micro)]
            loss, logs = 0.0, {}
            for k, part in enumerate(parts):
                raw = to_device(data.batch(part), device)
                units += data.units(raw)
                with fabric.no_backward_sync(train_model, enabled=k < len(parts) - 1):
                    part_loss, part_logs = _split(_call(train_model, model.views(raw, g_aug)))
                    fabric.backward(part_loss / len(parts))
                loss = loss + part_loss.detach() / len(parts)
                logs = part_logs
            log_now = step + 1 == 1 or (step + 1) % cfg.log_every == 0
            # clipping first: its total gradient norm is what the guard checks (one pass over the gradients, not
            # two: 2.5 ms of a 77 ms step of the character-level GPT); no error (and no host sync) on a bad norm
            norm = (fabric.clip_gradients(train_model, opt, max_norm=cfg.grad_clip, error_if_nonfinite=False)
                    if cfg.grad_clip else None)
            if check_every_step or log_now:
                if check(loss, norm):
                    opt.zero_grad(set_to_none=True)
                    batches_skipped += 1
                    step += 1  # the step is spent without an update, so data order and schedule stay on course
                    continue
            opt.step()
            now = clock()  # EMA schedules and checkpoint times must agree across processes
            model.after_step(progress_at(step + 1, now))
            step += 1
            if log_now:
                model.eval()
                probed = model.probe(probe)
                model.train()
                status = probed.pop("collapse", "ok")
                detail = probed.pop("collapse_detail", "")
                if step < COLLAPSE_GRACE_STEPS:  # fresh heads under eval-mode BN (running stats not settled yet)
                    status = "ok"              # look squeezed at first: no verdict yet
                last_loss = _plain(loss)
                row = {"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": last_loss, "lr": lr,
                       **{k: _plain(v) for k, v in logs.items()}, **probed, "time": round(time.time() - t0, 2)}
                if status != "ok":
                    row["collapse"] = status
                history.append(row)
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
                if tb is not None:
                    for k, v in row.items():
                        if k not in ("step", "epoch", "time") and isinstance(v, (int, float)):
                            tb.add_scalar(f"pretrain/{k}", v, step)
                if status == "ok":
                    warned = ""
                elif status != warned and fabric.global_rank == 0:
                    warned = status
                    progress_bar.message(f"representation collapse {status} at step {step}: {detail}")
                collapsed_streak = collapsed_streak + 1 if status == "collapsed" else 0
                status_now = status
                if collapsed_streak >= COLLAPSE_PATIENCE and cfg.collapse_stop:
                    kept = f"last checkpoint kept in {ckpt}" if has_checkpoint(ckpt) else "no checkpoint was written"
                    raise SslabError(f"representation collapsed at step {step} ({detail}); stopped, {kept}")
                if cfg.early_stop:  # the run's weights are those of its best probe: saved there, and only there
                    if key not in probed:
                        raise SslabError(f"early_stop: the {cfg.method} probe reports no {key}")
                    value = sign * dist.broadcast_float(float(probed[key]))  # one verdict for every process
                    if value < best["value"]:
                        best.update(value=value, step=step, since=0)
                        save(now)
                        last_save = now
                    else:
                        best["since"] += 1
                    if best["since"] >= cfg.early_stop:
                        progress_bar.message(f"early stop at step {step}: {key} {sign * value:.4f}, best "
                                             f"{sign * best['value']:.4f} at step {best['step']}")
                        break
            elif check_every_step:
                last_loss = _plain(loss)
            health = {"warning": " [collapse warning]", "collapsed": " [collapsed]"}.get(status_now, "")
            progress_bar.update(progress_at(step, time.time() - t0), f"step {step} loss {last_loss:.4f}{health}")
            collapsing = collapsed_streak and cfg.collapse_stop  # never overwrite the last good checkpoint
            if not collapsing and not cfg.early_stop and (step == 1 or now - last_save > cfg.checkpoint_every):
                if not check_every_step and not log_now:
                    check(loss, norm)  # never checkpoint weights the guard has not seen
                save(now)
                last_save = now
    finally:
        progress_bar.close()
        metrics_file.close()
        if tb is not None:
            tb.close()
    seconds = time.time() - t0
    # a collapsing run keeps its last good checkpoint; an early-stopping one its best
    if not (collapsed_streak and cfg.collapse_stop) and saved_step != step and not (cfg.early_stop and saved_step > 0):
        save(seconds)
    total_units = int(dist.all_reduce_sum(torch.tensor([float(units)])).item()) if fabric.world_size > 1 else units
    rate = total_units / max(seconds - elapsed_before, 1e-9)  # this session's units over this session's time
    res = {"method": cfg.method, "backbone": cfg.backbone, "steps": step, "epochs": step / steps_per_epoch,
           "seconds": seconds, "unit": data.unit, "units_per_s": rate, f"{data.unit}_per_s": rate,
           "items": n, "batch_size": batch, "history": history, "batches_skipped": batches_skipped,
           "rank": fabric.global_rank}
    if cfg.early_stop:
        res["early_stop"] = {"kept_step": best["step"], "kept_epoch": best["step"] / steps_per_epoch, "on": key,
                             "value": sign * best["value"], "stopped": best["since"] >= cfg.early_stop}
    return res


def _sharded(fabric) -> bool:
    return "FSDP" in type(fabric.strategy).__name__


def _full_state(fabric, train_model, model, opt) -> tuple[dict, dict]:
    """The whole model's and optimiser's state: the module's own under DDP or one process; under FSDP the full
    (unsharded) state gathered to the CPU through PyTorch's distributed-checkpoint API (every process calls it)."""
    if not _sharded(fabric):
        return model.state_dict(), opt.state_dict()
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    module = train_model._forward_module
    return get_model_state_dict(module, options=opts), get_optimizer_state_dict(module, opt.optimizer, options=opts)


def _load_state(fabric, train_model, model, opt, weights: dict, opt_state: dict) -> None:
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


def _submodule_state(model: torch.nn.Module, sub: torch.nn.Module, state: dict) -> dict:
    """The entries of a full state dict that belong to `sub` (e.g. the backbone), with its own key names."""
    prefix = next(name for name, m in model.named_modules() if m is sub)
    return {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")} if prefix else dict(state)


def _nonfinite(loss: torch.Tensor, model: torch.nn.Module, grad_norm: torch.Tensor | None = None) -> bool:
    """True when the loss or any gradient is NaN/inf in any process (DDP has already averaged the gradients);
    `grad_norm`: the total gradient norm clipping computed (finite exactly when every gradient is)."""
    ok = torch.isfinite(loss.detach()).all()
    if grad_norm is not None:
        ok = ok & torch.isfinite(grad_norm.detach())
    elif grads := [p.grad for p in model.parameters() if p.grad is not None]:
        ok = ok & torch.isfinite(torch.stack([g.detach().float().abs().sum() for g in grads]).sum())
    return bool(dist.all_reduce_sum((~ok).float().reshape(1)).item() > 0)


def _say(message: str) -> None:
    print(f"sslab: {message}", file=sys.stderr, flush=True)


def _tensorboard(out: Path):
    """A TensorBoard writer in out/tb when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tb"))
