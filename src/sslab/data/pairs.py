"""Image-text pairs: images with one or more captions each (CLIP's data).

Read from a captions file beside its images: CSV / TSV with a header naming an image column (``image``, ``file``,
``filename``, ``image_path``, ``path``) and a caption column (``caption``, ``text``, ``sentence``, ``title``);
JSON Lines with those keys; a COCO-style captions JSON (``images`` with ``id`` / ``file_name``,
``annotations`` with ``image_id`` / ``caption``); or Flickr8k's own ``Flickr8k.token.txt`` (``<image>#<k><TAB>
<caption>`` lines, beside ``Flicker8k_Dataset/``). ``--data`` names the file, a folder holding one such file
(``captions.csv`` first), a folder in COCO's own layout (``annotations/captions_<split>.json`` beside the image
folders ``<split>/``, e.g. ``train2017/`` and ``val2017/``: every captions file's pairs together), or
``flickr8k-1k`` (``<data root>/flickr8k-1k``: 1,000 Flickr8k photographs with 5 captions each). Image paths are
relative to the captions file's folder or its ``images/`` subfolder; for ``annotations/captions_<split>.json``
also to ``<split>/`` (and ``images/<split>/``) beside ``annotations/``; for a ``.token.txt`` also to
``Flicker8k_Dataset/`` or ``Flickr8k_Dataset/`` beside it (or beside its folder, ``Flickr8k_text/``).

The split is by image (never the same image in train and test): a fixed fifth of the images, with all their
captions, is held out. Captions naming a missing or unreadable image are skipped and counted (``skipped``).
Images are decoded once, their shorter side resized to ``image_size`` and centre-cropped (64 px by default).
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sslab.data.base import SPLIT_SEED, TEST_FRACTION, DataSplits, data_root, listed
from sslab.errors import SslabError

PAIRS_KNOWN = {"flickr8k-1k": "flickr8k-1k", "flickr8k": "flickr8k-1k", "flickr": "flickr8k-1k"}
# Flickr8k (Hodosh et al. 2013) as its widely used GitHub mirror serves it, md5 as mlverse/torchvision's flickr8k
# data set checks them: 1 GB of photographs, 2 MB of captions. Without `<data root>/flickr8k-1k`, sslab builds the
# same 1,000-image subset from them (the names in flickr8k_1k.txt, package data) in its cache, once.
FLICKR8K_URL = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/"
FLICKR8K_FILES = {"Flickr8k_Dataset.zip": "f18a1e2920de5bd84dae7cf08ec78978",
                  "Flickr8k_text.zip": "bf6c1abcb8e4a833b7f922104de18627"}
PAIR_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
IMAGE_COLUMNS = ("image", "file", "filename", "file_name", "image_path", "path", "image_file")
CAPTION_COLUMNS = ("caption", "text", "sentence", "title", "description")
DEFAULT_PAIR_SIZE = 64  # the side images are decoded at (Flickr8k photographs are ~200 x 150 here)
FLICKR_IMAGES = ("Flicker8k_Dataset", "Flickr8k_Dataset")  # Flickr8k's image folder, as its archive spells it
# a line of Flickr8k.token.txt, `<image>#<k><TAB><caption>` (its image names include 5 `<name>.jpg.1`)
_TOKEN_LINE = re.compile(r"([^\t#]*\.(?:jpe?g|png)[^\t#]*)#\d+\t(.*)", re.IGNORECASE)


@dataclass
class PairData:
    """Images (N, S, S, 3) uint8 and their captions: caption j describes image ``image_of[j]``."""

    images: np.ndarray
    captions: list[str]
    image_of: np.ndarray
    files: list[str]
    name: str
    skipped: dict = field(default_factory=dict)
    kind = "pairs"
    unit = "pairs"
    y = None  # pairs carry no class labels
    classes: list = field(default_factory=list)

    def __post_init__(self):
        self.image_of = np.asarray(self.image_of, dtype=np.int64)
        if len(self.captions) != len(self.image_of):
            raise SslabError(f"{len(self.captions)} captions but {len(self.image_of)} image indices")
        if len(self.image_of) and (self.image_of.min() < 0 or self.image_of.max() >= len(self.images)):
            raise SslabError("a caption points at an image that is not there")

    def __len__(self) -> int:
        return int(len(self.images))

    def subset(self, ids) -> "PairData":
        """These images (indices, in this order) with all their captions."""
        ids = np.asarray(ids, dtype=np.int64)
        local = np.full(len(self.images), -1, dtype=np.int64)
        local[ids] = np.arange(len(ids))
        rows = np.flatnonzero(local[self.image_of] >= 0)
        return PairData(self.images[ids], [self.captions[j] for j in rows], local[self.image_of[rows]],
                        [self.files[i] for i in ids], self.name, self.skipped)

    def captions_of(self, i: int) -> list[str]:
        return [self.captions[j] for j in np.flatnonzero(self.image_of == i)]

    def meta(self, limit: int | None = None) -> dict:
        from sslab.data.image import pixel_stats

        mean, std = pixel_stats(self.images if limit is None else self.images[:limit])
        return {"kind": "pairs", "in_chans": 3, "image_size": int(self.images.shape[1]), "mean": mean, "std": std}


def is_pairs_spec(spec: str) -> bool:
    """Whether `spec` names image-text pairs: a known name, a captions file, or a folder holding one."""
    if spec.strip().lower() in PAIRS_KNOWN:
        return True
    p = Path(spec).expanduser()
    if p.is_file():
        return (p.suffix.lower() in PAIR_SUFFIXES and _has_pair_columns(p)) or _is_token_file(p)
    return p.is_dir() and (_captions_file(p) is not None or bool(_coco_captions(p)))


def load_pairs(spec: str, root=None, image_size: int | None = None, download: bool = True) -> DataSplits:
    """Image-text pairs split by image (train: four fifths of the images, test: the rest), decoded at `image_size`
    (None: the side `sslab.data.default_image_size` sets, else DEFAULT_PAIR_SIZE)."""
    from sslab.data.image import default_size

    image_size = image_size or default_size() or DEFAULT_PAIR_SIZE
    name = PAIRS_KNOWN.get(str(spec).strip().lower())
    if name is not None:
        folder = data_root(root) / name
        if not folder.is_dir() and download:
            folder = _flickr8k_1k()
        path = _captions_file(folder) if folder.is_dir() else None
        if path is None:
            raise SslabError(f"{name} not found: expected {folder}/captions.csv and {folder}/images/ (the 1,000 "
                             "Flickr8k images of ../shared/data; set SSLAB_DATA_ROOT)")
    else:
        p = Path(spec).expanduser()
        if not p.exists():
            raise SslabError(f"pair data not found: {spec}")
        path = _captions_file(p) if p.is_dir() else p
        coco = _coco_captions(p) if p.is_dir() and path is None else []
        if path is None and not coco:
            raise SslabError(f"{spec}: no captions file (a .csv/.tsv/.jsonl with image and caption columns, a "
                             "COCO-style captions .json, or COCO's annotations/captions_<split>.json)")
        name = p.name
        if coco:  # COCO's layout: every annotations/captions_<split>.json with the images of its <split>/
            rows, folders = [], []
            for c in coco:
                part = _read_rows(c)
                if not part:
                    raise SslabError(f"{c}: no (image, caption) rows")
                rows += part
                folders += [f for f in _image_folders(c) if f not in folders]
            return _build(rows, folders, name, image_size)
    rows = _read_rows(path)
    if not rows:
        raise SslabError(f"{path}: no (image, caption) rows")
    return _build(rows, _image_folders(path), name, image_size)


def flickr8k_1k_names() -> list[str]:
    return (Path(__file__).with_name("flickr8k_1k.txt")).read_text().split()


def _flickr8k_1k() -> Path:
    """`<cache>/downloads/flickr8k-1k` (images/ + captions.csv), built once from the downloaded archives."""
    from sslab.data.base import download_file, cache_dir

    target = cache_dir() / "downloads" / "flickr8k-1k"
    if (target / "captions.csv").is_file():
        return target
    zips = {n: download_file(FLICKR8K_URL + n, cache_dir() / "downloads" / "flickr8k" / n, md5=m)
            for n, m in FLICKR8K_FILES.items()}
    return build_flickr_subset(zips["Flickr8k_Dataset.zip"], zips["Flickr8k_text.zip"], flickr8k_1k_names(), target)


def build_flickr_subset(images_zip: Path, text_zip: Path, names: list[str], target: Path) -> Path:
    """The images `names` of Flickr8k's photograph archive with their captions (Flickr8k.token.txt: lines
    `<image>#<k>\t<caption>`) as `target`/images/ + `target`/captions.csv, written whole or not at all."""
    import os
    import shutil
    import zipfile

    wanted = set(names)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "images").mkdir(parents=True)
        with zipfile.ZipFile(text_zip) as z:
            member = next((m for m in z.namelist() if m.rsplit("/", 1)[-1] == "Flickr8k.token.txt"), None)
            if member is None:
                raise SslabError(f"{text_zip}: no Flickr8k.token.txt")
            lines = z.read(member).decode("utf-8").splitlines()
        rows = []
        for line in lines:
            m = _TOKEN_LINE.fullmatch(line.strip())
            if m and m.group(1) in wanted and m.group(2).strip():
                rows.append((m.group(1), m.group(2).strip()))
        found = set()
        with zipfile.ZipFile(images_zip) as z:
            for m in z.infolist():
                base = m.filename.rsplit("/", 1)[-1]
                if base in wanted and not m.filename.startswith("__MACOSX") and base not in found:
                    (tmp / "images" / base).write_bytes(z.read(m))
                    found.add(base)
        if found != wanted:
            raise SslabError(f"{images_zip}: {len(wanted - found)} of the {len(wanted)} images are missing")
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["image", "caption"])
        w.writerows(sorted(rows, key=lambda r: r[0]))
        (tmp / "captions.csv").write_text(buf.getvalue(), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)  # an earlier, incomplete attempt
        os.replace(tmp, target)
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise SslabError(f"cannot build {target.name} from {images_zip.name}: {err}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _coco_captions(folder: Path) -> list[Path]:
    """COCO's own layout: ``folder/annotations/captions_<split>.json`` (train before val), else []."""
    ann = folder / "annotations"
    if not ann.is_dir():
        return []
    found = [p for p in ann.glob("captions_*.json") if p.is_file()]
    return sorted(found, key=lambda p: (not p.stem.startswith("captions_train"), p.name))


