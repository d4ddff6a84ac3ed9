"""Benchmark: the throughput of a consistency-training (fixmatch) step against a plain supervised step, and of the
strong view against torchvision's RandAugment (issue 25, item 5).

All numbers come from ONE process, steps interleaved round by round after warm-up (a drifting background load hits
both alike), so the ratios are comparable on a loaded machine. The network is the study's default image encoder
(resnet-s2 on 28 x 28 x 1 Fashion-MNIST-shaped uint8 batches; random weights: speed does not depend on them) with a
linear head, channels_last, AdamW, fp32 on the CPU.

Part 1 -- views/s (one image through the network; labelled, weak and strong views counted alike, as the issue
counts them):
  supervised  a fine-tune step at batch B (128): raw batch -> model -> cross-entropy -> backward -> AdamW
  fixmatch    the fixmatch protocol's step at labelled batch B and ratio mu: weak view of B labelled, weak view of
              mu*B unlabelled (no gradient: pseudo-labels), strong view of the same mu*B, one forward/backward over
              labelled + strong, AdamW; views = B + 2 mu B. It is the protocol's own loss function (sslab.evaluate.
              protocols.fixmatch's), captured through fit_classifier.
  ratio       fixmatch views/s over supervised views/s (target >= 0.8)

Part 2 -- strong-view images/s on (512, 1, 28, 28) float batches: sslab.views.image.StrongView (batched, per-sample
parameters) against torchvision.transforms.v2.RandAugment(num_ops=2) + RandomErasing applied image by image (its
batched call would give every image the same operations), and kornia.augmentation.auto.RandAugment when kornia is
installed.

    python benchmarks/bench_fixmatch.py [--ratio 7] [--batch 128] [--steps 12]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn


def network():
    from sslab.nets.image import build_backbone
    from sslab.methods.base import ImageEncoder

    torch.manual_seed(0)
    enc = ImageEncoder(build_backbone("resnet-s2", 1))
    return nn.Sequential(enc, nn.Linear(enc.dim, 10)).to(memory_format=torch.channels_last)


class Images:
    def __init__(self, n: int):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 256, (n, 28, 28, 1), dtype=torch.uint8, generator=g)
        self.y = np.random.default_rng(0).integers(0, 10, n)

    def __len__(self):
        return len(self.x)

    def batch(self, idx):
        return self.x[torch.as_tensor(idx)]


def fixmatch_step(data: Images, ratio: int, batch: int):
    """The fixmatch protocol's loss function and model, captured from a real call: fit_classifier is replaced for
    the call by a stub that returns them."""
    import sslab.evaluate.protocols as P
    from sslab.config import EvalConfig
    from sslab.evaluate import kind_adapter

    captured = {}

    def capture(model, train, idx, test, cfg, seed, augment=None, device="cpu", loss_fn=None, **kw):
        captured.update(model=model, loss_fn=loss_fn, weak=augment)
        return {"train_acc": 0.0, "test_acc": 0.0, "curve": [], "converged": None}

    real = P.fit_classifier
    P.fit_classifier = capture
    try:
        views = kind_adapter("image").consistency_views({"image_size": 28}, "cpu")
        cfg = EvalConfig(fixmatch_ratio=ratio, batch_size=batch)
        P.fixmatch(network()[0], data, np.arange(batch), data, cfg, 0, 10, views=views)
    finally:
        P.fit_classifier = real
    return captured


def part1(args) -> None:
    data = Images(20_000)
    sup = network()
    opt_s = torch.optim.AdamW(sup.parameters(), lr=1e-3)
    fm = fixmatch_step(data, args.ratio, args.batch)
    opt_f = torch.optim.AdamW(fm["model"].parameters(), lr=1e-3)
    g, gv = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    y_all = torch.as_tensor(data.y)

    def step_sup():
        b = torch.randint(0, len(data), (args.batch,), generator=g)
        loss = nn.functional.cross_entropy(sup(data.batch(b)), y_all[b])
        opt_s.zero_grad()
        loss.backward()
        opt_s.step()

    def step_fm():
        b = torch.randint(0, len(data), (args.batch,), generator=g)
        loss = fm["loss_fn"](fm["weak"](data.batch(b), gv), y_all[b])
        opt_f.zero_grad()
        loss.backward()
        opt_f.step()

    times = {"supervised": [], "fixmatch": []}
    for _ in range(2):
        step_sup(), step_fm()
    for _ in range(args.steps):
        for name, fn in (("supervised", step_sup), ("fixmatch", step_fm)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    views = {"supervised": args.batch, "fixmatch": args.batch * (1 + 2 * args.ratio)}
    rate = {k: views[k] / float(np.median(v)) for k, v in times.items()}
    print(f"part 1: views/s at labelled batch {args.batch}, ratio {args.ratio}, {args.steps} interleaved steps "
          f"each, {torch.get_num_threads()} threads")
    for k in rate:
        print(f"  {k:11s} {rate[k]:8.0f} views/s  (median step {np.median(times[k]) * 1000:.0f} ms, "
              f"{views[k]} views)")
    print(f"  ratio fixmatch / supervised: {rate['fixmatch'] / rate['supervised']:.2f} (target >= 0.8)")


def part2(args) -> None:
    from sslab.views.image import StrongView

    x = torch.rand(512, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    strong = StrongView()
    candidates = {"sslab StrongView (batched)": lambda: strong(x, g)}
    try:
        from torchvision.transforms import v2

        ra, erase = v2.RandAugment(num_ops=2), v2.RandomErasing(p=1.0, scale=(0.0, 0.25), value=0.5)
        xu = (x * 255).to(torch.uint8)
        candidates["torchvision RandAugment+erasing, per image"] = lambda: torch.stack(
            [erase(ra(img).float() / 255) for img in xu])
    except ImportError:
        pass
    try:
        from kornia.augmentation.auto import RandAugment as KRandAugment

        kra = KRandAugment(n=2)
        x3 = x.expand(-1, 3, -1, -1).contiguous()  # kornia's colour operations want RGB
        candidates["kornia RandAugment (batched, RGB)"] = lambda: kra(x3)
    except Exception:  # kornia missing or without auto augment
        pass
    print("part 2: strong-view images/s on (512, 1, 28, 28)")
    ref = None
    for name, fn in candidates.items():
        fn()
        reps, t = 0, time.perf_counter()
        while time.perf_counter() - t < 2.0 or reps < 2:
            fn()
            reps += 1
        rate = 512 * reps / (time.perf_counter() - t)
        ref = ref or rate
        print(f"  {name:45s} {rate:10.0f} images/s  (sslab / this: {ref / rate:.1f}x)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--ratio", type=int, default=7)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--parts", default="1,2")
    args = ap.parse_args()
    if "1" in args.parts:
        part1(args)
    if "2" in args.parts:
        part2(args)
