"""Benchmark: fine-tuning resnet-s2 on Fashion-MNIST (sslab vs plain PyTorch, vs pretraining, to convergence).

Three parts: sslab's fine-tune loop against a plain PyTorch loop, fine-tune steps against pretraining steps, and
images to convergence under the plateau rule.

All numbers come from ONE process on the same machine (torch's default thread count, fp32 on the CPU), so the
ratios are comparable even on a loaded machine. The network is the study's default encoder,
`build_for_data("vicreg", "resnet-s2", {}, train.meta(limit=10000), PretrainConfig()).encoder()` (28x28x1 uint8
batches in, features out), with an nn.Linear(dim, 10) head; every model is channels_last. The labelled pool is the
training split less `validation_split(train.y, EvalConfig().val_items)` (the harness's validation items).

Part 1 -- fine-tune images/s (higher is better), batch EvalConfig().batch_size (128), AdamW lr 1e-3 wd 5e-4:
  plain          random batches (torch.randint over the pool) -> train.batch(idx) uint8 -> model -> cross-entropy
                 -> zero_grad -> backward -> AdamW.step; after --warmup untimed steps, each step timed: half of
                 them before the sslab call and half after it (a drifting background load hits both alike);
                 images/s = batch / the median step
  sslab call     sslab.evaluate.protocols.fit_classifier(finetune_until="budget") on a fresh copy of the same
                 network and head, made to train exactly the same number of steps (labelled items = the pool,
                 finetune_images = steps x batch, finetune_min_steps = steps: part of one epoch) with its
                 evaluation reduced as far as its settings go (curve_points=2, curve_test_images=100: one curve
                 point, at the end); timed over the whole call, including that curve point and its final
                 accuracies (train on up to 10,000 labelled items, test on all 10,000 test images)
  sslab step     the call's training step: AdamW.step is wrapped (monkeypatched) for the call to stamp the time of
                 each step; images/s = batch / the median time between consecutive steps (one whole training
                 step: batch, forward, backward, update, schedule)
  sslab train    the same call less its evaluation: evaluate_accuracy is wrapped for the call by a timer around
                 the real function, and the seconds it spent are subtracted from the call's wall time (what is
                 left: model setup, the first steps of a fresh model, the OneCycle schedule and the steps)
  The ratios sslab/plain of each; the issue's target (>= 1.0) is for the step.

Part 2 -- forward-backward passes/s (one image through the network forward and backward = 1 pass):
  pretrain b256  a VICReg pretraining step as sslab.pretrain's loop runs it: train.batch(idx) uint8 (256) ->
                 method.views() (to_float + two augmented views) -> method(v1, v2) loss -> backward ->
                 method.configure_optimizer(PretrainConfig()) AdamW step (the engine's NaN guard and lr schedule are
                 left out); each image counts 2 passes (its two views)
  finetune b128  the plain fine-tune step of part 1 at batch 128 (1 pass an image)
  finetune b256  the same step at batch 256
  Steps are interleaved round by round after warm-up, passes/s = passes per step / median step time; ratio =
  fine-tune passes/s over pretraining passes/s.

Part 3 -- images to convergence from scratch (random init, as the harness's "scratch" baseline: torch.manual_seed
(seed), a fresh encoder, `finetune(...)` with layer_decay 1, no augmentation) under the plateau rule, on
`label_subset(pool labels, fraction, seed)` at 1% and 10% (and 100% with --full, about 10+ minutes), for --seeds
seeds from --seed, under EvalConfig() (--augment: the "scratch+aug" baseline, the image kind's supervised
augmentation on every batch):
  images    images trained: the result's "epochs" x labelled items (every image up to the stop, not only up to
            the best checkpoint); epochs: the result's "epochs"
  wall s    seconds of the finetune() call, its checks' evaluations included (the validation items, and at seed 0
            the curve's train and test points)
  checks    validation checks (len(curve))
  test/val  test accuracy of the kept (best-on-validation) weights / their validation accuracy
  conv      whether the plateau rule stopped the run (False: it reached the image/epoch cap)
  With EvalConfig overrides on the command line (key=value, e.g. `finetune_cooldown=0.25 check_images=1280`) a
  "variant" runs after the default on the same subsets. Then the means over the seeds: mean images / the
  default's, mean test accuracy minus the default's (percentage points), total wall seconds / the default's.

    export SSLAB_DATA_ROOT=/work/shared/data
    python benchmarks/bench_finetune.py [--quick] [--full] [--steps 200 20] [--warmup 5] [--seed 0] [--seeds 3]
        [--augment] [--parts 1,2,3] [key=value ...]

--quick: 24 fine-tune steps, 4 interleaved rounds, part 3 at 1% only (measured: 4 minutes on 2 cores shared with
another training run, 3.5 of them part 3's 1% run; far less on an idle machine). Part 1's and 2's numbers are
noisy at --quick's step counts.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sslab.config import EvalConfig, PretrainConfig  # noqa: E402
from sslab.data import label_subset, load_data, validation_split  # noqa: E402
from sslab.evaluate import image as image_eval  # noqa: E402
from sslab.evaluate import protocols  # noqa: E402
from sslab.methods import build_for_data  # noqa: E402

CL = torch.channels_last
N_CLASSES = 10
CURVE_TEST_IMAGES = 100  # part 1's sslab call: the curve's points on this many train / test items


def _clock(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def classifier(encoder: nn.Module, seed: int) -> nn.Module:
    """A copy of `encoder` + a linear head, initialised as `protocols.finetune` does, channels_last."""
    torch.manual_seed(seed)
    return nn.Sequential(copy.deepcopy(encoder), nn.Linear(encoder.dim, N_CLASSES)).to(memory_format=CL).train()


def plain_step(model: nn.Module, train, pool: torch.Tensor, seed: int):
    """The plain PyTorch fine-tune step: step(batch) trains one random batch of `pool`."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
    y_all, g = torch.as_tensor(train.y), torch.Generator().manual_seed(seed)

    def step(bs: int) -> None:
        idx = pool[torch.randint(len(pool), (bs,), generator=g)]
        loss = F.cross_entropy(model(train.batch(idx)), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def pretrain_step(train, meta: dict, batch: int, seed: int):
    """One VICReg step as the engine's loop runs it: raw uint8 batch -> views -> loss -> backward -> AdamW."""
    cfg = PretrainConfig()
    torch.manual_seed(seed)
    method = build_for_data("vicreg", "resnet-s2", {}, meta, cfg).to(memory_format=CL).train()
    opt = method.configure_optimizer(cfg)
    g_data, g_aug = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)

    def step() -> None:
        idx = torch.randint(len(train), (batch,), generator=g_data)
        opt.zero_grad(set_to_none=True)
        loss = method(*method.views(train.batch(idx), g_aug))
        loss.backward()
        opt.step()
    return step


