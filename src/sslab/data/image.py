"""Image data sets as uint8 numpy arrays: loading, caching, fixed test splits, label fractions.

Every loader returns a :class:`DataSplits` of :class:`ImageData` whose ``x`` is ``uint8`` with
shape ``(N, H, W, C)`` (``C`` is 1 or 3) and whose ``y`` is ``int64`` (or ``None`` for an
unlabeled folder).  Sources (see :func:`load_images`):

* ``"fashion-mnist"``: IDX files from ``<data_root>/fashion-mnist/``, the Debian package
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/``), or a verified download.
* ``"cifar10"``: ``<data_root>/cifar10/cifar10-jpg.tar.gz`` (JPEG tree) or the official
  *binary* archive (local or downloaded and verified); never the pickle version.
* ``"digits"``: scikit-learn's bundled 8x8 digits.
* a folder of images (``<root>/<class>/*.png`` ..., optional ``train/`` + ``test/`` (or ``val/``, ``valid/``,
  ``validation/``), or unlabeled images at top level; a lone top folder holding them is descended into; unreadable
  images are skipped), an ``.npz`` file with ``x``/``y`` arrays (or Keras's ``x_train``/``y_train``, ...), a folder
  of IDX files as MNIST is shipped (:func:`_load_idx_folder`), or a CSV of pixels (:func:`_load_pixel_csv`).

Decoded folders and CIFAR-10 are cached as ``.npz`` files under :func:`cache_dir`, keyed by a
sha256 over the source identity (paths, sizes, mtimes) and the requested image size. A folder whose decoded images
would take more than :func:`in_memory_max` bytes is decoded once into a uint8 ``.npy`` file there instead: its
splits' ``x`` are read-only memory maps of it, and their batches are read from the file without mapping it.
Nothing is ever unpickled (``np.load(..., allow_pickle=False)``) and archives are read in
memory, rejecting members with absolute paths or ``..``.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import gzip
import io
import json
import os
import re
import tarfile
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from sslab.atomic import atomic_write
from sslab.data.base import (DataSplits, check_member, download_file, file_identity, one_line,  # noqa: F401
                              split_indices, cache_key, cache_dir, class_tree, data_root, label_subset, is_pixel_csv,
                              all_numbers, listed, pixel_shape, say, unknown_name)
from sslab.data.parquet import parquet_parts
from sslab.errors import SslabError
from sslab.progress import Progress

__all__ = [
    "ImageData",
    "DataSplits",
    "KNOWN",
    "data_root",
    "cache_dir",
    "load_images",
    "label_subset",
]

KNOWN = ("fashion-mnist", "cifar10", "digits")
IMAGE_SETS = {
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar10": "cifar10",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "digits": "digits",
}

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})

# --- Fashion-MNIST -------------------------------------------------------------------------
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# sha256 of the *decompressed* IDX content.  Computed from the Debian package files, whose
# decompressed md5s equal the official ones (f4a8712d..., 9018921c..., 8181f547..., 15d48437...).
# The Debian .gz files are re-compressed (their .gz md5s differ from the official ones), so the
# content hash is what identifies the data; the official .gz md5s are kept for reference.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": {
        "md5_gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "sha256_raw": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    "train-labels-idx1-ubyte.gz": {
        "md5_gz": "25c81989df183df01b3e8a0aad5dffbe",
        "sha256_raw": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    "t10k-images-idx3-ubyte.gz": {
        "md5_gz": "bef4ecab320f06d8554ea6380940ec79",
        "sha256_raw": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    "t10k-labels-idx1-ubyte.gz": {
        "md5_gz": "bb300cfdad3c16e7a12a480ee83cd310",
        "sha256_raw": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

# --- CIFAR-10 ------------------------------------------------------------------------------
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]
CIFAR10_JPG_TAR = "cifar10-jpg.tar.gz"
CIFAR10_BINARY_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_BINARY_NAME = "cifar-10-binary.tar.gz"
CIFAR10_BINARY_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # official, from the CIFAR page


# ===========================================================================================
# Containers
# ===========================================================================================
@dataclass
class ImageData:
    """Images ``x`` (uint8, N x H x W x C), labels ``y`` (int64 or None), class names."""

    x: np.ndarray
    y: np.ndarray | None
    classes: list[str] = field(default_factory=list)
    name: str = ""

    kind = "image"  # what the methods and the harness dispatch on
    unit = "images"  # what throughput is counted in

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batch(self, idx) -> torch.Tensor:
        """The raw batch of items `idx` (a 1-D index tensor or array): uint8 (B, H, W, C) on the CPU."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return torch.from_numpy(self.x[idx.numpy()]) if len(idx) else torch.from_numpy(self.x[:0])

    def units(self, batch: torch.Tensor) -> int:
        return int(batch.shape[0])

    def meta(self, limit: int | None = None) -> dict:
        """What a network and the views need to know: channels, side, and the per-channel pixel statistics of
        (the first `limit`) images, which the backbone normalises with."""
        n = len(self) if limit is None else min(len(self), limit)
        mean, std = pixel_stats(self.x[:n], read=lambda idx: self.batch(idx).numpy())
        return {"kind": "image", "in_chans": int(self.x.shape[3]), "image_size": int(self.x.shape[1]),
                "mean": mean, "std": std}


@dataclass
class CachedImageData(ImageData):
    """A split of a folder decoded into the disk cache: ``x`` is a read-only memory map of the cache file (for
    whatever indexes it), and ``batch`` reads the items' bytes from the file with ``os.preadv`` into a new array
    instead, so that the pages a run reads are not mapped into the process. Every page of a memory map that
    indexing touched stays resident and counts in the process's RSS until it is unmapped: 2.7 GB of the 4.7 GB
    peak of bench_stream.py at 200,000 64-px images. Measured on the 20,000-image cache (random batches of 256,
    2 CPU cores shared with other jobs): indexing the warm memory map 541k images/s with 464 MB of it resident;
    ``preadv`` item by item 250-340k images/s, nothing resident (241k at 200,000 images); the memory map with
    ``madvise(MADV_DONTNEED)`` every 64 MB read 261-289k images/s (the dropped pages fault in again). Pretraining
    takes ~50 images/s here (0.99x the in-memory rate at 200,000 images)."""

    path: str = ""
    offset: int = 0  # where this split's first image starts in the file

    def batch(self, idx) -> torch.Tensor:
        """The raw batch of items `idx`: uint8 (B, H, W, C) on the CPU, read from the cache file (the memory map
        when `x` was replaced, e.g. by a resize)."""
        if not isinstance(self.x, np.memmap) or not self.path:
            return super().batch(idx)
        idx = (idx.cpu().numpy() if isinstance(idx, torch.Tensor) else np.asarray(idx)).astype(np.int64).reshape(-1)
        n, shape = len(self.x), self.x.shape[1:]
        idx = np.where(idx < 0, idx + n, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"index out of range for {n} images")
        out = np.empty((idx.size, *shape), dtype=np.uint8)
        if not idx.size:
            return torch.from_numpy(out)
        item = out[0].nbytes
        buf = memoryview(out).cast("B")  # slices of a memoryview cost less than numpy's (~10% of the rate)
        starts = np.flatnonzero(np.diff(idx) != 1) + 1  # runs of consecutive items: one read each
        lo, hi = np.concatenate([[0], starts]), np.concatenate([starts, [idx.size]])
        where = (idx[lo] * item + self.offset).tolist()
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for a, b, at in zip((lo * item).tolist(), (hi * item).tolist(), where):
                if (_preadv(fd, (buf[a:b],), at) if _preadv else _pread_into(fd, buf[a:b], at)) != b - a:
                    raise SslabError(f"the decoded-image cache {self.path} is shorter than its header says; "
                                     "delete it to decode the folder again")
        finally:
            os.close(fd)
        return torch.from_numpy(out)


_preadv = getattr(os, "preadv", None)


def _pread_into(fd: int, view: memoryview, at: int) -> int:
    """os.pread and a copy into `view`, where the system has no preadv (macOS before 11)."""
    data = os.pread(fd, len(view), at)
    view[: len(data)] = data
    return len(data)


