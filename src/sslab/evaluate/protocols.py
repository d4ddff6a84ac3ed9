"""The transfer protocols, for any data kind: weighted kNN and a linear probe on frozen features, and fine-tuning
an encoder with a linear task head. An encoder maps a raw batch of its data kind (`data.batch(idx)`) to features
(B, dim); supervised runs record train and test accuracy along the way."""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslab.config import EvalConfig
from sslab.engine import to_device


def by_length(data, idx: torch.Tensor) -> torch.Tensor:
    """`idx` grouped by item length when the data kind has lengths (text: a batch is padded to its longest item,
    so batching similar lengths avoids computing on padding), else as given."""
    lengths = getattr(data, "lengths", None)
    return idx if lengths is None else idx[torch.argsort(torch.as_tensor(lengths)[idx], stable=True)]


@torch.no_grad()
def extract_features(encoder: nn.Module, data, device="cpu", batch: int = 1024) -> torch.Tensor:
    """Frozen features of every item of `data`, eval mode, as a float tensor on the CPU."""
    was_training = encoder.training
    encoder.eval().to(device)
    order = by_length(data, torch.arange(len(data)))
    feats = [encoder(to_device(data.batch(order[i : i + batch]), device)).float().cpu()
             for i in range(0, len(order), batch)]
    encoder.train(was_training)
    out = torch.cat(feats)
    return out[torch.argsort(order)]  # back to the items' order


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


def logistic_cv(x_train, y_train, x_test, y_test, seed: int, grid: tuple[float, ...], default_c: float) -> dict:
    """scikit-learn logistic regression with its inverse L2 strength C chosen from `grid` by stratified 3-fold
    cross-validation on the labelled items alone (`default_c` when a class has fewer than 3 of them)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    clf = LogisticRegression(C=default_c, max_iter=3000)
    with warnings.catch_warnings():  # a label or two of each of many classes (TREC's 50) is what few labels means
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
        if int(np.bincount(y_train).min()) >= 3:
            folds = StratifiedKFold(3, shuffle=True, random_state=seed)
            clf = GridSearchCV(clf, {"C": list(grid)}, cv=folds).fit(x_train, y_train).best_estimator_
        else:
            clf.fit(x_train, y_train)
    return {"train_acc": float((clf.predict(x_train) == y_train).mean()),
            "test_acc": float((clf.predict(x_test) == y_test).mean()), "curve": None}


# C grid for standardised dense features. Measured on SST-2 at 1% labels (69 sentences), 5 seeds, features of a
# tiny GPT: the AdamW probe below (lr 1e-2, wd 1e-3, 100 epochs) fits the 69 examples exactly and tests lower.
LINEAR_CV_GRID = (0.001, 0.01, 0.1, 1.0)


def linear_probe(train_f, train_y, test_f, test_y, cfg: EvalConfig, seed: int, n_classes: int) -> dict:
    """Softmax regression on standardised frozen features (also used on raw pixels: logistic regression); with
    `cfg.linear_cv` scikit-learn's logistic regression with its L2 strength chosen by cross-validation instead."""
    mu, sd = train_f.mean(0), train_f.std(0) + 1e-6
    xtr, xte = (train_f - mu) / sd, (test_f - mu) / sd
    if cfg.linear_cv:
        return logistic_cv(xtr.numpy(), train_y, xte.numpy(), test_y, seed, LINEAR_CV_GRID, default_c=0.1)
    g = torch.Generator().manual_seed(seed)
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


def finetune(encoder: nn.Module, train, idx: np.ndarray, test, cfg: EvalConfig, seed: int, n_classes: int,
             augment=None, device="cpu", val=None) -> dict:
    """Train `encoder` (a copy) plus a linear task head on the labelled items `idx` of `train`; returns final
    train/test accuracy and per-epoch curves (test curve on a fixed subset of `cfg.curve_test_images`), and the
    trained classifier as "model" (the teacher of `self_train`; not saved).
    `augment(raw_batch, generator)`: the data kind's supervised augmentation, or None; `val`: validation items of
    `train` (`fit_classifier`)."""
    torch.manual_seed(seed)
    model = nn.Sequential(copy.deepcopy(encoder), nn.Linear(encoder.dim, n_classes))
    return {**fit_classifier(model, train, idx, test, cfg, seed, augment, device, val=val), "model": model}


