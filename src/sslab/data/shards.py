"""WebDataset shards: ``--data 'shards/train-{000000..000009}.tar'`` (brace-expanded; local files, or on a user's
machine URLs and ``pipe:`` commands, read by webdataset). A sample is the members of a tar that share a key: an
image (``.jpg``, ``.png``, ...) for images, an image and its caption (``.txt``; several lines are several captions)
for image-text pairs, as CLIP pretraining reads them.

Shards stream into the engine (``sslab.engine.Trainer``): the split object has ``stream_batches``, and the engine
takes whole raw batches from it instead of indexing an array. Per process and epoch:

* ``split_by_node``: process r reads shards r, r + P, r + 2P, ... (P processes) of the shard list; ``split_by_worker``
  then gives each of its ``pretrain.data_workers`` CPU reader processes its own shards (the process's shards are
  shuffled first, seeded by the seed and the epoch). Readers decode (Pillow, as the folder loader) and shuffle the
  samples in a buffer (``pretrain.shuffle_buffer``). Each sample is read once per epoch; every process takes the
  same number of steps, that of the process with the fewest samples (the others' surplus waits for the next epoch,
  whose shuffled order differs).
* with fewer shards than processes (or ``pretrain.shard_resample=true``) every reader instead draws shards with
  replacement (``ResampledShards``) from its own seed: an endless stream cut into epochs of the counted samples (or
  ``max_items``) spread over the processes.

Local shards are scanned once before training (tar headers only; the result cached under ``SSLAB_CACHE``): the
scan counts their samples and finds a truncated shard, or a sample without an image (or caption), as a one-line
error before any training starts. Remote shards cannot be scanned: give ``pretrain.max_items`` (the samples of an
epoch); they are always resampled. An image that does not decode is counted and skipped: a copy of another image
of its batch takes its place, so that every process keeps the same number of steps.

Resume restores the position exactly: the order of an epoch is a function of the seed, the epoch, the process and
the reader, and the engine's step says how many samples of the epoch this process has taken, so each reader skips
its share of them (reading their tar members again, not decoding them) and the run goes on with the next sample it
would have seen. The same number of processes and of readers is needed (the engine checks the first; the second is
part of the run's saved settings).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import sys
import tarfile
import zlib
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from sslab.atomic import atomic_write
from sslab.data.base import DataSplits, cache_dir, cache_key, one_line
from sslab.errors import SslabError

log = logging.getLogger("sslab")

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
IMAGE_MEMBERS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif", "ppm", "pgm")
TEXT_MEMBERS = ("txt", "text", "caption")
HEAD_ITEMS = 512  # samples decoded at load time: the side and channels, pixel statistics, the probe's fixed batch
MAX_CAPTIONS = 5  # captions kept per image (lines of its .txt)
TOKENIZER_CAPTIONS = 200_000  # captions read from the shards to train a tokenizer on (CLIP's own tokenizer)
DEFAULT_PAIR_SIZE = 64
_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext: key = the name up to its first dot
CHUNK = 32  # samples a reader process sends at once (one sample a message cost more than decoding it: measured)
END, BAD, ERROR = "__end__", "__bad__", "__error__"


class MissingMember(SslabError):
    """A sample without the member its data kind needs: the shard is malformed (an error, not a skipped image)."""


def is_shard_spec(spec: str) -> bool:
    """Whether `spec` names WebDataset shards: a tar path or pattern (``.tar``, ``.tar.gz``, ``.tgz``)."""
    return any(part.strip().lower().endswith(SHARD_SUFFIXES) for part in str(spec).split("::") if part.strip())


def _wds():
    try:
        import webdataset
    except ImportError:
        raise SslabError("reading WebDataset shards needs the webdataset package: pip install 'sslab[shards]'") from None
    return webdataset


def _remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://") or url.startswith("pipe:")


def _local(url: str) -> str:
    return url[len("file://"):] if url.startswith("file://") else url


def expand(spec: str) -> list[str]:
    """The shards `spec` names (braces expanded, '::' separating lists); a one-line error when a local one is
    missing."""
    try:
        urls = list(_wds().shardlists.expand_urls(str(spec).strip()))
    except Exception as err:  # noqa: BLE001 - braceexpand raises several kinds for a malformed pattern
        raise SslabError(f"cannot read the shard pattern {spec!r}: {one_line(err)}") from None
    missing = [u for u in urls if not _remote(u) and not Path(_local(u)).expanduser().is_file()]
    if not urls or len(missing) == len(urls):
        raise SslabError(f"no shard matches {spec} (no such file{'s' if len(urls) > 1 else ''}"
                         f"{': ' + missing[0] if missing else ''})")
    if missing:
        raise SslabError(f"{len(missing)} of the {len(urls)} shards of {spec} do not exist (first: {missing[0]})")
    return [u if _remote(u) else str(Path(_local(u)).expanduser()) for u in urls]


def has_captions(spec: str) -> bool:
    """Whether the first sample of the shards `spec` has a caption (False when they cannot be read: loading them
    says why)."""
    try:
        return any(k in _first_sample(expand(spec)[0]) for k in TEXT_MEMBERS)
    except SslabError:
        return False


def load_shards(spec: str, kind: str | None = None, image_size: int | None = None) -> DataSplits:
    """The shards `spec` as a streamed training split (no test split): images, or image-text pairs when `kind` is
    "pairs" (or None and the first sample has a caption)."""
    if kind == "text":
        raise SslabError(f"{spec} are WebDataset shards of images; text methods need text")
    urls = expand(spec)
    first = _first_sample(urls[0])
    pairs = kind == "pairs" or (kind is None and any(k in first for k in TEXT_MEMBERS))
    counts = None if any(_remote(u) for u in urls) else [_count(u, pairs) for u in urls]
    if counts is not None and sum(counts) < 2:
        raise SslabError(f"{spec}: {sum(counts)} samples; pretraining needs at least 2")
    head = list(islice(_samples_in_order(urls), HEAD_ITEMS))
    cls = ShardPairs if pairs else ShardImages
    name = re.sub(r"[{}]", "", Path(_local(urls[0])).parent.name or Path(urls[0]).stem) or "shards"
    return DataSplits(cls(spec, urls, counts, head, image_size, name), None)


# ---------------------------------------------------------------------------------------------------------------
# scanning: counts, missing members, truncated tars
# ---------------------------------------------------------------------------------------------------------------
def _split_key(name: str) -> tuple[str | None, str]:
    m = _KEY.match(name)
    return (m.group(1), m.group(2).lower()) if m else (None, "")


def _check_sample(path: str, key: str, exts: set[str], pairs: bool) -> None:
    last = {e.split(".")[-1] for e in exts}
    missing = [what for what, need in (("an image (.jpg, .png, ...)", IMAGE_MEMBERS), ("a caption (.txt)", TEXT_MEMBERS))
               if (need is IMAGE_MEMBERS or pairs) and not last & set(need)]
    if missing:
        raise MissingMember(f"shard {path}: sample {key!r} lacks {' and '.join(missing)} (its members: "
                            f"{', '.join(sorted(exts)) or 'none'})")


def _scan(path: str, pairs: bool) -> int:
    """The samples in a local shard, each checked for its members; one-line errors for a tar that is truncated or
    not a tar at all."""
    n, key, exts = 0, None, set()
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                if not m.isreg():
                    continue
                k, ext = _split_key(m.name)
                if k is None or re.match(r"__[^/]*__($|/)", m.name):
                    continue
                if k != key:
                    if key is not None:
                        _check_sample(path, key, exts, pairs)
                        n += 1
                    key, exts = k, set()
                exts.add(ext)
            end = tf.offset
        if not str(path).lower().endswith((".gz", ".tgz")):  # (gzip's own check finds a cut compressed file)
            with open(path, "rb") as f:  # cut between two members: the end-of-archive blocks are missing
                f.seek(end)
                if f.read(1024) != bytes(1024):
                    raise tarfile.ReadError("no end-of-archive marker after the last member")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise SslabError(f"cannot read shard {path}: {one_line(err)} (truncated, or not a tar file)") from None
    if key is not None:
        _check_sample(path, key, exts, pairs)
        n += 1
    if n == 0:
        raise SslabError(f"shard {path} holds no samples")
    return n


def _count(path: str, pairs: bool) -> int:
    """`_scan`, remembered in the cache by the shard's path, size and modification time."""
    st = os.stat(path)
    key = cache_key({"kind": "shard-count", "path": str(Path(path).resolve()), "size": st.st_size,
                     "mtime_ns": st.st_mtime_ns, "pairs": pairs})
    memo = cache_dir() / f"shard-{key}.json"
    try:
        return int(json.loads(memo.read_text())["samples"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    n = _scan(path, pairs)
    try:
        atomic_write(memo, json.dumps({"samples": n, "path": str(path)}).encode())
    except OSError:
        pass  # a count that cannot be cached is counted again next time
    return n


def _raw_samples(urls: list[str], handler=None):
    wds = _wds()
    return wds.tarfile_to_samples(handler=handler or wds.reraise_exception)(iter([{"url": u} for u in urls]))


def _first_sample(url: str) -> dict:
    try:
        for sample in _raw_samples([url]):
            return sample
    except Exception as err:  # noqa: BLE001 - tarfile, gopen and webdataset raise many kinds
        raise SslabError(f"cannot read shard {url}: {one_line(err)} (truncated, or not a tar file)") from None
    raise SslabError(f"shard {url} holds no samples")


def _samples_in_order(urls: list[str]) -> Iterator[dict]:
    try:
        yield from _raw_samples(urls)
    except Exception as err:  # noqa: BLE001
        raise SslabError(f"cannot read the shards {urls[0]}...: {one_line(err)}") from None


# ---------------------------------------------------------------------------------------------------------------
# decoding (in the reader processes)
# ---------------------------------------------------------------------------------------------------------------
def _member(sample: dict, wanted: tuple[str, ...]) -> tuple[str, bytes] | None:
    for ext, value in sample.items():
        if not ext.startswith("__") and ext.split(".")[-1] in wanted:
            return ext, value
    return None


def _label(sample: dict, ext: str = "") -> str:
    return f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}{'.' + ext if ext else ''}"


def decode_image(sample: dict, size: int, gray: bool) -> np.ndarray:
    from sslab.data.image import decode_one

    found = _member(sample, IMAGE_MEMBERS)
    if found is None:
        raise MissingMember(f"shard {sample.get('__url__', '?')}: sample {sample.get('__key__')!r} lacks an "
                            "image (.jpg, .png, ...)")
    return decode_one(found[1], _label(sample, found[0]), size, gray)


def captions_of(sample: dict) -> list[str]:
    found = _member(sample, TEXT_MEMBERS)
    if found is None:
        raise MissingMember(f"shard {sample.get('__url__', '?')}: sample {sample.get('__key__')!r} lacks a "
                            "caption (.txt)")
    try:
        lines = [line.strip() for line in found[1].decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        lines = []
    return lines[:MAX_CAPTIONS]


def tokenize(tok, captions: list[str], context: int, pad_id: int) -> dict:
    """Captions as `PairTokens` gives them: ids and mask (MAX_CAPTIONS, context), shorter lists padded by repeating
    the first caption, and how many there are."""
    ids = np.full((MAX_CAPTIONS, context), pad_id, dtype=np.int64)
    mask = np.zeros((MAX_CAPTIONS, context), dtype=np.int64)
    enc = tok(list(captions), truncation=True, max_length=context)["input_ids"]
    for slot in range(MAX_CAPTIONS):
        row = enc[slot] if slot < len(enc) else enc[0]
        ids[slot, : len(row)], mask[slot, : len(row)] = row, 1
    return {"captions": ids, "caption_mask": mask, "n_captions": np.int64(len(enc))}


def _seed(*parts: int) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


class _Readers(torch.utils.data.IterableDataset):
    """One process's samples of one epoch, read by each DataLoader worker from its own shards (webdataset's
    split_by_node, then split_by_worker) or drawn with replacement (ResampledShards), shuffled in a seeded buffer,
    the first `skip[worker]` passed over undecoded (a resumed epoch), then decoded and sent in chunks: (worker,
    chunk index, samples), chunk j holding the worker's samples j * CHUNK .. (j + 1) * CHUNK - 1 of the epoch, so
    that the training process can put them in one fixed order whatever order they arrive in. The worker ends with
    (worker, END); errors travel as values (ERROR, message) to be raised as one line in the training process."""

    def __init__(self, plan: dict, transform):
        super().__init__()
        self.plan, self.transform = plan, transform

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        position, chunk = self.plan["skip"][worker], []
        try:
            for item in self._samples(worker, workers):
                chunk.append(item)
                position += 1
                if position % CHUNK == 0:
                    yield worker, (position - 1) // CHUNK, chunk
                    chunk = []
            if chunk:
                yield worker, (position - 1) // CHUNK, chunk
        except SslabError as err:
            yield (ERROR, str(err))
        except Exception as err:  # noqa: BLE001 - a reader's failure ends the run with one line
            yield (ERROR, f"cannot read the shards: {one_line(err)}")
        yield worker, END

    def _samples(self, worker: int, workers: int):
        wds, p = _wds(), self.plan
        rank, world, _, _ = wds.utils.pytorch_worker_info()
        if (rank, world) != (p["rank"], p["world"]):
            raise SslabError(f"webdataset sees process {rank} of {world}, the trainer {p['rank']} of {p['world']}")
        if p["resample"]:
            source = wds.ResampledShards(p["urls"], seed=_seed(p["seed"], p["epoch"]), deterministic=True,
                                         worker_seed=lambda: _seed(p["rank"], worker))
            stages = [source]
        else:
            def shuffled(src):  # this process's shards in the epoch's order (the same in each of its readers)
                mine = list(src)
                random.Random(_seed(p["seed"], p["epoch"], p["rank"])).shuffle(mine)
                yield from mine

            stages = [wds.SimpleShardList(p["urls"]), wds.split_by_node, shuffled, wds.split_by_worker]
            got = [s["url"] for s in wds.DataPipeline(*stages)]
            if got != p["worker_urls"][worker]:  # the trainer's counts assume this split
                raise SslabError(f"reader {worker} of process {rank} was given shards {got[:2]}..., expected "
                                 f"{p['worker_urls'][worker][:2]}...")
        rng = random.Random(_seed(p["seed"], p["epoch"], p["rank"], worker, 1))
        pipeline = wds.DataPipeline(*stages, wds.tarfile_to_samples(), wds.shuffle(p["buffer"], initial=p["buffer"],
                                                                                    rng=rng))
        for sample in islice(iter(pipeline), p["skip"][worker], None):
            try:
                yield self.transform(sample)
            except MissingMember:
                raise
            except SslabError as err:  # an image that does not decode: counted and skipped in the trainer
                yield (BAD, str(err))


def _same(sample):
    return sample  # samples cross from the readers as they are (no conversion to tensors one by one)


def _worker_env(rank: int, world: int):
    def init(_worker_id: int) -> None:
        os.environ["RANK"], os.environ["WORLD_SIZE"] = str(rank), str(world)  # what webdataset's split_by_node reads
        torch.set_num_threads(1)

    return init


def takes(k: int, caps: list[float], chunk: int = CHUNK) -> tuple[list[int], tuple[int, int]]:
    """Where an epoch stands after its first `k` samples, reader w holding caps[w] samples (inf: endless) and the
    epoch's order being chunk 0 of every reader, then chunk 1 of every reader, ... (a reader without that chunk
    passed over): how many samples each reader has given, and (chunk index, reader) of the next sample's chunk."""
    taken, j = [0] * len(caps), 0
    while True:
        sizes = [max(0, min(chunk, c - j * chunk)) for c in caps]
        if not any(sizes):
            raise SslabError(f"the shards hold {sum(taken)} samples, fewer than a resumed epoch has taken")
        for w, size in enumerate(sizes):
            if size == 0:
                continue
            if k < size:
                taken[w] += k
                return taken, (j, w)
            taken[w] += size
            k -= size
        j += 1


class ShardStream:
    """A streamed training split: `len` (the counted samples), `meta`, a fixed in-memory `head` for the probe
    (`batch(idx)` indexes it), and `stream_batches` for the engine."""

    streamed = True
    y = None
    classes: list = []

    def __init__(self, spec: str, urls: list[str], counts: list[int] | None, head: list[dict], image_size: int | None,
                 name: str):
        from sslab.data.image import choose_format, header, pixel_stats

        self.spec, self.urls, self.counts, self.name = spec, urls, counts, name
        modes, sides = [], []
        for s in head:
            found = _member(s, IMAGE_MEMBERS)
            try:
                mode, side = header(found[1], _label(s, found[0])) if found is not None else (None, None)
            except SslabError:
                continue
            if mode is not None:
                modes.append(mode)
                sides.append(side)
        if not sides:
            raise SslabError(f"{spec}: none of the first {len(head)} samples holds a readable image")
        # the side and channels as a folder of these images would get them (pairs: RGB, 64 px by default)
        gray, self.size = choose_format(modes, sides, image_size or (None if self.kind == "image" else
                                                                     DEFAULT_PAIR_SIZE))
        self.gray = gray and self.kind == "image"
        self.skipped = 0
        self.head = []
        for s in head:
            try:
                self.head.append(self._decode(s))
            except SslabError:
                continue
        images = np.stack([h["images"] if isinstance(h, dict) else h for h in self.head])
        self._mean, self._std = pixel_stats(images)
        self.probe_items = len(self.head)

    def __len__(self) -> int:  # remote shards are not counted: pretrain.max_items says how many make an epoch
        return int(sum(self.counts)) if self.counts is not None else sys.maxsize

    def meta(self, limit: int | None = None) -> dict:
        return {"kind": self.kind, "in_chans": 1 if self.gray else 3, "image_size": self.size, "mean": self._mean,
                "std": self._std}

    # --- the epoch plan -----------------------------------------------------------------------------------------
    def resampled(self, world: int, cfg: Any) -> bool:
        if self.counts is None:
            return True
        if cfg.shard_resample is not None:
            return bool(cfg.shard_resample)
        return len(self.urls) < world

    def steps_per_epoch(self, n: int, batch: int, world: int, cfg: Any) -> int:
        """Steps per epoch, the same in every process: `n` samples spread over the processes, or, reading each
        process's own shards, what the process with the fewest samples can fill."""
        if self.counts is None and not cfg.max_items:
            raise SslabError(f"{self.spec}: remote shards cannot be counted before training; set pretrain.max_items "
                             "to the samples of an epoch")
        per_process = n // world
        if not self.resampled(world, cfg):
            if len(self.urls) < world:
                raise SslabError(f"{len(self.urls)} shards for {world} processes: each process reads its own shards "
                                 "(give at least as many shards as processes, or pretrain.shard_resample=true)")
            per_process = min(per_process, min(sum(self.counts[r::world]) for r in range(world)))
        if per_process < batch:
            raise SslabError(f"{self.spec}: {per_process} samples per process, fewer than a batch of {batch}")
        return per_process // batch

    def _worker_urls(self, epoch: int, rank: int, world: int, workers: int, seed: int) -> list[list[str]]:
        mine = self.urls[rank::world]
        random.Random(_seed(seed, epoch, rank)).shuffle(mine)
        return [mine[w::max(workers, 1)] for w in range(max(workers, 1))]

    def stream_batches(self, step: int, steps_per_epoch: int, batch: int, rank: int, world: int,
                       cfg: Any) -> Iterator[Any]:
        """This process's raw batches from step `step` on (mid-epoch: the epoch's position restored), endless."""
        epoch, start = divmod(step, steps_per_epoch)
        while True:
            yield from self._epoch(epoch, start, steps_per_epoch, batch, rank, world, cfg)
            epoch, start = epoch + 1, 0

    def _epoch(self, epoch, start, steps, batch, rank, world, cfg):
        workers = cfg.data_workers
        slots = max(workers, 1)
        resample = self.resampled(world, cfg)
        worker_urls = self._worker_urls(epoch, rank, world, workers, cfg.seed) if not resample else [[]] * slots
        count = dict(zip(self.urls, self.counts or []))
        caps = [float("inf")] * slots if resample else [sum(count[u] for u in us) for us in worker_urls]
        skip, (j, w) = takes(start * batch, caps)
        plan = {"urls": self.urls, "epoch": epoch, "rank": rank, "world": world, "seed": cfg.seed,
                "resample": resample, "worker_urls": worker_urls, "buffer": cfg.shuffle_buffer, "skip": skip}
        loader = torch.utils.data.DataLoader(_Readers(plan, self._decode), batch_size=None, num_workers=workers,
                                             collate_fn=_same,
                                             worker_init_fn=_worker_env(rank, world) if workers else None,
                                             prefetch_factor=4 if workers else None)
        it, pending, ended, items = iter(loader), {}, set(), []
        try:
            for step in range(start, steps):
                while len(items) < batch:  # the epoch's order: chunk j of readers 0, 1, ..., then chunk j + 1
                    if j * CHUNK >= caps[w]:  # reader w has no chunk j
                        j, w = (j + 1, 0) if w + 1 == slots else (j, w + 1)
                        if all(j * CHUNK >= c for c in caps):
                            raise SslabError(f"{self.spec}: the shards ran out at step {epoch * steps + step}")
                        continue
                    while (j, w) not in pending:
                        if w in ended:
                            raise SslabError(f"{self.spec}: the shards ran out at step {epoch * steps + step} "
                                             "(a shard changed while training?)")
                        got = next(it, (ERROR, f"{self.spec}: the readers ended early"))
                        if got[0] == ERROR:
                            raise SslabError(got[1])
                        if got[1] == END:
                            ended.add(got[0])
                        else:
                            pending[got[1], got[0]] = got[2]  # (chunk index, reader)
                    items += pending.pop((j, w))
                    j, w = (j + 1, 0) if w + 1 == slots else (j, w + 1)
                yield self._collate(items[:batch])
                items = items[batch:]
        finally:
            del it

    def _collate(self, items: list):
        good = [i for i in items if not (isinstance(i, tuple) and i[0] == BAD)]
        for item in items:
            if isinstance(item, tuple) and item[0] == BAD:
                self.skipped += 1
                log.warning(f"skipped an unreadable image ({self.skipped} so far): {item[1]}")
        if not good:
            raise SslabError(f"{self.spec}: no image of a whole batch decodes ({items[0][1]})")
        filled = [i if not (isinstance(i, tuple) and i[0] == BAD) else good[k % len(good)]
                  for k, i in enumerate(items)]
        return self._stack(filled)

    def batch(self, idx) -> Any:
        """Items of the fixed head (decoded at load time): the probe's batch."""
        idx = torch.as_tensor(idx, dtype=torch.long).tolist()
        return self._stack([self.head[i % len(self.head)] for i in idx])


class ShardImages(ShardStream):
    kind, unit = "image", "images"

    def _decode(self, sample: dict) -> np.ndarray:
        return decode_image(sample, self.size, self.gray)

    def _stack(self, items: list) -> torch.Tensor:
        return torch.from_numpy(np.stack(items))

    def units(self, batch: torch.Tensor) -> int:
        return int(batch.shape[0])


class ShardPairs(ShardStream):
    """Image-text pairs. Before `tokens()` a sample decodes to its image and captions; after it, to the image and
    its captions' token ids (what CLIP's views take: `PairTokens.batch`)."""

    kind, unit = "pairs", "pairs"

    def __init__(self, *args, **kwargs):
        self.tok = None
        super().__init__(*args, **kwargs)

    @property
    def images(self) -> np.ndarray:  # the head's, for what reads a split's images
        return np.stack([h["images"] for h in self.head])

    def read_captions(self, limit: int = TOKENIZER_CAPTIONS) -> list[str]:
        """Up to `limit` captions in shard order (what a tokenizer is trained on)."""
        out: list[str] = []
        for sample in _samples_in_order(self.urls):
            out.extend(captions_of(sample))
            if len(out) >= limit:
                break
        return out[:limit]

    def tokens(self, tok, context: int, meta: dict) -> "ShardPairs":
        """This stream with captions tokenized by `tok` (in the reader processes)."""
        import copy

        out = copy.copy(self)
        out.tok, out.context, out.pad_id, out._meta = tok, context, meta["pad_id"], dict(meta)
        out.head = [{**h, **tokenize(tok, h["text"], context, meta["pad_id"])} for h in self.head]
        return out

    def meta(self, limit: int | None = None) -> dict:
        return dict(self._meta) if getattr(self, "_meta", None) else super().meta(limit)

    def _decode(self, sample: dict) -> dict:
        out = {"images": decode_image(sample, self.size, gray=False), "text": captions_of(sample)}
        if not out["text"]:
            raise SslabError(f"shard {sample.get('__url__', '?')}: sample {sample.get('__key__')!r} has an empty caption")
        if self.tok is not None:
            out.update(tokenize(self.tok, out.pop("text"), self.context, self.pad_id))
        return out

    def _stack(self, items: list) -> dict:
        keys = ("images", "captions", "caption_mask", "n_captions") if self.tok is not None else ("images",)
        return {k: torch.from_numpy(np.stack([i[k] for i in items])) for k in keys}

    def units(self, batch: dict) -> int:
        return int(batch["images"].shape[0])
