"""The bad-input suite: every kind of wrong input a user can give sslab, each case run through the CLI.

An error case must exit non-zero with exactly one stderr line `error: ...` naming the problem, print no traceback
and leave nothing half-written: no run folder (or the folder as it was), no `*.tmp`/`*.part` file anywhere.
Inputs that are unusual but valid (images of mixed sizes and modes, a class with one image, a tiny label
fraction) must load and run instead.
"""
import errno
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sslab
from sslab.checkpoint import load_checkpoint, load_weights
from sslab.cli import main  # noqa: F401

from cli_contract import assert_error, files_of, leftovers, run_cli  # noqa: E402,F401

TRAIN = ["--data", "digits", "--method", "simclr", "--backbone", "resnet-xs", "--batch-size", "32"]  # 44 steps per epoch of digits
TINY_RUN = TRAIN + ["--epochs", "0.05"]  # 3 steps: a checkpoint at step 1 and one at the end


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SSLAB_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)  # a default runs/ folder would land in the temp dir


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------
def save_img(path: Path, mode: str = "L", size: tuple[int, int] = (12, 12), seed: int = 0, fmt: str | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "I;16":
        im = Image.frombytes("I;16", (w, h), rng.integers(0, 65536, (h, w), dtype="<u2").tobytes())
    elif mode == "1":
        im = Image.fromarray(rng.integers(0, 2, (h, w), dtype=np.uint8) * 255, mode="L").convert("1")
    else:
        im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), mode="RGB")
        im = im.convert(mode) if mode != "P" else im.quantize(16)
    im.save(path, format=fmt)


def labelled(root: Path, classes=("a", "b"), per_class: int = 3, size=(8, 8)) -> Path:
    for k, c in enumerate(classes):
        for i in range(per_class):
            save_img(root / c / f"{i}.png", size=size, seed=100 * k + i)
    return root


