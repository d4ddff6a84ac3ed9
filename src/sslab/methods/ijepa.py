"""I-JEPA (Assran et al. 2023): from one context block of an image, predict the representations of several target
blocks of the same image -- in representation space, with no pixel reconstruction and no hand-made augmentation.
The context encoder (the ViT used for transfer) sees the context patches only; the targets are the patch tokens
of an EMA copy of it on the whole image (layer-normalised, as the reference does); a narrow ViT predictor takes
the context tokens plus one positional mask token per target patch. Masks: `views.image.block_masks`.

The energy view (a latent-variable predictive model): `energy(x, y)` is the prediction error of y's target
representation from x's context, averaged over sampled target positions (see `energy`)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslab.heads import ema_update, momentum_copy
from sslab.health import embedding_health
from sslab.methods import register
from sslab.methods.base import Energy, ImageEncoder, ViTMethod, token_predictor
from sslab.views import image as image_views


@register("ijepa")
class IJEPA(ViTMethod, Energy):
    no_decay = (*ViTMethod.no_decay, "predictor_pos")
    run_evaluations = ("energy",)  # on the same held-out pairs as the joint-embedding methods (evaluate.image)
    energy_note = ("smooth-L1 error of the second image's target representations predicted from the first's "
                   "context, averaged over 8 draws of the masks; lower = more compatible")

    def __init__(self, backbone: nn.Module, predictor_dim: int = 96, predictor_depth: int = 3,
                 predictor_heads: int = 3, targets: int = 4, momentum: float = 0.996):
        super().__init__()
        vit = self.vit(backbone)
        self.backbone, self.targets, self.base_momentum = backbone, int(targets), float(momentum)
        self.target_backbone = momentum_copy(backbone)
        self.grid = tuple(int(g) for g in vit.patch_embed.grid_size)
        dim, patches = vit.embed_dim, int(vit.patch_embed.num_patches)
        (self.predictor_embed, self.mask_token, self.predictor_pos, self.predictor, self.predictor_norm,
         self.predictor_proj) = token_predictor(dim, predictor_dim, predictor_depth, predictor_heads, patches, dim)

    def setup(self, meta: dict, cfg: Any) -> None:
        pass  # no augmentation: the masks are the views

    def after_step(self, progress: float) -> None:
        """The target encoder follows the context encoder by EMA, momentum rising linearly to 1 (the reference)."""
        m = self.base_momentum + (1.0 - self.base_momentum) * min(max(progress, 0.0), 1.0)
        ema_update(self.backbone, self.target_backbone, m)

    # ------------------------------------------------------------------ views, networks, loss
    def views(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        x = image_views.to_float(batch, batch.device)
        context, targets = image_views.block_masks(len(x), *self.grid, generator, targets=self.targets,
                                                   device=x.device)
        return {"images": x, "context": context, "targets": _pad_blocks(targets)}

    def _tokens(self, vit_backbone: nn.Module, images: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """Patch tokens (B, K, dim) of the encoder after its final norm, on the patches `keep` (None: all)."""
        return self.encode_tokens(vit_backbone, images, keep)[:, vit_backbone.net.num_prefix_tokens:]

    def predict(self, ctx: torch.Tensor, context: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The predictor: context tokens (B, Kc, dim) at patches `context`, mask tokens at patches `target`
        (B, Kt) -> predicted target representations (B, Kt, dim)."""
        pos = self.predictor_pos.expand(len(ctx), -1, -1)
        take = lambda idx: pos.gather(1, idx.unsqueeze(-1).expand(-1, -1, pos.shape[-1]))  # noqa: E731
        z = self.predictor_embed(ctx) + take(context)
        q = self.mask_token.to(z.dtype) + take(target)
        out = self.predictor_norm(self.predictor(torch.cat([z, q], dim=1)))
        return self.predictor_proj(out[:, z.shape[1]:])

    def _targets(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            h = self._tokens(self.target_backbone, images, None)
            return F.layer_norm(h, h.shape[-1:])

    def forward(self, images: torch.Tensor, context: torch.Tensor, targets: torch.Tensor) -> dict:
        h = self._targets(images)
        ctx = self._tokens(self.backbone, images, context)
        losses = [self._block_error(h, ctx, context, _block(targets, i)).mean() for i in range(targets.shape[1])]
        return {"loss": torch.stack(losses).mean()}

    def _block_error(self, h: torch.Tensor, ctx: torch.Tensor, context: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Elementwise smooth-L1 error (B, K, dim) of the predictions at target patches `idx` against the target
        tokens `h` there."""
        want = h.gather(1, idx.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
        return F.smooth_l1_loss(self.predict(ctx, context, idx), want, reduction="none")

    @torch.no_grad()
    def energy(self, x: torch.Tensor, y: torch.Tensor, samples: int = 8, seed: int = 0) -> torch.Tensor:
        """E(x, y) for float images (B, C, H, W): how badly x's context predicts y's target representations --
        the smooth-L1 error between the predictor's output from a context block of x and the target encoder's
        tokens of y at the same target positions, averaged over `samples` draws of the masks (the average, not
        the minimum over positions: a pair is compatible when y is predictable from x wherever one looks).
        Low for y = x, higher for an unrelated y."""
        g = torch.Generator(device=x.device).manual_seed(seed)
        h = self._targets(y)
        total = torch.zeros(len(x), device=x.device)
        for _ in range(samples):
            context, targets = image_views.block_masks(len(x), *self.grid, g, targets=self.targets, device=x.device)
            ctx = self._tokens(self.backbone, x, context)
            for idx in targets:
                total += self._block_error(h, ctx, context, idx).mean(dim=(1, 2)) / (samples * len(targets))
        return total

    @torch.no_grad()
    def probe(self, batch: torch.Tensor) -> dict:
        """The loss on a fixed batch with fixed masks and the embedding health of the context encoder's features
        of the whole images (prefixed val_); I-JEPA's known failure, every representation the same, shows there."""
        x = batch[:256]
        out = self(**self.views(x, torch.Generator(device=x.device).manual_seed(12345)))
        h = embedding_health(self.backbone(image_views.to_float(x, x.device)))
        return {"val_loss": float(out["loss"]), "val_rank": h["effective_rank"]}

    def encoder(self) -> ImageEncoder:
        return ImageEncoder(self.backbone)


def _pad_blocks(blocks: list[torch.Tensor]) -> torch.Tensor:
    """Target blocks (each (B, K_i), K_i the same for the whole batch) as one (B, T, max K_i) tensor, padded with
    -1 (`_block` takes a block's patches back)."""
    k = max(b.shape[1] for b in blocks)
    return torch.stack([F.pad(b, (0, k - b.shape[1]), value=-1) for b in blocks], dim=1)


def _block(targets: torch.Tensor, i: int) -> torch.Tensor:
    """Block i's patch indices (B, K_i) from the padded tensor of `_pad_blocks`."""
    return targets[:, i, : int((targets[0, i] >= 0).sum())]