def self_train(encoder: nn.Module, train, idx: np.ndarray, test, cfg: EvalConfig, seed: int, n_classes: int,
               augment=None, device="cpu", teacher: nn.Module | None = None, val=None) -> dict:
    """The unlabelled training data used again after fine-tuning (SimCLR v2's distillation, Chen et al. 2020): the
    fine-tuned `teacher` (the finetune protocol's model for the same labels and seed; trained here when None) gives
    every training item its class probabilities at temperature `cfg.selftrain_temperature`; a student -- a fresh
    copy of the same pretrained encoder with a new head -- learns them on every item (the labelled ones keep their
    true labels) for `cfg.selftrain_images` images, with the data kind's supervised augmentation. Train accuracy is
    the student's on the labelled items. The validation items `val` are left out of the student's data."""
    if teacher is None:
        teacher = finetune(encoder, train, idx, test, cfg, seed, n_classes, None, device, val=val)["model"]
    every = np.setdiff1d(np.arange(len(train)), [] if val is None else val)
    logits = extract_features(teacher, train, device)  # the teacher's class scores of every training item
    soft = F.softmax(logits / cfg.selftrain_temperature, dim=1)
    soft[torch.as_tensor(idx)] = F.one_hot(torch.as_tensor(train.y[idx]), n_classes).float()
    soft = soft.to(device)
    torch.manual_seed(seed)
    student = nn.Sequential(copy.deepcopy(encoder), nn.Linear(encoder.dim, n_classes))
    budget = cfg.model_copy(update={"finetune_images": cfg.selftrain_images, "finetune_epochs": 1_000_000})
    out = fit_classifier(student, train, every, test, budget, seed, augment, device,
                         loss_fn=lambda x, b: -(soft[b] * F.log_softmax(student(x), dim=1)).sum(1).mean(),
                         by_index=True, val=val)
    return {**out, "train_acc": evaluate_accuracy(student, train, torch.as_tensor(idx), device),
            "agreement": float((logits.argmax(1) == torch.as_tensor(train.y)).float().mean())}


def fixmatch(encoder: nn.Module, train, idx: np.ndarray, test, cfg: EvalConfig, seed: int, n_classes: int,
             augment=None, device="cpu", val=None, views=None, teacher: nn.Module | None = None) -> dict:
    """Consistency training on the unlabelled training items (FixMatch, Sohn et al. 2020; FreeMatch's thresholds
    with `cfg.fixmatch_adaptive`), for any data kind: `views` = (weak, strong), the kind's two views of a raw batch.
    It starts from `teacher`, the encoder fine-tuned with its head on the same labels (the finetune protocol's model
    for the same subset; trained here when None), as SimCLR v2 uses the unlabelled data after fine-tuning: its
    predictions are confident from the first step, where a fresh head's are not (on Fashion-MNIST at 1% the first
    third of a run from the pretrained encoder went to reaching the fine-tuned accuracy, 2026-12-06).
    A copy of it learns each step from a weak view of `batch_size` labelled items
    (cross-entropy) and, for `fixmatch_ratio` times as many unlabelled items (every training item but the
    validation ones, drawn at random), from the class its weak view is predicted as (no gradient), where that
    prediction is confident (`PseudoLabels`), by cross-entropy on a strong view, weighted `fixmatch_weight`.
    The weights' moving average (`fixmatch_ema`) is validated by `fit_classifier`'s plateau rule and kept, and
    returned as "model" (what `sslab evaluate --save-model` keeps)."""
    weak, strong = views
    if teacher is None:
        teacher = finetune(encoder, train, idx, test, cfg, seed, n_classes, None, device, val=val)["model"]
    torch.manual_seed(seed)
    model = copy.deepcopy(teacher)
    pool = torch.as_tensor(np.setdiff1d(np.arange(len(train)), [] if val is None else val))
    g = torch.Generator().manual_seed(seed + 1)
    g_views = torch.Generator(device=device).manual_seed(seed + 2)
    pseudo = PseudoLabels(n_classes, cfg.fixmatch_threshold, cfg.fixmatch_adaptive, device)

    def loss_fn(x, y):
        u = to_device(train.batch(pool[torch.randint(len(pool), (cfg.fixmatch_ratio * len(y),), generator=g)]),
                      device)
        with torch.no_grad():
            target, mask = pseudo(F.softmax(model(weak(u, g_views)), dim=1))
        s = strong(u, g_views)
        if isinstance(x, torch.Tensor):  # one forward pass: batch-norm statistics over both, as FixMatch
            logits = model(torch.cat([x, s]))
            lx, ls = logits[: len(y)], logits[len(y):]
        else:  # text batches are padded to their own lengths
            lx, ls = model(x), model(s)
        return F.cross_entropy(lx, y) + cfg.fixmatch_weight * (F.cross_entropy(ls, target, reduction="none")
                                                               * mask).mean()

    out = fit_classifier(model, train, idx, test, cfg, seed, weak, device, loss_fn=loss_fn, val=val,
                         ema=cfg.fixmatch_ema)
    return {**out, "pseudo_rate": pseudo.rate(), "model": model}