# ---------------------------------------------------------------------------------------------------------------
# bad data: folders, image files, .npz files
# ---------------------------------------------------------------------------------------------------------------
def _jpeg_bytes(seed=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _make(root: Path, case: str) -> Path:
    """Build the bad data source `case` under `root`; return what to pass as --data."""
    d = root / "data"
    if case == "missing-folder":
        return d
    if case == "unknown-data-set-name":
        return Path("fashion-mnistt")
    if case == "empty-folder":
        d.mkdir()
    elif case == "only-non-image-files":
        d.mkdir()
        (d / "readme.txt").write_text("pictures to come")
        (d / "labels.csv").write_text("a,0\n")
        (d / ".hidden.png").write_bytes(b"")
    elif case == "empty-class-folders":
        (d / "cat").mkdir(parents=True)
        (d / "dog").mkdir()
    elif case == "zero-byte-png":  # unreadable images are skipped: an error where a class is left with none
        labelled(d)
        (d / "c").mkdir()
        (d / "c" / "bad.png").write_bytes(b"")
    elif case.startswith("idx-"):  # MNIST's format: a folder of <prefix>images-idx3-ubyte / labels-idx1-ubyte
        d.mkdir()
        images = b"\x00\x00\x08\x03" + np.array([4, 8, 8], ">u4").tobytes() + bytes(4 * 64)
        labels = b"\x00\x00\x08\x01" + np.array([4], ">u4").tobytes() + bytes([0, 1, 0, 1])
        (d / "train-images-idx3-ubyte").write_bytes(images[:-10] if case == "idx-truncated" else images)
        if case != "idx-without-labels":
            (d / "train-labels-idx1-ubyte").write_bytes(labels[:-1] if case == "idx-label-count" else labels)
        if case == "idx-several-sets":
            for prefix in ("emnist-digits-train-", "emnist-letters-train-"):
                (d / f"{prefix}images-idx3-ubyte").write_bytes(images)
                (d / f"{prefix}labels-idx1-ubyte").write_bytes(labels)
    elif case.startswith("parquet-"):  # the Hugging Face Hub's format
        import pyarrow as pa
        import pyarrow.parquet as pq

        d = root / "train-00000-of-00001.parquet"
        png = io.BytesIO()
        Image.new("L", (8, 8)).save(png, "PNG")
        good = png.getvalue() if case != "parquet-no-readable-image" else b"not an image either"
        columns = ({"id": [1, 2, 3], "label": [0, 1, 0]} if case == "parquet-without-images" else
                   {"image": [{"bytes": good, "path": None}, {"bytes": b"not an image", "path": None}],
                    "label": [0, 1]})
        pq.write_table(pa.table(columns), d)
        if case == "parquet-truncated":
            d.write_bytes(d.read_bytes()[:100])
    elif case == "cifar-pickled-version":  # torchvision's download: pickles, never unpickled
        d = root / "cifar-10-batches-py"
        d.mkdir()
        for name in ("data_batch_1", "batches.meta", "test_batch"):
            (d / name).write_bytes(b"\x80\x04cos\nsystem\n")
    elif case == "cifar-binary-truncated":
        d = root / "cifar-10-batches-bin"
        d.mkdir()
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            (d / name).write_bytes(bytes(3073 * 2 - (7 if name == "data_batch_3.bin" else 0)))
    elif case == "truncated-jpeg":
        labelled(d)
        jpg = _jpeg_bytes()
        (d / "c").mkdir()
        (d / "c" / "bad.jpg").write_bytes(jpg[: len(jpg) // 2])
    elif case == "random-bytes-jpg":
        (d / "a").mkdir(parents=True)
        (d / "a" / "bad.jpg").write_bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes())
    elif case == "top-level-images-and-class-folders":
        labelled(d)
        save_img(d / "stray.png")
    elif case == "train-test-layout-empty-test":
        labelled(d / "train")
        (d / "test").mkdir()
    elif case == "unsupported-file":
        d = root / "data.pkl"  # neither images nor text (a .csv is text, a .parquet either)
        d.write_text("x,y\n")
    elif case == "npz-missing":
        d = root / "data.npz"
    else:
        d = root / "data.npz"
        arrays = {
            "npz-without-images": dict(y=np.zeros(4, np.int64)),
            "npz-mismatched-labels": dict(x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(3, np.int64)),
            "npz-object-array": dict(x=np.array([np.zeros((2, 2))], dtype=object), y=np.zeros(1, np.int64)),
            "npz-float-images-out-of-range": dict(x=np.full((4, 8, 8), 2.0), y=np.zeros(4, np.int64)),
            "npz-negative-labels": dict(x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, -1, 0])),
            "npz-bad-image-shape": dict(x=np.zeros((4, 8, 8, 5), np.uint8), y=np.zeros(4, np.int64)),
        }.get(case)
        if arrays is not None:
            d.write_bytes(_npz_bytes(**arrays))
        elif case == "npz-truncated":
            raw = _npz_bytes(x=np.zeros((40, 8, 8), np.uint8), y=np.zeros(40, np.int64))
            d.write_bytes(raw[: len(raw) // 2])
        else:
            raise AssertionError(case)
    return d


DATA_CASES = {  # case -> words the error line must contain
    "missing-folder": ["data folder not found"],
    "unknown-data-set-name": ["data folder not found", "known data sets"],
    "empty-folder": ["no images found"],
    "only-non-image-files": ["no images found"],
    "empty-class-folders": ["no images found"],
    "zero-byte-png": ["class 'c' has no readable image", "cannot read image", "bad.png"],
    "truncated-jpeg": ["class 'c' has no readable image", "cannot read image", "bad.jpg"],
    "random-bytes-jpg": ["no readable images in", "1 unreadable", "cannot read image", "bad.jpg"],
    "top-level-images-and-class-folders": ["both images at top level and class subfolders"],
    "train-test-layout-empty-test": ["no class folders with images", "test"],
    "unsupported-file": ["unsupported data file"],
    "idx-without-labels": ["train-images-idx3-ubyte has no labels file beside it", "train-labels-idx1-ubyte"],
    "idx-truncated": ["train-images-idx3-ubyte has 246 data bytes, expected 256"],
    "idx-label-count": ["train-labels-idx1-ubyte has 3 data bytes, expected 4"],
    "idx-several-sets": ["IDX files of 3 sets", "one training set"],
    "cifar-pickled-version": ["cifar-10-batches-py is CIFAR's python version, pickled", "binary version"],
    "cifar-binary-truncated": ["cifar-10-batches-bin: batch size is not a multiple of 3073 bytes"],
    "parquet-truncated": ["cannot read", "train-00000-of-00001.parquet"],
    "parquet-without-images": ["train-00000-of-00001.parquet: no column of encoded images", "'id', 'label'"],
    "parquet-no-readable-image": ["train-00000-of-00001.parquet: no readable image in 'image'", "row 1"],
    "npz-missing": ["npz file not found"],
    "npz-without-images": ["no images array", "found: 'y'"],
    "npz-mismatched-labels": ["'y' must have shape (4,)"],
    "npz-object-array": ["pickle"],
    "npz-float-images-out-of-range": ["[0, 1]"],
    "npz-negative-labels": ["negative labels"],
    "npz-bad-image-shape": ["shape"],
    "npz-truncated": ["cannot read"],
}


def test_parquet_without_pyarrow_says_what_to_install(capsys, tmp_path, monkeypatch):
    import sys

    pytest.importorskip("pyarrow")
    data = _make(tmp_path, "parquet-without-images")
    for name in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", "--data", data, "--out", out), "reading Parquet needs pyarrow",
                 "pip install 'sslab[parquet]'", root=tmp_path, out=out)


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data(capsys, tmp_path, case):
    data = _make(tmp_path, case)
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", "--data", data, "--out", out), *DATA_CASES[case], root=tmp_path, out=out)


# ---------------------------------------------------------------------------------------------------------------
# bad settings: names, YAML recipes, key=value overrides, numbers out of range
# ---------------------------------------------------------------------------------------------------------------
CONFIG_FILES = {
    "invalid-yaml": ("pretrain: [unclosed\n  lr: 1\n", ["invalid YAML"]),
    "yaml-list-not-mapping": ("- method: simclr\n- lr: 1\n", ["must hold a mapping"]),
    "yaml-plain-text": ("just some words\n", ["must hold a mapping"]),
    "yaml-unknown-key": ("pretrain:\n  frobnicate: 3\n", ["pretrain.frobnicate"]),
    "yaml-wrong-type": ("pretrain:\n  batch_size: lots\n", ["pretrain.batch_size", "integer"]),
}


@pytest.mark.parametrize("case", list(CONFIG_FILES))
def test_bad_config_file(capsys, tmp_path, case):
    text, words = CONFIG_FILES[case]
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(text)
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "study", "--data", "digits", "--config", cfg, "--out", out), *words,
                 root=tmp_path, out=out)


