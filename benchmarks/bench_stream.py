"""Images at scale: a folder decoded into the disk cache (memory-mapped), the same images as WebDataset shards
streamed from reader processes, and the folder in memory, each measured in its own process.

    .venv/bin/python benchmarks/bench_stream.py                 # 200,000 64-px JPEGs (the issue's full run)
    .venv/bin/python benchmarks/bench_stream.py --n 5000 --seconds 10

It generates a synthetic folder of N unlabelled images (smooth random pictures, --format jpg|png), then for each
path: the time to make it ready (decode into the cache / scan the shards / decode into RAM), the data path alone
(raw batches of --batch random items as the engine takes them for --data-seconds, images/s, the first batch
not timed), a brief
pretraining through the engine (--seconds, SimCLR on resnet-xs by default, images/s), and the process's peak RSS
(resource.getrusage) after the data path and after pretraining, and its anonymous and file-backed resident parts
at the end (/proc/self/status: pages of a memory map count as file-backed,
which the kernel can drop and read again). Last, the ratios of the disk-cache and streamed rates to the in-memory
rates on the same images (skipped when the folder would take more than a quarter of the RAM). Prints a table and
one JSON line."""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_folder(folder: Path, n: int, side: int, fmt: str) -> float:
    """N unlabelled images in `folder` (reused when a previous run made the same); returns the seconds it took."""
    done = folder / f".done-{n}-{side}-{fmt}"
    if done.is_file():
        return 0.0
    import numpy as np
    from PIL import Image

    t0 = time.time()
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # smooth pictures: JPEG sizes like photographs'
        im = Image.fromarray(low).resize((side, side), Image.Resampling.BICUBIC)
        im.save(folder / f"{i:07d}.{fmt}", quality=90) if fmt == "jpg" else im.save(folder / f"{i:07d}.{fmt}")
        if i % 20000 == 19999:
            print(f"  generated {i + 1:,} of {n:,} images", flush=True)
    done.write_text("")
    return time.time() - t0


def write_shards(folder: Path, out: Path, per_shard: int) -> tuple[str, float]:
    """The folder's images as shards of `per_shard` samples (file bytes as they are); (pattern, seconds)."""
    import tarfile

    t0 = time.time()
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    shards = [files[i : i + per_shard] for i in range(0, len(files), per_shard)]
    pattern = str(out / f"train-{{000000..{len(shards) - 1:06d}}}.tar")
    marker = out / f".done-{len(files)}-{per_shard}"
    if marker.is_file():
        return pattern, 0.0
    out.mkdir(parents=True, exist_ok=True)
    for k, part in enumerate(shards):
        with tarfile.open(out / f"train-{k:06d}.tar", "w") as tf:
            for f in part:
                tf.add(f, arcname=f.name)
    marker.write_text("")
    return pattern, time.time() - t0


def _rss() -> dict:
    """Peak RSS of this process and the largest of its finished children (reader processes, and whatever the
    libraries start), MB; RssAnon / RssFile now, MB (Linux)."""
    to_mb = 1024 if sys.platform != "darwin" else 1024 * 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / to_mb,  # the training process
           "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / to_mb}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key.lower() + "_mb"] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def phase(args) -> None:
    """One path, in this process: ready it, time the data path alone, pretrain briefly; print a JSON line."""
    import torch

    from sslab.config import PretrainConfig
    from sslab.data import load_data
    from sslab.engine import pretrain

    torch.set_num_threads(args.threads)
    cfg = PretrainConfig(method=args.method, backbone=args.backbone, batch_size=args.batch, budget=args.seconds,
                         data_workers=args.workers, log_every=10_000, checkpoint_every=10_000,
                         accumulate=args.accumulate)
    t0 = time.time()
    data = load_data(args.spec, kind="image").train
    ready = time.time() - t0
    n = len(data)
    g = torch.Generator().manual_seed(0)
    if hasattr(data, "stream_batches"):  # the engine's raw batches from the reader processes
        spe = data.steps_per_epoch(n, args.batch, 1, cfg)
        batches = data.stream_batches(0, spe, args.batch, 0, 1, cfg)
    else:  # random items, as the engine indexes an array
        batches = (data.batch(torch.randint(0, n, (args.batch,), generator=g)) for _ in iter(int, 1))
    next(batches)  # reader start-up and the first fill of the shuffle buffer are not timed
    t0, seen = time.time(), 0
    for batch in batches:
        seen += batch.shape[0]
        if time.time() - t0 >= args.data_seconds:
            break
    data_rate = seen / (time.time() - t0)
    batches.close()
    after_data = _rss()["peak_rss_mb"]
    res = pretrain(data, cfg, Path(args.out) / args.name, show_progress=False)
    print(json.dumps({"name": args.name, "items": n, "ready_s": ready, "data_images_per_s": data_rate,
                      "pretrain_images_per_s": res["units_per_s"], "pretrain_steps": res["steps"],
                      "memmap": type(getattr(data, "x", None)).__name__ == "memmap", "data_peak_rss_mb": after_data,
                      **_rss()}))


