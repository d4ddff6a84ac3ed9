"""The main job: pretrain -> every evaluation at every label fraction -> results.json + report.html."""
from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch

from sslab import __version__
from sslab.atomic import atomic_write
from sslab.config import EvalConfig, StudyConfig
from sslab.data import DataSplits, label_subset, load_images
from sslab.engine import backbone_from_info, load_backbone, pixel_stats, pretrain
from sslab.errors import SslabError
from sslab.evaluate import extract_features, finetune, knn_accuracy, linear_probe
from sslab.health import embedding_health
from sslab.nets import Backbone
from sslab.report import print_summary, summarize, write_report


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _labeled(splits: DataSplits) -> None:
    if splits.train.y is None or splits.test is None:
        raise SslabError(f"{splits.train.name}: evaluation needs labelled data (class sub-folders), found unlabelled images")
    if len(splits.test) == 0:
        raise SslabError(f"{splits.train.name}: too few images per class to hold out a test split")
    if len(splits.train.classes) < 2:
        raise SslabError(f"{splits.train.name}: evaluation needs at least 2 classes, found {len(splits.train.classes)}")
    n = len(splits.train.classes)
    n_train, n_test = np.bincount(splits.train.y, minlength=n), np.bincount(splits.test.y, minlength=n)
    for c, name in enumerate(splits.train.classes):
        if n_train[c] == 0:
            raise SslabError(f"{splits.train.name}: class {name!r} has no training image, so no label fraction can "
                             "give it a labelled example")
        if n_test[c] == 0:
            raise SslabError(f"{splits.train.name}: class {name!r} has no test image ({n_train[c]} in training); "
                             "evaluation needs one per class in the test split (2 images per class when sslab splits)")


def evaluate_backbone(backbone: Backbone | None, info: dict, splits: DataSplits, cfg: EvalConfig,
                      log=print) -> dict:
    """Every protocol x fraction x seed for the pretrained `backbone` (None: baselines only) and the
    baselines named in `cfg.baselines`. Returns {"runs": [...], "health": {...}}."""
    _labeled(splits)
    device = _device()
    tr, te = splits.train, splits.test
    n_classes = len(tr.classes)
    runs: list[dict] = []
    health = None
    feats = {}
    if backbone is not None:
        t = time.time()
        feats["ssl"] = (extract_features(backbone, tr.x, device), extract_features(backbone, te.x, device))
        health = embedding_health(feats["ssl"][1], full=True)
        log(f"features extracted in {time.time() - t:.1f}s; effective rank {health['effective_rank']:.1f} of {health['dim']}")
    if "pixels" in cfg.baselines:
        flat = lambda x: torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255)  # noqa: E731
        feats["pixels"] = (flat(tr.x), flat(te.x))

    def record(init, protocol, fraction, seed, n_labels, res):
        runs.append({"init": init, "protocol": protocol, "fraction": fraction, "seed": seed, "n_labels": n_labels, **res})
        train = "" if res["train_acc"] is None else f"  train {res['train_acc']:.2%}"
        log(f"  {init:12s} {protocol:9s} {fraction:>6.1%} seed {seed}: test {res['test_acc']:.2%}{train}")

    for fraction in cfg.fractions:
        for seed in range(cfg.seeds):
            idx = label_subset(tr.y, fraction, seed)
            ytr = tr.y[idx]
            for init, (ftr, fte) in feats.items():
                if init == "pixels":
                    record("pixels", "logreg", fraction, seed, len(idx),
                           linear_probe(ftr[idx], ytr, fte, te.y, cfg, seed, n_classes))
                    continue
                if "knn" in cfg.protocols:
                    acc = knn_accuracy(ftr[idx], ytr, fte, te.y, cfg.knn_k, cfg.knn_temperature)
                    record(init, "knn", fraction, seed, len(idx), {"train_acc": None, "test_acc": acc, "curve": None})
                if "linear" in cfg.protocols:
                    record(init, "linear", fraction, seed, len(idx), linear_probe(ftr[idx], ytr, fte, te.y, cfg, seed, n_classes))
            if seed >= cfg.finetune_seeds_large and fraction >= 0.1:
                continue
            inits = []
            if backbone is not None and "finetune" in cfg.protocols:
                inits.append(("ssl", backbone, cfg.finetune_aug))
            for name in ("scratch", "scratch+aug"):
                if name in cfg.baselines:
                    torch.manual_seed(seed)
                    fresh = backbone_from_info(info)
                    inits.append((name, fresh, name.endswith("+aug")))
            for init, net, aug in inits:
                res = finetune(net, tr.x[idx], ytr, te.x, te.y, cfg, seed, n_classes, aug, device)
                record(init, "finetune", fraction, seed, len(idx), res)
    return {"runs": runs, "health": health}


