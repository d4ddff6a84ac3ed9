"""Pretext views by data kind: `image` (batched augmentations on the device), `text` (collators: masking,
next-sentence pairs, causal shift, packing) and, with the masked methods, `masks`. A method picks the views it
needs; the engine never builds one."""
from sslab.views.image import (Augment, AugmentConfig, multi_views, simclr_config, supervised_config,  # noqa: F401
                               two_views)

__all__ = ["Augment", "AugmentConfig", "multi_views", "simclr_config", "supervised_config", "two_views"]
