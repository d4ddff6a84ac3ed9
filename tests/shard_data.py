"""Small WebDataset shards for the tests: sample i is an image whose first pixel spells i ((i % 256, i // 256, 7),
PNG, so it survives decoding exactly), optionally with a caption."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def png(i: int, size: int = 8, seed: int | None = None) -> bytes:
    a = np.random.default_rng(i if seed is None else seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    a[0, 0] = [i % 256, (i // 256) % 256, 7]
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def write_tar(path: Path, samples: list[dict[str, bytes]]) -> Path:
    """A tar of `samples` ({"__key__": key, ext: bytes, ...}), members in sample order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for sample in samples:
            for ext, data in sample.items():
                if ext == "__key__":
                    continue
                info = tarfile.TarInfo(f"{sample['__key__']}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def write_shards(folder: Path, sizes: list[int], size: int = 8, captions: bool = False) -> str:
    """Shards train-000000.tar ... holding sizes[k] samples each, numbered on across shards; returns their brace
    pattern."""
    i = 0
    for k, n in enumerate(sizes):
        samples = []
        for _ in range(n):
            sample = {"__key__": f"{i:08d}", "png": png(i, size)}
            if captions:
                sample["txt"] = f"a picture of number {i}\nnumber {i} again".encode()
            samples.append(sample)
            i += 1
        write_tar(folder / f"train-{k:06d}.tar", samples)
    return str(folder / f"train-{{000000..{len(sizes) - 1:06d}}}.tar")


def ids(batch) -> list[int]:
    """The sample numbers of a raw image batch (B, H, W, C)."""
    return (batch[:, 0, 0, 0].long() + 256 * batch[:, 0, 0, 1].long()).tolist()
