"""Data sets by kind: `image` (uint8 arrays), `text` (examples, token streams) and `pairs` (images with captions), behind the few shared pieces
in `base` (data root, cache, fixed test splits, label fractions, verified downloads). Every split object of every
kind has `kind`, `unit`, `len()`, `batch(idx)` (a raw batch) and, where labelled, `y` and `classes`. WebDataset shards
(`shards`) are streamed: their split object hands the engine whole batches (`stream_batches`)."""
from __future__ import annotations

from pathlib import Path

from sslab.data.base import DataSplits, cache_dir, data_root, is_pixel_csv, label_subset, validation_split
from sslab.data.image import (KNOWN, ImageData, default_image_size, default_size, is_cifar_archive,
                              load_image_files, load_images)
from sslab.errors import SslabError


def load_data(spec: str, root=None, kind: str | None = None, text_column: str | None = None,
              label_column: str | None = None, image_size: int | None = None) -> DataSplits:
    """Load `spec` as the data kind a method trains on (`kind`), or as whatever it looks like (None);
    `text_column` / `label_column` name the columns of a text file (sslab.data.text.load_text); `image_size` is the
    side images are decoded at (None: each loader's default)."""
    from sslab.data.pairs import is_pairs_spec, load_pairs
    from sslab.data.shards import is_shard_spec, load_shards
    from sslab.data.text import is_text_spec, load_text

    named = text_column is not None or label_column is not None
    archive = Path(str(spec)).expanduser()
    if is_shard_spec(str(spec)) and not (archive.is_file() and is_cifar_archive(archive)):  # CIFAR's own archive
        if named:
            raise SslabError(f"--text-column / --label-column are for text data; {spec} are WebDataset shards")
        return load_shards(str(spec), kind, image_size or default_size())
    if kind == "pairs" or (kind is None and is_pairs_spec(str(spec))):
        if named:
            raise SslabError(f"--text-column / --label-column are for text data; {spec} is image-text pairs")
        return load_pairs(str(spec), root, image_size)
    text = is_text_spec(str(spec))  # not a CSV of pixels (is_pixel_csv): that is images
    if kind == "text" or (kind is None and text):
        if not text and (str(spec).strip().lower() in KNOWN or is_pixel_csv(str(spec))):
            raise SslabError(f"{spec} is an image data set; text methods need text (a named corpus, a .txt/.csv/.tsv/"
                             ".jsonl file, a glob or a folder of .txt files)")
        return load_text(str(spec), root, text_column=text_column, label_column=label_column)
    if named:
        raise SslabError(f"--text-column / --label-column are for text data; {spec} is loaded as images")
    try:
        return load_images(spec, root, image_size)
    except SslabError as e:
        if text:  # a folder of text files given to an image method
            raise SslabError(f"{e}; it is text, which a text method can use (sslab methods)") from None
        raise


__all__ = ["DataSplits", "ImageData", "KNOWN", "cache_dir", "data_root", "label_subset", "validation_split", "load_images",
           "load_image_files", "load_data", "default_image_size"]
