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
    # the engine's collapse diagnosis also checks the projector's outputs (not only backbone features): set by the
    # predictive methods (BYOL, SimSiam) whose known failure -- every projection the same -- shows there first.
    # Off elsewhere: DINO's head emits logits with a large shared component, and on digits eval-mode projections
    # of SwAV / MoCo read as squeezed early in healthy runs.
    check_projection: bool = False

    def after_step(self, progress: float) -> None:
        pass

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Representation used for transfer: backbone features (before the projector)."""
        return self.backbone(x)

    @torch.no_grad()
    def energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Compatibility energy of each pair (x_i, y_i): 1 - cosine of their projections, in [0, 2];
        low means compatible (two views of one thing), 0 = same direction, 2 = opposite. Every method is an
        energy-based model over pairs, and its family decides how the energy landscape is shaped:

        * contrastive (SimCLR, MoCo v2/v3): pushed down for positive pairs and explicitly up for negatives
          (the other images of the batch / the queue), so unrelated images sit at high energy;
        * self-distillation / predictive (BYOL, SimSiam, DINO): pushed down for positives only (through a
          predictor or a sharpened teacher); collapse -- energy 0 everywhere -- is prevented by architecture
          (predictor, stop-gradient, momentum target, centring), not by negatives, so unrelated images are
          merely "not pushed down" and their energies are less spread;
        * regularised / information-maximising (Barlow Twins, VICReg): pushed down for positives while a
          variance / decorrelation term keeps the projections spread over all dimensions;
        * clustering (SwAV): compatible pairs share cluster assignments; the equipartition constraint keeps
          clusters in use. Here the energy is read on its projection (before the prototypes).

        Under eval-mode BatchNorm; values are comparable within one run, not across runs or methods."""
        return 1 - F.cosine_similarity(self.projector(self.backbone(x)), self.projector(self.backbone(y)), dim=1)