BAD_ARGS = {  # case -> (command line, words of the error line)
    "config-file-missing": (["study", "--config", "nope.yaml"], ["config file not found"]),
    "unknown-method": (["pretrain", "--method", "nope"], ["unknown method 'nope'", "simclr"]),
    "unknown-method-study": (["study", "--method", "nope"], ["unknown method 'nope'"]),
    "unknown-backbone": (["pretrain", "--backbone", "resnet-zz"], ["unknown backbone 'resnet-zz'", "resnet-xs"]),
    "unknown-timm-model": (["pretrain", "--backbone", "timm:no_such_net"], ["unknown timm model 'no_such_net'"]),
    "unknown-override-key": (["study", "pretrain.frobnicate=1"], ["pretrain.frobnicate"]),
    "override-without-equals": (["study", "pretrain.lr"], ["key=value"]),
    "override-into-a-value": (["study", "pretrain.lr.x=1"], ["pretrain.lr"]),
    "batch-size-not-a-number-override": (["pretrain", "batch_size=abc"], ["batch_size", "integer"]),
    "batch-size-not-a-number-option": (["pretrain", "--batch-size", "abc"], ["--batch-size", "integer"]),
    "batch-size-zero": (["pretrain", "--batch-size", "0"], ["batch_size", "greater than 1"]),
    "batch-size-negative": (["pretrain", "--batch-size", "-1"], ["batch_size", "greater than 1"]),
    "batch-size-one": (["study", "pretrain.batch_size=1"], ["pretrain.batch_size", "greater than 1"]),
    "eval-batch-size-zero": (["study", "eval.batch_size=0"], ["eval.batch_size"]),
    "budget-negative": (["pretrain", "--budget", "-5"], ["duration must be positive"]),
    "budget-zero": (["pretrain", "--budget", "0s"], ["duration must be positive"]),
    "budget-not-a-duration": (["study", "--budget", "5 weeks"], ["invalid duration"]),
    "epochs-negative": (["pretrain", "--epochs", "-1"], ["epochs", "greater than 0"]),
    "epochs-zero": (["study", "--epochs", "0"], ["pretrain.epochs", "greater than 0"]),
    "num-nodes-zero": (["pretrain", "num_nodes=0"], ["num_nodes"]),
    "seeds-zero": (["study", "--seeds", "0"], ["eval.seeds"]),
    "labels-zero": (["study", "--labels", "0"], ["eval.fractions", "(0, 1]"]),
    "labels-negative": (["study", "--labels", "-1"], ["eval.fractions", "(0, 1]"]),
    "labels-above-one": (["study", "--labels", "0.1,1.5"], ["eval.fractions", "(0, 1]"]),
    "labels-one-per-class": (["study", "--labels", "1/class"], ["eval.fractions", "whole number >= 2"]),
    "labels-not-numbers": (["study", "--labels", "abc"], ["eval.fractions", "number"]),
    "labels-empty": (["study", "--labels", ""], ["eval.fractions"]),
    "unknown-protocol": (["study", "eval.protocols=[knn,telepathy]"], ["eval.protocols"]),
    "unknown-option": (["pretrain", "--frobnicate", "3"], ["--frobnicate"]),
    "pretrain-data-missing": (["study", "--pretrain-data", "no/such/folder"], ["data folder not found"]),
    "pretrain-data-text-for-images": (["study", "--pretrain-data", "tinyshakespeare"], ["text"]),
    "selftrain-images-zero": (["study", "eval.selftrain_images=0"], ["eval.selftrain_images"]),
}


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_arguments(capsys, tmp_path, case):
    args, words = BAD_ARGS[case]
    out = tmp_path / "o"
    cmd, rest = args[0], args[1:]
    assert_error(run_cli(capsys, cmd, "--data", "digits", "--out", out, *rest), *words, root=tmp_path, out=out)


