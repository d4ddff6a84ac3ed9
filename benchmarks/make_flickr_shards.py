"""Write the Flickr8k subset (`flickr8k-1k`: 1,000 photographs, 5 captions each) as WebDataset shards of image-text
pairs, the layout CLIP pretraining streams: one sample per photograph, `<key>.jpg` (the file's own bytes, not
re-encoded) and `<key>.txt` (its captions, one a line).

    .venv/bin/python benchmarks/make_flickr_shards.py --out shards/flickr --per-shard 100
    .venv/bin/python benchmarks/make_flickr_shards.py --out shards/flickr-train --split train   # the folder's train split
    .venv/bin/sslab pretrain --method clip --data 'shards/flickr/train-{000000..000009}.tar' --budget 2m

The data root is SSLAB_DATA_ROOT (or --data-root), as sslab reads it: `<root>/flickr8k-1k/captions.csv` and
`images/`. Prints the shard pattern to pass as --data."""
from __future__ import annotations

import argparse
import csv
import io
import os
import tarfile
from collections import defaultdict
from pathlib import Path


def write_shards(root: Path, out: Path, per_shard: int = 100, limit: int | None = None,
                 only: set[str] | None = None) -> str:
    """Shards of `per_shard` samples in `out` (`only`: these image names alone); returns their brace pattern."""
    folder = root / "flickr8k-1k"
    captions: dict[str, list[str]] = defaultdict(list)
    with open(folder / "captions.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["caption"].strip():
                captions[row["image"]].append(" ".join(row["caption"].split()))
    names = sorted(n for n in captions if (folder / "images" / n).is_file() and (only is None or n in only))[:limit]
    if not names:
        raise SystemExit(f"no images with captions in {folder}")
    out.mkdir(parents=True, exist_ok=True)
    shards = [names[i : i + per_shard] for i in range(0, len(names), per_shard)]
    for k, part in enumerate(shards):
        final = out / f"train-{k:06d}.tar"
        tmp = final.with_name(final.name + ".tmp")
        with tarfile.open(tmp, "w") as tf:
            for name in part:
                key = Path(name).stem.replace(".", "_")  # a key holds no dot (webdataset splits the name there)
                members = {"jpg": (folder / "images" / name).read_bytes(),
                           "txt": "\n".join(captions[name]).encode("utf-8")}
                for ext, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size, info.mtime = len(data), 0
                    tf.addfile(info, io.BytesIO(data))
        os.replace(tmp, final)
    return str(out / f"train-{{000000..{len(shards) - 1:06d}}}.tar")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("shards/flickr"))
    ap.add_argument("--per-shard", type=int, default=100)
    ap.add_argument("--images", type=int, default=None, help="only the first N photographs (by name)")
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--split", choices=["all", "train"], default="all",
                    help="train: only the images of the folder path's training split (sslab's fixed four fifths), "
                         "so that retrieval on its test split compares the two paths on held-out images")
    args = ap.parse_args()
    root = args.data_root or Path(os.environ.get("SSLAB_DATA_ROOT", Path.home() / ".cache" / "sslab" / "data"))
    only = None
    if args.split == "train":
        from sslab.data.pairs import load_pairs

        only = set(load_pairs("flickr8k-1k", root).train.files)
    print(write_shards(Path(root).expanduser(), args.out, args.per_shard, args.images, only))


if __name__ == "__main__":
    main()
