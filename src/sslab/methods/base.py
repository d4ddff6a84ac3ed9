"""What every method is: a plain `nn.Module` whose forward takes two augmented views and returns the loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Method(nn.Module):
    """Subclasses set `self.backbone` and `self.projector`, implement `forward(x1, x2) -> loss` (multi-crop methods:
    `forward(*views)`, global views first, and they must also accept just two views), and may
    override `after_step(progress)` (called after each optimiser step with progress in [0, 1])."""

    backbone: nn.Module
    projector: nn.Module
    num_local_crops: int = 0  # multi-crop: the engine passes 2 global views + this many local (small) views
    local_crop_size: int | None = None  # side of the local views; None: the engine picks ~3/7 of the image side

    def after_step(self, progress: float) -> None:
        pass

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Representation used for transfer: backbone features (before the projector)."""
        return self.backbone(x)

    @torch.no_grad()
    def energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Compatibility energy of each pair (x_i, y_i): 1 - cosine of their projections, in [0, 2];
        low means compatible (two views of one thing). Contrastive methods train it down for positives and
        up for negatives; non-contrastive ones train it down for positives and regularise against collapse."""
        return 1 - F.cosine_similarity(self.projector(self.backbone(x)), self.projector(self.backbone(y)), dim=1)
