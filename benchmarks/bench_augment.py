"""Benchmark: sslab batched augmentation vs per-sample torchvision and batched kornia.

Times one training batch (default 256 images, 2 views) of the SimCLR recipe, all in ONE process
run on the same machine so the numbers are comparable:

  (a) sslab ``Augment`` on the whole batch (grid_sample crop+flip, per-sample colour matrices)
  (b) torchvision v2 transforms applied per sample inside a ``DataLoader`` (num_workers 0 and 2):
      RandomResizedCrop, RandomHorizontalFlip, RandomApply(ColorJitter, p=0.8), RandomGrayscale
  (c) ``kornia.augmentation`` batched equivalent (if kornia is importable)

for 32x32 RGB (CIFAR-like) and 28x28 gray (MNIST-like) images. Each number is the median per-batch
time over ``--repeats`` batches after warm-up.

    PYTHONPATH=src python benchmarks/bench_augment.py [--batch 256] [--repeats 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sslab.views import Augment, AugmentConfig, simclr_config, two_views  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batched(fn, device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


class TwoViewDataset(torch.utils.data.Dataset):
    """uint8 (C, H, W) images; each item is two independently transformed float views."""

    def __init__(self, images: torch.Tensor, transform):
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = self.images[i]
        return self.transform(img), self.transform(img)


def time_loader(images: torch.Tensor, transform, batch: int, workers: int, warmup: int, repeats: int) -> float:
    """Median seconds between consecutive batches of a DataLoader doing per-sample transforms."""
    n_batches = warmup + repeats
    ds = TwoViewDataset(images[: batch * n_batches], transform)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=False, num_workers=workers,
                                     drop_last=True, persistent_workers=False)
    it = iter(dl)
    ts = []
    t0 = time.perf_counter()
    for i in range(n_batches):
        next(it)
        t1 = time.perf_counter()
        if i >= warmup:
            ts.append(t1 - t0)
        t0 = t1
    del it
    return statistics.median(ts)


def torchvision_transform(size: int, gray: bool):
    from torchvision.transforms import v2

    ops = [
        v2.RandomResizedCrop(size, scale=(0.3, 1.0) if gray else (0.2, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
        v2.RandomHorizontalFlip(0.5),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.0, 0.0) if gray else v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
    ]
    if not gray:
        ops.append(v2.RandomGrayscale(0.2))
    ops.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(ops)


def kornia_augment(size: int, gray: bool):
    import kornia.augmentation as K

    ops = [
        K.RandomResizedCrop((size, size), scale=(0.3, 1.0) if gray else (0.2, 1.0), ratio=(3 / 4, 4 / 3)),
        K.RandomHorizontalFlip(p=0.5),
    ]
    if gray:
        # kornia's ColorJitter wants RGB; for gray use brightness + contrast only
        ops += [K.RandomBrightness((0.6, 1.4), p=0.8), K.RandomContrast((0.6, 1.4), p=0.8)]
    else:
        ops += [K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2)]
    return K.AugmentationSequential(*ops)


def run_case(title: str, cfg: AugmentConfig, channels: int, in_size: int, args, device: torch.device) -> None:
    gray = channels == 1
    B = args.batch
    print(f"\n== {title}: batch {B}, {channels}x{in_size}x{in_size} -> {cfg.size}x{cfg.size}, 2 views ==")
    g_img = torch.Generator().manual_seed(0)
    n_img = B * (args.warmup + args.repeats)
    images_u8 = torch.randint(0, 256, (n_img, channels, in_size, in_size), dtype=torch.uint8, generator=g_img)
    x = images_u8[:B].to(device).float().div_(255)

    rows: list[tuple[str, float | None, str]] = []

    aug = Augment(cfg)
    gen = torch.Generator(device=device).manual_seed(0)
    t_sslab = time_batched(lambda: two_views(aug, x, gen), device, args.warmup, args.repeats)
    rows.append(("sslab Augment (batched, grid_sample)", t_sslab, ""))

    if not args.skip_torchvision:
        tf = torchvision_transform(cfg.size, gray)
        for w in (0, 2):
            try:
                t = time_loader(images_u8, tf, B, w, warmup=1 if w == 0 else 2, repeats=args.loader_repeats)
                rows.append((f"torchvision v2 per-sample, DataLoader workers={w}", t, ""))
            except Exception as e:  # noqa: BLE001 - report and continue
                rows.append((f"torchvision v2 per-sample, DataLoader workers={w}", None, f"error: {e}"))

    try:
        import kornia  # noqa: F401

        kaug = kornia_augment(cfg.size, gray).to(device)
        torch.manual_seed(0)
        t = time_batched(lambda: (kaug(x), kaug(x)), device, args.warmup, args.repeats)
        rows.append(("kornia.augmentation (batched)", t, ""))
    except ImportError:
        rows.append(("kornia.augmentation (batched)", None, "kornia not importable"))
    except Exception as e:  # noqa: BLE001
        rows.append(("kornia.augmentation (batched)", None, f"error: {type(e).__name__}: {e}"))

    for name, t, note in rows:
        if t is None:
            print(f"  {name:<50} {'n/a':>10}   {note}")
        elif name.startswith("sslab"):
            print(f"  {name:<50} {t * 1e3:8.1f} ms/batch")
        else:
            short = "torchvision" if name.startswith("torchvision") else "kornia"
            print(f"  {name:<50} {t * 1e3:8.1f} ms/batch   {short}/sslab = {t / t_sslab:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=10, help="timed repeats for batched methods")
    ap.add_argument("--loader-repeats", type=int, default=10, help="timed batches for DataLoader methods")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads in the main process (0: torch default). Default 1: on a small "
                         "shared machine multi-threaded tiny ops stall badly when another process is busy, and "
                         "DataLoader workers use 1 thread each anyway")
    ap.add_argument("--skip-torchvision", action="store_true")
    args = ap.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"bench_augment: torch {torch.__version__}, device {device}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, load avg {load:.2f}; "
          f"median of {args.repeats} (batched) / {args.loader_repeats} (DataLoader) batches after warm-up")
    t0 = time.perf_counter()
    run_case("32x32 RGB, simclr_config(32)", simclr_config(32), 3, 32, args, device)
    run_case("28x28 gray, simclr_config(28, channels=1)", simclr_config(28, channels=1), 1, 28, args, device)
    print(f"\ntotal benchmark time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
