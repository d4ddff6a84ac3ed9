"""The setfit protocol (SetFit's contrastive fine-tuning, then logistic regression on the tuned embeddings): its pair
generation, and learning on real images that frozen features of the same network do not show."""
import numpy as np
import torch
from torch import nn
from sklearn.linear_model import LogisticRegression

from sslab import EvalConfig, build_backbone
from sslab.data import label_subset
from sslab.evaluate import PROTOCOLS, check_names
from sslab.evaluate.protocols import extract_features, setfit, setfit_pairs, setfit_steps
from sslab.methods.base import ImageEncoder


def test_pairs_follow_setfits_num_iterations():
    """Each iteration pairs every labelled item once with its own class and once with another."""
    y = np.array([0, 0, 0, 1, 1, 2])
    first, second, target = setfit_pairs(y, iterations=3, rng=np.random.default_rng(0))
    assert len(first) == len(second) == len(target) == 2 * 3 * len(y)
    assert np.array_equal(np.bincount(first, minlength=len(y)), np.full(len(y), 6))
    same = y[first] == y[second]
    assert np.array_equal(same, target == 1.0) and target.mean() == 0.5
    assert setfit_steps(70, EvalConfig()) == 175  # SST-2 at 1%: 2 x 20 x 70 pairs, batch 16 (under the cap)


def test_setfit_is_a_registered_planned_protocol():
    assert not PROTOCOLS["setfit"].frozen
    check_names(EvalConfig(protocols=["knn", "setfit"]))
    assert PROTOCOLS["setfit"].cost(70, EvalConfig()) == (175, 32, 0)


def test_setfit_tunes_embeddings_that_separate_classes(digits):
    """A random network's embeddings of digits, tuned on pairs of 10% of the labels, then logistic regression:
    measured 0.49 frozen -> 0.90 tuned (lr 1e-3, 5 iterations, 4.5 s)."""
    torch.manual_seed(0)
    encoder = ImageEncoder(build_backbone("resnet-xs", 1)).eval()
    idx = label_subset(digits.train.y, 0.1, seed=0)
    cfg = EvalConfig(setfit_iterations=5, setfit_lr=1e-3)
    res = setfit(encoder, digits.train, idx, digits.test, cfg, seed=0, n_classes=10)
    ftr = extract_features(encoder, digits.train)[idx].numpy()
    frozen = LogisticRegression(max_iter=1000).fit(ftr, digits.train.y[idx]).score(
        extract_features(encoder, digits.test).numpy(), digits.test.y)
    assert res["steps"] == setfit_steps(len(idx), cfg) and res["curve"] is None
    assert res["test_acc"] > frozen + 0.05, (frozen, res["test_acc"])


def test_setfit_steps_are_capped_as_setfits_max_steps():
    """100% of SST-2 (7,792 labels) would be 19,480 steps; the cap keeps it at max_steps, 0 lifts the cap."""
    assert setfit_steps(7792, EvalConfig()) == EvalConfig().setfit_max_steps == 250
    assert setfit_steps(7792, EvalConfig(setfit_max_steps=0)) == 19480
    assert setfit_steps(16, EvalConfig()) == 40  # 8 per class of two classes: under the cap


def test_pseudo_labels_are_the_heads_most_confident_items_of_each_class_in_equal_numbers():
    from sslab.evaluate.protocols import pseudo_labelled

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (20, 2)), rng.normal(2, 1, (20, 2))])
    head = LogisticRegression().fit(x, np.repeat([3, 7], 20))
    u = np.concatenate([rng.normal(-2, 1, (300, 2)), rng.normal(2, 1, (30, 2))])  # mostly class 3
    xu, yu = pseudo_labelled(head, u, per_class=50)
    assert np.array_equal(np.bincount(yu, minlength=8)[[3, 7]], [30, 30])  # as many of each class: the fewer's
    p = head.predict_proba(u).max(1)
    chosen = p[[int(np.flatnonzero((u == row).all(1))[0]) for row in xu[yu == 3]]]
    assert chosen.min() >= np.sort(p[head.predict(u) == 3])[-30]  # the most confident of class 3


def test_setfit_head_learns_from_pseudo_labelled_items_too(digits):
    torch.manual_seed(0)
    encoder = ImageEncoder(build_backbone("resnet-xs", 1)).eval()
    idx = label_subset(digits.train.y, 0.1, seed=0)
    cfg = EvalConfig(setfit_iterations=2, setfit_lr=1e-3, setfit_pseudo=20, setfit_pool=500)
    res = setfit(encoder, digits.train, idx, digits.test, cfg, seed=0, n_classes=10)
    assert 0 < res["pseudo_labelled"] <= 200 and 0 <= res["supervised_test_acc"] <= 1


class _Vectors:
    """Items that are their own features (an identity encoder reads them)."""

    def __init__(self, x, y):
        self.x, self.y = torch.as_tensor(x, dtype=torch.float32), np.asarray(y)

    def __len__(self):
        return len(self.x)

    def batch(self, i):
        return self.x[torch.as_tensor(i, dtype=torch.long)]


def test_class_names_join_the_labels_only_when_they_classify_as_well():
    """SetFit's templated examples are used when the class names classify the labelled items (nearest template)
    not worse, beyond the noise (NAMES_Z standard errors), than the labelled items' leave-one-out nearest class mean:
    names that point at the classes pass, names that point elsewhere do not."""
    from sslab.evaluate.protocols import names_informative

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 8)
    x = np.eye(3)[y] * 3 + rng.normal(0, 0.3, (24, 3))  # three well-separated classes
    train = _Vectors(x, y)
    good = _Vectors(np.eye(3), [0, 1, 2])
    ok, names, labels = names_informative(nn.Identity(), train, np.arange(24), good, seed=0)
    assert ok and names == labels == 1.0
    shuffled = _Vectors(np.eye(3)[[1, 2, 0]], [0, 1, 2])  # each name sits on another class
    ok, names, labels = names_informative(nn.Identity(), train, np.arange(24), shuffled, seed=0)
    assert not ok and names == 0.0 and labels == 1.0
    # one label of class 2: it is left out of the leave-one-out count, the others still compare
    ok, names, labels = names_informative(nn.Identity(), train, np.r_[0:16, 16], good, seed=0)
    assert ok and labels == 1.0