def _image_folders(captions: Path) -> list[Path]:
    """Where the images a captions file names are looked for: its folder and ``images/`` in it; for COCO's
    ``annotations/captions_<split>.json`` also ``<split>/``, ``images/<split>/``, ``images/`` and the folder that
    holds ``annotations/``."""
    base = captions.parent
    folders = [base, base / "images"]
    if captions.suffix.lower() == ".txt":  # Flickr8k.token.txt
        folders += [d / f for d in (base, base.parent) for f in FLICKR_IMAGES]
    m = re.fullmatch(r"captions_(.+)", captions.stem)
    if m and base.name == "annotations":
        root = base.parent
        folders += [root / m.group(1), root / "images" / m.group(1), root / "images", root]
    return folders


def _captions_file(folder: Path) -> Path | None:
    preferred = [folder / f"captions{s}" for s in PAIR_SUFFIXES]
    others = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PAIR_SUFFIXES)
    for p in [q for q in preferred if q.is_file()] + others:
        if _has_pair_columns(p):
            return p
    tokens = sorted([*folder.glob("*.token.txt"), *folder.glob("Flickr8k_text/*.token.txt")],
                    key=lambda p: ("lemma" in p.name, len(p.parts), p.name))  # Flickr8k.token.txt before its lemmas
    return next((p for p in tokens if _is_token_file(p)), None)


