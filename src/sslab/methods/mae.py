"""MAE (He et al. 2022): hide most patches of an image (75% by default; `views.image.random_patch_mask`), encode
only the visible ones with a Vision Transformer -- that is where its speed comes from -- and let a light decoder
predict the pixels of the hidden ones, each target patch normalised by its own mean and variance (the paper's
`norm_pix_loss`). The views are the paper's: a random resized crop (scale 0.2-1) and a flip, no colour
distortion. Transfer: the encoder on the whole image, its patch tokens averaged (`nets.image.build_vit`)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sslab.errors import SslabError
from sslab.health import embedding_health
from sslab.methods import register
from sslab.methods.base import ImageEncoder, Reconstructor, ViTMethod, crop_only_views, token_predictor
from sslab.views import image as image_views


@register("mae")
class MAE(ViTMethod, Reconstructor):
    no_decay = (*ViTMethod.no_decay, "decoder_pos")
    run_evaluations = ("reconstruction",)  # held-out loss and the original / masked / reconstruction grid

    def __init__(self, backbone: nn.Module, mask_ratio: float = 0.75, decoder_dim: int = 128, decoder_depth: int = 2,
                 decoder_heads: int = 4, norm_pix: bool = True, crop_scale: tuple = (0.2, 1.0)):
        super().__init__()
        vit = self.vit(backbone)
        if not 0.0 < float(mask_ratio) < 1.0:
            raise SslabError(f"mae mask_ratio must be between 0 and 1, got {mask_ratio}")
        self.backbone, self.mask_ratio, self.norm_pix = backbone, float(mask_ratio), bool(norm_pix)
        self.crop_scale = tuple(crop_scale)
        self.patch = int(vit.patch_embed.patch_size[0])
        self.chans = int(vit.patch_embed.proj.in_channels)
        patches = int(vit.patch_embed.num_patches)
        (self.decoder_embed, self.mask_token, self.decoder_pos, self.decoder, self.decoder_norm,
         self.decoder_pred) = token_predictor(vit.embed_dim, decoder_dim, decoder_depth, decoder_heads, patches,
                                              self.patch * self.patch * self.chans)

    def setup(self, meta: dict, cfg: Any) -> None:
        self._aug = crop_only_views("mae", meta, self.crop_scale, cfg)

    # ------------------------------------------------------------------ views and loss
    def views(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        x = self._aug(image_views.to_float(batch, batch.device), generator)
        patches = (x.shape[-2] // self.patch) * (x.shape[-1] // self.patch)
        kept, mask = image_views.random_patch_mask(len(x), patches, self.mask_ratio, generator, x.device)
        return {"images": x, "kept": kept, "mask": mask}

    def encode_visible(self, images: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        """The encoder on the kept patches only: (B, 1 + K, dim), the class token first."""
        return self.encode_tokens(self.backbone, images, kept)

    def predict(self, images: torch.Tensor, kept: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Predicted pixels of every patch (B, N, patch * patch * C), in the target's (normalised) space."""
        d = self.decoder_embed(self.encode_visible(images, kept))
        full = self.mask_token.to(d.dtype).expand(mask.shape[0], mask.shape[1], -1)
        full = full.scatter(1, kept.unsqueeze(-1).expand(-1, -1, d.shape[-1]), d[:, 1:]) + self.decoder_pos
        out = self.decoder_norm(self.decoder(torch.cat([d[:, :1], full], dim=1)))
        return self.decoder_pred(out[:, 1:])

    def target(self, images: torch.Tensor) -> torch.Tensor:
        t = image_views.patchify((images - self.backbone.mean) / self.backbone.std, self.patch)
        if self.norm_pix:
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6).sqrt()
        return t

    def forward(self, images: torch.Tensor, kept: torch.Tensor, mask: torch.Tensor) -> dict:
        err = (self.predict(images, kept, mask) - self.target(images)).pow(2).mean(-1)  # (B, N)
        m = mask.to(err.dtype)
        return {"loss": (err * m).sum() / m.sum(), "visible_loss": (err * (1 - m)).sum() / (1 - m).sum().clamp_min(1)}

    @torch.no_grad()
    def probe(self, batch: torch.Tensor) -> dict:
        """The loss on a fixed batch with fixed crops and masks, and the embedding health of the encoder's
        features of the whole images (prefixed val_)."""
        x = batch[:256]
        g = torch.Generator(device=x.device).manual_seed(12345)
        out = self(**self.views(x, g))
        h = embedding_health(self.backbone(image_views.to_float(x, x.device)))
        return {"val_loss": float(out["loss"]), "val_rank": h["effective_rank"]}

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """Float images (B, C, H, W) in [0, 1], uncropped: a mask drawn from `generator`; "masked" (hidden patches
        grey) and "reconstruction" (visible patches as they are, hidden ones predicted; with norm_pix each
        prediction takes its true patch's mean and spread, as the paper's figures do), all in [0, 1]."""
        b, c, h, w = images.shape
        kept, mask = image_views.random_patch_mask(b, (h // self.patch) * (w // self.patch), self.mask_ratio,
                                                   generator, images.device)
        pred = self.predict(images, kept, mask)
        truth = image_views.patchify((images - self.backbone.mean) / self.backbone.std, self.patch)
        if self.norm_pix:
            pred = pred * (truth.var(-1, keepdim=True) + 1e-6).sqrt() + truth.mean(-1, keepdim=True)
        filled = torch.where(mask.unsqueeze(-1), pred, truth)
        recon = image_views.unpatchify(filled, self.patch, c, h, w) * self.backbone.std + self.backbone.mean
        hidden = image_views.unpatchify(mask.unsqueeze(-1).expand_as(truth).to(images.dtype), self.patch, c, h, w)
        return {"masked": images * (1 - hidden) + 0.5 * hidden, "reconstruction": recon.clamp(0, 1), "mask": mask}

    def encoder(self) -> ImageEncoder:
        return ImageEncoder(self.backbone)
