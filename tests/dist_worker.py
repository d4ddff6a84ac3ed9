"""One process of the gradient-equivalence check (tests/test_distributed.py).

    python tests/dist_worker.py RANK WORLD INIT_FILE OUT_FILE [METHOD ...]

For every registered method (or the ones named): build it from a fixed seed, take this process's share of a
fixed global batch of views, run one forward + backward as training does (DDP on gloo when WORLD > 1, the bare
module when WORLD == 1), and save -- from rank 0 -- the loss averaged over processes (what a data-parallel run
optimises), every parameter gradient (DDP has averaged them) and every buffer after the step's forward (queues,
centres). The test compares WORLD=2 with WORLD=1 on the whole batch.

BatchNorm layers run in eval mode (fixed statistics), so the networks act per sample and any difference comes from
the methods' own cross-process logic: losses, gathers, Sinkhorn, centring, queues. Batch statistics across
processes are PyTorch's SyncBatchNorm (`pretrain.sync_batchnorm`), which runs on GPUs only."""
from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

import sslab
from sslab.methods import build_method
from sslab.nets import build_backbone

BATCH, SIZE, LOCAL_SIZE, CHANNELS = 16, 16, 8, 1


def global_views(model, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    views = [torch.rand(BATCH, CHANNELS, SIZE, SIZE, generator=g) for _ in range(2)]
    views += [torch.rand(BATCH, CHANNELS, LOCAL_SIZE, LOCAL_SIZE, generator=g) for _ in range(model.num_local_crops)]
    return views


TEXT_META = {"kind": "text", "vocab_size": 40, "context": 16, "pad_id": 0, "unk_id": 1, "cls_id": 2, "sep_id": 3,
             "mask_id": 4, "bos_id": 2, "eos_id": 3, "special_ids": [0, 1, 2, 3, 4], "extra_special_ids": [39, 38, 37]}


def text_inputs(model) -> dict:
    """The pretext inputs of the whole batch (the same in every process; each takes its share): packed blocks of
    3 documents per row (or the method's own `example_batch` when its data are not token blocks), views drawn
    from a fixed generator."""
    g = torch.Generator().manual_seed(1)
    if hasattr(model, "example_batch"):
        return model.views(model.example_batch(TEXT_META, BATCH, g), g)
    n = model.block_len(TEXT_META["context"]) + 1
    ids = torch.randint(5, TEXT_META["vocab_size"], (BATCH, n), generator=g)
    doc = torch.arange(n).expand(BATCH, n) // (n // 3 + 1) + 10 * torch.arange(BATCH)[:, None]
    return model.views({"ids": ids, "doc": doc}, g)


PAIRS_META = {**TEXT_META, "kind": "pairs", "in_chans": 3, "image_size": SIZE, "mean": [0.5] * 3, "std": [0.25] * 3,
              "method_args": {}}


def pair_inputs(model) -> dict:
    """Images with two captions each (the same in every process), CLIP's views drawn from a fixed generator."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, TEXT_META["vocab_size"], (BATCH, 2, 10), generator=g)
    mask = (torch.arange(10) < torch.randint(3, 11, (BATCH, 2, 1), generator=g)).long()
    batch = {"images": torch.randint(0, 256, (BATCH, SIZE, SIZE, 3), generator=g, dtype=torch.uint8),
             "captions": ids * mask, "caption_mask": mask, "n_captions": torch.full((BATCH,), 2)}
    return model.views(batch, g)


def one_step(name: str, rank: int, world: int) -> dict:
    torch.manual_seed(0)
    share = BATCH // world
    cls = sslab.METHODS[name]
    if cls.kind in ("text", "pairs"):
        from sslab.config import PretrainConfig

        meta = TEXT_META if cls.kind == "text" else PAIRS_META
        backbone = cls.tiny_backbone if cls.kind == "text" else "resnet-xs"
        model = build_method(name, cls.build_net(backbone, meta))
        model.setup(meta, PretrainConfig(method=name))
        inputs = text_inputs(model) if cls.kind == "text" else pair_inputs(model)
        local = {k: v[rank * share : (rank + 1) * share] for k, v in inputs.items()}
    elif hasattr(cls, "tiny_backbone"):  # an image method with its own views (masks): a raw uint8 batch
        from sslab.config import PretrainConfig

        meta = {"kind": "image", "in_chans": CHANNELS, "image_size": SIZE, "mean": [0.5], "std": [0.25]}
        model = build_method(name, cls.build_net(cls.tiny_backbone, meta))
        model.setup(meta, PretrainConfig(method=name))
        g = torch.Generator().manual_seed(1)
        raw = torch.randint(0, 256, (BATCH, SIZE, SIZE, CHANNELS), generator=g, dtype=torch.uint8)
        local = {k: v[rank * share : (rank + 1) * share] for k, v in model.views(raw, g).items()}
    else:
        model = build_method(name, build_backbone("resnet-xs", CHANNELS))
        local = [v[rank * share : (rank + 1) * share] for v in global_views(model)]
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    wrapped = DDP(model) if world > 1 else model
    out = wrapped(**local) if isinstance(local, dict) else wrapped(*local)
    loss = out["loss"] if isinstance(out, dict) else out
    loss.backward()
    mean_loss = loss.detach().clone()
    if world > 1:
        dist.all_reduce(mean_loss)
        mean_loss /= world
    return {"loss": mean_loss,
            "grads": {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None},
            "no_grad": sorted(k for k, p in model.named_parameters() if p.requires_grad and p.grad is None),
            "buffers": {k: b.detach().clone() for k, b in model.named_buffers()}}


def _plant_bug(kind: str) -> None:
    """SSLAB_TEST_BUG: replace sslab's gather by a known-wrong one, to show that the check catches it."""
    from sslab import dist as sdist

    def no_backward(x):  # all_gather without a backward: other processes' gradients are dropped
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.detach())
        parts[dist.get_rank()] = x
        return torch.cat(parts)

    if kind == "local":  # a loss written for one process: its own batch, its own indices
        sdist.gather, sdist.rank = (lambda x: x), (lambda: 0)
    elif kind == "no-backward":
        sdist.gather = no_backward


def main(argv: list[str]) -> None:
    rank, world, init_file, out = int(argv[0]), int(argv[1]), argv[2], argv[3]
    names = argv[4:] or sorted(sslab.METHODS)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    _plant_bug(os.environ.get("SSLAB_TEST_BUG", ""))
    results = {name: one_step(name, rank, world) for name in names}
    if rank == 0:
        torch.save(results, out)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
