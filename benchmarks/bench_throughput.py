"""Benchmark: SimCLR pretraining throughput (images/s), sslab vs lightly vs the model-only bound.

All numbers come from ONE process on the same machine, so the ratios are comparable even on a
loaded CPU. Per backbone (resnet-s2 on 28x28 gray Fashion-MNIST, resnet18 on 32x32 RGB CIFAR-10):

  sslab engine   uint8 batch -> engine.to_float -> views.Augment(simclr_config) x2 -> SimCLR loss
                 -> backward -> AdamW (channels_last), i.e. the body of sslab.pretrain's loop
  sslab.pretrain sslab.pretrain() itself, its reported images_per_s (includes warm-up steps, the
                 step-1 health probe and checkpoint writes; only for --api-backbones)
  model only     forward+backward+AdamW on pre-augmented channels_last tensors (upper bound)
  lightly wN     lightly SimCLRTransform on PIL images in a DataLoader (num_workers N),
                 lightly NTXentLoss(0.2), same backbone + lightly SimCLRProjectionHead, AdamW

lightly is not an sslab dependency: `pip install lightly --no-deps` into the venv to run this.

    python benchmarks/bench_throughput.py [--batch 256] [--steps 8 2] [--warmup 3 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import sslab  # noqa: E402
from sslab import views  # noqa: E402
from sslab.data import ImageData  # noqa: E402
from sslab.views.image import to_float  # noqa: E402

CL = torch.channels_last
SETUPS = {"resnet-s2": ("fashion-mnist", 1), "resnet18": ("cifar10", 3)}  # backbone -> (data, channels)


def adamw(model):
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": rest, "weight_decay": 0.0}], lr=4e-3)


def time_steps(fn, warmup: int, steps: int) -> list[float]:
    """Seconds per call of `fn()` for `steps` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    return [_clock(fn) for _ in range(steps)]


