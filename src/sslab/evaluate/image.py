"""What the transfer harness needs to know about images: the labelled split as it is, mild supervised augmentation
for the scratch+aug baseline (random crop 0.6-1.0 of the area, flips), and raw pixels as the no-learning baseline
(logistic regression on them)."""
from __future__ import annotations

import numpy as np
import torch

from sslab.views import image as image_views

RAW_BASELINE = "pixels"
RAW_NOTE = "pixels: logistic regression on raw pixels"


def labelled(split, info: dict):
    if split.x.shape[1:] != (info["image_size"], info["image_size"], info["in_chans"]):
        from sslab.errors import SslabError

        raise SslabError(f"images of shape {split.x.shape[1:]} do not match the run's "
                         f"{info['image_size']}x{info['image_size']}x{info['in_chans']}")
    return split


def augmenter(info: dict, device):
    aug = image_views.Augment(image_views.supervised_config(info["image_size"]))

    def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return aug(image_views.to_float(batch, device, True), generator)

    return augment


def raw_features(train, test) -> tuple[torch.Tensor, torch.Tensor]:
    flat = lambda x: torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255)  # noqa: E731
    return flat(train.x), flat(test.x)


def raw_probe(feats, idx, y_train, y_test, cfg, seed: int, n_classes: int) -> dict:
    from sslab.evaluate.protocols import linear_probe

    train_f, test_f = feats
    return linear_probe(train_f[idx], y_train, test_f, y_test, cfg, seed, n_classes)


def describe(split) -> dict:
    return {"shape": list(split.x.shape[1:])}
