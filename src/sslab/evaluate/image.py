"""What the transfer harness needs to know about images: the labelled split as it is, mild supervised augmentation
for the scratch+aug baseline (random crop 0.6-1.0 of the area, flips), and raw pixels as the no-learning baseline
(logistic regression on them)."""
from __future__ import annotations

import numpy as np
import torch

from sslab.errors import SslabError
from sslab.methods.base import Energy, Reconstructor
from sslab.views import image as image_views

RAW_BASELINE = "pixels"
RAW_NOTE = "pixels: logistic regression on raw pixels"
AUG_NOTE = "random crops of 60-100% of the area (aspect 0.8-1.25) resized back, and horizontal flips"


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


def consistency_views(info: dict, device):
    """(weak, strong) views of raw image batches for consistency training (`fixmatch`): FixMatch's flip and
    translation by up to 12.5%, and its RandAugment + Cutout (views.image.StrongView)."""
    strong = image_views.StrongView()

    def weak_fn(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return image_views.weak_view(image_views.to_float(batch, device, True), generator)

    def strong_fn(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return strong(image_views.to_float(batch, device, True), generator)

    return weak_fn, strong_fn


def raw_features(train, test) -> tuple[torch.Tensor, torch.Tensor]:
    flat = lambda x: torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255)  # noqa: E731
    return flat(train.x), flat(test.x)


def raw_probe(feats, idx, y_train, y_test, cfg, seed: int, n_classes: int) -> dict:
    from sslab.evaluate.protocols import linear_probe

    train_f, test_f = feats
    return linear_probe(train_f[idx], y_train, test_f, y_test, cfg, seed, n_classes)


def describe(split) -> dict:
    return {"shape": list(split.x.shape[1:])}


def _masked_run(run_dir, data: str | None, root, splits=None):
    """(model, info, the test split) of a masked-image run, on `data` (default: the run's own data set, or `splits`
    where the caller has loaded it)."""
    from sslab.data import load_data
    from sslab.engine import load_method
    from sslab.errors import SslabError

    model, info = load_method(run_dir)
    if not isinstance(model, Reconstructor):
        raise SslabError(f"{run_dir} is a {info.get('method')} run; reconstruction needs a masked-image (mae) run")
    if splits is None or data:
        splits = load_data(data or info["data"], root, kind="image")
    split = splits.test if splits.test is not None and len(splits.test) else splits.train
    if split.x.shape[1] != info["image_size"] or split.x.shape[-1] != info["in_chans"]:
        raise SslabError(f"{data}: {split.x.shape[1]}-pixel {split.x.shape[-1]}-channel images; the run was trained "
                         f"on {info['image_size']}-pixel {info['in_chans']}-channel ones")
    return model, info, split


def _sample(n: int, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])  # a fixed sample of every class


@torch.no_grad()
def _grid(model, split, images: int, seed: int, scale: int) -> np.ndarray:
    x = image_views.to_float(torch.as_tensor(split.x[_sample(len(split.x), images, seed)]), "cpu")
    out = model.reconstruct(x, torch.Generator().manual_seed(seed))
    rows = [x, out["masked"], out["reconstruction"]]
    grid = torch.cat([torch.cat(list(r), dim=-1) for r in rows], dim=-2)  # (C, 3H, N*W)
    grid = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    return np.repeat(grid, 3, axis=-1) if grid.shape[-1] == 1 else grid


def reconstruction_grid(run_dir, data: str | None = None, images: int = 16, root=None, seed: int = 0,
                        scale: int = 4) -> np.ndarray:
    """A masked-image model's (MAE's) reconstructions of `images` test images of `data` (default: the run's own
    data set; a fixed random sample, `seed`): three rows -- original, masked input, reconstruction -- as one uint8
    RGB grid, each image enlarged `scale` times (nearest neighbour)."""
    model, _, split = _masked_run(run_dir, data, root)
    return _grid(model, split, images, seed, scale)


def reconstruction_evaluation(run_dir, info: dict, root=None, images: int = 8, splits=None) -> dict:
    """The run evaluation "reconstruction" of a masked-image run: its loss on 512 test images (a fixed sample) under
    fixed masks, and the grid of `reconstruction_grid` saved as plots/reconstruction.png for the report."""
    import io
    from pathlib import Path

    from PIL import Image

    from sslab.atomic import atomic_write

    model, _, split = _masked_run(run_dir, None, root, splits)
    buf = io.BytesIO()
    Image.fromarray(_grid(model, split, images, 0, 4)).save(buf, format="PNG")
    atomic_write(Path(run_dir) / "plots" / "reconstruction.png", buf.getvalue())
    with torch.no_grad():
        x = torch.as_tensor(split.x[_sample(len(split.x), 512, 0)])
        loss = float(model(**model.views(x, torch.Generator().manual_seed(0)))["loss"])
    return {"title": "Reconstructions of held-out images", "image": "plots/reconstruction.png",
            "values": {"loss": loss, "images": int(len(x))},
            "lines": [f"loss on {len(x)} held-out images (hidden patches, per-patch normalised pixels, fixed masks): "
                      f"{loss:.4f}; rows: original, masked input, reconstruction"]}