def pixel_stats(x: np.ndarray, read: Callable[[np.ndarray], np.ndarray] | None = None,
                chunk: int = 256) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (+1e-3) of uint8 images in [0, 1], from at most ~10,000 of them (every k-th),
    counted `chunk` images at a time in a histogram of the 256 values of each channel (exact, and nothing the size
    of the sample: 10,000 64-px RGB images in float32 are 490 MB, and numpy's std made a second such temporary).
    `read(indices)`: how the images are fetched (default: indexing `x`)."""
    idx = np.arange(0, len(x), max(1, len(x) // 10000))
    read = read or (lambda i: np.asarray(x[i]))
    chans = x.shape[-1]
    hist = np.zeros((chans, 256), dtype=np.int64)
    for i in range(0, len(idx), chunk):
        part = read(idx[i : i + chunk]).reshape(-1, chans)
        for c in range(chans):
            hist[c] += np.bincount(part[:, c], minlength=256)
    values = np.arange(256, dtype=np.float64) / 255
    count = max(1, int(hist[0].sum()))
    mean = hist @ values / count
    var = (hist * (values[None, :] - mean[:, None]) ** 2).sum(1) / count
    return mean.tolist(), (np.sqrt(var) + 1e-3).tolist()


# ===========================================================================================
# Locations
# ===========================================================================================


# ===========================================================================================
# Entry point
# ===========================================================================================
def load_images(
    spec: str | Path,
    root: str | Path | None = None,
    image_size: int | None = None,
    download: bool = True,
) -> DataSplits:
    """Load a data set by name (``KNOWN``), folder path, ``.npz`` path or CSV of pixels (``.csv``, ``.csv.gz``).

    ``image_size``: square output side.  For folders ``None`` picks one automatically
    (min(64, median of min(h, w)) rounded down to a multiple of 4, at least 8); for the
    named sets and ``.npz`` files ``None`` keeps the native size.  Resizing scales the
    shorter side and center-crops to a square.
    """
    if image_size is not None:
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
            raise SslabError(f"image_size must be a positive integer, got {image_size!r}")
        image_size = int(image_size)
    if image_size is None:
        image_size = _SIZE.get()
    text = str(spec)
    known = IMAGE_SETS.get(text.strip().lower())
    if known == "digits":
        return _maybe_resize(_load_digits(), image_size)
    if known == "fashion-mnist":
        return _maybe_resize(_load_fashion_mnist(data_root(root), download), image_size)
    if known == "cifar10":
        return _load_cifar10(data_root(root), image_size, download)

    path = Path(text).expanduser()
    if (path.suffix.lower() == ".parquet" or path.is_dir()) and (parts := parquet_parts(path)) is not None:
        ids = [file_identity(f) for f in parts["train"] + [f for group in parts["tests"] for f in group]]
        return _cached({"kind": "parquet", "name": parts["name"], "files": ids, "n_train": len(parts["train"]),
                        "image_size": image_size},
                       lambda: _load_parquet_images(parts, image_size))
    if is_pixel_csv(path):
        return _cached({"kind": "pixel-csv", **file_identity(path), "image_size": image_size},
                       lambda: _load_pixel_csv(path, image_size))
    if path.suffix.lower() == ".npz":
        if not path.is_file():
            raise SslabError(f"npz file not found: {path}")
        return _maybe_resize(_load_npz(path), image_size)
    if path.is_file() and _IDX_NAME.fullmatch(path.name):  # one file of an IDX set: the set in its folder
        path = path.parent
    if path.is_file() and path.name.lower().endswith((".tar.gz", ".tgz", ".tar")) and is_cifar_archive(path):
        return _cached({"kind": "cifar-binary-tar", **file_identity(path), "image_size": image_size},
                       lambda: _maybe_resize(_read_cifar_binary_tar(path), image_size))
    if path.is_dir() and (cifar := _cifar_binary_folder(path)) is not None:
        files = {f.name: f.read_bytes() for f in cifar.iterdir() if f.is_file() and f.suffix in (".bin", ".txt")}
        return _maybe_resize(_cifar_binary(files, cifar), image_size)
    if path.is_dir() and not _idx_sets(path) and (path / "raw").is_dir() and _idx_sets(path / "raw"):
        path = path / "raw"  # torchvision's MNIST/raw/
    if path.is_dir() and (sets := _idx_sets(path)):
        return _maybe_resize(_load_idx_folder(path, sets), image_size)
    if path.is_dir():
        return _load_folder(path, image_size)
    if path.exists():
        raise SslabError(f"unsupported data file {path} (expected a folder of images, an .npz file or a CSV of "
                         "pixels)")
    raise SslabError(f"data folder not found: {path} ({unknown_name(text)})")


# ===========================================================================================
# Splits and label fractions
# ===========================================================================================


# ===========================================================================================
# Digits
# ===========================================================================================
def _load_digits() -> DataSplits:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(np.floor(d.images * 255.0 / 16.0 + 0.5), 0, 255).astype(np.uint8)[..., None]
    y = d.target.astype(np.int64)
    classes = [str(i) for i in range(10)]
    tr, te = split_indices(y)
    return DataSplits(
        train=ImageData(x[tr], y[tr], list(classes), "digits"),
        test=ImageData(x[te], y[te], list(classes), "digits"),
    )


# ===========================================================================================
# Fashion-MNIST
# ===========================================================================================
def _fashion_dirs(root: Path) -> list[Path]:
    return [root / "fashion-mnist", SYSTEM_FASHION_MNIST_DIR, cache_dir() / "downloads" / "fashion-mnist"]


def _load_fashion_mnist(root: Path, download: bool) -> DataSplits:
    names = list(FASHION_MNIST_FILES)
    found = None
    for d in _fashion_dirs(root):
        if all((d / n).is_file() for n in names):
            found = d
            break
    if found is None:
        target = cache_dir() / "downloads" / "fashion-mnist"
        if not download:
            raise SslabError(
                f"fashion-mnist not found in {root / 'fashion-mnist'} or {SYSTEM_FASHION_MNIST_DIR} "
                "and download is disabled"
            )
        target.mkdir(parents=True, exist_ok=True)
        for n in names:
            if not (target / n).is_file():
                download_file(FASHION_MNIST_URL + n, target / n, gunzip_sha256=FASHION_MNIST_FILES[n]["sha256_raw"])
        found = target
    xtr = _read_idx(found / "train-images-idx3-ubyte.gz", 3)
    ytr = _read_idx(found / "train-labels-idx1-ubyte.gz", 1)
    xte = _read_idx(found / "t10k-images-idx3-ubyte.gz", 3)
    yte = _read_idx(found / "t10k-labels-idx1-ubyte.gz", 1)
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise SslabError(f"fashion-mnist files in {found} have mismatched image/label counts")
    cls = list(FASHION_MNIST_CLASSES)
    return DataSplits(
        train=ImageData(xtr[..., None], ytr.astype(np.int64), cls, "fashion-mnist"),
        test=ImageData(xte[..., None], yte.astype(np.int64), list(cls), "fashion-mnist"),
    )


# MNIST's own format, as MNIST, Fashion-MNIST, KMNIST and EMNIST are shipped: `<prefix>images-idx3-ubyte[.gz]` and
# `<prefix>labels-idx1-ubyte[.gz]`, the prefix naming the split (`train-`, `t10k-`, `emnist-letters-test-`)
_IDX_NAME = re.compile(r"(.*?)(images|labels)[-.](idx3|idx1)-ubyte(?:\.gz)?", re.IGNORECASE)


def _idx_sets(d: Path) -> dict[str, dict[str, Path]]:
    """{prefix: {"images": path, "labels": path}} of the IDX files at the top of folder `d` (none: {})."""
    sets: dict[str, dict[str, Path]] = {}
    for f in sorted(d.iterdir()):
        if f.is_file() and (m := _IDX_NAME.fullmatch(f.name)):
            sets.setdefault(m.group(1), {})[m.group(2).lower()] = f
    return sets


def _load_idx_folder(d: Path, sets: dict[str, dict[str, Path]]) -> DataSplits:
    """A folder of IDX files: one training set (a prefix with `train`) and at most one test set (`t10k` or `test`),
    each images and labels; said in one line. Classes are the label numbers."""
    for prefix, files in sets.items():
        if len(files) != 2:
            have = next(iter(files.values())).name
            raise SslabError(f"{d}: {have} has no {'labels' if 'images' in files else 'images'} file beside it "
                             f"({prefix}{'labels-idx1' if 'images' in files else 'images-idx3'}-ubyte[.gz])")
    train = [k for k in sets if "train" in k.lower()]
    test = [k for k in sets if "t10k" in k.lower() or "test" in k.lower()]
    if len(sets) == 1 and not test:
        train = list(sets)
    if len(train) != 1 or len(test) > 1 or len(train) + len(test) != len(sets):
        raise SslabError(f"{d}: IDX files of {len(sets)} sets ({listed([k or '(no prefix)' for k in sets], 'sets')});"
                         " give a folder with one training set (a name with 'train') and at most one test set "
                         "('t10k' or 'test')")

    def read(prefix: str) -> ImageData:
        x, y = _read_idx(sets[prefix]["images"], 3), _read_idx(sets[prefix]["labels"], 1)
        if len(x) != len(y):
            raise SslabError(f"{sets[prefix]['images']}: {len(x)} images but {len(y)} labels")
        return ImageData(x[..., None], y.astype(np.int64), [], d.name)

    tr = read(train[0])
    te = read(test[0]) if test else None
    values = np.unique(np.concatenate([tr.y, te.y if te is not None else tr.y[:0]]))  # EMNIST letters: 1-26
    n = len(values)
    tr.classes = [str(v) for v in values]
    for part in (tr, te):
        if part is not None:
            part.y = np.searchsorted(values, part.y).astype(np.int64)
    say(f"{d.name}: IDX files (MNIST's format), {sets[train[0]]['images'].name}: {len(tr):,} "
        f"{_pixels(tr.x.shape[1], 1)} images, {n} classes"
        + (f"; {sets[test[0]]['images'].name} the test split" if te is not None else ""))
    if te is None:
        i, j = split_indices(tr.y)
        tr, te = ImageData(tr.x[i], tr.y[i], tr.classes, d.name), ImageData(tr.x[j], tr.y[j], [], d.name)
    te.classes = list(tr.classes)
    return DataSplits(tr, te)


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse a (gzipped) IDX file of unsigned bytes with ``ndim`` dimensions. Not torchvision's
    ``read_sn3_pascalvincent_tensor``: it reads uncompressed files only (the Debian package ships them gzipped) and
    checks the header with asserts, where a damaged file must give a one-line error."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise SslabError(f"cannot read {path}: {one_line(err)}") from None
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise SslabError(f"{path} is not an IDX file of {ndim}-D unsigned bytes")
    dims = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) != header + int(np.prod(dims)):
        raise SslabError(f"{path} has {len(raw) - header} data bytes, expected {int(np.prod(dims))} for shape {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


# ===========================================================================================
# Caching
# ===========================================================================================


def _save_cache(key: str, splits: DataSplits, note: str = "") -> None:
    """`splits` in the cache, with the line said about them when they were decoded (`note`), said again on loading."""
    arrays = {
        "x_train": splits.train.x,
        "classes": np.asarray(splits.train.classes, dtype=str),
        "name": np.asarray(splits.train.name, dtype=str),
        "note": np.asarray(note, dtype=str),
    }
    if splits.train.y is not None:
        arrays["y_train"] = splits.train.y
    if splits.test is not None:
        arrays["x_test"] = splits.test.x
        arrays["y_test"] = splits.test.y
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        atomic_write(cache_dir() / f"{key}.npz", buf.getvalue())
    except OSError:
        pass  # a cache that cannot be written only costs time


def _load_cache(key: str) -> DataSplits | None:
    path = cache_dir() / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            classes = [str(c) for c in z["classes"].tolist()]
            name = str(z["name"])
            y_train = z["y_train"] if "y_train" in z.files else None
            train = ImageData(z["x_train"], y_train, classes, name)
            test = None
            if "x_test" in z.files:
                test = ImageData(z["x_test"], z["y_test"], list(classes), name)
            note = str(z["note"]) if "note" in z.files else ""
        if note:
            say(note)
        return DataSplits(train, test)
    except (OSError, ValueError, KeyError, zlib.error, EOFError):
        try:
            path.unlink()
        except OSError:
            pass
        return None


# Where a folder's decoded images go: up to this many bytes, today's path (decoded into RAM, saved as one .npz and
# read back whole on the next run); above it, a uint8 .npy on disk that batches are read from (CachedImageData).
# Measured with benchmarks/bench_stream.py (docs/data-at-scale.md; 20,000 64-px JPEGs, 2 shared CPU cores): random
# batches come from the file at ~0.5x the in-memory rate (~260k against ~540k images/s), far above what pretraining
# takes (~40 images/s here: 1.05x), and building the cache (5.0 s) is no slower than decoding into RAM (5.4 s). So
# the line is drawn by memory, not speed: 1 GiB, or an eighth of the machine's RAM if that is less, keeps every folder
# that fitted before (Fashion-MNIST-sized sets are ~50 MB) on its old path. SSLAB_IN_MEMORY_MAX (bytes) sets it: 0
# sends every folder to the disk cache.
IN_MEMORY_MAX = 1 << 30
PROGRESS_ITEMS = 5000  # folders of at least this many images show progress while they are scanned and decoded


def in_memory_max() -> int:
    env = os.environ.get("SSLAB_IN_MEMORY_MAX")
    if env is not None and env.strip():
        try:
            return max(0, int(float(env)))
        except ValueError:
            raise SslabError(f"SSLAB_IN_MEMORY_MAX must be a number of bytes, got {env!r}") from None
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 8 * IN_MEMORY_MAX
    return min(IN_MEMORY_MAX, ram // 8)


def _memmap_paths(key: str) -> tuple[Path, Path]:
    base = cache_dir() / f"images-{key}"
    return base.with_suffix(".npy"), base.with_suffix(".json")


def _load_memmap(key: str, name: str) -> DataSplits | None:
    """The splits of a folder decoded into the disk cache before, their `x` memory-mapped; None when there is no
    complete entry (the .json is written last: an .npy without it is an interrupted build)."""
    npy, meta_path = _memmap_paths(key)
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        x = np.load(npy, mmap_mode="r", allow_pickle=False)
        if x.dtype != np.uint8 or x.ndim != 4 or list(x.shape) != meta["shape"]:
            raise ValueError(f"shape {x.shape} {x.dtype}, expected {meta['shape']}")
        n_train, classes = int(meta["n_train"]), list(meta["classes"])
        y = np.asarray(meta["y"], dtype=np.int64) if meta["y"] is not None else None
        note = str(meta.get("note", ""))
    except (OSError, ValueError, KeyError, TypeError):
        for f in (npy, meta_path):  # damaged: decoded again
            with contextlib.suppress(OSError):
                f.unlink()
        return None
    item = int(np.prod(x.shape[1:]))
    if note:
        say(note)
    if y is None:
        return DataSplits(CachedImageData(x, None, [], name, str(npy), x.offset), None)
    return DataSplits(CachedImageData(x[:n_train], y[:n_train], classes, name, str(npy), x.offset),
                      CachedImageData(x[n_train:], y[n_train:], list(classes), name, str(npy),
                                      x.offset + n_train * item))


def _train_test(items: list, has_split: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, training indices, test indices) of a labelled folder's items (split, path, label): its own train/
    test folders, else the fixed stratified split."""
    y = np.asarray([lab for _, _, lab in items], dtype=np.int64)
    if has_split:
        is_tr = np.asarray([s == "train" for s, _, _ in items])
        return y, np.flatnonzero(is_tr), np.flatnonzero(~is_tr)
    return (y, *split_indices(y))


def _folder_memmap(key: str, root: Path, items: list, labeled: bool, has_split: bool, classes: list[str], name: str,
                   size: int, gray: bool, note: str = "", failed: dict | None = None) -> DataSplits | None:
    """Decode a folder's images once into ``<cache>/images-<key>.npy`` (uint8, N x size x size x C: the training
    split first, then the test split, so that each split is a slice of one memory map and never a copy), written
    under a temporary name and renamed when complete, with its labels, split and `note` (said on loading) in
    ``images-<key>.json`` beside it. Entries of the same folder and side decoded from older contents are removed
    once this one is complete. Images that cannot be decoded are put in `failed` (index in `items`: error), and
    then nothing is kept and None returned (None for `failed`: the first is an error)."""
    if labeled:
        y_all, tr, te = _train_test(items, has_split)
        order = np.concatenate([tr, te])
    else:
        order, tr = np.arange(len(items)), np.arange(len(items))
    paths = [items[i][1] for i in order]
    shape = (len(paths), size, size, 1 if gray else 3)
    npy, meta_path = _memmap_paths(key)
    cache = npy.parent
    tmp = None
    try:
        fd, tmp = _temp_in(cache, npy.name)
        os.close(fd)
        x = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)  # writes the .npy header
        offset = int(x.offset)
        del x  # the images go in by pwrite: pages written through a map would stay resident (the whole file)
        if hasattr(os, "posix_fallocate"):  # claim the disk now: a full disk is an error here, not a SIGBUS later
            with open(tmp, "r+b") as f:
                os.posix_fallocate(f.fileno(), 0, os.path.getsize(tmp))
    except OSError as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise SslabError(f"cannot write the decoded-image cache in {cache} ({shape[0]:,} images at {size} px need "
                         f"{np.prod(shape) / 2**30:.1f} GiB): {one_line(err.strerror or err)}; set SSLAB_CACHE to a "
                         "writable folder") from None
    progress = Progress(f"decode {name} -> disk cache", len(paths) >= PROGRESS_ITEMS)
    try:
        item = int(np.prod(shape[1:]))
        with open(tmp, "r+b") as f:
            def write(lo: int, block: np.ndarray) -> None:
                data, at = memoryview(block).cast("B"), offset + lo * item
                while len(data):
                    done = os.pwrite(f.fileno(), data, at)
                    data, at = data[done:], at + done

            bad = None if failed is None else {}
            _decode_many(paths, [str(p) for p in paths], size, gray, progress=progress, sink=write, failed=bad)
            if bad:
                failed.update({int(order[i]): err for i, err in bad.items()})
                return None
            os.fsync(f.fileno())
        os.replace(tmp, npy)
        tmp = None
        meta = {"shape": list(shape), "n_train": int(len(tr)), "classes": list(classes), "root": str(root.resolve()),
                "size": size, "y": y_all[order].tolist() if labeled else None, "note": note}
        atomic_write(meta_path, json.dumps(meta).encode())
    except OSError as err:
        raise SslabError(f"cannot write the decoded-image cache in {cache}: {one_line(err.strerror or err)}; set "
                         "SSLAB_CACHE to a writable folder") from None
    finally:
        progress.close()
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _drop_stale(key, root, size)
    loaded = _load_memmap(key, name)
    if loaded is None:
        raise SslabError(f"the decoded-image cache {npy} cannot be read back")
    return loaded


