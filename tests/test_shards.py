"""WebDataset shards streamed into the engine (sslab.data.shards): each sample read once per epoch in a seeded,
shuffled order; two gloo processes read disjoint samples; resume restores the epoch's position exactly (the resumed
run's losses equal the uninterrupted run's); CLIP pretrains on image-text shards made from Flickr8k."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest
import torch

pytest.importorskip("webdataset")

from sslab.config import PretrainConfig  # noqa: E402
from sslab.data import load_data  # noqa: E402
from sslab.data.shards import takes  # noqa: E402
from sslab.engine import trainer as trainer_mod  # noqa: E402

from cli_contract import run_cli  # noqa: E402
from shard_data import ids, write_shards  # noqa: E402

WORKER = Path(__file__).with_name("shard_worker.py")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))


def _epochs(data, cfg, spe, batch, start=0, steps=None, rank=0, world=1):
    return [ids(b) for b in islice(data.stream_batches(start, spe, batch, rank, world, cfg), steps or 2 * spe)]


@pytest.mark.parametrize("workers", [2, 0], ids=["reader-processes", "in-process"])
def test_each_sample_once_per_epoch_and_resume_in_place(tmp_path, workers):
    data = load_data(write_shards(tmp_path / "s", [10, 10, 10, 10]), kind="image").train
    assert len(data) == 40 and data.meta()["image_size"] == 8 and data.meta()["in_chans"] == 3
    cfg = PretrainConfig(data_workers=workers, shuffle_buffer=8, seed=1)
    spe = data.steps_per_epoch(len(data), 4, 1, cfg)
    assert spe == 10 and not data.resampled(1, cfg)
    full = _epochs(data, cfg, spe, 4)
    first, second = sum(full[:spe], []), sum(full[spe:], [])
    assert sorted(first) == sorted(second) == list(range(40))  # every sample exactly once per epoch
    assert first != second and first != list(range(40))  # shuffled, differently each epoch
    # resumed three steps into the second epoch: the batches it would have read, in order
    assert _epochs(data, cfg, spe, 4, start=spe + 3, steps=spe - 3) == full[spe + 3:]


def test_an_unreadable_image_is_counted_and_skipped(tmp_path):
    """A sample whose image does not decode is skipped and counted; a copy of another image of its batch takes its
    slot, so the epoch keeps its steps."""
    from shard_data import png, write_tar

    write_tar(tmp_path / "s" / "train-000000.tar", [{"__key__": f"{i:04d}", "png": png(i) if i != 5 else b"junk"}
                                                     for i in range(12)])
    data = load_data(str(tmp_path / "s" / "train-000000.tar"), kind="image").train
    cfg = PretrainConfig(data_workers=1, shuffle_buffer=4, seed=0)
    spe = data.steps_per_epoch(len(data), 4, 1, cfg)
    epoch = sum(_epochs(data, cfg, spe, 4, steps=spe), [])
    assert spe == 3 and len(epoch) == 12 and data.skipped == 1
    assert 5 not in epoch and set(epoch) == set(range(12)) - {5}  # one image twice in its batch instead


def test_where_a_resumed_epoch_stands():
    """The epoch's order is chunk 0 of every reader, then chunk 1, ...; readers without a chunk are passed over.
    After k samples: how many each reader gave, and the chunk (index, reader) the next sample is in."""
    assert takes(0, [5, 5], chunk=2) == ([0, 0], (0, 0))
    assert takes(7, [5, 5], chunk=2) == ([4, 3], (1, 1))
    assert takes(8, [2, 10], chunk=2) == ([2, 6], (3, 1))
    assert takes(5, [float("inf")] * 2, chunk=2) == ([3, 2], (1, 0))


def test_two_processes_read_disjoint_samples(tmp_path):
    """Two gloo processes (two reader processes each): each epoch, the two ranks' samples are disjoint and together
    every sample exactly once; each rank reads only its own shards (split_by_node); a resumed epoch goes on with
    the batches it would have read. With one shard for two processes the readers resample instead: endless
    streams, an epoch being the counted samples over the processes."""
    pattern = write_shards(tmp_path / "s", [10, 10, 10, 10])
    one = write_shards(tmp_path / "one", [24]).replace("{000000..000000}", "000000")
    out, init = tmp_path / "out.json", tmp_path / "init"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    env.pop("RANK", None), env.pop("WORLD_SIZE", None)
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(r), "2", str(init), str(out), pattern, one], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    ranks = json.loads(out.read_text())

    exact = [r["exact"] for r in ranks]
    spe = exact[0]["steps_per_epoch"]
    assert spe == exact[1]["steps_per_epoch"] == 5 and not exact[0]["resampled"]
    own = [set(range(0, 10)) | set(range(20, 30)), set(range(10, 20)) | set(range(30, 40))]  # shards r, r + 2
    for e in range(2):
        per_rank = [sum(r["full"][e * spe:(e + 1) * spe], []) for r in exact]
        assert not set(per_rank[0]) & set(per_rank[1])
        assert sorted(per_rank[0] + per_rank[1]) == list(range(40))
        for r in range(2):
            assert set(per_rank[r]) == own[r]
    for r in exact:
        assert r["resumed"] == r["full"][r["resume_at"]:]

    resampled = [r["resampled"] for r in ranks]
    assert resampled[0]["resampled"] and resampled[0]["steps_per_epoch"] == 3  # 24 samples / 2 processes / 4
    assert resampled[0]["full"] != resampled[1]["full"]  # each process draws from its own seed
    for r in resampled:
        assert all(0 <= i < 24 for b in r["full"] for i in b)
        assert r["resumed"] == r["full"][r["resume_at"]:]


def test_sslab_pretrain_on_two_processes_over_uneven_shards(tmp_path):
    """`sslab pretrain --devices 2` (Fabric, gloo, DDP) on shards of 20, 12, 16 and 9 samples: process 0 reads 36,
    process 1 21, and both take the steps the smaller share fills (21 // 4 = 5 an epoch), so neither waits for the
    other at the end of an epoch."""
    pattern = write_shards(tmp_path / "s", [20, 12, 16, 9], size=12)
    out = tmp_path / "run"
    exe = Path(sys.executable).with_name("sslab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sslab"]
    r = subprocess.run([*cmd, "pretrain", "--data", pattern, "--method", "simclr", "--backbone", "resnet-xs",
                        "--batch-size", "4", "--epochs", "2", "--devices", "2", "--out", str(out), "log_every=1"],
                       capture_output=True, text=True, timeout=240,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "SSLAB_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, 11)) and rows[-1]["epoch"] == 2.0
    assert json.loads((out / "run.json").read_text())["config"]["devices"] == 2


def test_pretrain_on_shards_resumes_exactly(tmp_path, monkeypatch):
    """The engine on streamed shards, interrupted in its second epoch and resumed from the checkpoint: the logged
    losses are those of the uninterrupted run (the resumed epoch's position restored, not restarted)."""
    pattern = write_shards(tmp_path / "s", [12, 12, 12, 12], size=12)
    data = load_data(pattern, kind="image").train
    cfg = PretrainConfig(method="simclr", backbone="resnet-xs", epochs=2, budget=None, batch_size=8, log_every=1,
                         checkpoint_every=1e-6, data_workers=1, shuffle_buffer=8, seed=2)
    full = trainer_mod.pretrain(data, cfg, tmp_path / "full", data_spec=pattern, show_progress=False)
    assert full["steps"] == 12  # 48 samples / 8 a step, two epochs

    class Killed(Exception):
        pass

    save = trainer_mod.Trainer.save

    def save_then_die(self, elapsed):
        save(self, elapsed)
        if self.step == 8:
            raise Killed

    monkeypatch.setattr(trainer_mod.Trainer, "save", save_then_die)
    with pytest.raises(Killed):
        trainer_mod.pretrain(data, cfg, tmp_path / "cut", data_spec=pattern, show_progress=False)
    monkeypatch.setattr(trainer_mod.Trainer, "save", save)
    resumed = trainer_mod.pretrain(data, cfg, tmp_path / "cut", resume=True, data_spec=pattern, show_progress=False)
    assert resumed["steps"] == 12
    losses = [[r["loss"] for r in run["history"]] for run in (full, resumed)]
    assert losses[0] == losses[1]


FLICKR = Path(os.environ.get("SSLAB_DATA_ROOT", "")) / "flickr8k-1k"


@pytest.mark.skipif(not (FLICKR / "captions.csv").is_file(), reason="flickr8k-1k not in SSLAB_DATA_ROOT")
def test_clip_pretrains_on_flickr_shards(tmp_path, capsys):
    """benchmarks/make_flickr_shards.py writes image-text shards; `sslab pretrain` picks CLIP for them (captions),
    trains its tokenizer on their captions and takes a few steps at --image-size."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from make_flickr_shards import write_shards as flickr_shards

    pattern = flickr_shards(FLICKR.parent, tmp_path / "shards", per_shard=16, limit=64)
    assert pattern.endswith("train-{000000..000003}.tar")
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "pretrain", "--data", pattern, "--epochs", "0.5", "--batch-size", "16",
                                "--image-size", "32", "--out", out, "early_stop=null", "log_every=1",
                                "data_workers=1")
    assert code == 0, err
    info = json.loads((out / "run.json").read_text())
    assert info["method"] == "clip" and info["kind"] == "pairs" and info["image_size"] == 32
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)  # 64 pairs / 16, half
    assert (out / "tokenizer" / "tokenizer.json").is_file() and (out / "backbone.safetensors").is_file()