@pytest.mark.parametrize("labels,words", [("0", ["(0, 1]"]), ("-1", ["(0, 1]"]), ("2.5", ["(0, 1]"]),
                                          ("abc", ["number"])])
def test_evaluate_bad_label_fractions(capsys, tmp_path, labels, words):
    """Checked before the run is even opened."""
    (tmp_path / "run").mkdir()
    assert_error(run_cli(capsys, "evaluate", tmp_path / "run", "--labels", labels), "fractions", *words,
                 root=tmp_path)
    assert not any((tmp_path / "run").iterdir())


# ---------------------------------------------------------------------------------------------------------------
# output folders: existing, a file, read-only, a full disk
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", ["pretrain", "study"])
def test_out_folder_exists_with_files(capsys, tmp_path, cmd):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert_error(run_cli(capsys, cmd, "--data", "digits", "--out", out), "already holds files", "--overwrite",
                 root=tmp_path)
    assert files_of(out) == {"notes.txt": b"keep me"}


def test_out_is_a_file(capsys, tmp_path):
    out = tmp_path / "o"
    out.write_text("a file")
    assert_error(run_cli(capsys, "pretrain", "--data", "digits", "--out", out), "exists and is not a folder",
                 root=tmp_path)
    assert out.read_text() == "a file"


@pytest.mark.parametrize("exists", [False, True], ids=["no-folder", "empty-folder"])
def test_resume_without_checkpoint(capsys, tmp_path, exists):
    out = tmp_path / "o"
    if exists:
        out.mkdir()
    assert_error(run_cli(capsys, "pretrain", "--data", "digits", "--out", out, "--resume"), "nothing to resume",
                 root=tmp_path)
    assert out.exists() == exists and (not exists or not any(out.iterdir()))