def _temp_in(folder: Path, name: str) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")


def _drop_stale(key: str, root: Path, size: int) -> None:
    """Remove the disk-cache entries of `root` at `size` other than `key` (decoded from files since changed)."""
    for meta_path in cache_dir().glob("images-*.json"):
        if meta_path.stem == f"images-{key}":
            continue
        try:
            meta = json.loads(meta_path.read_text())
            stale = meta.get("root") == str(root.resolve()) and meta.get("size") == size
        except (OSError, ValueError, AttributeError):
            continue
        if stale:
            for f in (meta_path, meta_path.with_suffix(".npy")):
                with contextlib.suppress(OSError):
                    f.unlink()


# ===========================================================================================
# Image decoding
# ===========================================================================================


def _open_image(src: Path | bytes, label: str) -> Image.Image:
    try:
        im = Image.open(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else src)
        return im
    except Exception as err:  # noqa: BLE001 - Pillow raises many types for bad files
        raise SslabError(f"cannot read image {label}: {one_line(err)}") from None


def _to_uint8_gray(im: Image.Image) -> Image.Image:
    """Any grayscale mode (1/L/LA/I/I;16/F) -> 8-bit 'L'."""
    if im.mode == "L":
        return im
    if im.mode in ("1", "LA"):
        return im.convert("L")
    a = np.asarray(im)
    if a.dtype == np.uint8:
        return Image.fromarray(a)
    a = a.astype(np.float64)
    if im.mode.startswith("I;16") or (a.size and a.max() > 255):
        a = a / 257.0
    elif im.mode == "F" and a.size and a.max() <= 1.0:
        a = a * 255.0
    return Image.fromarray(np.clip(np.floor(a + 0.5), 0, 255).astype(np.uint8))