def _is_token_file(path: Path) -> bool:
    """Flickr8k's captions file: a .txt whose first line is ``<image>#<k><TAB><caption>``."""
    if path.suffix.lower() != ".txt" or not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8-sig") as f:
            return bool(_TOKEN_LINE.fullmatch(f.readline(4096).strip()))
    except (OSError, UnicodeDecodeError):
        return False


def _has_pair_columns(path: Path) -> bool:
    if path.suffix.lower() == ".json":  # a COCO captions file lists every image before the annotations: parse it
        try:
            doc = json.loads(path.read_text(encoding="utf-8-sig")) if path.stat().st_size < 2**30 else None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            return False
        return isinstance(doc, dict) and "annotations" in doc and "images" in doc
    try:
        with open(path, encoding="utf-8-sig") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    low = head.lower()
    if path.suffix.lower() == ".jsonl":
        return any(f'"{c}"' in low for c in IMAGE_COLUMNS) and any(f'"{c}"' in low for c in CAPTION_COLUMNS)
    first = low.splitlines()[0] if low else ""
    cols = [c.strip().strip('"') for c in first.replace("\t", ",").split(",")]
    return any(c in IMAGE_COLUMNS for c in cols) and any(c in CAPTION_COLUMNS for c in cols)


def _read_rows(path: Path) -> list[tuple[str, str]]:
    """(image file, caption) rows of a captions file; one-line errors for a file that is not one."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Excel's CSV) is not part of the header
    except UnicodeDecodeError as err:
        raise SslabError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise SslabError(f"cannot read {path}: {err.strerror or err}") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _coco_rows(path, text)
    if suffix == ".txt":  # Flickr8k.token.txt
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            m = _TOKEN_LINE.fullmatch(line.strip())
            if line.strip() and not m:
                raise SslabError(f"{path}:{n}: not '<image>#<k><TAB><caption>' as the other lines: {line[:60]!r}")
            if m and m.group(2).strip():
                rows.append((m.group(1), m.group(2).strip()))
        return rows
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise SslabError(f"{path}:{n}: not a JSON object") from None
            if not isinstance(rec, dict):
                raise SslabError(f"{path}:{n}: not a JSON object")
            rows.append((_pick(rec, IMAGE_COLUMNS, path, n), _pick(rec, CAPTION_COLUMNS, path, n)))
        return rows
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
    fields = [c.strip().lower() for c in reader.fieldnames or []]
    if not any(c in IMAGE_COLUMNS for c in fields) or not any(c in CAPTION_COLUMNS for c in fields):
        raise SslabError(f"{path}: needs a header with an image column ({', '.join(IMAGE_COLUMNS[:3])}, ...) and a "
                         f"caption column ({', '.join(CAPTION_COLUMNS[:3])}, ...); found {listed(fields) or 'none'}")
    rows = []
    for n, rec in enumerate(reader, start=2):
        rec = {str(k).strip().lower(): v for k, v in rec.items() if k is not None}
        rows.append((_pick(rec, IMAGE_COLUMNS, path, n), _pick(rec, CAPTION_COLUMNS, path, n)))
    return rows


def _pick(rec: dict, names: tuple[str, ...], path: Path, n: int) -> str:
    for k in names:
        if isinstance(rec.get(k), str) and rec[k].strip():
            return rec[k].strip()
    raise SslabError(f"{path}:{n}: no {names[0]} (one of: {', '.join(names)})")


def _coco_rows(path: Path, text: str) -> list[tuple[str, str]]:
    try:
        doc = json.loads(text)
        files = {im["id"]: im["file_name"] for im in doc["images"]}
        if not all(isinstance(f, str) and f for f in files.values()):
            raise TypeError("an image's file_name is not a text")
        rows = [(files[a["image_id"]], a.get("caption")) for a in doc["annotations"]]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
        raise SslabError(f"{path} is not a COCO-style captions file ({type(err).__name__}: {err})") from None
    return [(f, c.strip()) for f, c in rows if isinstance(c, str) and c.strip()]


def _build(rows: list[tuple[str, str]], folders: list[Path], name: str, image_size: int) -> DataSplits:
    """Decode the images ``rows`` name (each looked for in ``folders``, in order), split by image."""
    from sslab.data.image import decode_one

    files = sorted({f for f, _ in rows})
    decoded, missing, unreadable = {}, 0, 0
    for f in files:
        p = next((q for q in (d / f for d in folders) if q.is_file()), None)
        if p is None:
            missing += 1
            continue
        try:
            decoded[f] = decode_one(p, str(p), image_size, gray=False)
        except SslabError:
            unreadable += 1
    if len(decoded) < 2:
        raise SslabError(f"{name}: {len(decoded)} readable images ({missing} missing, {unreadable} unreadable; "
                         f"looked for in {', '.join(str(d) for d in folders)}); pairs need at least 2")
    kept = [f for f in files if f in decoded]
    index = {f: i for i, f in enumerate(kept)}
    skipped_captions = sum(1 for f, _ in rows if f not in index)
    rng = np.random.default_rng(SPLIT_SEED)
    n_test = min(len(kept) - 1, max(1, int(np.floor(TEST_FRACTION * len(kept) + 0.5))))
    test_images = set(rng.permutation(len(kept))[:n_test].tolist())
    skipped = {"missing_images": missing, "unreadable_images": unreadable, "captions_skipped": skipped_captions}

    def part(keep) -> PairData:
        ids = [i for i in range(len(kept)) if keep(i)]
        local = {i: k for k, i in enumerate(ids)}
        caps = [(local[index[f]], c) for f, c in rows if f in index and index[f] in local]
        return PairData(np.stack([decoded[kept[i]] for i in ids]), [c for _, c in caps],
                        np.array([i for i, _ in caps], dtype=np.int64), [kept[i] for i in ids], name, skipped)

    return DataSplits(part(lambda i: i not in test_images), part(lambda i: i in test_images))


class PairTokens:
    """Images with their captions tokenized: batch(idx) -> {"images": (B, S, S, 3) uint8, "captions": (B, K, L)
    token ids, "caption_mask": (B, K, L), "n_captions": (B,)}, K the most captions of an image (shorter lists
    padded by repeating the first caption). One item is one image."""

    kind, unit = "pairs", "pairs"

    def __init__(self, pairs, tok, context: int, meta: dict):
        self.images = torch.from_numpy(np.ascontiguousarray(pairs.images))
        enc = tok(list(pairs.captions), truncation=True, max_length=context)["input_ids"]
        order = np.argsort(pairs.image_of, kind="stable")  # caption rows grouped by image, in file order
        per_image = np.split(order, np.cumsum(np.bincount(pairs.image_of, minlength=len(pairs.images)))[:-1])
        k = max(1, max(len(p) for p in per_image))
        width = max((len(e) for e in enc), default=1)
        self.ids = torch.full((len(per_image), k, width), meta["pad_id"], dtype=torch.long)
        self.mask = torch.zeros((len(per_image), k, width), dtype=torch.long)
        self.n = torch.tensor([max(1, len(p)) for p in per_image], dtype=torch.long)
        self.caption_index = torch.full((len(per_image), k), -1, dtype=torch.long)  # row in pairs.captions
        for i, rows in enumerate(per_image):
            for slot in range(k):
                if not len(rows):
                    break
                row = rows[slot] if slot < len(rows) else rows[0]
                self.ids[i, slot, : len(enc[row])] = torch.as_tensor(enc[row])
                self.mask[i, slot, : len(enc[row])] = 1
                self.caption_index[i, slot] = int(row)
        self._meta = meta

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, idx) -> dict:
        i = torch.as_tensor(idx, dtype=torch.long)
        return {"images": self.images[i], "captions": self.ids[i], "caption_mask": self.mask[i], "n_captions": self.n[i]}

    def units(self, batch) -> int:
        return int(batch["images"].shape[0])

    def meta(self, limit: int | None = None) -> dict:
        return dict(self._meta)
