"""Transfer measurements at label fractions: weighted kNN and a linear probe on frozen features, fine-tuning
with a task head, and the baselines (the same net from scratch with/without augmentation, and logistic
regression on raw pixels). Supervised runs record train and test accuracy per epoch."""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslab import views
from sslab.config import EvalConfig
from sslab.engine import to_float
from sslab.nets import Backbone


@torch.no_grad()
def extract_features(backbone: nn.Module, x: np.ndarray, device="cpu", batch: int = 1024) -> torch.Tensor:
    """Frozen features of uint8 images (N, H, W, C), eval mode, as a float tensor on the CPU."""
    was_training = backbone.training
    backbone.eval().to(device)
    feats = [backbone(to_float(torch.from_numpy(x[i : i + batch]), device)).float().cpu() for i in range(0, len(x), batch)]
    backbone.train(was_training)
    return torch.cat(feats)


@torch.no_grad()
def knn_accuracy(train_f, train_y, test_f, test_y, k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> float:
    """Weighted kNN on cosine similarity (Wu et al. 2018): neighbours vote with weight exp(sim / T)."""
    train_f, test_f = F.normalize(train_f, dim=1), F.normalize(test_f, dim=1)
    train_y, test_y = torch.as_tensor(train_y), torch.as_tensor(test_y)
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    k = min(k, len(train_f))
    correct = 0
    for i in range(0, len(test_f), chunk):
        sim, nn_idx = (test_f[i : i + chunk] @ train_f.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), n_classes).scatter_add_(1, train_y[nn_idx], (sim / temperature).exp())
        correct += (votes.argmax(1) == test_y[i : i + chunk]).sum().item()
    return correct / len(test_f)


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (logits.argmax(1) == y).float().mean().item()


def linear_probe(train_f, train_y, test_f, test_y, cfg: EvalConfig, seed: int, n_classes: int) -> dict:
    """Softmax regression on standardised frozen features (also used on raw pixels: logistic regression)."""
    g = torch.Generator().manual_seed(seed)
    mu, sd = train_f.mean(0), train_f.std(0) + 1e-6
    xtr, xte = (train_f - mu) / sd, (test_f - mu) / sd
    ytr, yte = torch.as_tensor(train_y), torch.as_tensor(test_y)
    torch.manual_seed(seed)
    head = nn.Linear(xtr.shape[1], n_classes)
    bs = min(256, len(xtr))
    per_epoch = math.ceil(len(xtr) / bs)
    epochs = max(3, min(cfg.linear_epochs, cfg.linear_steps // per_epoch))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * per_epoch)
    curve = []
    for epoch in range(epochs):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), bs):
            b = perm[i : i + bs]
            loss = F.cross_entropy(head(xtr[b]), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if epoch == epochs - 1 or (epoch + 1) % max(1, epochs // 20) == 0:
            with torch.no_grad():
                curve.append({"epoch": epoch + 1, "train_acc": _accuracy(head(xtr), ytr), "test_acc": _accuracy(head(xte), yte)})
    return {"train_acc": curve[-1]["train_acc"], "test_acc": curve[-1]["test_acc"], "curve": curve}


def finetune(backbone: Backbone, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
             cfg: EvalConfig, seed: int, n_classes: int, augment: bool, device="cpu") -> dict:
    """Train `backbone` (a copy) plus a linear task head on the labelled images; returns final train/test
    accuracy and per-epoch curves (test curve on a fixed subset of `cfg.curve_test_images`)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(copy.deepcopy(backbone), nn.Linear(backbone.dim, n_classes)).to(device)
    model = model.to(memory_format=torch.channels_last)
    bs = min(cfg.batch_size, len(x_train))
    per_epoch = math.ceil(len(x_train) / bs)
    epochs = max(1, min(cfg.finetune_epochs, cfg.finetune_images // len(x_train)))
    epochs = max(epochs, math.ceil(cfg.finetune_min_steps / per_epoch))  # tiny label sets still train enough
    curve_every = max(1, epochs // cfg.curve_points)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.finetune_lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.finetune_lr, total_steps=epochs * per_epoch, pct_start=0.1)
    aug = views.Augment(views.supervised_config(x_train.shape[1])).to(device) if augment else None
    g_aug = torch.Generator(device=device).manual_seed(seed)
    xtr, ytr = torch.from_numpy(np.ascontiguousarray(x_train)), torch.as_tensor(y_train)
    sub = np.random.default_rng(0).permutation(len(x_test))[: cfg.curve_test_images]
    curve = []
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), bs):
            b = perm[i : i + bs]
            x, y = to_float(xtr[b], device, True), ytr[b].to(device)
            if aug is not None:
                x = aug(x, g_aug)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % curve_every == 0 or epoch == epochs - 1:
            train_acc = _eval(model, x_train, y_train, device, limit=cfg.curve_test_images)
            test_acc = _eval(model, x_test[sub], y_test[sub], device)
            curve.append({"epoch": epoch + 1, "train_acc": train_acc, "test_acc": test_acc})
    return {"train_acc": _eval(model, x_train, y_train, device), "test_acc": _eval(model, x_test, y_test, device),
            "curve": curve}


@torch.no_grad()
def _eval(model: nn.Module, x: np.ndarray, y: np.ndarray, device, limit: int | None = None, batch: int = 1024) -> float:
    """Accuracy in eval mode (BN running statistics), on the first `limit` images if given."""
    model.eval()
    if limit is not None:
        x, y = x[:limit], y[:limit]
    correct = 0
    for i in range(0, len(x), batch):
        logits = model(to_float(torch.from_numpy(x[i : i + batch]), device, True))
        correct += (logits.argmax(1).cpu() == torch.as_tensor(y[i : i + batch])).sum().item()
    model.train()
    return correct / len(x)