def _image_to_array(im: Image.Image, size: int | None, gray: bool) -> np.ndarray:
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a broken EXIF block should not stop decoding
        pass
    if gray:
        im = _to_uint8_gray(im) if im.mode in _GRAY_MODES else im.convert("L")
    elif im.mode != "RGB":
        if im.mode in _GRAY_MODES:
            im = _to_uint8_gray(im)
        im = im.convert("RGB")
    if size is not None and im.size != (size, size):
        im = ImageOps.fit(im, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
    a = np.asarray(im, dtype=np.uint8)
    return a[..., None] if a.ndim == 2 else a


def decode_one(src: Path | bytes, label: str, size: int | None, gray: bool) -> np.ndarray:
    im = _open_image(src, label)
    try:
        with im:
            im.load()
            return _image_to_array(im, size, gray)
    except SslabError:
        raise
    except Exception as err:  # noqa: BLE001
        raise SslabError(f"cannot read image {label}: {one_line(err)}") from None


def _decode_many(
    sources: Sequence[Path | bytes], labels: Sequence[str], size: int, gray: bool, out: np.ndarray | None = None,
    progress: Progress | None = None, sink: Callable[[int, np.ndarray], None] | None = None,
    failed: dict[int, str] | None = None,
) -> np.ndarray | None:
    """Decode images into one preallocated (N, size, size, C) uint8 array (`out`, or a new one) using a small
    thread pool, or hand each chunk of them to `sink(first index, images)` instead (nothing returned);
    `progress` is told the share done after every chunk. An image that cannot be decoded is an error, or, given
    `failed`, left black and its error put there under its index."""
    n = len(sources)
    shape = (size, size, 1 if gray else 3)
    if sink is None and out is None:
        out = np.empty((n, *shape), dtype=np.uint8)

    def work(lo: int, hi: int) -> None:
        dest = out[lo:hi] if sink is None else np.empty((hi - lo, *shape), dtype=np.uint8)
        for i in range(lo, hi):
            try:
                dest[i - lo] = decode_one(sources[i], labels[i], size, gray)
            except SslabError as err:
                if failed is None:
                    raise
                failed[i], dest[i - lo] = str(err), 0
        if sink is not None:
            sink(lo, dest)

    chunk = 1024
    ranges = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
    workers = max(1, min(4, os.cpu_count() or 1, len(ranges)))
    done = 0

    def report(hi: int, lo: int) -> None:
        nonlocal done
        done += hi - lo
        if progress is not None:
            progress.update(done / max(n, 1), f"{done:,} of {n:,} images")

    if workers == 1:
        for lo, hi in ranges:
            work(lo, hi)
            report(hi, lo)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for (lo, hi), fut in [((lo, hi), pool.submit(work, lo, hi)) for lo, hi in ranges]:
                fut.result()
                report(hi, lo)
    return out


def _resize_array(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[1] == size and x.shape[2] == size:
        return x
    gray = x.shape[3] == 1
    out = np.empty((x.shape[0], size, size, x.shape[3]), dtype=np.uint8)
    for i in range(x.shape[0]):
        im = Image.fromarray(x[i, ..., 0] if gray else x[i])
        im = ImageOps.fit(im, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
        a = np.asarray(im, dtype=np.uint8)
        out[i] = a[..., None] if gray else a
    return out


def conform(splits: DataSplits, size: int, channels: int) -> DataSplits:
    """Images as a network trained on other images sees them: `size` pixels a side (Pillow bicubic, as the loaders
    resize) and `channels` channels (grey repeated to RGB; RGB to grey by ITU-R 601 luma, as Pillow's "L")."""
    for part in (splits.train, splits.test):
        if part is not None:
            x = _resize_array(part.x, size)
            if x.shape[3] == 1 and channels == 3:
                x = np.repeat(x, 3, axis=3)
            elif x.shape[3] == 3 and channels == 1:
                x = np.rint(x.astype(np.float32) @ np.float32([0.299, 0.587, 0.114]))[..., None].astype(np.uint8)
            part.x = x
    return splits


def as_rgb(splits: DataSplits, size: int) -> DataSplits:
    """Labelled images as an image-text model's image tower sees them: `size` pixels a side, three channels."""
    return conform(splits, size, 3)


def _maybe_resize(splits: DataSplits, size: int | None) -> DataSplits:
    if size is None:
        return splits
    for part in (splits.train, splits.test):
        if part is not None:
            part.x = _resize_array(part.x, size)
    return splits


_SIZE: contextvars.ContextVar[int | None] = contextvars.ContextVar("sslab_image_size", default=None)


@contextlib.contextmanager
def default_image_size(size: int | None):
    """Within the block, images loaded without an explicit side (``load_images``, ``load_pairs``) are decoded at
    ``size`` (None: each loader's own default). What ``sslab.api`` sets from ``pretrain.image_size`` around a study,
    whose loads pass no side of their own."""
    token = _SIZE.set(size)
    try:
        yield
    finally:
        _SIZE.reset(token)


def default_size() -> int | None:
    """The side set by :func:`default_image_size` around this call, if any."""
    return _SIZE.get()


def _auto_size(min_sides: Sequence[int]) -> int:
    median = float(np.median(np.asarray(min_sides, dtype=np.float64)))
    return max(8, int(min(64.0, median)) // 4 * 4)


def header(src: Path | bytes, label: str) -> tuple[str, int]:
    """An image's mode and shorter side, from its header alone (one-line SslabError for an unreadable one)."""
    with _open_image(src, label) as im:
        return im.mode, min(im.size)


def choose_format(modes: Sequence[str], min_sides: Sequence[int], image_size: int | None) -> tuple[bool, int]:
    """How a set of images is decoded, as the folder loader decides: grey when every image is in a grey mode, else
    RGB; `image_size` pixels a side, else the automatic side (the median shorter side, at most 64)."""
    return all(m in _GRAY_MODES for m in modes), image_size or _auto_size(min_sides)


# ===========================================================================================
# Folders
# ===========================================================================================
def _is_image_file(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def _images_in(d: Path, recursive: bool) -> list[Path]:
    it = d.rglob("*") if recursive else d.iterdir()
    files = []
    for p in it:
        rel = p.relative_to(d)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if _is_image_file(p):
            files.append(p)
    return sorted(files, key=lambda p: p.relative_to(d).as_posix())


def _class_tree(d: Path) -> dict[str, list[Path]]:
    return class_tree(d, _images_in)


TEST_FOLDERS = ("test", "val", "valid", "validation")  # beside train/, the test split (the first found)


def _subfolders(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX")


def _descend(root: Path, name: str) -> Path:
    """The folder under `root` that holds its class (or split) folders: `root` itself, or, while a folder has no
    images and one sub-folder that has sub-folders and no images of its own (an archive's top folder:
    `root/data/<class>/*`), that sub-folder, said in one line."""
    folder = root
    while not _images_in(folder, recursive=False) and len(subs := _subfolders(folder)) == 1:
        if not _subfolders(subs[0]) or _images_in(subs[0], recursive=False):
            break
        folder = subs[0]
    if folder != root:
        say(f"{name}: its one folder {folder.relative_to(root).as_posix()}/ holds the class folders: read from there")
    return folder


def _split_folders(folder: Path, name: str) -> dict[str, Path] | None:
    """{"train": train/, "test": the first of test/, val/, valid/, validation/ (any case)} when `folder` has both,
    said in one line unless they are train/ and test/ alone; else None."""
    subs = {p.name.lower(): p for p in _subfolders(folder)}
    tests = [subs[t] for t in TEST_FOLDERS if t in subs]
    if "train" not in subs or not tests:
        return None
    if [t.name for t in tests] != ["test"]:
        unused = f" ({', '.join(t.name + '/' for t in tests[1:])} not read)" if len(tests) > 1 else ""
        say(f"{name}: {subs['train'].name}/ is the training split, {tests[0].name}/ the test split{unused}")
    return {"train": subs["train"], "test": tests[0]}


LABEL_FILE_COLUMNS = ("label", "labels", "class", "category", "target", "y")  # a labels CSV's label column
# a labels CSV's column of image names; another column, or any name in a CSV called metadata.csv or *label*.csv
FILE_COLUMNS = ("file_name", "filename", "file", "image", "image_id", "image_name", "img", "id", "name", "path",
                "filepath", "image_path")
LABELS_CSV_MAX = 256 * 2**20  # larger CSV files beside a folder are not read as its labels


def _labels_csv(folder: Path, top: list[Path], name: str) -> tuple[dict[str, list[Path]], Path] | None:
    """The labels of a folder of images from a CSV that names them, as Hugging Face's imagefolder keeps them
    (`metadata.csv` with `file_name`) and Kaggle ships them (`trainLabels.csv` with `id,label` beside `train/`): a
    CSV in the folder or beside it, one of whose columns names at least 90% of the images (by file name, path in the
    folder, or name without its extension) under a name such as `file_name` or `id` (any name in `metadata.csv` or
    a `*label*.csv`), and another their label (`label`, `class`, ... or else the column of fewest distinct values, 2
    to half the rows). {label: images}, and the file; said in one line, with the images
    it does not name (left out). None when no CSV does."""
    keys: dict[str, Path] = {}
    for p in top:
        rel = p.relative_to(folder).as_posix()
        for k in (rel, f"{folder.name}/{rel}", p.name, p.stem):
            keys.setdefault(k.lower(), p)
    beside = sorted(folder.parent.glob("*.csv")) if folder.parent != folder else []
    own = [w for w in ("train", "test", "val") if w in folder.name.lower()]
    for path in sorted(folder.glob("*.csv")) + beside:
        named = [w for w in ("train", "test", "val") if w in path.stem.lower()]
        if path.parent != folder and named and not set(named) & set(own):
            continue  # trainLabels.csv beside test/: another split's labels
        try:
            if path.stat().st_size > LABELS_CSV_MAX or is_pixel_csv(path):
                continue
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
                rows = list(csv.reader(f))
        except (OSError, csv.Error):
            continue
        if len(rows) < 3 or len(rows[0]) < 2:
            continue
        header = [h.strip() for h in rows[0]]
        body = [r for r in rows[1:] if len(r) == len(header)]
        cols = [[v.strip() for v in c] for c in zip(*body)]
        if not cols:
            continue
        hits = [sum(v.lower() in keys for v in c) for c in cols]
        fcol = int(np.argmax(hits))
        if hits[fcol] < 0.9 * len(top):
            continue
        if header[fcol].lower() not in FILE_COLUMNS and not (path.name.lower() == "metadata.csv"
                                                              or "label" in path.stem.lower()):
            continue  # a column of numbers that happen to be the images' names, in a CSV about something else
        distinct = {j: len(set(c)) for j, c in enumerate(cols) if j != fcol}
        fit = [j for j, d in distinct.items() if 2 <= d <= max(2, len(body) // 2)]
        known = [j for j in fit if header[j].lower() in LABEL_FILE_COLUMNS]
        if not fit:
            continue
        lcol = known[0] if known else min(fit, key=lambda j: (distinct[j], j))
        tree: dict[str, list[Path]] = {}
        seen: set[Path] = set()
        for file, label in zip(cols[fcol], cols[lcol]):
            img = keys.get(file.lower())
            if img is not None and img not in seen and label:
                seen.add(img)
                tree.setdefault(label, []).append(img)
        left = len(top) - len(seen)
        say(f"{name}: labels from {path.relative_to(folder.parent).as_posix()}, column "
            f"{header[lcol]!r} ({len(tree)} classes) of the images named in {header[fcol]!r}"
            + (f"; {left:,} image{'s' * (left > 1)} it does not name left out" if left else ""))
        return {c: sorted(v, key=lambda p: p.relative_to(folder).as_posix()) for c, v in tree.items()}, path
    return None


def _drop_unreadable(items: list, failed: dict[int, str], skipped: list[str], classes: list[str],
                     folder: Path) -> list:
    """`items` without those that could not be read (`failed`: index -> error), their errors added to `skipped`;
    an error when no image, or no image of a class, is left."""
    if not failed:
        return items
    skipped.extend(failed[i] for i in sorted(failed))
    kept = [it for i, it in enumerate(items) if i not in failed]
    why = f"{len(skipped)} unreadable; the first: {skipped[0]}"
    if not kept:
        raise SslabError(f"no readable images in {folder} ({why})")
    empty = sorted(set(range(len(classes))) - {lab for _, _, lab in kept})
    if empty:
        raise SslabError(f"{folder}: class {classes[empty[0]]!r} has no readable image ({why})")
    return kept


def _load_folder(root: Path, image_size: int | None) -> DataSplits:
    name = root.resolve().name or str(root)
    try:
        folder = _descend(root, name)
        split_at = _split_folders(folder, name)
        has_split = split_at is not None
        labels_files = []
        if has_split:
            trees = {s: _class_tree(d) for s, d in split_at.items()}
            for s, t in trees.items():
                found = None if t else _labels_csv(split_at[s], _images_in(split_at[s], False), name)
                if found is not None:  # HF imagefolder: train/metadata.csv, test/metadata.csv
                    trees[s] = found[0]
                    labels_files.append(found[1])
            if trees["train"] and not trees["test"] and _images_in(split_at["test"], False):
                # Kaggle's layout: test/ holds the competition's unlabelled images
                say(f"{name}: {split_at['test'].name}/ has no labels: a fixed part of "
                    f"{split_at['train'].name}/ is the test split")
                trees, has_split = {"all": trees["train"]}, False
            else:
                for s, t in trees.items():
                    if not t:
                        raise SslabError(f"no class folders with images in {split_at[s]}")
            classes = sorted(set().union(*trees.values()))
            top = []
        else:
            trees = {"all": _class_tree(folder)}
            classes = sorted(trees["all"])
            top = _images_in(folder, recursive=False)
        one = trees["all"][classes[0]] if not has_split and len(classes) == 1 and not top else []
        listed_images = top if not classes else one  # HF's metadata.csv may name images/0.png, ... in one folder
        labels_file = _labels_csv(folder, listed_images, name) if listed_images else None
        if labels_file is not None:  # images at top level, their labels in a CSV
            trees, classes, top = {"all": labels_file[0]}, sorted(labels_file[0]), []
            labels_files.append(labels_file[1])
    except OSError as err:
        raise SslabError(f"cannot list folder {root}: {one_line(err)}") from None

    labeled = bool(classes)
    if not labeled and not top:
        raise SslabError(f"no images found in {folder} (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
    if labeled and top:
        raise SslabError(
            f"folder {folder} has both images at top level and class subfolders; "
            "use only class subfolders (labeled) or only top-level images (unlabeled)"
        )
    if len(classes) == 1:
        n = sum(len(t.get(classes[0], [])) for t in trees.values())
        say(f"{name}: one class folder, {classes[0]!r} ({n:,} images), in {folder}; labelled evaluation needs 2 or "
            "more (<class>/ sub-folders of images)")

    # Ordered list of (split, path, label).
    items: list[tuple[str, Path, int]] = []
    if labeled:
        cidx = {c: i for i, c in enumerate(classes)}
        for split, tree in trees.items():
            for c in classes:
                items.extend((split, p, cidx[c]) for p in tree.get(c, []))
    else:
        items = [("all", p, -1) for p in top]

    identity = {
        "kind": "folder",
        "root": str(folder.resolve()),
        "image_size": image_size,
        "files": [],
        **({"labels": [file_identity(f) for f in labels_files]} if labels_files else {}),
    }
    for split, p, _ in items:
        try:
            st = p.stat()
        except OSError as err:
            raise SslabError(f"cannot read image {p}: {one_line(err)}") from None
        identity["files"].append([p.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns])
    key = cache_key(identity)
    cached = _load_cache(key) or _load_memmap(key, name)
    if cached is not None:
        return cached

    # Pass 1: headers only (mode and size) to pick channels and the automatic size. Unreadable images are skipped
    # (here, or when pass 2 cannot decode them) and said in one line, which the cache keeps.
    n_all, skipped, failed = len(items), [], {}
    modes, min_sides = [], []
    scan = Progress("scan images", len(items) >= PROGRESS_ITEMS)
    for i, (_, p, _) in enumerate(items):
        try:
            mode, side = header(p, str(p))
            modes.append(mode)
            min_sides.append(side)
        except SslabError as err:
            failed[i] = str(err)
        if i % 1000 == 999 or i == len(items) - 1:
            scan.update((i + 1) / len(items), f"{i + 1:,} of {len(items):,} headers")
    scan.close()
    items = _drop_unreadable(items, failed, skipped, classes, folder)
    gray, size = choose_format(modes, min_sides, image_size)

    def note() -> str:
        return (f"{name}: skipped {len(skipped)} unreadable image{'s' * (len(skipped) > 1)} of {n_all:,} (the first: "
                f"{skipped[0]})" if skipped else "")

    if len(items) * size * size * (1 if gray else 3) > in_memory_max():
        failed = {}
        splits = _folder_memmap(key, folder, items, labeled, has_split, classes, name, size, gray, note(), failed)
        if splits is None:  # images whose header read but whose data did not: decoded again without them
            items = _drop_unreadable(items, failed, skipped, classes, folder)
            splits = _folder_memmap(key, folder, items, labeled, has_split, classes, name, size, gray, note(), None)
        return splits

    # Pass 2: decode, convert, resize.
    paths = [p for _, p, _ in items]
    failed = {}
    x = _decode_many(paths, [str(p) for p in paths], size, gray, failed=failed)
    if failed:
        x = np.delete(x, sorted(failed), axis=0)
        items = _drop_unreadable(items, failed, skipped, classes, folder)
    if skipped:
        say(note())
    if not labeled:
        splits = DataSplits(ImageData(x, None, [], name), None)
    else:
        y, tr, te = _train_test(items, has_split)
        splits = DataSplits(
            ImageData(x[tr], y[tr], list(classes), name),
            ImageData(x[te], y[te], list(classes), name),
        )
    _save_cache(key, splits, note())
    return splits


# ===========================================================================================
# Parquet files (the Hugging Face Hub's)
# ===========================================================================================
def _load_parquet_images(parts: dict[str, list[Path]], image_size: int | None) -> tuple[DataSplits, str]:
    """Images in Parquet files (`sslab.data.parquet`): the column of encoded images (Hugging Face's Image feature,
    {bytes, path}, or plain bytes), the label from the ClassLabel column (else one named label, class, ...; none:
    unlabelled); decoded as a folder's images are. A test split without labels (all -1) is left out. Returns the
    splits and the line that says what was read."""
    from sslab.data.parquet import drop_unlabelled, labelled_test, read_parquet, unlabelled, with_class_names

    where = parts["train"][0]
    rows, names = read_parquet(parts["train"])
    first = rows[0]
    icol = next((k for k, v in first.items() if isinstance(v, (bytes, bytearray))
                 or (isinstance(v, dict) and isinstance(v.get("bytes"), (bytes, bytearray)))), None)
    if icol is None:
        raise SslabError(f"{where}: no column of encoded images (found: {listed(list(first), 'columns')})")
    lcol = next((k for k in names if k in first), None) or \
        next((k for k in first if k.lower() in LABEL_FILE_COLUMNS), None)
    if lcol is not None and unlabelled(rows, lcol):
        lcol = None
    rows = drop_unlabelled(rows, lcol, where, say)
    test_rows, test_files = labelled_test(parts, lcol, say) if lcol is not None else ([], [])

    def blobs(rs: list[dict]) -> list[bytes]:
        out = []
        for i, r in enumerate(rs, 1):
            v = r.get(icol)
            v = v.get("bytes") if isinstance(v, dict) else v
            if not isinstance(v, (bytes, bytearray)):
                raise SslabError(f"{where}: row {i} has no image bytes in {icol!r}")
            out.append(bytes(v))
        return out

    srcs, tsrcs = blobs(rows), blobs(test_rows)
    labels = [f"{where.name} row {i}" for i in range(1, len(srcs) + 1)]
    tlabels = [f"{test_files[0].name} row {i}" for i in range(1, len(tsrcs) + 1)] if tsrcs else []
    # rows whose image cannot be read are left out, as a folder's unreadable images are, said in the line
    all_srcs, all_labels, all_rows = srcs + tsrcs, labels + tlabels, rows + test_rows
    failed: dict[int, str] = {}
    heads = {}
    for i, (b, lab) in enumerate(zip(all_srcs, all_labels)):
        try:
            heads[i] = header(b, lab)
        except SslabError as err:
            failed[i] = str(err)
    x = np.empty((0,), np.uint8)
    if len(heads):
        gray, size = choose_format([m for m, _ in heads.values()], [e for _, e in heads.values()], image_size)
        keep = [i for i in range(len(all_srcs)) if i not in failed]
        more: dict[int, str] = {}
        x = _decode_many([all_srcs[i] for i in keep], [all_labels[i] for i in keep], size, gray, failed=more)
        failed.update({keep[j]: e for j, e in more.items()})
        x = np.delete(x, sorted(more), axis=0)
    n_train = sum(1 for i in range(len(srcs)) if i not in failed)
    if not n_train:
        raise SslabError(f"{where}: no readable image in {icol!r} ({len(failed)} unreadable; the first: "
                         f"{failed[min(failed)]})")
    kept = [i for i in range(len(all_srcs)) if i not in failed]
    rows, test_rows = [all_rows[i] for i in kept if i < len(srcs)], [all_rows[i] for i in kept if i >= len(srcs)]
    name = parts["name"]
    said = f"{where.name}: Parquet, {n_train:,} images in {icol!r}"
    if failed:
        said += f" ({len(failed)} unreadable left out; the first: {failed[min(failed)]})"
    if lcol is None:
        return DataSplits(ImageData(x[:n_train], None, [], name), None), said + ", no labels"
    y_names = [str(r.get(lcol)) for r in with_class_names(rows + test_rows, names)]
    classes = names.get(lcol) or sorted(set(y_names), key=lambda c: (not c.lstrip("-").isdigit(),
                                                                       int(c) if c.lstrip("-").isdigit() else 0, c))
    cidx = {c: i for i, c in enumerate(classes)}
    missing = sorted(set(y_names) - set(cidx))
    if missing:
        bad = next(i for i, c in enumerate(y_names) if c == missing[0])
        file = where if bad < len(rows) else test_files[0]
        raise SslabError(f"{file}: label {missing[0]!r} in {lcol!r} is not one of its {len(classes)} classes")
    y = np.asarray([cidx[c] for c in y_names], np.int64)
    said += f", labels {lcol!r} ({len(classes)} classes)" + (f"; {test_files[0].name} the test split"
                                                            if test_rows else "")
    if test_rows:
        n = n_train
        return DataSplits(ImageData(x[:n], y[:n], list(classes), name),
                          ImageData(x[n:], y[n:], list(classes), name)), said
    tr, te = split_indices(y)
    return DataSplits(ImageData(x[tr], y[tr], list(classes), name), ImageData(x[te], y[te], list(classes), name)), said


# ===========================================================================================
# .npz files
# ===========================================================================================
def _npz_images(a: np.ndarray, key: str, path: Path) -> np.ndarray:
    if a.ndim == 2 and (shape := pixel_shape(a.shape[1])) is not None:  # flat rows of pixels, e.g. (N, 784)
        say(f"{path.name}: '{key}' {a.shape} read as {_pixels(*shape)} images")
        a = a.reshape(len(a), shape[0], shape[0], shape[1])
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[-1] not in (1, 3):
        raise SslabError(f"{path}: '{key}' must have shape (N,H,W) or (N,H,W,C) with C in {{1,3}}, or (N,H*W) or "
                         f"(N,H*W*3) of square images, got {a.shape}")
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating):
        if a.size and (not np.all(np.isfinite(a)) or a.min() < 0.0 or a.max() > 1.0):
            raise SslabError(f"{path}: float '{key}' must lie in [0, 1]")
        return np.floor(a * 255.0 + 0.5).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        if a.size and (a.min() < 0 or a.max() > 255):
            raise SslabError(f"{path}: integer '{key}' must lie in [0, 255]")
        return a.astype(np.uint8)
    raise SslabError(f"{path}: '{key}' has unsupported dtype {a.dtype}")


def _npz_labels(a: np.ndarray, n: int, key: str, path: Path) -> np.ndarray:
    if a.ndim == 2 and a.shape[1] == 1:  # (N, 1), as Keras's cifar10 and MedMNIST save them
        a = a[:, 0]
    if a.ndim != 1 or a.shape[0] != n:
        raise SslabError(f"{path}: '{key}' must have shape ({n},), got {a.shape}")
    if np.issubdtype(a.dtype, np.floating):
        if a.size and (not np.all(np.isfinite(a)) or np.any(a != np.round(a))):
            raise SslabError(f"{path}: '{key}' must hold integer class ids")
    elif not np.issubdtype(a.dtype, np.integer):
        raise SslabError(f"{path}: '{key}' must hold integer class ids, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and a.min() < 0:
        raise SslabError(f"{path}: '{key}' has negative labels")
    return a


# Other names the arrays of an .npz go by (Keras's mnist.npz: x_train, y_train, x_test, y_test), any case
_NPZ_NAMES = {"x": ("x", "x_train", "train_x", "images", "train_images", "data", "inputs"),
              "y": ("y", "y_train", "train_y", "labels", "train_labels", "targets", "target"),
              "x_test": ("x_test", "test_x", "test_images"), "y_test": ("y_test", "test_y", "test_labels")}


def _npz_arrays(arrays: dict, path: Path) -> dict:
    """The arrays under sslab's names (x, y, x_test, y_test, classes), each found under any of `_NPZ_NAMES` in any
    case, and under "keys" {sslab's name: the file's}; what was renamed is said in one line."""
    lower = {k.lower(): k for k in arrays}
    out, roles = {}, []
    for name, aliases in _NPZ_NAMES.items():
        found = next((lower[a] for a in aliases if a in lower), None)
        if found is not None:
            out[name] = arrays[found]
            roles.append((found, name))
    if "classes" in lower:
        out["classes"] = arrays[lower["classes"]]
    if any(found != name for found, name in roles):
        words = {"x": "images", "y": "labels", "x_test": "test images", "y_test": "test labels"}
        say(f"{path.name}: arrays {', '.join(f'{found} ({words[name]})' for found, name in roles)}")
    out["keys"] = {name: found for found, name in roles}  # the file's own names, for its errors
    return out


def _load_npz(path: Path) -> DataSplits:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as err:
        raise SslabError(f"cannot read {path}: {one_line(err)} (object arrays/pickle are not allowed)") from None
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as err:  # e.g. a truncated or damaged file
        raise SslabError(f"cannot read {path}: {one_line(err)}") from None
    found, arrays = sorted(arrays), _npz_arrays(arrays, path)
    if "x" not in arrays:
        raise SslabError(f"{path}: no images array (looked for {', '.join(_NPZ_NAMES['x'])}, any case; found: "
                         f"{listed(found, 'arrays') or 'none'})")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise SslabError(f"{path}: 'x_test' and 'y_test' must be given together")
    if "x_test" in arrays and "y" not in arrays:
        raise SslabError(f"{path}: has 'x_test' but no 'y'")
    key = arrays.pop("keys")
    x = _npz_images(arrays["x"], key["x"], path)
    name = path.stem
    if "y" not in arrays:
        return DataSplits(ImageData(x, None, [], name), None)
    y = _npz_labels(arrays["y"], x.shape[0], key["y"], path)
    xt = yt = None
    if "x_test" in arrays:
        xt = _npz_images(arrays["x_test"], key["x_test"], path)
        yt = _npz_labels(arrays["y_test"], xt.shape[0], key["y_test"], path)
        if xt.shape[1:] != x.shape[1:]:
            raise SslabError(f"{path}: 'x_test' shape {xt.shape[1:]} differs from 'x' shape {x.shape[1:]}")
    n_cls = int(max(y.max() if y.size else -1, yt.max() if yt is not None and yt.size else -1)) + 1
    if "classes" in arrays:
        classes = [str(c) for c in np.asarray(arrays["classes"]).tolist()]
        if len(classes) < n_cls:
            raise SslabError(f"{path}: 'classes' has {len(classes)} names but labels go up to {n_cls - 1}")
    else:
        classes = [str(i) for i in range(n_cls)]
    if xt is None:
        tr, te = split_indices(y)
        x, xt, y, yt = x[tr], x[te], y[tr], y[te]
    return DataSplits(ImageData(x, y, classes, name), ImageData(xt, yt, list(classes), name))


def _pixels(side: int, chans: int) -> str:
    return f"{side}x{side} {'grey' if chans == 1 else 'RGB (R, G, B of each pixel in turn)'}"


def _load_pixel_csv(path: Path, image_size: int | None) -> tuple[DataSplits, str]:
    """Images as CSV rows of numbers (:func:`is_pixel_csv`; gzipped or not), as MNIST-in-CSV is shipped: one column
    the label (a header's ``label``/``class``/``y``/``target``, else the first or last column of 2 to 100 distinct
    whole numbers >= 0, of two the one whose commonest value is rarer), the rest the pixels of square grey or RGB
    images, 0-255 (or 0-1, scaled); the fixed stratified test split (resized to `image_size`); and the line that
    says what was inferred."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as f:
            names = [c.strip().strip('"') for c in f.readline().split(",")]
            header = not all_numbers(names)
            f.seek(0)
            a = np.loadtxt(f, delimiter=",", skiprows=int(header), dtype=np.float32, ndmin=2, quotechar='"')
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise SslabError(f"cannot read {path} as rows of numbers: {one_line(err)}") from None
    n, width = a.shape
    named = ("label", "labels", "class", "y", "target")
    label = next((k for k, h in enumerate(names) if header and h.lower() in named), None)
    if label is None and pixel_shape(width) is None:
        ends = {k: np.unique(a[:, k], return_counts=True) for k in {0, width - 1}}
        fits = [(counts.max(), k) for k, (values, counts) in ends.items()
                if 2 <= len(values) <= 100 and values.min() >= 0 and np.array_equal(values, np.round(values))]
        label = min(fits)[1] if fits else None
    pixels = np.delete(a, label, axis=1) if label is not None else a
    shape = pixel_shape(pixels.shape[1])
    values, y = np.unique(a[:, label], return_inverse=True) if label is not None else (None, None)
    if shape is None:
        raise SslabError(f"{path}: {width} numeric columns ({listed(names) if header else 'no header'}) of which "
                         f"{pixels.shape[1]} are no square image's pixels (side x side grey or side x side x 3 RGB, "
                         "sides of 8 or more; one column may be the label: a whole number, 2 to 100 values)")
    if values is not None and (values.min() < 0 or not np.array_equal(values, np.round(values))):
        raise SslabError(f"{path}: the label column ({label + 1}) holds values other than whole numbers >= 0")
    lo, hi = float(pixels.min()), float(pixels.max())
    if lo < 0 or hi > 255:
        raise SslabError(f"{path}: pixel values lie in [{lo:g}, {hi:g}]; expected 0-255 (or 0-1)")
    side, chans = shape
    x = np.floor(pixels * (255.0 if hi <= 1 else 1.0) + 0.5).astype(np.uint8).reshape(n, side, side, chans)
    stem = re.sub(r"\.csv(\.gz)?$", "", path.name, flags=re.IGNORECASE)
    line = f"{path.name}: {n:,} images of {_pixels(side, chans)} pixels ({'0-1, scaled' if hi <= 1 else '0-255'})"
    if label is None:
        return (_maybe_resize(DataSplits(ImageData(x, None, [], stem), None), image_size),
                line + f"; no label column ({width} columns of pixels)")
    classes, y = [str(int(v)) for v in values], y.astype(np.int64).reshape(-1)
    tr, te = split_indices(y)
    splits = DataSplits(ImageData(x[tr], y[tr], classes, stem), ImageData(x[te], y[te], list(classes), stem))
    return (_maybe_resize(splits, image_size),
            line + f"; label = column {label + 1}{f' ({names[label]!r})' if header else ''} ({len(classes)} values)")


# ===========================================================================================
# CIFAR-10
# ===========================================================================================


def _iter_tar_files(tar_path: Path, wanted: Callable[[PurePosixPath], bool]):
    """Yield ``(PurePosixPath, bytes)`` of regular members, read in memory (nothing is extracted)."""
    try:
        with tarfile.open(tar_path, "r:*") as tf:
            for m in tf:
                check_member(tar_path, m)
                if not m.isfile():
                    continue
                p = PurePosixPath(m.name)
                if p.parts and p.parts[0] == ".":
                    p = PurePosixPath(*p.parts[1:])
                if not wanted(p):
                    continue
                f = tf.extractfile(m)
                yield p, (f.read() if f is not None else b"")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise SslabError(f"cannot read archive {tar_path}: {one_line(err)}") from None


def _load_cifar10(root: Path, image_size: int | None, download: bool) -> DataSplits:
    jpg = root / "cifar10" / CIFAR10_JPG_TAR
    if jpg.is_file():
        return _cached(
            {"kind": "cifar10-jpg", **file_identity(jpg), "image_size": image_size},
            lambda: _read_cifar_jpg_tar(jpg, image_size),
        )
    binary = None
    for cand in (root / "cifar10" / CIFAR10_BINARY_NAME, cache_dir() / "downloads" / "cifar10" / CIFAR10_BINARY_NAME):
        if cand.is_file():
            binary = cand
            break
    if binary is None:
        if not download:
            raise SslabError(f"cifar10 not found in {root / 'cifar10'} and download is disabled")
        binary = download_file(
            CIFAR10_BINARY_URL, cache_dir() / "downloads" / "cifar10" / CIFAR10_BINARY_NAME, md5=CIFAR10_BINARY_MD5
        )
    return _cached(
        {"kind": "cifar10-binary", **file_identity(binary), "image_size": image_size},
        lambda: _maybe_resize(_read_cifar_binary_tar(binary), image_size),
    )


def _cached(identity: dict, build: Callable[[], DataSplits | tuple[DataSplits, str]]) -> DataSplits:
    """`build()`'s splits, decoded once into the cache; a build that returns (splits, line) has its line said now
    and again on every load from the cache."""
    key = cache_key(identity)
    hit = _load_cache(key)
    if hit is not None:
        return hit
    built = build()
    splits, note = built if isinstance(built, tuple) else (built, "")
    if note:
        say(note)
    _save_cache(key, splits, note)
    return splits


def _read_cifar_jpg_tar(tar_path: Path, image_size: int | None) -> DataSplits:
    """``{train,test}/<class>/NNNN.jpg`` (any leading folders) -> 32x32x3 (or resized) splits."""
    cidx = {c: i for i, c in enumerate(CIFAR10_CLASSES)}

    def wanted(p: PurePosixPath) -> bool:
        return len(p.parts) >= 3 and p.parts[-3] in ("train", "test") and p.suffix.lower() in IMAGE_EXTENSIONS

    entries: dict[str, list[tuple[int, str, bytes]]] = {"train": [], "test": []}
    for p, data in _iter_tar_files(tar_path, wanted):
        split, cls = p.parts[-3], p.parts[-2]
        if cls not in cidx:
            raise SslabError(f"unknown CIFAR-10 class folder {cls!r} in {tar_path} ({p.as_posix()})")
        entries[split].append((cidx[cls], p.as_posix(), data))
    if not entries["train"]:
        raise SslabError(f"no train/<class>/*.jpg images found in {tar_path}")
    size = image_size or 32
    parts = {}
    for split, rows in entries.items():
        rows.sort(key=lambda r: (r[0], r[1]))
        x = _decode_many([r[2] for r in rows], [f"{tar_path}:{r[1]}" for r in rows], size, gray=False)
        y = np.asarray([r[0] for r in rows], dtype=np.int64)
        parts[split] = ImageData(x, y, list(CIFAR10_CLASSES), "cifar10")
    return DataSplits(parts["train"], parts["test"])


# CIFAR's binary versions, as their archives hold them: (training files, test files, label bytes a record (CIFAR-100:
# coarse then fine; the fine one is read), the file of class names)
_CIFAR_BINARY = {
    "cifar10": ([f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"], 1, "batches.meta.txt"),
    "cifar100": (["train.bin"], ["test.bin"], 2, "fine_label_names.txt"),
}
_CIFAR_PICKLED = (("data_batch_1", "batches.meta"), ("train", "meta", "test"))  # the python versions' files


def is_cifar_archive(path: Path) -> bool:
    """Whether the tar file `path` holds CIFAR's binary batches (not WebDataset shards): its first members, read
    from the archive's start without unpacking the rest, are CIFAR's files or its folder (a WebDataset shard's
    members are named by sample key, never so)."""
    names = {n for train, test, _, meta in _CIFAR_BINARY.values() for n in (*train, *test, meta)}
    try:
        with tarfile.open(path, "r:*") as tf:
            for _, m in zip(range(4), tf):
                p = PurePosixPath(m.name)
                if p.name in names or p.parts[0] in ("cifar-10-batches-bin", "cifar-100-binary"):
                    return True
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        return False
    return False


def _read_cifar_binary_tar(tar_path: Path) -> DataSplits:
    """CIFAR-10's (or CIFAR-100's) binary archive, read in memory."""
    want = {n for train, test, _, names in _CIFAR_BINARY.values() for n in (*train, *test, names)}
    blobs = {p.name: data for p, data in _iter_tar_files(tar_path, lambda p: p.name in want)}
    return _cifar_binary(blobs, tar_path)


def _cifar_binary_folder(d: Path) -> Path | None:
    """The folder of CIFAR's binary batches at `d` or in a sub-folder named cifar* (`cifar-10-batches-bin/`, ...);
    an error for the pickled python version (`cifar-10-batches-py/`), which sslab does not unpickle."""
    try:
        cands = [d, *(c for c in _subfolders(d) if c.name.lower().startswith("cifar"))]
    except OSError:
        return None  # the folder loader says why it cannot be listed
    for cand in cands:
        try:
            have = {f.name for f in cand.iterdir() if f.is_file()}
        except OSError:
            continue
        if any(set(train + test) <= have for train, test, _, _ in _CIFAR_BINARY.values()):
            return cand
        if any(set(files) <= have for files in _CIFAR_PICKLED):
            raise SslabError(f"{cand} is CIFAR's python version, pickled, which sslab does not unpickle (it can run "
                             "code); --data cifar10 downloads and verifies the binary version, or give the folder of "
                             "the binary version (cifar-10-batches-bin, cifar-100-binary) or its .tar.gz")
    return None


def _cifar_binary(blobs: dict[str, bytes], where: Path) -> DataSplits:
    """Splits from CIFAR's binary batch files (name -> bytes): records of label byte(s) and 32x32x3 pixels, planes
    R, G, B; class names from the archive's names file, else CIFAR-10's."""
    layout = next(((k, v) for k, v in _CIFAR_BINARY.items() if all(n in blobs for n in (*v[0], *v[1]))), None)
    if layout is None:
        missing = [n for n in (*_CIFAR_BINARY["cifar10"][0], *_CIFAR_BINARY["cifar10"][1]) if n not in blobs]
        raise SslabError(f"{where} is missing {', '.join(missing)} (expected the CIFAR-10 binary version)")
    name, (train, test, label_bytes, names_file) = layout
    record = label_bytes + 32 * 32 * 3

    def parse(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        raw = b"".join(blobs[n] for n in files)
        if len(raw) % record:
            raise SslabError(f"{where}: batch size is not a multiple of {record} bytes")
        rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
        return rec[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), \
            rec[:, label_bytes - 1].astype(np.int64)

    (xtr, ytr), (xte, yte) = parse(train), parse(test)
    n = int(max(ytr.max(initial=0), yte.max(initial=0))) + 1
    classes = [c for c in blobs.get(names_file, b"").decode("utf-8", "replace").split() if c]
    if len(classes) < n:
        classes = list(CIFAR10_CLASSES) if name == "cifar10" and n <= 10 else [str(i) for i in range(n)]
    if name == "cifar10" and n > 10:
        raise SslabError(f"{where}: label {n - 1} out of range for CIFAR-10")
    return DataSplits(ImageData(xtr, ytr, classes, name), ImageData(xte, yte, list(classes), name))


def load_image_files(paths: Sequence[str | Path], in_chans: int, image_size: int) -> np.ndarray:
    """Read image files with Pillow as uint8 arrays (N, image_size, image_size, in_chans): converted to
    grayscale (in_chans 1) or RGB (3), the shorter side resized to image_size and centre-cropped (like the folder
    loader). One-line SslabError for a missing or unreadable file."""
    arrays = []
    for p in map(Path, paths):
        if not p.is_file():
            raise SslabError(f"image not found: {p}")
        arrays.append(decode_one(p, str(p), image_size, gray=in_chans == 1))
    return np.stack(arrays)
