"""One process of the two-process shard test (tests/test_shards.py).

    python tests/shard_worker.py RANK WORLD INIT_FILE OUT_FILE PATTERN RESAMPLE_PATTERN

Joins a gloo process group, loads the shards as the CLI does, and reads this process's batches exactly as the
engine asks for them (`stream_batches(step, steps_per_epoch, batch, rank, world, cfg)`, two reader processes):
two whole epochs from step 0, and the same run resumed mid-epoch. Each image carries its sample number in its
first pixel. Rank 0 writes every process's sample numbers to OUT_FILE (JSON)."""
from __future__ import annotations

import json
import sys
from itertools import islice

import torch
import torch.distributed as dist

from sslab.config import PretrainConfig
from sslab.data import load_data

BATCH = 4


def ids(batch: torch.Tensor) -> list[int]:
    return (batch[:, 0, 0, 0].long() + 256 * batch[:, 0, 0, 1].long()).tolist()


def read(pattern: str, rank: int, world: int, resample: bool | None) -> dict:
    data = load_data(pattern, kind="image").train
    cfg = PretrainConfig(data_workers=2, shuffle_buffer=8, shard_resample=resample, seed=5)
    spe = data.steps_per_epoch(len(data), BATCH, world, cfg)
    full = [ids(b) for b in islice(data.stream_batches(0, spe, BATCH, rank, world, cfg), 2 * spe)]
    resume_at = spe + 2  # the second epoch, two steps in
    resumed = [ids(b) for b in islice(data.stream_batches(resume_at, spe, BATCH, rank, world, cfg), spe - 2)]
    return {"steps_per_epoch": spe, "full": full, "resumed": resumed, "resume_at": resume_at,
            "resampled": data.resampled(world, cfg)}


def main(argv: list[str]) -> None:
    rank, world, init_file, out, pattern, one_shard = int(argv[0]), int(argv[1]), argv[2], argv[3], argv[4], argv[5]
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    mine = {"exact": read(pattern, rank, world, None), "resampled": read(one_shard, rank, world, None)}
    every = [None] * world
    dist.all_gather_object(every, mine)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(every, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