def part1(encoder, train, test, pool: np.ndarray, steps: int, warmup: int, seed: int) -> None:
    bs = EvalConfig().batch_size
    pool_t = torch.as_tensor(pool, dtype=torch.long)
    step = plain_step(classifier(encoder, seed), train, pool_t, seed)
    for _ in range(warmup):
        step(bs)
    before, after = steps // 2, steps - steps // 2
    plain_times = [_clock(lambda: step(bs)) for _ in range(before)]

    cfg = EvalConfig(finetune_until="budget", curve_points=2, curve_test_images=CURVE_TEST_IMAGES,
                     finetune_images=steps * bs, finetune_min_steps=steps)
    spent = {"s": 0.0, "items": 0, "calls": 0}
    real = protocols.evaluate_accuracy

    def timed_eval(model, data, idx, device, batch: int = 1024):
        t0 = time.perf_counter()
        try:
            return real(model, data, idx, device, batch)
        finally:
            spent["s"] += time.perf_counter() - t0
            spent["items"] += len(idx)
            spent["calls"] += 1

    stamps, real_step = [], torch.optim.AdamW.step

    def stamped_step(self, *args, **kwargs):
        stamps.append(time.perf_counter())
        return real_step(self, *args, **kwargs)

    model = classifier(encoder, seed)
    protocols.evaluate_accuracy, torch.optim.AdamW.step = timed_eval, stamped_step
    try:
        t0 = time.perf_counter()
        res = protocols.fit_classifier(model, train, pool, test, cfg, seed)
        t_call = time.perf_counter() - t0
    finally:
        protocols.evaluate_accuracy, torch.optim.AdamW.step = real, real_step
    trained = round(res["epochs"] * len(pool) / bs)  # the steps fit_classifier took
    plain_times += [_clock(lambda: step(bs)) for _ in range(after)]

    plain = bs / statistics.median(plain_times)
    t_plain = sum(plain_times)
    call = trained * bs / t_call
    train_only = trained * bs / (t_call - spent["s"])
    sslab_step = bs / statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
    print(f"\nPart 1: fine-tune images/s, batch {bs}, {steps} timed steps (plain: after {warmup} warm-up steps; "
          f"sslab: {trained} steps in one fit_classifier call, budget mode)")
    print(f"  sslab evaluation inside the call: {spent['calls']} evaluate_accuracy calls, {spent['items']} items, "
          f"{spent['s']:.2f}s of the call's {t_call:.2f}s")
    print(f"{'':<14}{'images/s':>10}{'seconds':>10}{'sslab/plain':>13}")
    print(f"{'plain':<14}{plain:>10.1f}{t_plain:>10.2f}{'':>13}   (median step)")
    print(f"{'sslab step':<14}{sslab_step:>10.1f}{'':>10}{sslab_step / plain:>13.2f}   (median step; target >= 1.0)")
    print(f"{'sslab train':<14}{train_only:>10.1f}{t_call - spent['s']:>10.2f}{train_only / plain:>13.2f}"
          "   (the call less its evaluation)")
    print(f"{'sslab call':<14}{call:>10.1f}{t_call:>10.2f}{call / plain:>13.2f}")


