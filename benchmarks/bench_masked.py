"""Benchmark: where MAE's speed comes from, and the masked methods' throughput against the model-only bound.

One process, one machine, interleaved repeats, so the ratios hold on a loaded CPU. ViT-Tiny, 4-pixel patches,
32x32 RGB (CIFAR-10's shape, random pixels), batch 128, forward + backward + AdamW step:

  mae visible    MAE as built: the encoder sees the 16 visible patches of 64 (mask ratio 0.75)
  mae all        the same step with the encoder on all 64 patches (what MAE avoids; SimMIM / BEiT-style cost)
  ijepa          I-JEPA: context encoder on its context block, EMA target encoder (no grad) on the whole image
  mae views      MAE's own views (crop + flip + mask) on uint8 batches, then the same step: the engine's loop body

and prints images/s and the ratios: mae all / mae visible (the encoder-on-visible speed-up) and mae views /
mae visible (what the views cost against the model-only bound).

    python benchmarks/bench_masked.py [--batch 128] [--steps 5] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sslab.config import PretrainConfig  # noqa: E402
from sslab.methods import build_for_data  # noqa: E402

META = {"kind": "image", "in_chans": 3, "image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}


def build(name: str):
    torch.manual_seed(0)
    model = build_for_data(name, "vit-tiny", {}, META, PretrainConfig(method=name, backbone="vit-tiny"))
    return model.train(), torch.optim.AdamW(model.optim_groups(0.05), lr=1e-4)


def timed(step, steps: int, batch: int) -> float:
    step()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (a.batch, 32, 32, 3), dtype=torch.uint8, generator=g)
    mae, mae_opt = build("mae")
    ijepa, ijepa_opt = build("ijepa")
    fixed = mae.views(raw, g)
    every = torch.arange(64).expand(a.batch, 64)

    def step(model, opt, inputs):
        loss = model(**inputs)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if hasattr(model, "after_step"):
            model.after_step(0.5)

    cases = {
        "mae visible": lambda: step(mae, mae_opt, fixed),
        "mae all": lambda: step(mae, mae_opt, {**fixed, "kept": every}),
        "ijepa": lambda: step(ijepa, ijepa_opt, ijepa.views(raw, g)),
        "mae views": lambda: step(mae, mae_opt, mae.views(raw, g)),
    }
    rates = {k: [] for k in cases}
    for _ in range(a.repeats):
        for k, fn in cases.items():
            rates[k].append(timed(fn, a.steps, a.batch))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"threads {torch.get_num_threads()}, batch {a.batch}, {a.steps} steps x {a.repeats} repeats (median)")
    for k, v in med.items():
        print(f"  {k:12s} {v:8.1f} images/s   (repeats: {', '.join(f'{x:.1f}' for x in rates[k])})")
    print(f"encoder-on-visible speed-up (mae all -> mae visible): {med['mae visible'] / med['mae all']:.2f}x")
    print(f"MAE with its views against the model-only bound: {med['mae views'] / med['mae visible']:.2f}")
    print(f"I-JEPA against MAE (same encoder): {med['ijepa'] / med['mae visible']:.2f}")


if __name__ == "__main__":
    main()
