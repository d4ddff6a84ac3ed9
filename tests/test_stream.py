"""Image folders larger than memory (sslab.data.image): above SSLAB_IN_MEMORY_MAX bytes a folder is decoded once into
a uint8 .npy in the cache and its splits' `x` are memory maps of it: the same images, labels and split as the
in-memory path, reused while the folder is unchanged, rebuilt when a file changes, written atomically, with
progress. --image-size sets the side (beyond the automatic 64 px cap)."""
from __future__ import annotations

import gc
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import sslab
from sslab.config import PretrainConfig, StudyConfig, load_config
from sslab.data import default_image_size, load_data, load_images
from sslab.data import image as image_mod
from sslab.errors import SslabError

from cli_contract import run_cli


def folder(root, classes=("a", "b", "c"), per_class=10, side=80, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (side, side + 4 * i, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.fixture
def disk(monkeypatch, tmp_path):
    """Every folder goes to the disk cache."""
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SSLAB_IN_MEMORY_MAX", "0")
    return tmp_path / "cache"


def test_memmap_matches_the_in_memory_path(tmp_path, disk, monkeypatch):
    root = folder(tmp_path / "imgs")
    mapped = load_images(root)
    assert isinstance(mapped.train.x, np.memmap) and isinstance(mapped.test.x, np.memmap)
    assert not mapped.train.x.flags.writeable
    monkeypatch.setenv("SSLAB_IN_MEMORY_MAX", str(1 << 30))
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "other-cache"))
    ram = load_images(root)
    assert not isinstance(ram.train.x, np.memmap)
    for a, b in ((mapped.train, ram.train), (mapped.test, ram.test)):
        assert a.x.shape == b.x.shape and a.x.shape[1] == 64  # the automatic side: at most 64
        assert np.array_equal(np.asarray(a.x), b.x) and np.array_equal(a.y, b.y) and a.classes == b.classes
    assert mapped.train.meta() == ram.train.meta()
    batch = mapped.train.batch(np.array([3, 0, 5]))  # what the engine indexes
    assert batch.shape == (3, 64, 64, 3) and np.array_equal(batch.numpy(), ram.train.x[[3, 0, 5]])
    assert not list(disk.rglob("*.tmp"))


def _mapped_kb(path) -> int | None:
    """Resident KiB of the process's memory maps of `path` (Linux /proc/self/smaps), None where unreadable."""
    try:
        text = open("/proc/self/smaps").read()
    except OSError:
        return None
    total, inside = 0, False
    for line in text.splitlines():
        if "-" in line.split(" ", 1)[0] and len(line.split()) >= 5:  # a mapping's header line
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_batches_read_the_cache_file_without_mapping_it(tmp_path, disk):
    """`batch` reads the items' bytes from the cache file (runs of consecutive items in one read): the same images
    as indexing the memory map, in the order asked, and none of the file's pages resident in this process."""
    splits = load_images(folder(tmp_path / "imgs", per_class=12), image_size=16)
    for part in (splits.train, splits.test):
        ref = np.array(part.x)  # a copy read once through the map, which is then dropped below
        for idx in (np.array([3, 0, 5, 4, 5]), np.arange(len(part)), np.arange(len(part))[::-1], np.array([], int),
                    np.array([-1, 2, 3, 4, 0])):
            got = part.batch(idx)
            assert got.dtype == torch.uint8 and np.array_equal(got.numpy(), ref[idx])
        with pytest.raises(IndexError):
            part.batch(np.array([len(part)]))
    del splits, part, ref  # their maps were read through
    gc.collect()
    npy = next(disk.glob("images-*.npy"))
    fresh = load_images(tmp_path / "imgs", image_size=16)
    for _ in range(20):
        fresh.train.batch(torch.randperm(len(fresh.train)))
    fresh.train.meta()
    resident = _mapped_kb(npy.resolve())
    if resident is None:
        pytest.skip("no /proc/self/smaps here")
    assert resident == 0, f"{resident} KiB of the cache file mapped"