def part2(encoder, train, meta: dict, pool: np.ndarray, rounds: int, warmup: int, seed: int) -> None:
    pool_t = torch.as_tensor(pool, dtype=torch.long)
    ft = plain_step(classifier(encoder, seed), train, pool_t, seed)
    pipes = {"pretrain b256": (pretrain_step(train, meta, 256, seed), 2 * 256),
             "finetune b128": (lambda: ft(128), 128), "finetune b256": (lambda: ft(256), 256)}
    for fn, _ in pipes.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in pipes}
    names = list(pipes)
    for i in range(rounds):
        for k in names[i % 3:] + names[: i % 3]:
            times[k].append(_clock(pipes[k][0]))
    rate = {k: pipes[k][1] / statistics.median(v) for k, v in times.items()}
    print(f"\nPart 2: forward-backward passes/s, {rounds} interleaved rounds after {warmup} warm-up steps each "
          "(pretrain: 2 passes an image)")
    print(f"{'':<15}{'passes/s':>10}{'median s':>10}{'/pretrain':>11}")
    for k in names:
        print(f"{k:<15}{rate[k]:>10.1f}{statistics.median(times[k]):>10.3f}{rate[k] / rate['pretrain b256']:>11.2f}")


def converge(train, test, meta: dict, cfg: EvalConfig, fraction: float, seed: int, augment=None) -> dict:
    """One scratch run under `cfg`, as evaluate_encoder runs the "scratch" baseline (with `augment`: the
    "scratch+aug" one)."""
    val, pool = validation_split(train.y, cfg.val_items)
    idx = pool[label_subset(train.y[pool], fraction, seed, num_classes=N_CLASSES)]
    torch.manual_seed(seed)
    net = build_for_data("vicreg", "resnet-s2", {}, meta, PretrainConfig()).encoder()
    run_cfg = cfg.model_copy(update={"layer_decay": 1.0})
    t0 = time.perf_counter()
    res = protocols.finetune(net, train, idx, test, run_cfg, seed, N_CLASSES, augment, "cpu",
                             val=val if len(val) else None)
    return {"labels": len(idx), "images": round(res["epochs"] * len(idx)), "epochs": res["epochs"],
            "seconds": time.perf_counter() - t0, "checks": len(res["curve"]), "test": res["test_acc"],
            "val": res["val_acc"], "converged": res["converged"]}