def test_read_only_output_directory(capsys, tmp_path, monkeypatch):
    """As root, chmod blocks nothing; a read-only mount blocks root too. Simulate one at tmp_path/ro."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access, real_statvfs = os.access, os.statvfs

    def access(path, mode, *a, **k):
        return False if (mode & os.W_OK and Path(path) == ro) else real_access(path, mode, *a, **k)

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly() if Path(p) == ro else real_statvfs(p))
    out = ro / "o"
    assert_error(run_cli(capsys, "pretrain", *TINY_RUN, "--out", out), "cannot write to", "read-only file system",
                 root=tmp_path, out=out)


def _fail_mkdir(monkeypatch, target: Path, err: OSError):
    real = Path.mkdir

    def mkdir(self, *a, **k):
        if Path(self) == target:
            raise err
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)


def test_output_directory_turns_read_only(capsys, tmp_path, monkeypatch):
    """The file system passes the up-front check but refuses the first write (e.g. remounted read-only)."""
    out = tmp_path / "o"
    _fail_mkdir(monkeypatch, out, OSError(errno.EROFS, "Read-only file system", str(out)))
    assert_error(run_cli(capsys, "pretrain", *TINY_RUN, "--out", out), "read-only file system", str(out),
                 root=tmp_path, out=out)


@pytest.mark.parametrize("err", [errno.EROFS, errno.ENOSPC], ids=["read-only", "disk-full"])
def test_first_checkpoint_write_fails(capsys, tmp_path, monkeypatch, err):
    """The first checkpoint cannot be written: one line, and the half-made run folder is removed."""
    import sslab.checkpoint

    def atomic_write(path, data):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(sslab.checkpoint, "atomic_write", atomic_write)
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", *TINY_RUN, "--out", out), "could not write", os.strerror(err),
                 root=tmp_path, out=out)


def test_disk_full_during_fsync(capsys, tmp_path, monkeypatch):
    """ENOSPC surfaces at fsync (delayed allocation): the temp files of the atomic writes are removed."""
    import sslab.atomic

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sslab.atomic.os, "fsync", fsync)
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", *TINY_RUN, "--out", out), "No space left on device",
                 root=tmp_path, out=out)
    assert not list(tmp_path.rglob("checkpoint*"))


def test_disk_full_at_a_later_checkpoint_keeps_the_last_good_one(capsys, tmp_path, monkeypatch):
    """A full disk at the second checkpoint: one line; the first checkpoint and backbone stay complete."""
    import sslab.checkpoint

    real, calls = sslab.checkpoint.atomic_write, []

    def atomic_write(path, data):
        calls.append(Path(path).name)
        if calls.count("state.pt") == 2 and Path(path).name == "state.pt":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(sslab.checkpoint, "atomic_write", atomic_write)
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", *TINY_RUN, "--out", out), "No space left on device", root=tmp_path)
    assert not (out / "checkpoint.tmp").exists()
    _, state = load_checkpoint(out / "checkpoint")
    assert state["step"] == 1
    load_weights(out / "backbone.safetensors")
    assert json.loads((out / "run.json").read_text())["method"] == "simclr"


# ---------------------------------------------------------------------------------------------------------------
# a trained run: broken checkpoints, evaluate / report / energy on bad inputs
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSLAB_CACHE", str(base / "cache"))
        mp.chdir(base)
        assert main(["pretrain", *TINY_RUN, "--out", str(base / "run")]) == 0
    return base / "run"


@pytest.fixture()
def run(trained, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


def _flip_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


CHECKPOINT_DAMAGE = {
    "flipped-byte-in-state": (lambda c: _flip_byte(c / "state.pt"), ["corrupt", "checksum"]),
    "truncated-weights": (lambda c: (c / "model.safetensors").write_bytes(b""), ["corrupt"]),
    "missing-manifest": (lambda c: (c / "checkpoint.json").unlink(), ["no complete checkpoint"]),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_DAMAGE))
def test_resume_from_a_damaged_checkpoint_without_fallback(capsys, tmp_path, run, case):
    damage, words = CHECKPOINT_DAMAGE[case]
    shutil.rmtree(run / "checkpoint.prev", ignore_errors=True)  # no older good checkpoint to fall back on
    damage(run / "checkpoint")
    before = files_of(run)
    assert_error(run_cli(capsys, "pretrain", "--out", run, "--resume", "--epochs", "0.1"), *words, root=tmp_path)
    assert files_of(run) == before  # nothing overwritten, nothing added


def test_resume_with_unreadable_run_json(capsys, tmp_path, run):
    (run / "run.json").write_text("{half a fil")
    before = files_of(run)
    assert_error(run_cli(capsys, "pretrain", "--out", run, "--resume"), "cannot resume", "run.json", root=tmp_path)
    assert files_of(run) == before


def test_evaluate_on_unlabelled_folder(capsys, tmp_path, run):
    for i in range(6):
        save_img(tmp_path / "flat" / f"{i}.png", size=(8, 8), seed=i)
    before = files_of(run)
    assert_error(run_cli(capsys, "evaluate", run, "--data", tmp_path / "flat", "--baselines", "none"), "labelled",
                 root=tmp_path)
    assert files_of(run) == before


def test_evaluate_on_images_of_another_shape(capsys, tmp_path, run):
    labelled(tmp_path / "big", size=(16, 16))
    assert_error(run_cli(capsys, "evaluate", run, "--data", tmp_path / "big"), "do not match", "8x8x1",
                 root=tmp_path)


def test_evaluate_class_without_training_images(capsys, tmp_path, run):
    """Test images of a class that has no training image: no label fraction can give it an example."""
    labelled(tmp_path / "split" / "train", classes=("a", "b"))
    labelled(tmp_path / "split" / "test", classes=("a", "b", "c"))
    before = files_of(run)
    assert_error(run_cli(capsys, "evaluate", run, "--data", tmp_path / "split", "--labels", "0.5",
                         "--baselines", "none", "--protocol", "knn"), "class 'c'", "no training image",
                 root=tmp_path)
    assert files_of(run) == before


def test_study_class_with_one_image(capsys, tmp_path):
    """One image cannot be both trained and tested on: evaluation says so (pretraining alone is fine, below)."""
    data = labelled(tmp_path / "data")
    save_img(data / "solo" / "only.png", size=(8, 8))
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "study", "--data", data, "--budget", "1s", "--out", out), "class 'solo'",
                 "no test image", "1 in training", root=tmp_path, out=out)


def test_class_with_one_image_loads_for_pretraining(tmp_path):
    data = labelled(tmp_path / "data")
    save_img(data / "solo" / "only.png", size=(8, 8))
    splits = sslab.load_images(data)
    solo = splits.train.classes.index("solo")
    assert (splits.train.y == solo).sum() == 1 and (splits.test.y == solo).sum() == 0


def test_study_with_a_single_class(capsys, tmp_path):
    data = labelled(tmp_path / "data", classes=("only",), per_class=4)
    assert_error(run_cli(capsys, "study", "--data", data, "--budget", "1s", "--out", tmp_path / "o"),
                 "at least 2 classes",
                 root=tmp_path, out=tmp_path / "o")


def test_tiny_label_fraction_keeps_one_example_per_class(capsys, tmp_path, run):
    """A fraction that rounds to zero images still takes one labelled example of every class."""
    code, _, err = run_cli(capsys, "evaluate", run, "--labels", "0.0001", "--protocol", "knn", "--baselines",
                           "none", "--seeds", "1")
    assert code == 0, err
    results = json.loads((run / "results.json").read_text())
    assert [(r["fraction"], r["n_labels"]) for r in results["runs"]] == [(0.0001, 10)]
    assert not leftovers(tmp_path)


def test_evaluate_run_with_unreadable_run_json(capsys, tmp_path, run):
    (run / "run.json").write_text("{not json")
    assert_error(run_cli(capsys, "evaluate", run), "not a pretraining run", root=tmp_path)


@pytest.mark.parametrize("content,words", [(None, ["no results.json"]), ("{oops", ["malformed"]),
                                           ("[1, 2]", ["malformed", "JSON object"])],
                         ids=["missing", "invalid-json", "not-an-object"])
def test_report_without_usable_results(capsys, tmp_path, content, words):
    folder = tmp_path / "run"
    folder.mkdir()
    if content is not None:
        (folder / "results.json").write_text(content)
    assert_error(run_cli(capsys, "report", folder), *words, root=tmp_path)
    assert not (folder / "report.html").exists() and not (folder / "plots").exists()


def test_energy_with_missing_image(capsys, tmp_path, run):
    save_img(tmp_path / "a.png", size=(8, 8))
    assert_error(run_cli(capsys, "energy", run, tmp_path / "a.png", tmp_path / "nope.png"), "image not found",
                 "nope.png", root=tmp_path)


def test_energy_with_corrupt_image(capsys, tmp_path, run):
    save_img(tmp_path / "a.png", size=(8, 8))
    (tmp_path / "b.jpg").write_bytes(_jpeg_bytes()[:200])
    assert_error(run_cli(capsys, "energy", run, tmp_path / "a.png", tmp_path / "b.jpg"), "cannot read image",
                 "b.jpg", root=tmp_path)


def test_energy_on_a_folder_that_is_not_a_run(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    save_img(tmp_path / "a.png")
    assert_error(run_cli(capsys, "energy", tmp_path / "run", tmp_path / "a.png", tmp_path / "a.png"),
                 "not a pretraining run", root=tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# valid: images of mixed sizes and modes load, converted to one size and the run's channels
# ---------------------------------------------------------------------------------------------------------------
MIXED = [  # (file, mode, (w, h), format)
    ("rgb.png", "RGB", (20, 14), None),
    ("rgba.png", "RGBA", (16, 16), None),
    ("palette.png", "P", (13, 21), None),
    ("gray16.png", "I;16", (18, 12), None),
    ("cmyk.jpg", "CMYK", (24, 16), "JPEG"),
    ("gray.png", "L", (12, 12), None),
    ("bw.bmp", "1", (15, 15), None),
    ("gray-alpha.png", "LA", (17, 13), None),
]


def _mixed_folder(root: Path) -> Path:
    for c in ("a", "b"):
        for i, (name, mode, size, fmt) in enumerate(MIXED):
            save_img(root / c / name, mode, size, seed=i + (10 if c == "b" else 0), fmt=fmt)
    return root


def test_mixed_sizes_and_modes_load(tmp_path):
    data = _mixed_folder(tmp_path / "mixed")
    modes = {Image.open(p).mode for p in data.rglob("*.*")}
    assert {"RGB", "RGBA", "P", "I;16", "CMYK", "L", "1", "LA"} <= modes
    splits = sslab.load_images(data)
    x = np.concatenate([splits.train.x, splits.test.x])
    assert x.dtype == np.uint8 and x.shape == (2 * len(MIXED), 12, 12, 3)  # median shorter side 13.5 -> 12
    assert sorted(np.concatenate([splits.train.y, splits.test.y]).tolist()) == [0] * len(MIXED) + [1] * len(MIXED)
    assert all(a.std() > 0 for a in x)  # every image decoded, none blank

    gray = tmp_path / "gray"
    for i, (name, mode, size, fmt) in enumerate(m for m in MIXED if m[1] in ("I;16", "L", "1", "LA")):
        save_img(gray / name, mode, size, seed=i, fmt=fmt)
    g = sslab.load_images(gray, image_size=10)
    assert g.train.x.dtype == np.uint8 and g.train.x.shape == (4, 10, 10, 1)

    sixteen = tmp_path / "sixteen"
    sixteen.mkdir()
    for name, value in (("white.png", 65535), ("mid.png", 32896)):
        Image.frombytes("I;16", (8, 8), np.full((8, 8), value, "<u2").tobytes()).save(sixteen / name)
    s = sslab.load_images(sixteen)
    assert sorted(int(v) for v in s.train.x.reshape(2, -1).max(axis=1)) == [128, 255]  # 16 -> 8 bits, not clipped


def test_mixed_sizes_and_modes_pretrain(capsys, tmp_path):
    data = _mixed_folder(tmp_path / "mixed")
    out = tmp_path / "o"
    code, stdout, err = run_cli(capsys, "pretrain", "--data", data, "--backbone", "resnet-xs", "--epochs", "2",
                                "--batch-size", "4", "--out", out)
    assert code == 0, err
    assert "Traceback" not in stdout + err
    info = json.loads((out / "run.json").read_text())
    assert (info["image_size"], info["in_chans"]) == (12, 3)
    assert (out / "backbone.safetensors").is_file() and not leftovers(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# WebDataset shards and the decoded-image cache
# ---------------------------------------------------------------------------------------------------------------
SHARD_RUN = ["--method", "simclr", "--backbone", "resnet-xs", "--batch-size", "4", "--epochs", "0.05"]


def _shards(root: Path, case: str) -> tuple[str, list[str]]:
    """Shards for `case` under `root`: (the --data pattern, extra arguments)."""
    from shard_data import png, write_shards, write_tar

    pattern = write_shards(root / "s", [6, 6])
    first = root / "s" / "train-000000.tar"
    if case == "sample-without-image":
        write_tar(first, [{"__key__": f"{i:04d}", "png": png(i)} for i in range(5)] + [{"__key__": "0005",
                                                                                         "cls": b"3"}])
    elif case == "pair-without-caption":
        write_tar(first, [{"__key__": f"{i:04d}", "png": png(i), "txt": b"a caption"} for i in range(5)]
                  + [{"__key__": "0005", "png": png(5)}])
        write_tar(root / "s" / "train-000001.tar", [{"__key__": f"1{i:03d}", "png": png(i), "txt": b"words"}
                                                     for i in range(6)])
        return pattern, ["--method", "clip", "early_stop=null"]
    elif case == "truncated-tar":
        raw = (root / "s" / "train-000001.tar").read_bytes()
        (root / "s" / "train-000001.tar").write_bytes(raw[: len(raw) // 3])
    elif case == "pattern-matches-nothing":
        return str(root / "nowhere" / "train-{000000..000009}.tar"), []
    elif case == "pattern-partly-missing":
        return str(root / "s" / "train-{000000..000003}.tar"), []
    return pattern, []


SHARD_CASES = {
    "sample-without-image": ["train-000000.tar", "sample '0005' lacks an image"],
    "pair-without-caption": ["train-000000.tar", "sample '0005' lacks a caption"],
    "truncated-tar": ["cannot read shard", "train-000001.tar", "truncated"],
    "pattern-matches-nothing": ["no shard matches", "nowhere"],
    "pattern-partly-missing": ["2 of the 4 shards", "do not exist", "train-000002.tar"],
}


@pytest.mark.parametrize("case", list(SHARD_CASES))
def test_bad_shards(capsys, tmp_path, case):
    pytest.importorskip("webdataset")
    pattern, extra = _shards(tmp_path, case)
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", "--data", pattern, *SHARD_RUN, *extra, "--out", out),
                 *SHARD_CASES[case], root=tmp_path, out=out)


def test_read_only_cache_for_a_folder_larger_than_memory(capsys, tmp_path, monkeypatch):
    """A folder over SSLAB_IN_MEMORY_MAX is decoded into the cache; a read-only cache folder (simulated: as root a
    chmod blocks nothing) is one line naming it, and nothing is left behind."""
    import tempfile

    cache = tmp_path / "cache"
    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):
        if dir is not None and Path(dir) == cache:
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setenv("SSLAB_IN_MEMORY_MAX", "0")
    out = tmp_path / "o"
    assert_error(run_cli(capsys, "pretrain", "--data", labelled(tmp_path / "data"), *SHARD_RUN, "--out", out),
                 "cannot write the decoded-image cache", str(cache), "read-only file system", "SSLAB_CACHE",
                 root=tmp_path, out=out)


# ---------------------------------------------------------------------------------------------------------------
# the installed executable, in its own process
# ---------------------------------------------------------------------------------------------------------------
def test_real_process_bad_image(tmp_path):
    data = _make(tmp_path, "truncated-jpeg")
    exe = Path(sys.executable).with_name("sslab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sslab.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLAB_CACHE": str(tmp_path / "cache")}
    env.pop("SSLAB_DEBUG", None)
    proc = subprocess.run(cmd + ["pretrain", "--data", str(data), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cannot read image" in lines[0], proc.stderr
    assert "bad.jpg" in lines[0]
    assert not (tmp_path / "o").exists() and not leftovers(tmp_path)
