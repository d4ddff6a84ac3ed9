"""The pretraining loop: Lightning Fabric for devices/precision/distribution, views made on the device,
cosine schedule with warm-up, a wall-clock budget, atomic checkpoints, resume, and a NaN guard."""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sslab import dist, views
from sslab.checkpoint import has_checkpoint, load_checkpoint, load_weights, save_checkpoint, save_weights
from sslab.config import PretrainConfig, scaled_lr
from sslab.data import ImageData
from sslab.errors import SslabError
from sslab.health import alignment, collapse_status, embedding_health, uniformity
from sslab.methods import Method, build_method
from sslab.nets import Backbone, build_backbone

log = logging.getLogger("sslab")
_SEVERITY = {"ok": 0, "warning": 1, "collapsed": 2}
COLLAPSE_PATIENCE = 3  # consecutive "collapsed" probes before a run with collapse_stop is stopped
COLLAPSE_GRACE_STEPS = 10  # no collapse verdict on probes before this step


def to_float(x_uint8: torch.Tensor, device, channels_last: bool = False) -> torch.Tensor:
    """(B, H, W, C) uint8 -> (B, C, H, W) float in [0, 1] on `device`."""
    x = x_uint8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def pixel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    sample = x[:: max(1, len(x) // 10000)].astype(np.float32) / 255
    return sample.mean(axis=(0, 1, 2)).tolist(), (sample.std(axis=(0, 1, 2)) + 1e-3).tolist()


def lr_at(progress: float, base: float, warmup: float) -> float:
    if progress < warmup:
        return base * progress / warmup
    t = (progress - warmup) / max(1e-8, 1 - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


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


def run_info(cfg: PretrainConfig, data: ImageData, mean, std, data_spec: str) -> dict:
    return {"method": cfg.method, "method_args": cfg.method_args, "backbone": cfg.backbone,
            "in_chans": int(data.x.shape[3]), "image_size": int(data.x.shape[1]), "mean": mean, "std": std,
            "data": data_spec, "config": cfg.model_dump()}


def _run_info(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        raise SslabError(f"{run_dir} is not a pretraining run (no readable run.json)") from None


def backbone_from_info(info: dict) -> Backbone:
    """A freshly initialised backbone of the architecture and input statistics a run recorded in run.json."""
    return build_backbone(info["backbone"], info["in_chans"], info["mean"], info["std"])


def load_backbone(run_dir: str | Path) -> tuple[Backbone, dict]:
    """Rebuild a pretrained backbone from `run_dir/run.json` and `run_dir/backbone.safetensors`."""
    run_dir = Path(run_dir)
    info = _run_info(run_dir)
    bb = backbone_from_info(info)
    bb.load_state_dict(load_weights(run_dir / "backbone.safetensors"))
    return bb, info


def load_method(run_dir: str | Path) -> tuple[Method, dict]:
    """Rebuild the full pretrained method (backbone + projector and any other heads) of a run from
    `run_dir/run.json` and the last checkpoint `run_dir/checkpoint/model.safetensors`, in eval mode."""
    run_dir = Path(run_dir)
    info = _run_info(run_dir)
    model = build_method(info["method"], backbone_from_info(info), **info.get("method_args", {}))
    weights, _ = load_checkpoint(run_dir / "checkpoint")
    model.load_state_dict(weights)
    return model.eval(), info


def pretrain(data: ImageData, cfg: PretrainConfig, out: str | Path, resume: bool = False, data_spec: str = "",
             show_progress: bool = True) -> dict:
    """Pretrain `cfg.method` on the images of `data` (labels unused) and write the run to `out`:
    run.json, backbone.safetensors, checkpoint/ (model + optimiser + RNG state) and metrics.jsonl."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    fabric = make_fabric(cfg)
    device = fabric.device
    x_all = data.x if cfg.max_images is None else data.x[: cfg.max_images]
    n = len(x_all)
    if n < 2:
        raise SslabError(f"need at least 2 images to pretrain, got {n}")
    batch = min(cfg.batch_size, n)
    mean, std = pixel_stats(x_all)
    backbone = build_backbone(cfg.backbone, data.x.shape[3], mean, std)
    model = build_method(cfg.method, backbone, **cfg.method_args)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.sync_batchnorm and fabric.world_size > 1:  # before the optimiser sees the parameters
        if device.type == "cpu":
            raise SslabError("pretrain.sync_batchnorm needs GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    train_model = torch.compile(model) if cfg.compile else model
    train_model, opt = fabric.setup(train_model, opt)
    size, chans = data.x.shape[1], data.x.shape[3]
    aug_cfg = views.simclr_config(size, cfg.aug_strength, chans)
    if cfg.crop_scale is not None:
        aug_cfg = replace(aug_cfg, scale=tuple(cfg.crop_scale))
    augment = views.Augment(aug_cfg).to(device)
    augs = [augment, augment]
    if getattr(model, "num_local_crops", 0):  # multi-crop: 2 global views + small local ones (SwAV, DINO)
        local_size = getattr(model, "local_crop_size", None) or max(8, round(size * 3 / 7))
        local_aug = views.Augment(replace(aug_cfg, size=local_size, scale=(0.05, 0.4))).to(device)
        augs += [local_aug] * model.num_local_crops
    x_cpu = torch.from_numpy(np.ascontiguousarray(x_all))
    steps_per_epoch = max(1, n // (batch * fabric.world_size))
    base_lr = scaled_lr(cfg, batch * fabric.world_size)
    total_steps = math.ceil(cfg.epochs * steps_per_epoch) if cfg.epochs else None
    budget = cfg.budget if not cfg.epochs else None
    if total_steps is None and budget is None:
        raise SslabError("set either epochs or budget")

    g_data = torch.Generator().manual_seed(cfg.seed)
    g_aug = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + fabric.global_rank)
    step, elapsed_before, history = 0, 0.0, []
    ckpt = out / "checkpoint"
    if resume:
        weights, state = load_checkpoint(ckpt, log=_say if fabric.global_rank == 0 else None)
        model.load_state_dict(weights)
        opt.load_state_dict(state["optimizer"])
        step, elapsed_before = state["step"], state["elapsed"]
        g_data.set_state(state["g_data"])
        aug_states = state.get("g_aug_ranks")
        if aug_states is not None and len(aug_states) != fabric.world_size:
            raise SslabError(f"checkpoint was written by {len(aug_states)} processes; resume it with as many "
                             f"(got {fabric.world_size})")
        g_aug.set_state(aug_states[fabric.global_rank] if aug_states is not None else state["g_aug"])
        torch.set_rng_state(state["torch_rng"])
        history = json.loads(state["history"])
    info = run_info(cfg, data, mean, std, data_spec)
    if fabric.global_rank == 0:
        (out / "run.json").write_text(json.dumps(info, indent=2))
    probe = to_float(x_cpu[torch.randperm(n, generator=torch.Generator().manual_seed(0))[:512]], device)
    # two fixed augmented views of (part of) the probe batch for the alignment metric, drawn from their own
    # generator so that the training RNG streams (g_aug, the global one) are untouched
    g_probe = torch.Generator(device=device).manual_seed(12345)
    with torch.no_grad():
        probe_views = [augment(probe[:256], g_probe) for _ in range(2)]
    collapsed_streak, warned = 0, ""  # warned: the non-ok status last reported (one line per streak)

    def progress_at(s: int, elapsed: float) -> float:
        if total_steps:
            return s / total_steps
        return min(1.0, elapsed / budget)

    saved_step = -1

    def save(elapsed: float) -> None:
        nonlocal saved_step
        saved_step = step
        # every process's augmentation stream, so a multi-process resume continues each one exactly
        aug_states = dist.all_gather_list(g_aug.get_state())
        if fabric.global_rank != 0:
            return
        state = {"optimizer": opt.state_dict(), "step": step, "elapsed": elapsed, "g_data": g_data.get_state(),
                 "g_aug": g_aug.get_state(), "torch_rng": torch.get_rng_state(), "history": json.dumps(history)}
        if fabric.world_size > 1:
            state["g_aug_ranks"] = list(aug_states)
        save_checkpoint(ckpt, model.state_dict(), state)
        save_weights(out / "backbone.safetensors", model.backbone.state_dict(), {"run": info})

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

    progress_bar = _Progress(show_progress and fabric.global_rank == 0, total_steps, budget)
    model.train()
    skipped = batches_skipped = 0  # non-finite batches: in a row, and in all
    try:
        for idx in batches():
            # one clock for all processes (rank 0's), so every process stops at the same step
            elapsed = clock()
            p = progress_at(step, elapsed)
            if p >= 1.0:
                break
            lr = lr_at(p, base_lr, cfg.warmup)
            for group in opt.param_groups:
                group["lr"] = lr
            x = to_float(x_cpu[idx], device, cfg.channels_last)
            loss = train_model(*views.multi_views(augs, x, g_aug))
            opt.zero_grad(set_to_none=True)
            fabric.backward(loss)
            bad = _nonfinite(loss, model)  # the same verdict in every process
            if bad:
                skipped += 1
                what = f"loss became {loss.item()}" if not torch.isfinite(loss) else "a gradient became non-finite"
                if cfg.on_nonfinite == "stop" or skipped >= cfg.max_skipped:
                    why = "" if cfg.on_nonfinite == "stop" else f" ({skipped} bad batches in a row)"
                    raise SslabError(f"{what} at step {step}{why}; stopped, last good checkpoint kept in {ckpt}")
                progress_bar.message(f"{what} at step {step}: batch skipped ({skipped} in a row)")
                opt.zero_grad(set_to_none=True)
                batches_skipped += 1
                step += 1  # the step is spent without an update, so data order and schedule stay on course
                continue
            skipped = 0
            opt.step()
            now = clock()  # EMA schedules and checkpoint times must agree across processes
            model.after_step(progress_at(step + 1, now))
            step += 1
            if step % cfg.log_every == 0 or step == 1:
                model.eval()
                with torch.no_grad():
                    z = model.embed(probe)
                    h = embedding_health(z)
                    hp = embedding_health(model.projector(z)) if getattr(model, "check_projection", False) else None
                    align = alignment(model.embed(probe_views[0]), model.embed(probe_views[1]))
                    uniform = uniformity(z)
                model.train()
                # backbone features and the projections the loss sees; collapse shows in the projections first
                statuses = [(collapse_status(h), h, "embedding")]
                if hp is not None:
                    statuses.append((collapse_status(hp), hp, "projection"))
                status, hs, where = max(statuses, key=lambda t: _SEVERITY[t[0]])
                if step < COLLAPSE_GRACE_STEPS:  # fresh heads under eval-mode BN (running stats not settled yet)
                    status = "ok"              # look squeezed at first: no verdict yet
                row = {"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": loss.item(), "lr": lr,
                       "emb_std": h["std_mean"], "eff_rank": h["effective_rank"], "align": align,
                       "uniform": uniform, "time": round(time.time() - t0, 2)}
                if hp is not None:
                    row["proj_std"], row["proj_rank"] = hp["std_mean"], hp["effective_rank"]
                if status != "ok":
                    row["collapse"] = status
                history.append(row)
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
                if tb is not None:
                    for k in ("loss", "lr", "emb_std", "eff_rank", "align", "uniform", "proj_std", "proj_rank"):
                        if k in row:
                            tb.add_scalar(f"pretrain/{k}", row[k], step)
                if status == "ok":
                    warned = ""
                elif status != warned and fabric.global_rank == 0:
                    warned = status
                    progress_bar.message(f"representation collapse {status} at step {step}: {where} effective rank "
                                         f"{hs['effective_rank']:.2f} of {hs['dim']}, std {hs['std_mean']:.4g} "
                                         f"(ideal {hs['std_ideal']:.4g})")
                collapsed_streak = collapsed_streak + 1 if status == "collapsed" else 0
                progress_bar.health = status
                if collapsed_streak >= COLLAPSE_PATIENCE and cfg.collapse_stop:
                    kept = f"last checkpoint kept in {ckpt}" if has_checkpoint(ckpt) else "no checkpoint was written"
                    raise SslabError(f"representation collapsed at step {step} ({where} effective rank "
                                     f"{hs['effective_rank']:.2f}, std {hs['std_mean']:.4g}); stopped, {kept}")
            progress_bar.update(step, progress_at(step, time.time() - t0), loss.item())
            collapsing = collapsed_streak and cfg.collapse_stop  # never overwrite the last good checkpoint
            if not collapsing and (step == 1 or now - last_save > cfg.checkpoint_every):  # first one early
                save(now)
                last_save = now
    finally:
        progress_bar.close()
        metrics_file.close()
        if tb is not None:
            tb.close()
    seconds = time.time() - t0
    if not (collapsed_streak and cfg.collapse_stop) and saved_step != step:  # a collapsing run keeps its last good one
        save(seconds)
    return {"method": cfg.method, "backbone": cfg.backbone, "steps": step, "epochs": step / steps_per_epoch,
            "seconds": seconds, "images_per_s": step * batch * fabric.world_size / max(seconds, 1e-9),
            "images": n, "batch_size": batch, "history": history, "batches_skipped": batches_skipped,
            "rank": fabric.global_rank}


def _nonfinite(loss: torch.Tensor, model: torch.nn.Module) -> bool:
    """True when the loss or any gradient is NaN/inf in any process (DDP has already averaged the gradients)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    ok = torch.isfinite(loss.detach()).all()
    if grads:
        ok = ok & torch.isfinite(torch.stack([g.detach().float().abs().sum() for g in grads]).sum())
    return bool(dist.all_reduce_sum((~ok).float().reshape(1)).item() > 0)


def _say(text: str) -> None:
    print(f"sslab: {text}", file=sys.stderr, flush=True)


def _tensorboard(out: Path):
    """A TensorBoard writer in out/tb when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tb"))


class _Progress:
    """A rich progress bar with ETA and the live loss (silent when disabled)."""

    def __init__(self, enabled: bool, total_steps: int | None, budget: float | None):
        self.bar, self.health = None, "ok"
        if not enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("pretrain"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                            TextColumn("step {task.fields[step]} loss {task.fields[loss]:.4f}"),
                            TextColumn("{task.fields[health]}"), transient=False)
        self.task = self.bar.add_task("pretrain", total=1000, step=0, loss=float("nan"), health="")
        self.bar.start()

    def update(self, step: int, progress: float, loss: float) -> None:
        if self.bar is not None:
            health = {"warning": "[yellow]collapse warning", "collapsed": "[red]collapsed"}.get(self.health, "")
            self.bar.update(self.task, completed=int(progress * 1000), step=step, loss=loss, health=health)

    def message(self, text: str) -> None:
        """One warning line: printed above the bar when it is shown, else logged (logger 'sslab')."""
        if self.bar is not None:
            self.bar.console.print(f"[yellow]warning:[/yellow] {text}")
        else:
            log.warning(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