def part3(train, test, meta: dict, fractions: list[float], overrides: dict, seeds: list[int], augment=None) -> None:
    configs = {"default": EvalConfig()}
    if overrides:
        configs["variant"] = EvalConfig(**overrides)
    print(f"\nPart 3: images to convergence from scratch{' with augmentation' if augment else ''}, plateau rule, "
          f"seeds {','.join(map(str, seeds))}"
          + (f"; variant: {' '.join(f'{k}={v}' for k, v in overrides.items())}" if overrides else ""))
    print(f"{'labels':<14}{'config':<9}{'seed':>5}{'images':>10}{'epochs':>9}{'wall s':>9}{'checks':>8}{'test':>8}"
          f"{'val':>8}{'conv':>7}")
    rows = {}
    for fraction in fractions:
        for name, cfg in configs.items():
            for seed in seeds:
                r = rows[(fraction, name, seed)] = converge(train, test, meta, cfg, fraction, seed, augment)
                val = "-" if r["val"] is None else f"{r['val']:.2%}"
                labels = f"{fraction:.0%} ({r['labels']})"
                print(f"{labels:<14}{name:<9}{seed:>5}{r['images']:>10}{r['epochs']:>9g}{r['seconds']:>9.1f}"
                      f"{r['checks']:>8}{r['test']:>8.2%}{val:>8}{str(r['converged']):>7}", flush=True)
    print(f"\nmeans over {len(seeds)} seed(s), against the default (images: the ratio of the mean images; test: the "
          "difference of the mean test accuracies in points; wall: the ratio of the total seconds)")
    print(f"{'labels':<8}{'config':<9}{'images':>10}{'test':>8}{'images/def.':>13}{'test diff':>11}{'wall/def.':>11}")
    for fraction in fractions:
        ref = [rows[(fraction, "default", s)] for s in seeds]
        for name in configs:
            rs = [rows[(fraction, name, s)] for s in seeds]
            im, te = statistics.mean(r["images"] for r in rs), statistics.mean(r["test"] for r in rs)
            im0, te0 = statistics.mean(r["images"] for r in ref), statistics.mean(r["test"] for r in ref)
            wall = sum(r["seconds"] for r in rs) / sum(r["seconds"] for r in ref)
            print(f"{fraction:<8.0%}{name:<9}{im:>10.0f}{te:>8.2%}{im / im0:>13.2f}{100 * (te - te0):>+11.2f}"
                  f"{wall:>11.2f}")


def parse_overrides(pairs: list[str]) -> dict:
    """key=value EvalConfig overrides; values read as JSON where they parse (numbers, lists, true), else text."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in EvalConfig.model_fields:
            raise SystemExit(f"not an EvalConfig override (key=value, key one of EvalConfig's fields): {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    try:
        EvalConfig(**out)  # fail now, not after parts 1 and 2
    except ValueError as err:  # pydantic's ValidationError
        raise SystemExit(f"EvalConfig overrides {pairs}: {err}") from None
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", metavar="key=value", help="EvalConfig overrides for part 3's variant")
    p.add_argument("--quick", action="store_true", help="few steps; part 3 at 1%% only")
    p.add_argument("--full", action="store_true", help="part 3 also at 100%% of the labels (10+ minutes)")
    p.add_argument("--steps", type=int, nargs=2, default=None, metavar=("FT", "ROUNDS"),
                   help="part 1's timed fine-tune steps, part 2's interleaved rounds (default 200 20; quick 24 4)")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps (default 5; quick 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--augment", action="store_true", help="part 3: the scratch+aug baseline (supervised augmentation)")
    p.add_argument("--seeds", type=int, default=1, help="part 3: label subsets / initialisations --seed.. (default 1)")
    p.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 1,3 (default 1,2,3)")
    args = p.parse_args()
    overrides = parse_overrides(args.overrides)
    parts = {int(x) for x in args.parts.split(",") if x.strip()}
    if not parts or parts - {1, 2, 3}:
        raise SystemExit(f"--parts: numbers from 1, 2, 3 separated by commas, got {args.parts!r}")
    steps, rounds = args.steps or ((24, 4) if args.quick else (200, 20))
    warmup = args.warmup if args.warmup is not None else (3 if args.quick else 5)
    fractions = [0.01] if args.quick else [0.01, 0.1]
    if args.full:
        fractions.append(1.0)

    splits = load_data("fashion-mnist")
    train, test = splits.train, splits.test
    meta = train.meta(limit=10000)
    torch.manual_seed(args.seed)
    encoder = build_for_data("vicreg", "resnet-s2", {}, meta, PretrainConfig()).encoder()
    _, pool = validation_split(train.y, EvalConfig().val_items)
    print(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}, "
          f"device cpu (fp32); resnet-s2 ({sum(q.numel() for q in encoder.parameters()) / 1e6:.2f}M parameters, "
          f"dim {encoder.dim}) on fashion-mnist {train.x.shape[1]}x{train.x.shape[2]}x{train.x.shape[3]}, "
          f"{len(train)} train ({len(pool)} in the labelled pool) / {len(test)} test")
    t0 = time.time()
    if 1 in parts:
        part1(encoder, train, test, pool, steps, warmup, args.seed)
    if 2 in parts:
        part2(encoder, train, meta, pool, rounds, warmup, args.seed)
    if 3 in parts:
        augment = image_eval.augmenter({"image_size": train.x.shape[1]}, "cpu") if args.augment else None
        part3(train, test, meta, fractions, overrides, list(range(args.seed, args.seed + args.seeds)), augment)
    print(f"\ntotal {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
