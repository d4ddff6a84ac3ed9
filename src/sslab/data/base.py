"""What every data kind shares: where data sets live, the cache folder, fixed stratified test splits, seeded
label fractions, verified downloads and safe archive members. One module per data kind sits beside this one
(`image`, `text`); each returns a :class:`DataSplits` of its own split type."""
from __future__ import annotations

import difflib
import gzip
import hashlib
import json
import math
import os
import re
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np

from sslab.config import per_class
from sslab.errors import SslabError

TEST_FRACTION = 0.2
SPLIT_SEED = 0
_CACHE_VERSION = 1


@dataclass
class DataSplits:
    train: Any  # ImageData, TextData, ...
    test: Any | None


def data_root(root: str | Path | None = None) -> Path:
    """Data folder: ``root`` if given, else env ``SSLAB_DATA_ROOT``, else ``~/.cache/sslab/data``."""
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get("SSLAB_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "sslab" / "data"


def cache_dir() -> Path:
    """Cache folder: env ``SSLAB_CACHE`` or ``~/.cache/sslab/cache`` (created on demand)."""
    env = os.environ.get("SSLAB_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "sslab" / "cache"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SslabError(f"cannot create cache folder {path}: {one_line(err)}") from None
    return path


def split_indices(y: np.ndarray, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED):
    """Fixed stratified split; classes with < 2 examples go entirely to train."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if idx.size < 2:
            train.append(idx)
            continue
        n_test = int(np.floor(test_fraction * idx.size + 0.5))
        n_test = min(max(n_test, 1), idx.size - 1)
        perm = rng.permutation(idx)
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    cat = lambda parts: np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)  # noqa: E731
    return cat(train), cat(test)


def label_subset(y: np.ndarray, fraction: float, seed: int, *, num_classes: int | None = None) -> np.ndarray:
    """Sorted indices of a stratified, seeded ``fraction`` of ``y`` with >= 1 example per class; a whole number
    ``fraction`` >= 2 is a count per class instead (``8``: 8 labelled items of every class, all of a smaller class;
    see `per_class`).

    Classes are ``0 .. num_classes-1`` (default ``max(y)+1``); a class with no example in ``y``
    raises.  ``fraction == 1.0`` returns all indices.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)):
        raise SslabError(f"label fraction must be a number in (0, 1] or a count per class, got {fraction!r}")
    fraction = float(fraction)
    if not np.isfinite(fraction) or not (0.0 < fraction <= 1.0 or per_class(fraction)):
        raise SslabError(f"label fraction must be in (0, 1] or a whole count per class >= 2, got {fraction:g}")
    if y is None:
        raise SslabError("label_subset needs labels, got None (unlabeled data)")
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise SslabError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise SslabError(f"labels must be integers, got dtype {y.dtype}")
    if y.min() < 0:
        raise SslabError(f"labels must be >= 0, got {int(y.min())}")
    n_classes = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if n_classes <= int(y.max()):
        raise SslabError(f"label {int(y.max())} out of range for {n_classes} classes")
    counts = np.bincount(y, minlength=n_classes)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise SslabError(
            f"class(es) {', '.join(map(str, missing[:10].tolist()))} have no labeled example; "
            "cannot take a stratified subset with at least one example per class"
        )
    if fraction == 1.0:
        return np.arange(y.size, dtype=np.int64)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(n_classes):
        idx = np.flatnonzero(y == c)
        k = min(idx.size, int(fraction) if fraction > 1 else max(1, int(np.floor(fraction * idx.size + 0.5))))
        chosen.append(rng.permutation(idx)[:k])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def validation_split(y: np.ndarray, n: int, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """(validation, pool): about ``n`` items of ``y`` (at most a tenth of them, stratified, seeded) held out, and the
    sorted rest. Every class keeps at least one item in the pool; when the share comes to fewer items than there
    are classes, nothing is held out (an empty validation set)."""
    y = np.asarray(y)
    n_classes = int(y.max()) + 1
    n = min(int(n), y.size // 10)
    everything = np.arange(y.size, dtype=np.int64)
    if n < n_classes:
        return everything[:0], everything
    rng = np.random.default_rng(seed)
    held = []
    for c in range(n_classes):
        idx = np.flatnonzero(y == c)
        k = min(idx.size - 1, int(np.floor(n * idx.size / y.size + 0.5)))
        held.append(rng.permutation(idx)[: max(0, k)])
    val = np.sort(np.concatenate(held)).astype(np.int64)
    return val, np.setdiff1d(everything, val)


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    gunzip_sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` to ``dest`` via a ``.part`` file, verify checksums, then rename atomically.

    ``gunzip_sha256`` checks the sha256 of the gzip-decompressed content.  On any failure the
    partial file is removed and :class:`SslabError` is raised.

    Not torchvision's ``download_url``: (torchvision 0.29) it writes straight to the destination (a failed transfer
    leaves a partial file that looks like data), checks md5 only, retries an https URL over plain http, and raises a
    bare RuntimeError.
    """
    if not (sha256 or md5 or gunzip_sha256):
        raise SslabError(f"refusing to download {url} without a checksum")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h_sha, h_md5 = hashlib.sha256(), hashlib.md5()
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                    h_sha.update(chunk)
                    h_md5.update(chunk)
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise SslabError(f"download of {url} failed: {one_line(err)}") from None
        problems = []
        if sha256 and h_sha.hexdigest() != sha256.lower():
            problems.append(f"sha256 {h_sha.hexdigest()} != expected {sha256}")
        if md5 and h_md5.hexdigest() != md5.lower():
            problems.append(f"md5 {h_md5.hexdigest()} != expected {md5}")
        if gunzip_sha256 and not problems:
            got = _gunzip_sha256(part)
            if got != gunzip_sha256.lower():
                problems.append(f"decompressed sha256 {got} != expected {gunzip_sha256}")
        if problems:
            raise SslabError(f"checksum mismatch for {url}: {'; '.join(problems)} (download removed)")
        os.replace(part, dest)
    finally:
        if part.exists():
            part.unlink()
    return dest


def _gunzip_sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except (OSError, EOFError, zlib.error):
        return "not-a-valid-gzip-file"
    return h.hexdigest()


def cache_key(identity: dict) -> str:
    payload = json.dumps({"v": _CACHE_VERSION, **identity}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def file_identity(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def one_line(err: BaseException | str) -> str:
    text = (str(err).strip() or type(err).__name__) if isinstance(err, BaseException) else str(err)
    return " ".join(text.split())


def say(line: str) -> None:
    """What a loader inferred about its input, as one line on standard output (where the study logs)."""
    print(line, flush=True)


def listed(values: Sequence, noun: str = "columns", limit: int = 8) -> str:
    """`values` for a one-line message: each repr'd (cut at 40 characters), the first `limit` of them, then how many
    there are in all ("'a', 'b', ... (785 columns)")."""
    values = list(values)
    cut = [repr(v[:37] + "..." if isinstance(v, str) and len(v) > 40 else v) for v in values[:limit]]
    return ", ".join(cut) + (f", ... ({len(values)} {noun})" if len(values) > limit else "")


def unknown_name(spec: str) -> str:
    """What to tell a user whose `--data` is no path and no name a loader knows: every name, and the closest."""
    from sslab.data.image import IMAGE_SETS
    from sslab.data.pairs import PAIRS_KNOWN
    from sslab.data.text import TEXT_ALIASES

    names = {**IMAGE_SETS, **TEXT_ALIASES, **PAIRS_KNOWN}
    close = difflib.get_close_matches(spec.strip().lower(), names, 1)
    return (f"known data sets: {', '.join(dict.fromkeys(names.values()))}"
            + (f"; did you mean {names[close[0]]}?" if close else ""))


def pixel_shape(width: int) -> tuple[int, int] | None:
    """(side, channels) of square images stored as rows of `width` numbers: side² grey or side² x 3 RGB (pixel by
    pixel, as a (side, side, 3) array flattens), sides of 8 or more; None for any other width."""
    for chans in (1, 3):
        side = math.isqrt(width // chans)
        if side >= 8 and side * side * chans == width:
            return side, chans
    return None


_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


def all_numbers(cells: Sequence[str]) -> bool:
    return bool(cells) and all(_NUMBER.fullmatch(c) for c in cells)


def is_pixel_csv(spec: str | Path) -> bool:
    """A ``.csv`` or ``.csv.gz`` whose first data row (after a header, if any) is all numbers: pixels of square
    images (:func:`pixel_shape`), with or without one label column, as MNIST-in-CSV is shipped."""
    p = Path(str(spec)).expanduser()
    gz = p.name.lower().endswith(".csv.gz")
    if not (gz or p.suffix.lower() == ".csv") or not p.is_file():
        return False
    try:
        with (gzip.open(p, "rt", encoding="utf-8-sig") if gz else open(p, encoding="utf-8-sig")) as f:
            lines = [f.readline(1 << 20) for _ in range(2)]
    except (OSError, EOFError, UnicodeDecodeError, zlib.error):
        return False
    cells = [c.strip('"') for c in lines[0].strip().split(",")]
    if not all_numbers(cells):  # a header row: the next row holds the numbers
        cells = [c.strip('"') for c in lines[1].strip().split(",")]
    return (all_numbers(cells)
            and (pixel_shape(len(cells)) is not None or pixel_shape(len(cells) - 1) is not None))


def check_member(tar_path: Path, member: tarfile.TarInfo) -> None:
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise SslabError(f"unsafe member path {name!r} in archive {tar_path} (absolute or '..'); refusing to read it")


def class_tree(d: Path, files_in) -> dict[str, list[Path]]:
    """``{class: files}`` for the non-hidden subfolders of ``d`` in which ``files_in(subfolder, recursive=True)``
    finds files (images, text files)."""
    tree = {}
    for sub in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = files_in(sub, recursive=True)
        if files:
            tree[sub.name] = files
    return tree
