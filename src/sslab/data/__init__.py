"""Data sets by kind: `image` (uint8 arrays) and `text` (token streams and labelled examples), behind the few
shared pieces in `base` (data root, cache, fixed test splits, label fractions, verified downloads)."""
from sslab.data.base import DataSplits, cache_dir, data_root, label_subset
from sslab.data.image import KNOWN, ImageData, load_image_files, load_images

__all__ = ["DataSplits", "ImageData", "KNOWN", "cache_dir", "data_root", "label_subset", "load_images",
           "load_image_files"]