def findings(summary: list[dict]) -> list[str]:
    """Plain-language answers to the study's questions, from the summarised numbers."""
    get = {(s["init"], s["protocol"], s["fraction"]): s for s in summary}
    fmt = lambda s: f"{s['mean']:.1%} ± {s['std']:.1%} (n={s['n']})"  # noqa: E731
    out = []
    for frac in (0.1, 0.01):
        s = get.get(("scratch", "finetune", frac))
        if s and s.get("train_mean") is not None:
            gap = s["train_mean"] - s["mean"]
            verdict = "it overfits" if gap > 0.05 else "the train/test gap is small"
            out.append(f"At {frac:.0%} labels the scratch model reaches {s['train_mean']:.1%} train accuracy and "
                       f"{fmt(s)} test accuracy: {verdict} (gap {gap:.1%}).")
    for frac in sorted({k[2] for k in get}):
        a, b = get.get(("scratch+aug", "finetune", frac)), get.get(("scratch", "finetune", frac))
        if a and b:
            d = a["mean"] - b["mean"]
            verdict = "improves" if d > 0 else "lowers"
            out.append(f"Augmentation {verdict} scratch test accuracy at {frac:.0%} labels: {fmt(b)} -> {fmt(a)} "
                       f"({d:+.1%}{_spread(a, b, d)}).")
    for frac in sorted({k[2] for k in get}):
        ssl = sorted((v for k, v in get.items() if k[0] == "ssl" and k[2] == frac), key=lambda v: -v["mean"])
        base = [v for k, v in get.items() if k[0] in ("scratch", "scratch+aug", "pixels") and k[2] == frac]
        if ssl and base:
            b = max(base, key=lambda v: v["mean"])
            parts = [f"{s['protocol']} {fmt(s)} ({s['mean'] - b['mean']:+.1%}{_spread(s, b, s['mean'] - b['mean'])})"
                     for s in ssl]
            out.append(f"SSL pretraining at {frac:.0%} labels, against the best baseline ({b['init']} {b['protocol']} "
                       f"{fmt(b)}): " + "; ".join(parts) + ".")
    return out


def _spread(a: dict, b: dict, d: float) -> str:
    """Whether a difference `d` between two summarised groups exceeds their combined seed spread."""
    if min(a["n"], b["n"]) < 2:
        return ", one seed: spread not measured"
    return ", beyond the seed spread" if abs(d) > a["std"] + b["std"] else ", within the seed spread"


def assemble(results: dict) -> dict:
    results["summary"] = summarize(results)
    results["findings"] = findings(results["summary"])
    return results


def save_results(out: Path, results: dict) -> Path:
    atomic_write(out / "results.json", json.dumps(results, indent=1).encode())
    return write_report(out, results)


def _data_info(splits: DataSplits) -> dict:
    tr = splits.train
    return {"name": tr.name, "n_train": len(tr), "n_test": len(splits.test) if splits.test else 0,
            "shape": list(tr.x.shape[1:]), "classes": list(tr.classes)}


def study(cfg: StudyConfig, out: str | Path, root=None, command: str = "", log=print, show_progress=True) -> dict:
    """Pretrain on the training images (labels unused), evaluate against the baselines, write the report."""
    t0 = time.time()
    out = Path(out)
    splits = load_images(cfg.data, root)
    _labeled(splits)
    log(f"data {splits.train.name}: {len(splits.train)} train / {len(splits.test)} test images, "
        f"shape {splits.train.x.shape[1:]}, {len(splits.train.classes)} classes")
    pre = pretrain(splits.train, cfg.pretrain, out, data_spec=cfg.data, show_progress=show_progress)
    log(f"pretrained {pre['method']} on {pre['images']} images: {pre['epochs']:.2f} epochs in {pre['seconds']:.0f}s "
        f"({pre['images_per_s']:.0f} images/s)")
    backbone, info = load_backbone(out)
    ev = evaluate_backbone(backbone, info, splits, cfg.eval, log)
    results = assemble({
        "sslab_version": __version__, "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": command, "config": cfg.model_dump(), "data": _data_info(splits), "pretrain": pre,
        "health": ev["health"], "runs": ev["runs"],
        "baseline_notes": "scratch: the same backbone from random init fine-tuned on the labels; scratch+aug: "
                          "the same with augmentation; pixels: logistic regression on raw pixels.",
        "timing": {"total_seconds": time.time() - t0, "pretrain_seconds": pre["seconds"]},
    })
    path = save_results(out, results)
    log(f"report: {path}")
    return results


def evaluate_run(run_dir: str | Path, cfg: EvalConfig, data: str | None = None, root=None, log=print) -> dict:
    """Evaluate a saved pretraining run (its data set unless `data` names another)."""
    run_dir = Path(run_dir)
    backbone, info = load_backbone(run_dir)
    splits = load_images(data or info["data"], root)
    if splits.train.x.shape[1:] != (info["image_size"], info["image_size"], info["in_chans"]):
        raise SslabError(f"images of shape {splits.train.x.shape[1:]} do not match the run's "
                         f"{info['image_size']}x{info['image_size']}x{info['in_chans']}")
    t0 = time.time()
    ev = evaluate_backbone(backbone, info, splits, cfg, log)
    prev = {}
    if (run_dir / "results.json").exists():
        try:
            prev = json.loads((run_dir / "results.json").read_text())
        except ValueError:
            prev = {}
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (run_dir / "metrics.jsonl").exists() else []
    results = assemble({
        **prev, "sslab_version": __version__, "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "config": {"pretrain": info["config"], "eval": cfg.model_dump()}, "data": _data_info(splits),
        "pretrain": prev.get("pretrain") or {"method": info["method"], "backbone": info["backbone"], "history": history},
        "health": ev["health"], "runs": ev["runs"], "timing": {"eval_seconds": time.time() - t0},
    })
    save_results(run_dir, results)
    return results


__all__ = ["study", "evaluate_run", "evaluate_backbone", "findings", "pixel_stats", "print_summary"]