def test_reused_while_unchanged_rebuilt_when_a_file_changes(tmp_path, disk, monkeypatch):
    root = folder(tmp_path / "imgs", per_class=6)
    first = load_images(root, image_size=16)
    assert len(list(disk.glob("images-*.npy"))) == 1

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")

    with monkeypatch.context() as m:
        m.setattr(image_mod, "decode_one", no_decoding)
        again = load_images(root, image_size=16)  # the same folder: read from the cache
    assert np.array_equal(np.asarray(again.train.x), np.asarray(first.train.x))

    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "a" / "0.png")  # one file changes
    changed = load_images(root, image_size=16)
    assert not np.array_equal(np.asarray(changed.train.x), np.asarray(first.train.x))
    assert len(list(disk.glob("images-*.npy"))) == 1  # the stale entry is gone
    assert len(list(disk.glob("images-*.json"))) == 1


def test_an_unreadable_image_leaves_no_partial_cache(tmp_path, disk, capsys):
    """An unreadable image is skipped, said in one line, and the cache holds the rest; a class left without a
    readable image is an error that leaves no partial cache."""
    root = folder(tmp_path / "imgs", per_class=4)
    (root / "b" / "bad.png").write_bytes(b"not an image at all")
    splits = load_images(root)
    assert len(splits.train) + len(splits.test) == 12 and "skipped 1 unreadable image" in capsys.readouterr().out
    (root / "d").mkdir()
    (root / "d" / "bad.png").write_bytes(b"not an image at all")
    for f in disk.iterdir():
        f.unlink()
    with pytest.raises(SslabError, match="bad.png") as err:
        load_images(root)
    assert "\n" not in str(err.value)
    assert not [p.name for p in disk.iterdir() if p.name.startswith(("images-", ".images-"))]


def test_progress_with_eta_while_the_cache_is_built(tmp_path, disk, monkeypatch, capsys):
    monkeypatch.setattr(image_mod, "PROGRESS_ITEMS", 1)
    load_images(folder(tmp_path / "imgs", per_class=3), image_size=8)
    out = capsys.readouterr().out
    assert "decode imgs -> disk cache 100%" in out and "eta" in out


def test_image_size_sets_the_side_beyond_the_automatic_cap(tmp_path, disk):
    root = folder(tmp_path / "imgs", per_class=4, side=96)
    assert load_images(root).train.x.shape[1] == 64  # automatic: capped at 64
    assert load_data(str(root), image_size=80).train.x.shape[1:] == (80, 80, 3)
    with default_image_size(24):  # what sslab.api sets around a study from pretrain.image_size
        assert load_data(str(root)).train.x.shape[1] == 24
    assert load_config(PretrainConfig, None, ["image_size=80"]).image_size == 80
    assert load_config(StudyConfig, None, ["pretrain.image_size=48"]).pretrain.image_size == 48
    with pytest.raises(SslabError, match="image_size"):
        load_config(PretrainConfig, None, ["image_size=4"])


def test_pretrain_from_a_memory_mapped_folder(tmp_path, disk, capsys):
    """`sslab pretrain --image-size` on a folder in the disk cache: the engine indexes the memory map, the on-device
    views take the batches unchanged, and the run records the side."""
    root = folder(tmp_path / "imgs", classes=("a",), per_class=24, side=40)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "pretrain", "--data", root, "--image-size", "16", "--method", "simclr",
                           "--backbone", "resnet-xs", "--batch-size", "8", "--epochs", "1", "--out", out)
    assert code == 0, err
    info = json.loads((out / "run.json").read_text())
    assert info["image_size"] == 16 and info["config"]["image_size"] == 16
    assert len(list(disk.glob("images-*.npy"))) == 1
    res = sslab.pretrain(load_images(root, image_size=16).train,  # the Python API on the same memory map
                         PretrainConfig(method="simclr", backbone="resnet-xs", batch_size=8, epochs=0.5, budget=None),
                         tmp_path / "api", show_progress=False)
    assert res["steps"] == 1 and os.path.isfile(tmp_path / "api" / "backbone.safetensors")
