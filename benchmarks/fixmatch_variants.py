"""FixMatch refinements tried on an image run, one label subset, paired: each variant starts from the same
fine-tuned model (the finetune protocol's, trained once here) and runs under the plateau rule like the `fixmatch`
protocol, which is variant `base` (issue 25, "low-cost refinements only if they measure").

    python benchmarks/fixmatch_variants.py <run> [--labels 0.01] [--seed 0] [--variants base,sgd,black,teacher,align]
    python benchmarks/fixmatch_variants.py <run> --variants base,fixmatch_adaptive=true,fixmatch_threshold=0.95

Variants (each changes one thing against `base`, the protocol as it is):
  sgd      FixMatch's optimiser: SGD, Nesterov momentum 0.9, L2 5e-4, rate 0.03 (sslab: AdamW 1e-3)
  black    the strong view fills what its geometric operations uncover with black instead of FixMatch's grey
           (Fashion-MNIST's background is black)
  teacher  pseudo-labels from a moving average of the weights (decay 0.99, mean teacher) instead of the
           weights being trained
  align    distribution alignment (ReMixMatch): the weak view's class probabilities times the class prior over
           their running mean (momentum 0.999), renormalised, before the threshold
  key=value  the protocol with EvalConfig settings changed (several joined by '+', e.g.
           `fixmatch_threshold=0.7+fixmatch_ratio=7`)

Prints one JSON line per variant: test and best validation accuracy, epochs of the labels, the share of
pseudo-labels used, seconds, and the validation curve. On the CPU, with the default evaluation settings
(`EvalConfig()`), not the run's. Run alone (a shared machine changes where the plateau rule
stops, and so the figures)."""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import time
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

from sslab.config import EvalConfig
from sslab.data import label_subset, load_data, validation_split
from sslab.engine import to_device
from sslab.engine.runs import load_encoder
from sslab.evaluate import kind_adapter
from sslab.evaluate import protocols as P
from sslab.views import image as V

VARIANTS = ("base", "sgd", "black", "teacher", "align")


def sgd(groups, lr=None, weight_decay=None):
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)


def run_variant(variant: str, teacher, train, idx, test, val, cfg: EvalConfig, seed: int, n_classes: int) -> dict:
    """The fixmatch protocol's step with one change (`variant`), from a copy of `teacher`, under fit_classifier."""
    if variant == "sgd":
        cfg = cfg.model_copy(update={"finetune_lr": 0.03})
    if "=" in variant:
        cfg = EvalConfig(**{**cfg.model_dump(), **dict(kv.split("=", 1) for kv in variant.split("+"))})
    model = copy.deepcopy(teacher)
    mean_teacher = copy.deepcopy(teacher).train() if variant == "teacher" else None
    strong = V.StrongView()
    pool = torch.as_tensor(np.setdiff1d(np.arange(len(train)), val))
    g, g_views = torch.Generator().manual_seed(seed + 1), torch.Generator().manual_seed(seed + 2)
    pseudo = P.PseudoLabels(n_classes, cfg.fixmatch_threshold, cfg.fixmatch_adaptive, "cpu")
    state = {"step": 0, "mean": torch.full((n_classes,), 1.0 / n_classes)}

    def weak(batch, gen):
        return V.weak_view(V.to_float(batch, "cpu", True), gen)

    def loss_fn(x, y):
        if mean_teacher is not None:
            P.ema_update(mean_teacher, model, min(0.99, (1 + state["step"]) / (10 + state["step"])))
        state["step"] += 1
        u = to_device(train.batch(pool[torch.randint(len(pool), (cfg.fixmatch_ratio * len(y),), generator=g)]),
                      "cpu")
        with torch.no_grad():
            probs = F.softmax((model if mean_teacher is None else mean_teacher)(weak(u, g_views)), dim=1)
            if variant == "align":
                state["mean"] = 0.999 * state["mean"] + 0.001 * probs.mean(0)
                probs = probs / (n_classes * state["mean"])
                probs = probs / probs.sum(1, keepdim=True)
            target, mask = pseudo(probs)
        s = strong(V.to_float(u, "cpu", True), g_views)
        logits = model(torch.cat([x, s]))
        lx, ls = logits[: len(y)], logits[len(y):]
        return F.cross_entropy(lx, y) + cfg.fixmatch_weight * (F.cross_entropy(ls, target, reduction="none")
                                                               * mask).mean()

    fill = V._fill_resample
    t = time.time()
    with contextlib.ExitStack() as patches:
        if variant == "sgd":
            patches.enter_context(mock.patch.object(torch.optim, "AdamW", sgd))
        if variant == "black":  # the strong view's grey (0.5) fill becomes black; the weak view reflects
            patches.enter_context(mock.patch.object(
                V, "_fill_resample", lambda x, theta, value, *a: fill(x, theta, 0.0 if value == 0.5 else value, *a)))
        res = P.fit_classifier(model, train, idx, test, cfg, seed, weak, "cpu", loss_fn=loss_fn, val=val,
                               ema=cfg.fixmatch_ema)
    return {"variant": variant, "test": round(res["test_acc"] * 100, 2), "val": round(res["val_acc"] * 100, 2),
            "epochs": res["epochs"], "pseudo_used": round(pseudo.rate(), 3), "converged": res["converged"],
            "seconds": round(time.time() - t), "val_curve": [round(p["val_acc"] * 100, 2) for p in res["curve"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--labels", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    a = ap.parse_args()
    variants = a.variants.split(",")
    if unknown := {v for v in variants if "=" not in v} - set(VARIANTS):
        ap.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    encoder, info = load_encoder(a.run)
    splits = load_data(info["data"], None, kind="image")
    kind = kind_adapter("image")
    train, test = kind.labelled(splits.train, info), kind.labelled(splits.test, info)
    n_classes = len(splits.train.classes)
    cfg = EvalConfig()
    val, pool = validation_split(train.y, cfg.val_items)
    idx = pool[label_subset(train.y[pool], a.labels, a.seed, num_classes=n_classes)]
    t = time.time()
    tuned = P.finetune(encoder, train, idx, test, cfg, a.seed, n_classes, None, "cpu", val=val)
    print(json.dumps({"variant": "finetune (the start of every variant)", "test": round(tuned["test_acc"] * 100, 2),
                      "labels": len(idx), "seconds": round(time.time() - t)}), flush=True)
    for variant in variants:
        print(json.dumps(run_variant(variant, tuned["model"], train, idx, test, val, cfg, a.seed, n_classes)),
              flush=True)


if __name__ == "__main__":
    main()