ENERGY_PAIRS = 256  # held-out pairs of each kind


def energy_pairs(split, size: int, pairs: int = ENERGY_PAIRS, seed: int = 0) -> dict[str, tuple[torch.Tensor, ...]]:
    """Pairs of float images (x, y) of held-out `split`, one fixed sample per kind, the same for every method:
    "two views of one image" (y: x under the scratch+aug augmentation, a crop of 60-100% of the area and a flip);
    with labels, "one class, two images" and "two classes" (y from another class); without, "two images"."""
    rng = np.random.default_rng(seed)
    n = len(split.x)
    a = rng.choice(n, size=min(pairs, n), replace=False)
    x = image_views.to_float(torch.as_tensor(split.x[a]), "cpu")
    aug = image_views.Augment(image_views.supervised_config(size))
    out = {"two views of one image": (x, aug(x, torch.Generator().manual_seed(seed)))}

    def partner(pool) -> tuple[torch.Tensor, torch.Tensor]:
        picks = [(i, rng.choice(p)) for i, p in enumerate(map(pool, a)) if len(p)]
        if not picks:
            return x[:0], x[:0]
        i, j = map(np.asarray, zip(*picks))
        return x[i], image_views.to_float(torch.as_tensor(split.x[j]), "cpu")

    y, every = split.y, np.arange(n)
    if y is not None and len(set(y[a].tolist())) > 1:
        out["one class, two images"] = partner(lambda i: every[(y == y[i]) & (every != i)])
        out["two classes"] = partner(lambda i: every[y != y[i]])
    else:
        out["two images"] = partner(lambda i: every[every != i])
    return {k: v for k, v in out.items() if len(v[0])}


@torch.no_grad()
def pair_energies(model, pairs: dict, batch: int = 64) -> dict[str, list[float]]:
    """`model.energy` on every pair of `energy_pairs`, in batches."""
    model.eval()
    return {k: torch.cat([model.energy(x[i : i + batch], y[i : i + batch]) for i in range(0, len(x), batch)]
                         ).tolist() for k, (x, y) in pairs.items()}


def energy_evaluation(run_dir, info: dict, root=None, pairs: int = ENERGY_PAIRS, splits=None) -> dict:
    """The run evaluation "energy" of an image method with an energy (joint-embedding: 1 - cosine of its
    projections; I-JEPA: its prediction error): the energy of held-out pairs of each kind of `energy_pairs`, their
    means and spreads, and how well it tells two views of one image from images of two classes (ROC AUC: the chance
    that such a compatible pair scores below such an incompatible one; 0.5 = not at all). The report plots the
    distributions."""
    from sklearn.metrics import roc_auc_score

    from sslab.data import load_data
    from sslab.engine import load_method

    model, _ = load_method(run_dir)
    if not isinstance(model, Energy):
        raise SslabError(f"{run_dir} is a {info.get('method')} run; it scores no pairs of images (no energy)")
    if splits is None:  # not loaded by the caller (a study has it)
        splits = load_data(info["data"], root, kind="image")
    split = splits.test if splits.test is not None and len(splits.test) else splits.train
    energies = pair_energies(model, energy_pairs(split, info["image_size"], pairs))
    stats = {k: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else None, "n": len(v)}
             for k, v in energies.items()}
    kinds = list(energies)
    compatible, incompatible = energies[kinds[0]], energies[kinds[-1]]
    auc = float(roc_auc_score([0] * len(compatible) + [1] * len(incompatible), compatible + incompatible)) \
        if len(kinds) > 1 else None
    note = model.energy_note or "1 - cosine similarity of the method's projections"
    lines = [f"{k}: {s['mean']:.4f}" + (f" ± {s['std']:.4f}" if s["std"] is not None else "") + f" (n={s['n']})"
             for k, s in stats.items()]
    if auc is not None:
        lines.append(f"{kinds[0]} against {kinds[-1]}: ROC AUC {auc:.3f} (chance that the compatible pair has the "
                     "lower energy; 0.5 = no separation)")
    lines.append(f"energy: {note}; mean ± std over held-out pairs")
    return {"title": "Energy of compatible and incompatible pairs",
            "values": {"kinds": stats, "auc": auc, "note": note},
            "lines": lines, "histogram": {"xlabel": "energy", "series": energies}}