def _clock(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def train_step(model, loss_fn):
    opt = adamw(model)

    def run(*inputs):
        loss = loss_fn(model, *inputs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return run


def simclr_model(name, ch):
    model = sslab.build_method("simclr", sslab.build_backbone(name, ch)).to(memory_format=CL).train()
    return train_step(model, lambda m, x1, x2: m(x1, x2))


def sslab_engine(x_cpu, name, ch, batch):
    step, g = simclr_model(name, ch), torch.Generator().manual_seed(0)
    aug = views.Augment(views.simclr_config(x_cpu.shape[1], 1.0, ch))

    def one():
        idx = torch.randint(len(x_cpu), (batch,), generator=g)
        x = to_float(x_cpu[idx], "cpu", channels_last=True)
        step(*views.two_views(aug, x, g))
    return one


def model_only(x_cpu, name, ch, batch):
    step = simclr_model(name, ch)
    aug = views.Augment(views.simclr_config(x_cpu.shape[1], 1.0, ch))
    x1, x2 = (v.contiguous(memory_format=CL) for v in views.two_views(aug, to_float(x_cpu[:batch], "cpu")))
    return lambda: step(x1, x2)


def sslab_pretrain_api(x, name, batch, warmup, steps):
    cfg = sslab.PretrainConfig(backbone=name, epochs=1, budget=None, batch_size=batch,
                               max_images=(warmup + steps) * batch, log_every=10**9, accelerator="cpu")
    with tempfile.TemporaryDirectory() as out:
        res = sslab.pretrain(ImageData(x, None, name="bench"), cfg, out, show_progress=False)
    return res["images_per_s"]


class PILDataset(torch.utils.data.Dataset):
    def __init__(self, x: np.ndarray, transform):
        self.x, self.transform = x, transform

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        a = self.x[i]
        return self.transform(Image.fromarray(a[..., 0], "L") if a.shape[2] == 1 else Image.fromarray(a, "RGB"))


def lightly_pipeline(x, name, ch, batch, workers):
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform

    # Same per-image recipe as sslab's simclr_config at this size: jitter 0.4/0.4/0.4/0.1 (gray:
    # saturation/hue 0, no grayscale), crop scale from 0.2 (RGB) / 0.3 (gray), no blur below 64 px.
    # normalize=None: sslab's Backbone normalises inside forward, for both pipelines.
    gray = ch == 1
    tf = SimCLRTransform(input_size=x.shape[1], cj_strength=0.5, cj_sat=0.0 if gray else 0.8,
                         cj_hue=0.0 if gray else 0.2, min_scale=0.3 if gray else 0.2,
                         random_gray_scale=0.0 if gray else 0.2, gaussian_blur=0.0, normalize=None)
    backbone = sslab.build_backbone(name, ch)
    model = torch.nn.Sequential(backbone, SimCLRProjectionHead(backbone.dim, 512, 128)).to(memory_format=CL).train()
    crit = NTXentLoss(temperature=0.2)
    step = train_step(model, lambda m, x1, x2: crit(m(x1), m(x2)))
    loader = torch.utils.data.DataLoader(PILDataset(x, tf), batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=workers, persistent_workers=workers > 0)
    it = iter(loader)

    def one():
        v1, v2 = next(it)
        step(v1.contiguous(memory_format=CL), v2.contiguous(memory_format=CL))
    return one


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, nargs=2, default=[8, 2], metavar=("S2", "R18"), help="timed steps per backbone")
    p.add_argument("--warmup", type=int, nargs=2, default=[3, 1], metavar=("S2", "R18"))
    p.add_argument("--backbones", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    p.add_argument("--api-backbones", nargs="*", default=["resnet-s2"], help="also time sslab.pretrain() for these")
    p.add_argument("--root", default=os.environ.get("SSLAB_DATA_ROOT", "/work/shared/data"), help="CIFAR-10 data root")
    args = p.parse_args()
    import lightly

    print(f"torch {torch.__version__}, lightly {lightly.__version__}, torch threads {torch.get_num_threads()}, "
          f"cpu count {os.cpu_count()}, batch {args.batch}, device cpu (fp32)")
    rows = []
    for bi, name in enumerate(list(SETUPS)):
        if name not in args.backbones:
            continue
        data, ch = SETUPS[name]
        x = sslab.load_images(data, root=args.root if data == "cifar10" else None).train.x
        x_cpu = torch.from_numpy(np.ascontiguousarray(x))
        b, w, s = args.batch, args.warmup[bi], args.steps[bi]
        t0 = time.time()
        # single-process pipelines: warmed up, then timed step by step in turn, so a background load
        # that drifts during the run hits them alike
        pipes = {"sslab engine": sslab_engine(x_cpu, name, ch, b), "model only": model_only(x_cpu, name, ch, b),
                 "lightly w0": lightly_pipeline(x, name, ch, b, 0)}
        for fn in pipes.values():
            time_steps(fn, w, 0)
        times = {k: [] for k in pipes}
        for i in range(s):
            for k in list(pipes)[i % 3:] + list(pipes)[: i % 3]:
                times[k].append(_clock(pipes[k]))
        del pipes
        # the 2-worker loader runs as one block (its workers would otherwise prefetch while the others run)
        times["lightly w2"] = time_steps(lightly_pipeline(x, name, ch, b, 2), w, s)
        r = {k: b / statistics.median(v) for k, v in times.items()}
        if name in args.api_backbones:
            r["sslab.pretrain()"] = sslab_pretrain_api(x, name, b, w, s)
        print(f"{name}: {x.shape[1]}x{x.shape[2]}x{ch} {data}, {w} warm-up + {s} timed steps ({time.time() - t0:.0f}s)")
        rows.append((name, r))

    print("\nimages/s = batch / median step time (higher is better). 'sslab' in the ratios = the sslab engine path\n"
          "(to_float -> Augment x2 -> loss -> AdamW); sslab.pretrain() = its own reported images_per_s over all\n"
          "warm-up + timed steps incl. step-1 health probe and checkpoint writes")
    cols = ["sslab engine", "sslab.pretrain()", "model only", "lightly w0", "lightly w2"]
    print(f"{'backbone':<10}" + "".join(f"{c:>17}" for c in cols)
          + f"{'sslab/lightly w0':>18}{'sslab/lightly w2':>18}{'sslab/model-only':>18}")
    for name, r in rows:
        cells = "".join(f"{r[c]:>17.1f}" if c in r else f"{'-':>17}" for c in cols)
        s = r["sslab engine"]
        print(f"{name:<10}{cells}{s / r['lightly w0']:>18.2f}{s / r['lightly w2']:>18.2f}{s / r['model only']:>18.2f}")


if __name__ == "__main__":
    main()
