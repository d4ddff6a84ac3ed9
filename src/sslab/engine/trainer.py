"""The pretraining loop as a `Trainer` whose parts have names: set-up (`__init__`, `_resume`), the loop (`run`), one
batch's gradients (`forward_backward`), the NaN/inf guard (`guard`), the probe, log and collapse guard
(`probe_and_log`, `watch_collapse`, `early_stop`), checkpoints (`maybe_save`, `save`) and the stop on SIGINT/SIGTERM
(`interrupted`). `pretrain()` is what everything else calls. nanoGPT's train.py is the model: the loop reads on one
screen; a host synchronisation only where the CPU makes it free, at logging steps, or where a guard needs it."""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from sslab import dist
from sslab.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint, save_weights
from sslab.config import PretrainConfig, scaled_lr
from sslab.engine.runs import run_info
from sslab.engine.state import (full_state, load_full_state, make_fabric, nonfinite, submodule_state, tensorboard,
                                to_device)
from sslab.errors import SslabError
from sslab.methods import build_for_data
from sslab.progress import Progress

COLLAPSE_PATIENCE = 3  # consecutive "collapsed" probes before a run with collapse_stop is stopped
COLLAPSE_GRACE_STEPS = 10  # no collapse verdict on probes before this step
PROBE_ITEMS = 512  # items in the fixed batch the method's probe sees
HEALTH = {"warning": " [collapse warning]", "collapsed": " [collapsed]"}  # the progress line's collapse mark
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM after finishing its step and writing its checkpoint (resume=True continues
    it); `exit_code`: the status shells give a process that signal ends (130, 143)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def lr_at(progress: float, base: float, warmup: float, floor: float = 0.0) -> float:
    """Linear warm-up to `base`, then cosine decay to `floor * base`."""
    if progress < warmup:
        return base * progress / warmup
    t = (progress - warmup) / max(1e-8, 1 - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def pretrain(data, cfg: PretrainConfig, out: str | Path, resume: bool = False, data_spec: str = "",
             show_progress: bool = True, val_data=None) -> dict:
    """Pretrain `cfg.method` on the items of `data` (any data kind; labels unused) and write the run to `out`:
    run.json, backbone.safetensors, checkpoint/ (model + optimiser + RNG state) and metrics.jsonl. The method's
    probe sees a fixed batch of `val_data` (held-out items) when given, else of `data`."""
    return Trainer(data, cfg, out, resume, data_spec, show_progress, val_data).run()


class Trainer:
    """One pretraining run of `cfg.method` on `data`, written to `out`. `run()` trains until the epochs or the
    wall-clock budget are spent, early stopping ends it, or a guard stops it, and returns the run's results."""

    def __init__(self, data, cfg: PretrainConfig, out: str | Path, resume: bool = False, data_spec: str = "",
                 show_progress: bool = True, val_data=None):
        if cfg.early_stop and not getattr(val_data, "from_train", False):
            raise SslabError(f"early_stop: {cfg.method} holds out no part of its training data to choose weights "
                             "on (only the test split, which must not choose anything)")
        self.data, self.cfg, self.out, self.show = data, cfg, Path(out), show_progress
        self.ckpt = self.out / "checkpoint"
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.fabric = fabric = make_fabric(cfg)
        self.device, self.rank0 = fabric.device, fabric.global_rank == 0
        self.n = n = len(data) if cfg.max_items is None else min(len(data), cfg.max_items)
        if n < 2:
            raise SslabError(f"need at least 2 {data.unit} to pretrain, got {n}")
        self.batch = min(cfg.batch_size, n)
        self.micro = math.ceil(self.batch / cfg.accumulate)
        self.info = run_info(cfg, data.meta(limit=n), data_spec)
        self._build_model()
        # streamed data (WebDataset shards, sslab.data.shards) hands over whole raw batches instead of being indexed
        self.stream = getattr(data, "stream_batches", None)
        self.steps_per_epoch = (data.steps_per_epoch(n, self.batch, fabric.world_size, cfg) if self.stream
                                else max(1, n // (self.batch * fabric.world_size)))
        self.base_lr = scaled_lr(cfg, self.batch * fabric.world_size)
        self.total_steps = math.ceil(cfg.epochs * self.steps_per_epoch) if cfg.epochs else None
        self.budget = cfg.budget if not cfg.epochs else None
        if self.total_steps is None and self.budget is None:
            raise SslabError("set either epochs or budget")
        # a host synchronisation per step is free on the CPU; on an accelerator the NaN/inf guard reads its verdict
        # only at logging steps and before checkpoints (and every step with on_nonfinite=skip, which needs it)
        self.check_every_step = self.device.type == "cpu" or cfg.on_nonfinite == "skip"
        self.g_data = torch.Generator().manual_seed(cfg.seed)
        self.g_aug = torch.Generator(device=self.device).manual_seed(cfg.seed * 1000 + fabric.global_rank)
        self.step, self.elapsed_before, self.history = 0, 0.0, []
        self.key, mode = self.model.select  # early_stop: the probe value that picks the weights, and the best so far
        self.sign = 1.0 if mode == "min" else -1.0
        self.best = {"value": math.inf, "step": 0, "since": 0}
        if resume:
            self._resume()
        if self.rank0:
            (self.out / "run.json").write_text(json.dumps(self.info, indent=2))
        self.probe_batch = self._probe_batch(val_data)
        self.collapsed_streak, self.warned, self.status = 0, "", "ok"  # warned: the non-ok status last reported
        self.skipped = self.batches_skipped = 0  # non-finite batches: in a row, and in all
        self.units, self.last_loss, self.saved_step = 0, float("nan"), -1  # units: this process's, of the data kind
        self.received = self.stop_signal = 0  # a stop signal this process received; the one every process agrees on

    def _build_model(self) -> None:
        cfg, fabric = self.cfg, self.fabric
        model = build_for_data(cfg.method, cfg.backbone, cfg.method_args, self.info, cfg)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if cfg.sync_batchnorm and fabric.world_size > 1:  # before the optimiser sees the parameters
            if self.device.type == "cpu":
                raise SslabError("pretrain.sync_batchnorm needs GPUs: PyTorch's SyncBatchNorm does not run on the CPU")
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        opt = model.configure_optimizer(cfg)
        self.model = model
        self.train_model, self.opt = fabric.setup(torch.compile(model) if cfg.compile else model, opt)

    def _resume(self) -> None:
        """Continue from out/checkpoint: weights, optimiser, step, clock, every random stream, the logged rows."""
        weights, state = load_checkpoint(self.ckpt, log=_say if self.rank0 else None)
        load_full_state(self.fabric, self.train_model, self.model, self.opt, weights, state["optimizer"])
        self.step, self.elapsed_before = state["step"], state["elapsed"]
        self.g_data.set_state(state["g_data"])
        aug_states, world = state.get("g_aug_ranks"), self.fabric.world_size
        if aug_states is not None and len(aug_states) != world:
            raise SslabError(f"checkpoint was written by {len(aug_states)} processes; resume it with as many "
                             f"(got {world})")
        self.g_aug.set_state(aug_states[self.fabric.global_rank] if aug_states is not None else state["g_aug"])
        torch.set_rng_state(state["torch_rng"])
        self.history = json.loads(state["history"])
        if state.get("early_stop"):
            self.best = json.loads(state["early_stop"])

    def _probe_batch(self, val_data):
        src = val_data if val_data is not None and len(val_data) > 0 else self.data
        n = getattr(src, "probe_items", None) or (self.n if src is self.data else len(src))  # a stream: its head
        return to_device(src.batch(torch.randperm(n, generator=torch.Generator().manual_seed(0))[:PROBE_ITEMS]),
                         self.device)

    def progress_at(self, step: int, elapsed: float) -> float:
        return step / self.total_steps if self.total_steps else min(1.0, elapsed / self.budget)

    def clock(self) -> float:
        """Seconds since the run started, as process 0 sees them (the same number in every process); the same
        exchange sets `stop_signal` in every process when any of them has received SIGINT/SIGTERM."""
        seconds, got = time.time() - self.t0, self.received
        if self.fabric.world_size == 1:
            self.stop_signal = got
            return seconds
        both = torch.tensor([seconds if self.rank0 else 0.0, got], dtype=torch.float64, device=self.device)
        seconds, anyone = dist.all_reduce_sum(both).tolist()
        self.stop_signal = (got or signal.SIGTERM) if anyone else 0
        return seconds

    def batches(self):
        """This process's share of each epoch's permutation, from the current step on (a resumed run continues
        mid-epoch exactly where its checkpoint was). Streamed data: its raw batches, from the same position."""
        if self.stream is not None:
            yield from self.stream(self.step, self.steps_per_epoch, self.batch, self.fabric.global_rank,
                                   self.fabric.world_size, self.cfg)
            return
        epoch = self.step // self.steps_per_epoch
        while True:
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.cfg.seed * 7919 + epoch))
            perm = perm[self.fabric.global_rank :: self.fabric.world_size]
            start = self.step % self.steps_per_epoch if epoch == self.step // self.steps_per_epoch else 0
            for i in range(start, self.steps_per_epoch):
                yield perm[i * self.batch : (i + 1) * self.batch]
            epoch += 1

    def run(self) -> dict:
        cfg = self.cfg
        self._open_logs()
        self.model.train()
        handlers = self._catch_signals()
        try:
            for idx in self.batches():
                p = self.progress_at(self.step, self.clock())  # rank 0's clock: every process stops at one step
                if p >= 1.0:
                    break
                lr = lr_at(p, self.base_lr, cfg.warmup, cfg.min_lr)
                for group in self.opt.param_groups:
                    group["lr"] = lr
                loss, logs, norm = self.forward_backward(idx)
                log_now = self.step == 0 or (self.step + 1) % cfg.log_every == 0
                if (self.check_every_step or log_now) and self.guard(loss, norm):
                    self.opt.zero_grad(set_to_none=True)
                    self.batches_skipped += 1
                    self.step += 1  # the step is spent without an update, so data order and schedule stay on course
                    continue
                self.opt.step()
                now = self.clock()  # EMA schedules and checkpoint times must agree across processes
                self.model.after_step(self.progress_at(self.step + 1, now))
                self.step += 1
                if log_now:
                    if self.probe_and_log(loss, logs, lr, now):
                        break
                elif self.check_every_step:
                    self.last_loss = _plain(loss)
                self.progress_bar.update(self.progress_at(self.step, time.time() - self.t0),
                                         f"step {self.step} loss {self.last_loss:.4f}{HEALTH.get(self.status, '')}")
                self.maybe_save(now, loss, norm, log_now)
                if self.stop_signal:
                    raise self.interrupted(now)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            self._close_logs()
        return self.finish()

    def _catch_signals(self) -> dict:
        """SIGINT/SIGTERM stop the run after its current step and a checkpoint (`stop_signal`); a second one while
        that is saved ends the process at once. Only the main thread can: elsewhere nothing is installed. Returns
        the handlers to put back."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(sig, frame):
            self.received = sig
            for s in STOP_SIGNALS:
                signal.signal(s, signal.SIG_DFL)

        old = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        for s in STOP_SIGNALS:
            signal.signal(s, on_signal)
        return {s: signal.SIG_DFL if h is None else h for s, h in old.items()}

    def interrupted(self, now: float) -> Interrupted:
        """The stop on a signal, said in one line, after `maybe_save` has written the checkpoint."""
        sig = signal.Signals(self.stop_signal)
        spent = f"{now:.0f}s of the {self.budget:.0f}s budget spent" if self.budget else f"{now:.0f}s of training"
        kept = (f"checkpoint saved in {self.ckpt}" if self.saved_step == self.step else
                f"last checkpoint kept in {self.ckpt}" if has_checkpoint(self.ckpt) else "no checkpoint was written")
        return Interrupted(f"{sig.name}: stopped after step {self.step} ({spent}); {kept}", 128 + sig.value)

    def forward_backward(self, idx) -> tuple[torch.Tensor, dict, torch.Tensor | None]:
        """One batch's gradients in `accumulate` micro-batches: the mean loss (on the device, no host sync), the
        last micro-batch's values to log, and the total gradient norm when clipping. `idx`: the batch's indices,
        or with streamed data the raw batch itself."""
        self.opt.zero_grad(set_to_none=True)
        size = len(next(iter(idx.values()))) if isinstance(idx, dict) else len(idx)
        parts = [_rows(idx, i, i + self.micro) for i in range(0, size, self.micro)]
        loss, logs = 0.0, {}
        for k, part in enumerate(parts):
            raw = to_device(part if self.stream else self.data.batch(part), self.device)
            self.units += self.data.units(raw)
            with self.fabric.no_backward_sync(self.train_model, enabled=k < len(parts) - 1):
                part_loss, logs = _split(_call(self.train_model, self.model.views(raw, self.g_aug)))
                self.fabric.backward(part_loss / len(parts))
            loss = loss + part_loss.detach() / len(parts)
        # clipping first: its total gradient norm is what the guard checks (one pass over the gradients, not
        # two: 2.5 ms of a 77 ms step of the character-level GPT); no error (and no host sync) on a bad norm
        clip = self.cfg.grad_clip
        norm = (self.fabric.clip_gradients(self.train_model, self.opt, max_norm=clip, error_if_nonfinite=False)
                if clip else None)
        return loss, logs, norm

    def guard(self, loss: torch.Tensor, grad_norm: torch.Tensor | None = None) -> bool:
        """The NaN/inf guard (the same verdict in every process): stop, or (on_nonfinite=skip) return True."""
        if not nonfinite(loss, self.model, grad_norm):
            self.skipped = 0
            return False
        self.skipped += 1
        what = f"loss became {_plain(loss)}" if not torch.isfinite(loss).all() else "a gradient became non-finite"
        if self.cfg.on_nonfinite == "stop" or self.skipped >= self.cfg.max_skipped:
            why = "" if self.cfg.on_nonfinite == "stop" else f" ({self.skipped} bad batches in a row)"
            raise SslabError(f"{what} at step {self.step}{why}; stopped, last good checkpoint kept in {self.ckpt}")
        self.progress_bar.message(f"{what} at step {self.step}: batch skipped ({self.skipped} in a row)")
        return True

    def probe_and_log(self, loss: torch.Tensor, logs: dict, lr: float, now: float) -> bool:
        """At a logging step: the method's probe on the fixed batch, a metrics row, the collapse guard, and early
        stopping's choice of weights. True when early stopping ends the run."""
        self.model.eval()
        probed = self.model.probe(self.probe_batch)
        self.model.train()
        status, detail = probed.pop("collapse", "ok"), probed.pop("collapse_detail", "")
        if self.step < COLLAPSE_GRACE_STEPS:  # fresh heads under eval-mode BN (running stats not settled yet)
            status = "ok"                     # look squeezed at first: no verdict yet
        self.last_loss = _plain(loss)
        row = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4), "loss": self.last_loss,
               "lr": lr, **{k: _plain(v) for k, v in logs.items()}, **probed, "time": round(time.time() - self.t0, 2)}
        if status != "ok":
            row["collapse"] = status
        self.history.append(row)
        self.metrics_file.write(json.dumps(row) + "\n")
        self.metrics_file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch", "time") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"pretrain/{k}", v, self.step)
        self.watch_collapse(status, detail)
        return bool(self.cfg.early_stop) and self.early_stop(probed, now)

    def watch_collapse(self, status: str, detail: str) -> None:
        """One line per streak of non-ok probes; with collapse_stop, stop after COLLAPSE_PATIENCE collapsed ones."""
        if status == "ok":
            self.warned = ""
        elif status != self.warned and self.rank0:
            self.warned = status
            self.progress_bar.message(f"representation collapse {status} at step {self.step}: {detail}")
        self.collapsed_streak = self.collapsed_streak + 1 if status == "collapsed" else 0
        self.status = status
        if self.collapsed_streak >= COLLAPSE_PATIENCE and self.cfg.collapse_stop:
            kept = f"last checkpoint kept in {self.ckpt}" if has_checkpoint(self.ckpt) else "no checkpoint was written"
            raise SslabError(f"representation collapsed at step {self.step} ({detail}); stopped, {kept}")

    def early_stop(self, probed: dict, now: float) -> bool:
        """The run's weights are those of its best probe: saved there, and only there. True after `early_stop`
        probes without a better one."""
        if self.key not in probed:
            raise SslabError(f"early_stop: the {self.cfg.method} probe reports no {self.key}")
        value = self.sign * dist.broadcast_float(float(probed[self.key]))  # one verdict for every process
        best = self.best
        if value < best["value"]:
            best.update(value=value, step=self.step, since=0)
            self.save(now)
        else:
            best["since"] += 1
        if best["since"] < self.cfg.early_stop:
            return False
        self.progress_bar.message(f"early stop at step {self.step}: {self.key} {self.sign * value:.4f}, best "
                                  f"{self.sign * best['value']:.4f} at step {best['step']}")
        return True

    def maybe_save(self, now: float, loss: torch.Tensor, norm: torch.Tensor | None, log_now: bool) -> None:
        """A checkpoint after the first step, every `checkpoint_every` seconds and on a stop signal; none over the
        last good one while the representation collapses, and none under early stopping (it saves at its best
        probe)."""
        cfg = self.cfg
        if (self.collapsed_streak and cfg.collapse_stop) or cfg.early_stop:
            return
        if self.step == 1 or now - self.last_save > cfg.checkpoint_every or self.stop_signal:
            if not self.check_every_step and not log_now:
                self.guard(loss, norm)  # never checkpoint weights the guard has not seen
            self.save(now)

    def save(self, elapsed: float) -> None:
        """An atomic checkpoint (weights, optimiser, step, clock, every process's random streams, the logged rows)
        and the backbone's weights. Every process takes part (gathers; FSDP's full state); process 0 writes."""
        self.saved_step, self.last_save = self.step, elapsed
        aug_states = dist.all_gather_list(self.g_aug.get_state())
        weights, opt_state = full_state(self.fabric, self.train_model, self.model, self.opt)
        if not self.rank0:
            return
        state = {"optimizer": opt_state, "step": self.step, "elapsed": elapsed, "g_data": self.g_data.get_state(),
                 "g_aug": self.g_aug.get_state(), "torch_rng": torch.get_rng_state(),
                 "history": json.dumps(self.history), "early_stop": json.dumps(self.best)}
        if self.fabric.world_size > 1:
            state["g_aug_ranks"] = list(aug_states)
        save_checkpoint(self.ckpt, weights, state)
        save_weights(self.out / "backbone.safetensors", submodule_state(self.model, self.model.backbone, weights),
                     {"run": self.info})
        self.model.export(self.out)

    def finish(self) -> dict:
        """The last checkpoint (a collapsing run keeps its last good one, an early-stopping one its best) and the
        run's results."""
        cfg, seconds = self.cfg, time.time() - self.t0
        if (not (self.collapsed_streak and cfg.collapse_stop) and self.saved_step != self.step
                and not (cfg.early_stop and self.saved_step > 0)):
            self.save(seconds)
        units = self.units
        if self.fabric.world_size > 1:
            units = int(dist.all_reduce_sum(torch.tensor([float(units)])).item())
        rate = units / max(seconds - self.elapsed_before, 1e-9)  # this session's units over this session's time
        unit, spe = self.data.unit, self.steps_per_epoch
        res = {"method": cfg.method, "backbone": cfg.backbone, "steps": self.step, "epochs": self.step / spe,
               "seconds": seconds, "unit": unit, "units_per_s": rate, f"{unit}_per_s": rate, "items": self.n,
               "batch_size": self.batch, "history": self.history, "batches_skipped": self.batches_skipped,
               "rank": self.fabric.global_rank}
        if cfg.early_stop:
            best = self.best
            res["early_stop"] = {"kept_step": best["step"], "kept_epoch": best["step"] / spe, "on": self.key,
                                 "value": self.sign * best["value"], "stopped": best["since"] >= cfg.early_stop}
        return res

    def _open_logs(self) -> None:
        """metrics.jsonl (process 0; on resume the checkpoint's rows first), TensorBoard, the clock, the bar."""
        self.metrics_file = open(self.out / "metrics.jsonl" if self.rank0 else os.devnull, "w")
        for row in self.history:
            self.metrics_file.write(json.dumps(row) + "\n")
        self.tb = tensorboard(self.out) if self.rank0 else None
        self.t0 = time.time() - self.elapsed_before
        self.last_save = self.elapsed_before  # in seconds since t0, like clock()
        self.progress_bar = Progress("pretrain", self.show and self.rank0)

    def _close_logs(self) -> None:
        self.progress_bar.close()
        self.metrics_file.close()
        if self.tb is not None:
            self.tb.close()


def _rows(batch, lo: int, hi: int):
    """Rows lo:hi of a batch of indices or of a raw batch (a tensor or a dict of them)."""
    return {k: v[lo:hi] for k, v in batch.items()} if isinstance(batch, dict) else batch[lo:hi]


def _call(model, inputs):
    return model(**inputs) if isinstance(inputs, dict) else model(*inputs)


def _split(out) -> tuple[torch.Tensor, dict]:
    """A method's output: the loss, and the other named values to log."""
    if isinstance(out, dict):
        return out["loss"], {k: v for k, v in out.items() if k != "loss"}
    return out, {}


def _plain(v) -> float:
    return float(v.detach().float().item()) if isinstance(v, torch.Tensor) else float(v)


def _say(message: str) -> None:
    print(f"sslab: {message}", file=sys.stderr, flush=True)
