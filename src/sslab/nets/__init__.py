"""Networks by data kind: `image` (small ResNets, timm models) and `text` (Transformers from HF configs)."""
from sslab.nets.image import RESNETS, Backbone, backbone_names, build_backbone, check_backbone_name  # noqa: F401

__all__ = ["RESNETS", "Backbone", "backbone_names", "build_backbone", "check_backbone_name"]