def run_phase(args, name: str, spec: str, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--phase", "--name", name, "--spec", spec, "--out", str(args.work / "runs"),
           "--seconds", str(args.seconds), "--batch", str(args.batch), "--workers", str(args.workers),
           "--method", args.method, "--backbone", args.backbone, "--threads", str(args.threads),
           "--data-seconds", str(args.data_seconds), "--accumulate", str(args.accumulate)]
    r = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{name} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="images in the synthetic folder")
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--format", choices=["jpg", "png"], default="jpg")
    ap.add_argument("--work", type=Path, default=Path("bench-stream"), help="folder for the images, shards, cache")
    ap.add_argument("--per-shard", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=60.0, help="pretraining budget of each path")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--data-seconds", type=float, default=3.0, help="seconds of reading batches to time the data "
                    "path alone")
    ap.add_argument("--workers", type=int, default=2, help="shard reader processes (pretrain.data_workers)")
    ap.add_argument("--accumulate", type=int, default=1, help="micro-batches per batch (pretrain.accumulate): a "
                    "step's activations, most of the peak RSS at batch 256, shrink by this factor")
    ap.add_argument("--method", default="simclr")
    ap.add_argument("--backbone", default="resnet-xs")
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument("--phase", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--name", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        return phase(args)

    args.work = args.work.resolve()
    folder = args.work / f"images-{args.n}-{args.side}-{args.format}"
    made = make_folder(folder, args.n, args.side, args.format)
    print(f"folder: {args.n:,} {args.side}-px {args.format} images in {folder}" + (f" (made in {made:.0f}s)" if made
                                                                                   else " (reused)"))
    pattern, shard_s = write_shards(folder, args.work / f"shards-{args.n}-{args.side}-{args.format}", args.per_shard)
    print(f"shards: {pattern}" + (f" (written in {shard_s:.0f}s)" if shard_s else " (reused)"))
    import shutil

    rows = []
    cache = args.work / "cache-disk"
    shutil.rmtree(cache, ignore_errors=True)  # the disk cache is built from scratch: its time is measured
    disk_env = {"SSLAB_CACHE": str(cache), "SSLAB_IN_MEMORY_MAX": "0", "OMP_NUM_THREADS": str(args.threads)}
    rows.append(run_phase(args, "disk cache (build)", str(folder), disk_env))
    rows.append(run_phase(args, "disk cache", str(folder), disk_env))
    rows.append(run_phase(args, "shards", pattern, {"SSLAB_CACHE": str(args.work / "cache-shards"),
                                                    "OMP_NUM_THREADS": str(args.threads)}))
    size = args.n * args.side * args.side * 3
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if size <= ram // 4:
        mem_cache = args.work / "cache-memory"
        shutil.rmtree(mem_cache, ignore_errors=True)
        rows.append(run_phase(args, "in memory", str(folder), {"SSLAB_CACHE": str(mem_cache),
                                                               "SSLAB_IN_MEMORY_MAX": str(size + 1),
                                                               "OMP_NUM_THREADS": str(args.threads)}))
    print(f"{'path':<20} {'ready s':>8} {'data img/s':>11} {'train img/s':>12} {'steps':>6} {'peak MB data':>13} "
          f"{'peak MB train':>14} {'anon MB':>8} {'file MB':>8}")
    for r in rows:
        print(f"{r['name']:<20} {r['ready_s']:>8.1f} {r['data_images_per_s']:>11,.0f} "
              f"{r['pretrain_images_per_s']:>12,.1f} {r['pretrain_steps']:>6} {r['data_peak_rss_mb']:>13,.0f} "
              f"{r['peak_rss_mb']:>14,.0f} "
              f"{r.get('rssanon_mb', float('nan')):>8,.0f} {r.get('rssfile_mb', float('nan')):>8,.0f}")
    summary = {"n": args.n, "side": args.side, "format": args.format, "seconds": args.seconds,
               "batch": args.batch, "accumulate": args.accumulate, "rows": rows}
    by = {r["name"]: r for r in rows}
    if "in memory" in by:
        ram_row = by["in memory"]
        ratios = {f"{name} / in memory": {k: by[name][k] / ram_row[k] for k in ("data_images_per_s",
                                                                                 "pretrain_images_per_s")}
                  for name in ("disk cache", "shards")}
        for name, r in ratios.items():
            print(f"{name}: data path {r['data_images_per_s']:.2f}x, pretraining {r['pretrain_images_per_s']:.2f}x")
        summary["ratios"] = ratios
    else:
        print(f"in memory: skipped ({size / 2**30:.1f} GiB of decoded images > a quarter of the RAM)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