class PseudoLabels:
    """Pseudo-labels of unlabelled items from their predicted class probabilities: the most likely class, used
    where its probability reaches a threshold -- fixed (FixMatch: 0.95), or FreeMatch's self-adaptive one (Wang et
    al. 2023: a global confidence tau_t and per-class confidences p_t, exponential averages of the batches'
    mean highest probability and mean probabilities from 1/C, momentum 0.999; class c's threshold tau_t *
    p_t(c) / max p_t). `rate()`: the share of items used so far."""

    def __init__(self, n_classes: int, threshold: float, adaptive: bool, device, momentum: float = 0.999):
        self.threshold, self.adaptive, self.m = threshold, adaptive, momentum
        self.tau = torch.tensor(1.0 / n_classes, device=device)
        self.p = torch.full((n_classes,), 1.0 / n_classes, device=device)
        self.used, self.seen = torch.zeros((), device=device), 0

    def __call__(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        conf, target = probs.max(1)
        if self.adaptive:
            self.tau = self.m * self.tau + (1 - self.m) * conf.mean()
            self.p = self.m * self.p + (1 - self.m) * probs.mean(0)
            mask = conf >= (self.tau * self.p / self.p.max())[target]
        else:
            mask = conf >= self.threshold
        self.used += mask.sum()
        self.seen += len(mask)
        return target, mask.float()

    def rate(self) -> float:
        return float(self.used) / max(1, self.seen)


def fixmatch_cost(n_labels: int, cfg: EvalConfig) -> tuple[int, int, int]:
    """(steps, items per step, validation checks) of a `fixmatch` run, for a study's plan: under the plateau rule
    FIXMATCH_CHECKS checks (else `run_estimate`'s steps) at the labelled batch, each step training on
    (1 + ratio) x batch items and predicting ratio x batch more (counted at a third of a training item: a forward
    pass without gradients)."""
    steps, bs, checks = run_estimate(n_labels, cfg, FIXMATCH_CHECKS)
    return steps, round(bs * (1 + cfg.fixmatch_ratio * 4 / 3)), checks


def setfit_pairs(y: np.ndarray, iterations: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """SetFit's pair generation with its `num_iterations` semantics (Tunstall et al. 2022): in each iteration every
    labelled item is paired with one random item of its own class (target 1) and one of another class (target 0).
    Returns (first, second, target) over positions in `y`, 2 * iterations * len(y) pairs in a random order."""
    same = {c: np.flatnonzero(y == c) for c in np.unique(y)}
    other = {c: np.flatnonzero(y != c) for c in np.unique(y)}
    first = np.tile(np.repeat(np.arange(len(y)), 2), iterations)
    second = np.array([rng.choice(same[y[i]]) if k % 2 == 0 else rng.choice(other[y[i]])
                       for k, i in enumerate(first)], dtype=np.int64)
    target = np.tile(np.array([1.0, 0.0], dtype=np.float32), iterations * len(y))
    order = rng.permutation(len(first))
    return first[order], second[order], target[order]


def setfit_steps(n_labels: int, cfg: EvalConfig) -> int:
    """Optimiser steps of one `setfit` run on `n_labels` items (each step encodes 2 x cfg.setfit_batch items)."""
    steps = math.ceil(2 * cfg.setfit_iterations * n_labels * cfg.setfit_epochs / cfg.setfit_batch)
    return min(steps, cfg.setfit_max_steps) if cfg.setfit_max_steps else steps


def setfit_tune(encoder: nn.Module, train, idx: np.ndarray, cfg: EvalConfig, seed: int, device="cpu"):
    """SetFit's contrastive step: a copy of `encoder` tuned on pairs of the labelled items `idx` (`setfit_pairs`;
    the cosine similarity of their embeddings regressed onto 1 for one class, 0 for two, as sentence-transformers'
    CosineSimilarityLoss), AdamW at `cfg.setfit_lr` with 10% linear warm-up and linear decay. Returns (the tuned
    model in eval mode, its steps, its pairs, the generator that drew the pairs, for what follows)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(encoder).to(device).train()
    first, second, target = setfit_pairs(train.y[idx], cfg.setfit_iterations, rng)
    bs, steps = cfg.setfit_batch, setfit_steps(len(idx), cfg)
    warm = max(1, steps // 10)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.setfit_lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
    for s in range(steps):
        b = np.arange(s * bs, (s + 1) * bs) % len(first)  # epochs beyond the first reuse the pairs in order
        u = model(to_device(train.batch(idx[first[b]]), device))
        v = model(to_device(train.batch(idx[second[b]]), device))
        loss = F.mse_loss(F.cosine_similarity(u, v), torch.as_tensor(target[b], device=u.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval(), steps, len(first), rng


def setfit(encoder: nn.Module, train, idx: np.ndarray, test, cfg: EvalConfig, seed: int, n_classes: int,
           augment=None, device="cpu", val=None) -> dict:
    """SetFit (Tunstall et al. 2022): `setfit_tune` (SetFit's defaults are batch 16, one epoch, lr 2e-5), then
    logistic regression on the tuned embeddings of the labelled items -- and, with `cfg.setfit_pseudo`, of the
    unlabelled items that head labels most confidently (`pseudo_labelled`, out of `cfg.setfit_pool` drawn from the
    training items that are neither labelled nor validation items). Where the data kind gives each class a
    templated example (`train.templates`: text whose class names are words), `cfg.setfit_templates` copies of each
    join the labelled items in both steps (SetFit's `get_templated_dataset`). Any encoder of any data kind. A fixed
    budget: no validation items are used, and it is not judged for convergence."""
    from sklearn.linear_model import LogisticRegression

    data, lidx = train, idx  # the labelled items (and the templated ones) the encoder and the head learn from
    templates = getattr(train, "templates", None) if cfg.setfit_templates else None
    names = None if templates is None else names_informative(encoder, train, idx, templates, seed, device)
    if names is not None and names[0]:
        data = train.rows(idx, *[templates] * cfg.setfit_templates)
        lidx = np.arange(len(data))
    model, steps, n_pairs, rng = setfit_tune(encoder, data, lidx, cfg, seed, device)
    y = data.y[lidx]
    ftr = extract_features(model, _Subset(data, lidx), device).numpy()
    fte = extract_features(model, test, device).numpy()
    head = LogisticRegression(max_iter=1000, random_state=seed).fit(ftr, y)
    out = {"train_acc": float(head.score(ftr, y)), "curve": None, "steps": steps, "pairs": int(n_pairs),
           "templated": int(len(y) - len(idx))}
    if names is not None:
        out["names_zero_shot"], out["labels_loo"] = names[1], names[2]
    if cfg.setfit_pseudo:
        pool = np.setdiff1d(np.arange(len(train)), np.concatenate([idx, [] if val is None else val]).astype(int))
        pool = rng.permutation(pool)[: cfg.setfit_pool]
        fu = extract_features(model, _Subset(train, pool), device).numpy()
        out["supervised_test_acc"] = float(head.score(fte, test.y))
        head, out["pseudo_labelled"] = pseudo_head(head, ftr, y, fu, cfg.setfit_pseudo, seed)
    return {**out, "test_acc": float(head.score(fte, test.y))}


NAMES_Z = 1.28  # SetFit's templated examples join the labels unless the class names classify the labelled items
# (nearest template) worse than the labelled items classify each other (leave-one-out nearest class mean) at 90%
# one-sided confidence (a z-test of the two accuracies). MiniLM, frozen, the study's label subsets (2026-12-06): SST-2
# ("negative"/"positive") names 0.67-0.81 against labels 0.63-0.88 at 8 per class and 1% (all pass), and the templates
# added +4.9 points at 8 per class; TREC ("human", "location", ...) names 0.25-0.48 against labels 0.51-0.65, 1.4 to
# 2.7 standard errors below (all fail), and the templates cost 3.8 points at 1% (one subset)
NAMES_ITEMS = 1000  # labelled items the check embeds at most


def names_informative(encoder: nn.Module, train, idx: np.ndarray, templates, seed: int, device="cpu"):
    """(whether the class names say as much as the labels, the names' accuracy, the labels' accuracy) on up to
    NAMES_ITEMS labelled items `idx` of `train`, with the frozen `encoder`: each item's nearest templated example
    (`templates`, one per class) by cosine similarity, against its nearest class mean of the other labelled items;
    the names pass unless they are below the labels by more than NAMES_Z standard errors of the difference.
    Items alone in their class are left out of the second; with none left, the names are all there is."""
    idx = np.random.default_rng(seed).permutation(np.asarray(idx))[:NAMES_ITEMS]
    x = F.normalize(extract_features(encoder, _Subset(train, idx), device), dim=1)
    t = F.normalize(extract_features(encoder, templates, device), dim=1)
    y = torch.as_tensor(train.y[idx], dtype=torch.long)
    names = float(((x @ t.T).argmax(1) == y).float().mean())
    k = len(templates)
    sums, counts = torch.zeros(k, x.shape[1]).index_add_(0, y, x), torch.bincount(y, minlength=k).float()
    sim = x @ F.normalize(sums / counts.clamp(min=1)[:, None], dim=1).T
    own = (sums[y] - x) / (counts[y] - 1).clamp(min=1)[:, None]  # each item's class mean without it
    sim[torch.arange(len(y)), y] = (x * F.normalize(own, dim=1)).sum(1)
    sim[:, counts == 0] = -2.0
    keep = counts[y] > 1
    labels = float((sim.argmax(1) == y)[keep].float().mean()) if keep.any() else 0.0
    se = math.sqrt(names * (1 - names) / len(y) + (labels * (1 - labels) / int(keep.sum()) if keep.any() else 0.0))
    return names >= labels - NAMES_Z * se, names, labels


def pseudo_head(head, features: np.ndarray, y: np.ndarray, unlabelled: np.ndarray, per_class: int, seed: int):
    """(logistic regression on the labelled `features`, `y` and the `per_class` items of each class of `unlabelled`
    that `head` labels most confidently (`pseudo_labelled`), how many pseudo-labelled items it learnt from)."""
    from sklearn.linear_model import LogisticRegression

    xu, yu = pseudo_labelled(head, unlabelled, per_class)
    new = LogisticRegression(max_iter=1000, random_state=seed).fit(np.concatenate([features, xu]),
                                                                   np.concatenate([y, yu]))
    return new, int(len(yu))


def pseudo_labelled(head, features: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The `per_class` unlabelled items of each class that `head` (a fitted scikit-learn classifier) predicts as
    that class most confidently, with those classes as labels: as many of each class, so that the head's bias
    towards one class is not fed back to it."""
    probs = head.predict_proba(features)
    pred = probs.argmax(1)
    mine = [np.flatnonzero(pred == k) for k in range(len(head.classes_))]
    n = min(per_class, *(len(m) for m in mine))
    keep = [m[np.argsort(-probs[m, k])[:n]] for k, m in enumerate(mine)]
    keep = np.concatenate(keep)
    return features[keep], head.classes_[pred[keep]]


class _Subset:
    """The items `idx` of a data kind's labelled split, as a split (batch, lengths, len)."""

    def __init__(self, data, idx: np.ndarray):
        self.data, self.idx = data, torch.as_tensor(np.asarray(idx), dtype=torch.long)
        lengths = getattr(data, "lengths", None)
        if lengths is not None:
            self.lengths = torch.as_tensor(lengths)[self.idx]

    def __len__(self) -> int:
        return len(self.idx)

    def batch(self, i):
        return self.data.batch(self.idx[torch.as_tensor(i, dtype=torch.long)])


# Validation checks a fine-tune run under the plateau rule (eval.finetune_until=plateau) makes before it stops:
# the rule's check interval is known, the count is measured. resnet-s2 on Fashion-MNIST, the default study at
# --time 15m, 2026-12-06: 8-15 checks at 580 labels (mean 10.3; ssl 12, scratch+aug 12), 8-24 at 5,800 (mean 14);
# digits 6-8. The plan corrects its estimates by what the study's own runs measure.
PLATEAU_CHECKS = 12
# A fixmatch run keeps gaining on its validation items for longer: 7-24 checks, mean 16.9, over the 13 converged
# fixmatch runs of two studies at 1% labels (2026-12-06: Fashion-MNIST --time 45m, 9 runs, mean 17.4; CIFAR-10
# --time 30m, 4 runs, mean 16), measured at 1% only. Counted at PLATEAU_CHECKS, the 45-minute study planned 33.5
# minutes and took 43.1.
FIXMATCH_CHECKS = 17


TRAIN_ACC_ITEMS = 10_000  # final train accuracy on a fixed sample of at most this many labelled items (a ViT on the
# CPU spends 2 minutes reading all 60,000 Fashion-MNIST images once more)


def plateau_steps(n_labels: int, cfg: EvalConfig) -> tuple[int, int, int]:
    """(batch size, most optimiser steps, steps between validation checks) of a plateau-rule run on `n_labels`
    labelled items: a check every `check_images` images, at least an epoch apart, and at least 20 checks within the
    cap (a handful of labels in small batches would otherwise reach the cap before a second check)."""
    bs = min(cfg.batch_size, n_labels)
    per_epoch = math.ceil(n_labels / bs)
    cap = max(cfg.finetune_min_steps, min(cfg.finetune_epochs * per_epoch, math.ceil(cfg.finetune_images / bs)))
    check = max(per_epoch, min(math.ceil(cfg.check_images / bs), cap // 20))
    return bs, cap, check


def plateau_estimate(n_labels: int, cfg: EvalConfig, checks: int = PLATEAU_CHECKS) -> tuple[int, int, int]:
    """(optimiser steps, batch size, validation checks) a plateau-rule run on `n_labels` items is expected to take:
    `checks` checks, at least `finetune_min_steps`, at most the cap."""
    bs, cap, check = plateau_steps(n_labels, cfg)
    steps = min(cap, max(cfg.finetune_min_steps, checks * check))
    return steps, bs, max(1, steps // check)


def budget_estimate(n_labels: int, cfg: EvalConfig) -> tuple[int, int, int]:
    """(optimiser steps, batch size, curve points) of a fixed-budget run (`finetune_until="budget"`, or no
    validation items) on `n_labels` items: its epochs from `finetune_images`, at least `finetune_min_steps`."""
    bs = min(cfg.batch_size, n_labels)
    per_epoch = math.ceil(n_labels / bs)
    epochs = max(1, min(cfg.finetune_epochs, cfg.finetune_images // n_labels))
    steps = max(epochs, math.ceil(cfg.finetune_min_steps / per_epoch)) * per_epoch
    if cfg.finetune_images < n_labels:
        steps = max(cfg.finetune_min_steps, math.ceil(cfg.finetune_images / bs))
    return steps, bs, cfg.curve_points


def run_estimate(n_labels: int, cfg: EvalConfig, checks: int = PLATEAU_CHECKS) -> tuple[int, int, int]:
    """(optimiser steps, batch size, validation checks or curve points) a `fit_classifier` run is expected to take,
    by the rule it trains under (`checks`: validation checks a plateau-rule run makes)."""
    if cfg.finetune_until == "plateau" and cfg.val_items > 0:
        return plateau_estimate(n_labels, cfg, checks)
    return budget_estimate(n_labels, cfg)


def fit_classifier(model: nn.Module, train, idx: np.ndarray, test, cfg: EvalConfig, seed: int, augment=None,
                   device="cpu", loss_fn=None, by_index: bool = False, val=None, ema: float = 0.0) -> dict:
    """Train `model` (raw batch -> class scores) in place on the items `idx` of `train`, by cross-entropy on its
    scores or by `loss_fn(batch, y)` (`by_index`: y is the batch's item indices), with AdamW; returns final
    train/test accuracy, the curves, and whether the run converged.

    `cfg.finetune_until == "plateau"` with validation items `val` (of `train`, never trained on): a warm-up, then a
    constant rate until accuracy on `val` has not gained more than `cfg.finetune_min_delta` over its best for
    `cfg.finetune_patience` checks (`plateau_steps`; at least `finetune_min_steps` steps in): a plateau. At a
    plateau the rate is divided by 10, up to `cfg.finetune_lr_drops` times, and the next plateau ends the run
    ("converged": True); with `cfg.finetune_cooldown` > 0 (warm-up, stable, decay) the rate instead decays linearly
    to 0 over that fraction of the steps so far, and the run ends converged. The best weights on `val` are kept. A
    run that reaches the cap (`finetune_epochs`, `finetune_images`) first is not converged.

    Otherwise ("budget", or no `val`): a one-cycle schedule over the cap -- epochs from the label count, part of
    one epoch when there are more labelled items than `finetune_images`, at least `finetune_min_steps` batches --
    and convergence is not judged (None).

    `ema` > 0: an exponential moving average of the weights (decay min(ema, (1 + t) / (10 + t)) at step t) is what
    is validated, kept and returned in `model`."""
    g = torch.Generator().manual_seed(seed)
    model = model.to(device).to(memory_format=torch.channels_last)
    avg = copy.deepcopy(model) if ema > 0 else None
    judged = avg if avg is not None else model  # the weights that are validated and kept
    idx = torch.as_tensor(idx, dtype=torch.long)
    y_all = torch.as_tensor(train.y)
    bs = min(cfg.batch_size, len(idx))
    per_epoch = math.ceil(len(idx) / bs)
    plateau = cfg.finetune_until == "plateau" and val is not None and len(val) > 0
    groups = lr_groups(model, cfg.finetune_lr, cfg.layer_decay)
    opt = torch.optim.AdamW(groups, lr=cfg.finetune_lr, weight_decay=5e-4)
    if plateau:
        bs, steps, check = plateau_steps(len(idx), cfg)
        warm, peak = min(check, 500), [grp["lr"] for grp in groups]
        val = torch.as_tensor(val, dtype=torch.long)
    else:
        epochs = max(1, min(cfg.finetune_epochs, cfg.finetune_images // len(idx)))
        epochs = max(epochs, math.ceil(cfg.finetune_min_steps / per_epoch))  # tiny label sets still train enough
        steps = epochs * per_epoch
        if cfg.finetune_images < len(idx):  # more labelled items than the image budget: part of one epoch
            steps = max(cfg.finetune_min_steps, math.ceil(cfg.finetune_images / bs))
            epochs = math.ceil(steps / per_epoch)
        check = max(1, epochs // cfg.curve_points) * per_epoch
        total = max(4, steps)  # warm-up: 10% of the steps, at least 2 (OneCycleLR divides by its phases)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, [grp["lr"] for grp in groups], total_steps=total,
                                                    pct_start=max(0.1, 2.5 / total))
    curves = seed < cfg.curve_seeds or not plateau  # the report draws seed 0's; a validation check is enough
    g_aug = torch.Generator(device=device).manual_seed(seed)
    sub = torch.as_tensor(np.random.default_rng(0).permutation(len(test))[: cfg.curve_test_images])
    curve, done, perm, pos = [], 0, idx[:0], 0
    best, ref, best_state, bad, drops = -1.0, -1.0, None, 0, 0
    cool_from, cool_end, converged = None, None, None if not plateau else False
    model.train()
    while done < steps:
        if pos >= len(perm):  # a new epoch
            perm, pos = idx[torch.randperm(len(idx), generator=g)], 0
        b = perm[pos : pos + bs]
        pos += bs
        if plateau:
            scale = (min(1.0, (done + 1) / warm) * 0.1 ** drops if cool_from is None
                     else (cool_end - done) / (cool_end - cool_from + 1))  # linear: 0 one step past the end
            for grp, lr in zip(opt.param_groups, peak):
                grp["lr"] = lr * scale
        x, y = to_device(train.batch(b), device), (b if by_index else y_all[b]).to(device)
        if augment is not None:
            x = augment(x, g_aug)
        loss = loss_fn(x, y) if loss_fn is not None else F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if avg is not None:
            ema_update(avg, model, min(ema, (1 + done) / (10 + done)))
        if not plateau:
            sched.step()
        done += 1
        if done % check and done < steps:
            continue
        point = {"epoch": done // per_epoch if done % per_epoch == 0 else round(done / per_epoch, 3)}
        if curves:
            point.update(train_acc=evaluate_accuracy(judged, train, idx[: cfg.curve_test_images], device),
                         test_acc=evaluate_accuracy(judged, test, sub, device))
        if plateau:
            point["val_acc"] = acc = evaluate_accuracy(judged, train, val, device)
            if acc > best:
                best = acc
                best_state = {k: v.detach().clone() for k, v in judged.state_dict().items()}
            if acc > ref + cfg.finetune_min_delta:
                ref, bad = acc, 0
            else:
                bad += 1
            stop = cool_from is not None and done >= cool_end  # the decay is over
            if cool_from is None and bad >= cfg.finetune_patience and done >= cfg.finetune_min_steps:  # a plateau
                if cfg.finetune_cooldown > 0:  # decay over whole checks, then stop
                    cool_from = done
                    cool_end = done + check * max(1, round(cfg.finetune_cooldown * done / check))
                elif drops == cfg.finetune_lr_drops:
                    stop = True
                else:
                    drops, bad, ref = drops + 1, 0, best
            if stop:
                converged = True
                curve.append(point)
                break
        curve.append(point)
        model.train()
    if best_state is None and avg is not None:
        best_state = avg.state_dict()
    if best_state is not None:
        model.load_state_dict(best_state)
    seen = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(0))[:TRAIN_ACC_ITEMS]]
    return {"train_acc": evaluate_accuracy(model, train, seen, device),
            "test_acc": evaluate_accuracy(model, test, torch.arange(len(test)), device), "curve": curve,
            "converged": converged, "val_acc": best if plateau else None, "epochs": round(done / per_epoch, 3)}


@torch.no_grad()
def ema_update(avg: nn.Module, model: nn.Module, decay: float) -> None:
    """avg <- decay * avg + (1 - decay) * model, for parameters and floating-point buffers (batch-norm running
    statistics); integer buffers are copied."""
    for a, m in zip(avg.parameters(), model.parameters()):
        a.lerp_(m, 1 - decay)
    for a, m in zip(avg.buffers(), model.buffers()):
        a.lerp_(m, 1 - decay) if a.is_floating_point() else a.copy_(m)


def lr_groups(model: nn.Module, lr: float, decay: float) -> list[dict]:
    """Parameter groups with layer-wise learning-rate decay (BEiT / MAE fine-tuning) when `model` holds a Vision
    Transformer (a module with `patch_embed` and `blocks`): the embeddings learn at lr * decay^(depth + 1), block i
    at lr * decay^(depth - i), the final norm and the task head at lr. Any other model: one group at lr."""
    vit = next((m for m in model.modules() if hasattr(m, "patch_embed") and hasattr(m, "blocks")), None)
    if vit is None or decay >= 1.0:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    depth = len(vit.blocks)
    layer = {id(p): int(n.split(".")[1]) + 1 if n.startswith("blocks.") else
             depth + 1 if n.startswith(("norm.", "fc_norm.", "head.")) else 0 for n, p in vit.named_parameters()}
    by_layer: dict[int, list] = {}
    for p in model.parameters():
        if p.requires_grad:
            by_layer.setdefault(layer.get(id(p), depth + 1), []).append(p)
    return [{"params": ps, "lr": lr * decay ** (depth + 1 - i)} for i, ps in sorted(by_layer.items())]


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, data, idx, device, batch: int = 1024) -> float:
    """Accuracy of `model` on the items `idx` of `data`, in eval mode (BN running statistics)."""
    model.eval()
    idx = by_length(data, torch.as_tensor(idx, dtype=torch.long))
    y = torch.as_tensor(data.y)
    correct = 0
    for i in range(0, len(idx), batch):
        b = idx[i : i + batch]
        logits = model(to_device(data.batch(b), device))
        correct += (logits.argmax(1).cpu() == y[b]).sum().item()
    model.train()
    return correct / max(1, len(idx))


# An evaluation pass is timed on this many random items, sorted by length and read in batches of EVAL_BATCH, as
# features are extracted: 1,024 items in one unsorted batch priced the MiniLM's features of SST-2 at 2.3x what they
# took (text is padded to a batch's longest item), and their 4 passes cost a text study about 40 s (2026-12-07)
EVAL_ITEMS, EVAL_BATCH = 256, 64


def step_costs(encoder: nn.Module, data, n_classes: int, cfg: EvalConfig, device="cpu", seconds: float = 0.6) -> dict:
    """What a study's plan needs to know about fine-tuning `encoder` on `data` here, timed for about `seconds` each
    after a warm-up step: a training step (forward, backward and AdamW, as `fit_classifier` trains) costs about
    `step` + `train` x its batch seconds (timed at `cfg.batch_size` and at 8 items: small label sets train in
    small batches, where the fixed cost of a step dominates), and an evaluation forward pass `eval` seconds an item
    (`EVAL_ITEMS` in length order, batches of `EVAL_BATCH`). The encoder itself is not changed."""
    import time

    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(copy.deepcopy(encoder), nn.Linear(encoder.dim, n_classes)).to(device)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    y_all = torch.as_tensor(data.y) if getattr(data, "y", None) is not None else None
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    def train_step(bs: int) -> None:
        b = torch.randint(0, len(data), (bs,), generator=g)
        logits = model(to_device(data.batch(b), device))
        y = y_all[b].to(device) if y_all is not None else torch.zeros(len(b), dtype=torch.long, device=device)
        loss = F.cross_entropy(logits, y.clamp(max=n_classes - 1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    n_eval = min(EVAL_ITEMS, len(data))
    eval_idx = by_length(data, torch.randint(0, len(data), (n_eval,), generator=g))

    @torch.no_grad()
    def eval_pass(bs: int) -> None:  # in length order, in batches, as extract_features reads every item
        for i in range(0, n_eval, bs):
            model(to_device(data.batch(eval_idx[i : i + bs]), device)).float().sum().item()

    def per_call(step, bs: int, evaluating: bool, warmup: int = 3) -> float:
        """The median seconds of a call, after `warmup` calls (allocations, kernels chosen for a new shape)."""
        model.train(not evaluating)
        for _ in range(warmup):
            step(bs)
        times, t0 = [], time.perf_counter()
        while time.perf_counter() - t0 < seconds and len(times) < 200:
            t = time.perf_counter()
            step(bs)
            sync()
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    big, small = min(cfg.batch_size, len(data)), min(8, len(data))
    t_big, t_small = per_call(train_step, big, False), per_call(train_step, small, False)
    per_item = max(0.0, (t_big - t_small) / max(1, big - small)) if big > small else t_big / big
    lengths = getattr(data, "lengths", None)  # text: a pass costs about its tokens; the sample's share corrected
    if lengths is not None:
        lengths = torch.as_tensor(lengths, dtype=torch.float64)
    scale = 1.0 if lengths is None else float(lengths.mean() / lengths[eval_idx].mean().clamp(min=1e-9))
    return {"step": max(0.0, t_big - per_item * big), "train": per_item,
            "eval": per_call(eval_pass, EVAL_BATCH, True, warmup=1) / n_eval * scale}
