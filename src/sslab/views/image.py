"""Batched, on-device SSL image augmentations with independent per-sample parameters.

Everything here works on whole batches of float tensors ``(B, C, H, W)`` in ``[0, 1]``
(``C`` in ``{1, 3}``) on any device, in pure PyTorch (no torchvision/kornia at run time):

* random resized crop + horizontal flip are ONE per-sample affine ``theta`` ``(B, 2, 3)``
  turned into a sampling grid (same as :func:`torch.nn.functional.affine_grid`, built by
  broadcasting) for :func:`~torch.nn.functional.grid_sample`
  (bilinear, ``align_corners=False``). Sampled crop windows never leave the image, so every
  sample point lies within the image border and ``padding_mode='border'`` gives exactly what
  ``'reflection'`` would (PyTorch clips reflected coordinates too), only faster. Crops are sampled like
  torchvision's ``RandomResizedCrop`` (10 candidates per sample, first valid one, centre-crop
  fallback) but vectorised, with continuous (sub-pixel) crop boxes. Note that the resize is a
  plain bilinear resample (no anti-aliasing), which is what you want for small images; for
  heavy down-scaling of large images, downsize first.
* colour jitter in a fixed order (brightness, contrast, saturation, hue; torchvision factor
  ranges), applied where a per-sample Bernoulli(``jitter_p``) mask is set; masked-out samples get
  exact identity factors instead of a ``torch.where`` over pixels. Brightness and contrast follow
  torchvision exactly (contrast blends with the per-image mean luma, clamp after each).
  Saturation, hue and random grayscale (ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B``, like
  torchvision) are folded into ONE per-sample 3x3 colour matrix applied with ``torch.bmm``
  (no clamp between them). **Hue is a rotation of the chroma (I, Q) plane in YIQ space**
  (angle ``-2*pi*shift``, same direction as torchvision's HSV shift), not an HSV shift: it keeps
  luma fixed and is several times cheaper; out-of-gamut results are clamped.
* Gaussian blur with a per-sample sigma (kernel radius ``ceil(3 * blur_sigma[1])``): per-sample
  separable 1D kernels, applied either as banded per-sample matrices (batched matmul, small
  images) or as one grouped convolution over the ``(1, B*C, H, W)`` view; reflect boundary.
* solarize (``x >= 0.5 -> 1 - x``).

All random numbers are drawn with ``torch.rand`` from the optional ``torch.Generator`` as vectors
of length ``B`` in a fixed order, so results are reproducible under a seed and the parameters of
sample ``i`` never depend on the content of other samples. For ``C == 1`` the colour ops reduce to
brightness/contrast (saturation, hue and grayscale are no-ops).

Use :meth:`Augment.sample_params` / :meth:`Augment.apply` to inspect or replay parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from sslab.errors import SslabError

__all__ = [
    "AugmentConfig",
    "Augment",
    "two_views",
    "multi_views",
    "simclr_config",
    "supervised_config",
    "random_patch_mask",
    "block_masks",
    "patchify",
    "unpatchify",
]

_N_TRIES = 10  # crop candidates per sample (as torchvision's RandomResizedCrop)
_LUMA = (0.299, 0.587, 0.114)


def _pair(name: str, value: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SslabError(f"AugmentConfig.{name} must be a pair of numbers, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise SslabError(f"AugmentConfig.{name} must be a finite (low, high) pair with low <= high, got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of :class:`Augment`. Probabilities are per sample; magnitudes follow torchvision.

    ``brightness``/``contrast``/``saturation`` = b draw a factor in ``[max(0, 1 - b), 1 + b]``;
    ``hue`` = h draws a shift in ``[-h, h]`` (fraction of the hue circle, ``0 <= h <= 0.5``).
    """

    size: int  # output side
    scale: tuple[float, float] = (0.2, 1.0)  # random resized crop area fraction
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio (w / h) range
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    gray_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise SslabError(f"AugmentConfig.size must be a positive int, got {self.size!r}")
        for name in ("scale", "ratio", "blur_sigma"):
            object.__setattr__(self, name, _pair(name, getattr(self, name)))
        if not 0.0 < self.scale[0]:
            raise SslabError(f"AugmentConfig.scale must be > 0, got {self.scale}")
        if not 0.0 < self.ratio[0]:
            raise SslabError(f"AugmentConfig.ratio must be > 0, got {self.ratio}")
        if not 0.0 < self.blur_sigma[0]:
            raise SslabError(f"AugmentConfig.blur_sigma must be > 0, got {self.blur_sigma}")
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p", "solarize_p"):
            p = float(getattr(self, name))
            if not 0.0 <= p <= 1.0:
                raise SslabError(f"AugmentConfig.{name} must be a probability in [0, 1], got {p}")
            object.__setattr__(self, name, p)
        for name in ("brightness", "contrast", "saturation", "hue"):
            m = float(getattr(self, name))
            if not (math.isfinite(m) and m >= 0.0):
                raise SslabError(f"AugmentConfig.{name} must be >= 0, got {m}")
            object.__setattr__(self, name, m)
        if self.hue > 0.5:
            raise SslabError(f"AugmentConfig.hue must be <= 0.5, got {self.hue}")


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform [0, 1) float32 on ``device``, drawn on the generator's own device (CPU gen -> CPU)."""
    draw_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=draw_device, dtype=torch.float32).to(device)


def _uniform(lo: float, hi: float, shape, generator, device) -> Tensor:
    return lo + (hi - lo) * _rand(shape, generator, device)


def _view(v: Tensor) -> Tensor:
    return v.view(-1, 1, 1, 1)


# RGB -> YIQ (NTSC). Hue is a rotation of the (I, Q) chroma plane, which keeps luma (Y) fixed.
_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
)
_YIQ_INV = torch.linalg.inv(_YIQ)


def _color_matrices(p: dict[str, Tensor], cfg: AugmentConfig, jitter: Tensor) -> Tensor:
    """Per-sample (B, 3, 3) matrix = grayscale @ hue @ saturation (identity where not applied)."""
    B = jitter.shape[0]
    dev = jitter.device
    eye = torch.eye(3, device=dev, dtype=torch.float32).expand(B, 3, 3)
    luma = torch.tensor(_LUMA, device=dev, dtype=torch.float32)
    to_gray = luma.expand(B, 3, 3)  # every row = luma
    m = eye
    if cfg.saturation > 0:
        s = torch.where(jitter, p["saturation"], torch.ones_like(p["saturation"])).view(B, 1, 1)
        m = s * eye + (1 - s) * to_gray
    if cfg.hue > 0:
        # HSV hue increases red -> yellow -> green, which is a clockwise turn in the (I, Q) plane
        ang = -2.0 * math.pi * torch.where(jitter, p["hue"], torch.zeros_like(p["hue"]))
        cos, sin = torch.cos(ang), torch.sin(ang)
        r = torch.zeros(B, 3, 3, device=dev)  # R - I, exactly zero for a zero shift
        r[:, 1, 1] = cos - 1
        r[:, 1, 2] = -sin
        r[:, 2, 1] = sin
        r[:, 2, 2] = cos - 1
        t = _YIQ.to(dev, torch.float32)
        t_inv = _YIQ_INV.to(dev, torch.float32)
        m = (eye + t_inv @ r @ t) @ m
    if cfg.gray_p > 0:
        m = torch.where(p["gray"].view(B, 1, 1), to_gray @ m, m)
    return m


def _affine_grid(theta: Tensor, h: int, w: int) -> Tensor:
    """``F.affine_grid(theta, (B, C, h, w), align_corners=False)`` built by broadcasting.

    Same result, but avoids the (B, h*w, 3) @ (B, 3, 2) batched matmul, which dominates
    ``affine_grid`` on CPU for small images.
    """
    B = theta.shape[0]
    xs = (torch.arange(w, device=theta.device, dtype=theta.dtype) * 2 + 1) / w - 1  # pixel centres
    ys = (torch.arange(h, device=theta.device, dtype=theta.dtype) * 2 + 1) / h - 1
    col = (theta[:, :, 0].view(B, 1, 1, 2) * xs.view(1, 1, w, 1)) + theta[:, :, 2].view(B, 1, 1, 2)
    row = theta[:, :, 1].view(B, 1, 1, 2) * ys.view(1, h, 1, 1)
    return col + row  # (B, h, w, 2): one full-size op


class Augment(torch.nn.Module):
    """Batched SSL augmentation: ``Augment(cfg)(x, generator) -> (B, C, cfg.size, cfg.size)``."""

    def __init__(self, cfg: AugmentConfig):
        super().__init__()
        if not isinstance(cfg, AugmentConfig):
            raise SslabError(f"Augment expects an AugmentConfig, got {type(cfg).__name__}")
        self.cfg = cfg

    def extra_repr(self) -> str:
        return repr(self.cfg)

    # ------------------------------------------------------------------ parameters
    @torch.no_grad()
    def sample_params(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        *,
        image_size: tuple[int, int] | None = None,
        device: torch.device | str | None = None,
    ) -> dict[str, Tensor]:
        """Draw all random parameters for a batch of ``batch`` images of ``image_size`` (H, W).

        ``image_size`` defaults to ``(cfg.size, cfg.size)``; it only matters for the aspect
        ratio of non-square inputs. Returns a dict of tensors with leading dim ``batch``:
        ``theta`` (B, 2, 3) crop+flip affine, ``area`` crop area fraction, ``aspect`` crop w/h
        in pixels, ``flip`` / ``jitter`` / ``gray`` / ``blur`` / ``solarize`` bool masks,
        ``brightness`` / ``contrast`` / ``saturation`` factors, ``hue`` shift, ``sigma`` blur sigma.
        The draw order is fixed, so a seeded generator gives the same parameters every time.
        """
        cfg = self.cfg
        if batch < 1:
            raise SslabError(f"batch must be >= 1, got {batch}")
        H, W = image_size if image_size is not None else (cfg.size, cfg.size)
        dev = torch.device(device) if device is not None else (
            generator.device if generator is not None else torch.device("cpu"))
        B, n = batch, _N_TRIES

        # --- random resized crop (torchvision semantics, vectorised, continuous boxes)
        total = float(H * W)
        area = total * _uniform(cfg.scale[0], cfg.scale[1], (B, n), generator, dev)
        log_r = _uniform(math.log(cfg.ratio[0]), math.log(cfg.ratio[1]), (B, n), generator, dev)
        r = torch.exp(log_r)
        cw = torch.sqrt(area * r)
        ch = torch.sqrt(area / r)
        valid = (cw <= W) & (ch <= H)
        first = valid.to(torch.int8).argmax(1, keepdim=True)  # first valid candidate (0 if none)
        any_valid = valid.any(1)
        cw = cw.gather(1, first).squeeze(1)
        ch = ch.gather(1, first).squeeze(1)
        # fallback: central crop clipped to the ratio range
        in_ratio = W / H
        if in_ratio < cfg.ratio[0]:
            fw, fh = float(W), W / cfg.ratio[0]
        elif in_ratio > cfg.ratio[1]:
            fw, fh = H * cfg.ratio[1], float(H)
        else:
            fw, fh = float(W), float(H)
        cw = torch.where(any_valid, cw, torch.full_like(cw, fw))
        ch = torch.where(any_valid, ch, torch.full_like(ch, fh))
        ux = _rand((B,), generator, dev)
        uy = _rand((B,), generator, dev)
        x0 = torch.where(any_valid, ux * (W - cw), (W - cw) / 2)
        y0 = torch.where(any_valid, uy * (H - ch), (H - ch) / 2)

        # --- flip
        flip = _rand((B,), generator, dev) < cfg.flip_p

        # theta maps output normalised coords to input normalised coords (align_corners=False)
        sx = cw / W
        sy = ch / H
        cx = (x0 + cw / 2) / W * 2 - 1
        cy = (y0 + ch / 2) / H * 2 - 1
        theta = torch.zeros(B, 2, 3, device=dev)
        theta[:, 0, 0] = torch.where(flip, -sx, sx)
        theta[:, 0, 2] = cx
        theta[:, 1, 1] = sy
        theta[:, 1, 2] = cy

        # --- colour
        def factor(m: float) -> Tensor:
            return _uniform(max(0.0, 1.0 - m), 1.0 + m, (B,), generator, dev)

        jitter = _rand((B,), generator, dev) < cfg.jitter_p
        brightness = factor(cfg.brightness)
        contrast = factor(cfg.contrast)
        saturation = factor(cfg.saturation)
        hue = _uniform(-cfg.hue, cfg.hue, (B,), generator, dev)
        gray = _rand((B,), generator, dev) < cfg.gray_p
        blur = _rand((B,), generator, dev) < cfg.blur_p
        sigma = _uniform(cfg.blur_sigma[0], cfg.blur_sigma[1], (B,), generator, dev)
        solarize = _rand((B,), generator, dev) < cfg.solarize_p

        return {
            "theta": theta,
            "area": (cw * ch) / total,
            "aspect": cw / ch,
            "flip": flip,
            "jitter": jitter,
            "brightness": brightness,
            "contrast": contrast,
            "saturation": saturation,
            "hue": hue,
            "gray": gray,
            "blur": blur,
            "sigma": sigma,
            "solarize": solarize,
        }

    # ------------------------------------------------------------------ application
    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise SslabError(f"Augment expects a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
        if not x.is_floating_point():
            raise SslabError(f"Augment expects a float tensor in [0, 1], got dtype {x.dtype}")
        if x.shape[1] not in (1, 3):
            raise SslabError(f"Augment supports 1 or 3 channels, got {x.shape[1]}")
        if x.shape[0] < 1 or x.shape[2] < 1 or x.shape[3] < 1:
            raise SslabError(f"Augment got an empty batch/image of shape {tuple(x.shape)}")

    @torch.no_grad()
    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Apply previously sampled ``params`` (see :meth:`sample_params`) to ``x``.

        Samples whose mask is off get exact identity factors (multiply by 1, identity colour
        matrix, delta blur kernel), so no per-sample branching or Python loop is needed.
        """
        self._check(x)
        cfg = self.cfg
        B, C, H, W = x.shape
        if params["theta"].shape[0] != B:
            raise SslabError(f"params are for a batch of {params['theta'].shape[0]}, x has {B}")
        p = {k: v.to(x.device) for k, v in params.items()}
        dt = x.dtype
        S = cfg.size

        # crop + flip + resize in one resample
        grid = _affine_grid(p["theta"].to(dt), S, S)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        y = y.clamp_(0.0, 1.0)

        jitter = p["jitter"] if cfg.jitter_p > 0 else torch.zeros_like(p["jitter"])
        one = torch.ones_like(p["brightness"])
        if cfg.jitter_p > 0 and cfg.brightness > 0:
            b = torch.where(jitter, p["brightness"], one)
            y = y.mul_(_view(b).to(dt)).clamp_(0.0, 1.0)
        if cfg.jitter_p > 0 and cfg.contrast > 0:
            c = torch.where(jitter, p["contrast"], one)
            ch_mean = y.float().mean(dim=(2, 3))  # (B, C); mean of luma = luma . channel means
            mean = ch_mean @ torch.tensor(_LUMA, device=y.device) if C == 3 else ch_mean[:, 0]
            y = y.mul_(_view(c).to(dt)).add_(_view((1 - c) * mean).to(dt)).clamp_(0.0, 1.0)
        if C == 3 and ((cfg.jitter_p > 0 and (cfg.saturation > 0 or cfg.hue > 0)) or cfg.gray_p > 0):
            m = _color_matrices(p, cfg, jitter).to(dt)
            y = torch.bmm(m, y.reshape(B, 3, S * S)).view(B, 3, S, S).clamp_(0.0, 1.0)
        if cfg.blur_p > 0:
            y = self._blur(y, p["sigma"], p["blur"])
        if cfg.solarize_p > 0:
            # solarize(y) = y >= .5 ? 1 - y : y  ==  min(y, 1 - y); t = 3 makes it a no-op
            t = torch.where(p["solarize"], 1.0, 3.0).to(dt)
            y = torch.minimum(y, _view(t) - y)
        return y.clamp_(0.0, 1.0)

    def _blur(self, y: Tensor, sigma: Tensor, mask: Tensor) -> Tensor:
        """Separable Gaussian blur, one kernel per sample (delta kernel where ``mask`` is off).

        Small images (H + W <= 128) use per-sample banded blur matrices with the reflect boundary
        folded in, applied as two batched matmuls (several times faster than a grouped conv on
        CPU); larger ones use a separable grouped conv over the ``(1, B*C, H, W)`` view.
        """
        B, C, H, W = y.shape
        radius = max(1, math.ceil(3.0 * self.cfg.blur_sigma[1]))
        radius = min(radius, H - 1, W - 1)  # reflect padding needs pad < dim
        if radius < 1:
            return y
        t = torch.arange(-radius, radius + 1, device=y.device)
        tf = t.float()
        k = torch.exp(-(tf[None, :] ** 2) / (2.0 * sigma[:, None].float() ** 2))  # (B, ks)
        k = k / k.sum(1, keepdim=True)
        k = torch.where(mask[:, None], k, (t == 0).float().expand_as(k))
        ks = 2 * radius + 1
        if H + W <= 128:
            def band(n: int) -> Tensor:  # (B, n, n): out[i] = sum_t k[t] * in[reflect(i + t)]
                idx = (torch.arange(n, device=y.device)[:, None] + t[None, :]).abs()
                idx = torch.where(idx > n - 1, 2 * (n - 1) - idx, idx)
                m = torch.zeros(B, n, n, device=y.device)
                return m.scatter_add_(2, idx.expand(B, n, ks), k[:, None, :].expand(B, n, ks).contiguous())

            kw = band(W).to(y.dtype)
            kh = band(H).to(y.dtype)
            z = torch.bmm(y.reshape(B, C * H, W), kw.transpose(1, 2)).view(B, C, H, W)
            return torch.matmul(kh[:, None], z)
        kc = k.to(y.dtype).repeat_interleave(C, dim=0)  # (B*C, ks): matches the (B, C) -> B*C reshape
        z = y.reshape(1, B * C, H, W)
        z = F.pad(z, (radius, radius, radius, radius), mode="reflect")
        z = F.conv2d(z, kc.view(B * C, 1, 1, ks), groups=B * C)
        z = F.conv2d(z, kc.view(B * C, 1, ks, 1), groups=B * C)
        return z.view(B, C, H, W)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a float ``(B, C, H, W)`` batch in [0, 1]; returns ``(B, C, size, size)`` in [0, 1]."""
        self._check(x)
        params = self.sample_params(x.shape[0], generator, image_size=(x.shape[2], x.shape[3]), device=x.device)
        return self.apply(x, params)


def two_views(aug: Augment, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two independently augmented views of the same batch (parameters drawn one after the other)."""
    return aug(x, generator), aug(x, generator)


def multi_views(augs: list[Augment], x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
    """One view per augmentation (e.g. 2 global + N local crops for multi-crop), in order."""
    if len(augs) == 0:
        raise SslabError("multi_views needs at least one Augment")
    return [aug(x, generator) for aug in augs]


def simclr_config(size: int, strength: float = 1.0, channels: int = 3) -> AugmentConfig:
    """The SimCLR recipe for ``size``-pixel images, colour jitter scaled by ``strength``.

    ``strength=1.0`` gives brightness/contrast/saturation 0.4 and hue 0.1 (the SimCLR CIFAR-10
    setting, = the AugmentConfig defaults; SimCLR's ImageNet magnitudes 0.8/0.2 are ``strength=2``),
    ``jitter_p`` 0.8, ``gray_p`` 0.2, crop scale ``(0.08, 1)`` for ``size >= 64`` else ``(0.2, 1)``,
    flip 0.5, Gaussian blur with p 0.5 (sigma 0.1..2) only for ``size >= 64``.
    For ``channels == 1`` (e.g. 28x28 digits) only brightness/contrast jitter is kept, there is no
    grayscale, and small images use a gentler crop scale ``(0.3, 1)`` since crops carry most of
    the invariance and tiny crops of a digit lose it.
    """
    if channels not in (1, 3):
        raise SslabError(f"simclr_config: channels must be 1 or 3, got {channels}")
    if not (math.isfinite(strength) and strength >= 0):
        raise SslabError(f"simclr_config: strength must be >= 0, got {strength}")
    big = size >= 64
    color = channels == 3
    return AugmentConfig(
        size=size,
        scale=(0.08, 1.0) if big else ((0.2, 1.0) if color else (0.3, 1.0)),
        ratio=(3 / 4, 4 / 3),
        flip_p=0.5,
        jitter_p=0.8,
        brightness=0.4 * strength,
        contrast=0.4 * strength,
        saturation=0.4 * strength if color else 0.0,
        hue=min(0.5, 0.1 * strength) if color else 0.0,
        gray_p=0.2 if color else 0.0,
        blur_p=0.5 if big else 0.0,
        blur_sigma=(0.1, 2.0),
        solarize_p=0.0,
    )


def supervised_config(size: int) -> AugmentConfig:
    """Mild augmentation for supervised training from scratch: crop (0.6..1, ratio 0.8..1.25) + flip."""
    return AugmentConfig(
        size=size,
        scale=(0.6, 1.0),
        ratio=(0.8, 1.25),
        flip_p=0.5,
        jitter_p=0.0,
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
        hue=0.0,
        gray_p=0.0,
        blur_p=0.0,
        solarize_p=0.0,
    )


def to_float(x_uint8: Tensor, device, channels_last: bool = False) -> Tensor:
    """(B, H, W, C) uint8 -> (B, C, H, W) float in [0, 1] on `device`."""
    x = x_uint8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def random_patch_mask(batch: int, patches: int, ratio: float, generator: torch.Generator | None = None,
                      device="cpu") -> tuple[Tensor, Tensor]:
    """MAE's random masking: per image, `round(patches * (1 - ratio))` patches kept, drawn uniformly without
    replacement, independently per image, from `generator` (so runs resume exactly). Returns (kept patch indices
    (B, K), ascending; mask (B, N) bool, True where a patch is hidden)."""
    if not 0.0 <= ratio < 1.0:
        raise SslabError(f"mask ratio must be in [0, 1), got {ratio}")
    keep = max(1, int(round(patches * (1.0 - ratio))))
    noise = torch.rand(batch, patches, generator=generator, device=generator.device if generator else device)
    kept = noise.argsort(dim=1)[:, :keep].sort(dim=1).values
    mask = torch.ones(batch, patches, dtype=torch.bool, device=kept.device)
    mask.scatter_(1, kept, False)
    return kept, mask


def patchify(x: Tensor, patch: int) -> Tensor:
    """(B, C, H, W) -> (B, N, patch * patch * C): row-major patches, each flattened as (p, p, C)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(p: Tensor, patch: int, channels: int, h: int, w: int) -> Tensor:
    """The inverse of `patchify`."""
    b = p.shape[0]
    x = p.reshape(b, h // patch, w // patch, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, h, w)


def _block_positions(batch: int, gh: int, gw: int, h: int, w: int, generator, device) -> Tensor:
    """The patch indices (B, h * w) of an h x w block at a random position in each image of a gh x gw grid."""
    top = (torch.rand(batch, generator=generator, device=device) * (gh - h + 1)).long().clamp(max=gh - h)
    left = (torch.rand(batch, generator=generator, device=device) * (gw - w + 1)).long().clamp(max=gw - w)
    rows = top[:, None, None] + torch.arange(h, device=device)[None, :, None]
    cols = left[:, None, None] + torch.arange(w, device=device)[None, None, :]
    return (rows * gw + cols).reshape(batch, h * w)


def _block_side(scale: float, ratio: float, gh: int, gw: int) -> tuple[int, int]:
    area = scale * gh * gw
    h = max(1, min(gh, int(round(math.sqrt(area / ratio)))))
    w = max(1, min(gw, int(round(math.sqrt(area * ratio)))))
    return h, w


def block_masks(batch: int, gh: int, gw: int, generator: torch.Generator | None = None, targets: int = 4,
                target_scale=(0.15, 0.2), target_ratio=(0.75, 1.5), context_scale=(0.85, 1.0),
                device="cpu") -> tuple[Tensor, list[Tensor]]:
    """I-JEPA's multi-block masks on a gh x gw patch grid (Assran et al. 2023; the reference's scale and aspect
    ranges): `targets` target blocks whose size (a fraction of the grid; aspect w/h, log-uniform) is drawn once per
    batch and whose positions are drawn per image, and one square context block (scale 0.85-1) per image with
    every target patch removed from it. The contexts of a batch are cut to the smallest one's size by a random
    choice per image (all of a context's patches are context patches, none a target's). Returns (context patch
    indices (B, Kc), ascending; a list of `targets` (B, Kt_i) target indices)."""
    dev = generator.device if generator is not None else torch.device(device)

    def draw(lo_hi) -> float:
        lo, hi = lo_hi
        return lo + (hi - lo) * float(torch.rand(1, generator=generator, device=dev))

    blocks = []
    for _ in range(targets):
        log_lo, log_hi = math.log(target_ratio[0]), math.log(target_ratio[1])
        h, w = _block_side(draw(target_scale), math.exp(draw((log_lo, log_hi))), gh, gw)
        blocks.append(_block_positions(batch, gh, gw, h, w, generator, dev))
    side = _block_side(draw(context_scale), 1.0, gh, gw)
    context = _block_positions(batch, gh, gw, side[0], side[1], generator, dev)
    allowed = torch.zeros(batch, gh * gw, dtype=torch.bool, device=dev)
    allowed.scatter_(1, context, True)
    for b in blocks:
        allowed.scatter_(1, b, False)
    keep = max(1, int(allowed.sum(1).min()))
    score = torch.rand(batch, gh * gw, generator=generator, device=dev) + (~allowed).float() * 2
    return score.argsort(dim=1)[:, :keep].sort(dim=1).values, blocks


# --- the weak and strong views of consistency training (FixMatch, Sohn et al. 2020) ----------------------------------

def _fill_resample(x: Tensor, theta: Tensor, fill: float, padding: str = "zeros") -> Tensor:
    """`x` resampled through the per-sample affine `theta` (B, 2, 3), points outside the image set to `fill`
    (padding "zeros") or reflected ("reflection")."""
    grid = _affine_grid(theta.to(x.dtype), x.shape[2], x.shape[3])
    if padding == "zeros":  # resample x - fill with zeros outside, add fill back: outside = fill
        return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def weak_view(x: Tensor, generator: torch.Generator | None = None, translate: float = 0.125,
              flip_p: float = 0.5) -> Tensor:
    """FixMatch's weak view of a float (B, C, H, W) batch: a horizontal flip with probability `flip_p` and a
    translation by up to `translate` of the side in each direction, reflected at the border (whole pixels, as
    FixMatch's pad-and-crop)."""
    B, _, H, W = x.shape
    r = _rand((B, 3), generator, x.device)
    sx = torch.where(r[:, 0] < flip_p, -1.0, 1.0)
    shift_px = lambda u, n: torch.round((2 * u - 1) * translate * n) * 2 / n  # noqa: E731  whole pixels
    theta = torch.zeros(B, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1] = sx, 1.0
    theta[:, 0, 2], theta[:, 1, 2] = shift_px(r[:, 1], W), shift_px(r[:, 2], H)
    return _fill_resample(x, theta, 0.0, "reflection").clamp_(0.0, 1.0)


# The RandAugment operations of FixMatch's strong view (its `fixmatch_augment_pool`), each with a magnitude drawn
# uniformly per sample and operation ("RandAugment with random magnitude").
RAND_OPS = ("identity", "autocontrast", "equalize", "brightness", "color", "contrast", "sharpness", "posterize",
            "solarize", "rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def _blend(a: Tensor, b: Tensor, factor: Tensor) -> Tensor:
    """PIL's ImageEnhance: b + factor * (a - b), per sample."""
    return (b + _view(factor) * (a - b)).clamp_(0.0, 1.0)


def _luma(y: Tensor) -> Tensor:
    return (y * torch.tensor(_LUMA, device=y.device, dtype=y.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True) \
        if y.shape[1] == 3 else y


def _equalize(y: Tensor) -> Tensor:
    """Histogram equalisation of every channel of every image (256 levels), batched: per-channel histograms by
    scatter_add, their cumulative sums as lookup tables."""
    B, C, H, W = y.shape
    q = (y * 255).round().long().clamp_(0, 255).view(B * C, H * W)
    hist = torch.zeros(B * C, 256, device=y.device).scatter_add_(1, q, torch.ones_like(q, dtype=torch.float32))
    cdf = hist.cumsum(1)
    lowest = cdf.gather(1, q.min(1, keepdim=True).values)
    lut = ((cdf - lowest) / (H * W - lowest).clamp(min=1)).clamp_(0, 1)
    flat = torch.where((H * W - lowest) > 0, lut.gather(1, q), q.float() / 255)  # a flat channel stays as it is
    return flat.view(B, C, H, W).to(y.dtype)


class StrongView(torch.nn.Module):
    """FixMatch's strong view, batched with independent per-sample parameters: RandAugment with `n_ops` of the
    RAND_OPS drawn per image (distinct, random magnitudes), then Cutout of a square of up to `cutout` of the side
    (filled with grey 0.5), on float (B, C, H, W) batches in [0, 1].

    Every operation runs on the whole batch and `torch.where` keeps it for the images that drew it (14 full-size
    operations on 28-32 px images cost less than one forward pass of the network); the five geometric ones are one
    per-sample affine resample (grey outside the image, as FixMatch's fill). Measured against torchvision's
    RandAugment applied image by image in benchmarks/bench_augment.py (--strong)."""

    def __init__(self, n_ops: int = 2, cutout: float = 0.5):
        super().__init__()
        self.n_ops, self.cutout = n_ops, cutout

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        B, C, H, W = x.shape
        dev, K = x.device, len(RAND_OPS)
        pick = _rand((B, K), generator, dev).argsort(1)[:, : self.n_ops]  # n_ops distinct operations per image
        on = torch.zeros(B, K, dtype=torch.bool, device=dev).scatter_(1, pick, True)
        m = _rand((B, K), generator, dev)  # magnitudes in [0, 1)
        sign = torch.where(_rand((B, K), generator, dev) < 0.5, -1.0, 1.0)
        use = {name: on[:, i] for i, name in enumerate(RAND_OPS)}
        mag = {name: m[:, i] for i, name in enumerate(RAND_OPS)}
        sgn = {name: sign[:, i] for i, name in enumerate(RAND_OPS)}
        keep = lambda name, new, old: torch.where(_view(use[name]), new, old)  # noqa: E731

        # geometric: rotate (30 degrees), shear (0.3), translate (0.3 of the side), one resample
        ang = torch.where(use["rotate"], sgn["rotate"] * mag["rotate"] * math.pi / 6, 0.0)
        shx = torch.where(use["shear_x"], sgn["shear_x"] * mag["shear_x"] * 0.3, 0.0)
        shy = torch.where(use["shear_y"], sgn["shear_y"] * mag["shear_y"] * 0.3, 0.0)
        tx = torch.where(use["translate_x"], sgn["translate_x"] * mag["translate_x"] * 0.6, 0.0)  # 0.3 of 2
        ty = torch.where(use["translate_y"], sgn["translate_y"] * mag["translate_y"] * 0.6, 0.0)
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.stack([torch.stack([cos + shx * sin, -sin + shx * cos, tx], 1),
                             torch.stack([sin + shy * cos, cos - shy * sin, ty], 1)], 1)
        y = x
        if bool((ang != 0).any() or (shx != 0).any() or (shy != 0).any() or (tx != 0).any() or (ty != 0).any()):
            y = torch.where(_view(use["rotate"] | use["shear_x"] | use["shear_y"] | use["translate_x"]
                                  | use["translate_y"]), _fill_resample(x, theta, 0.5).clamp_(0.0, 1.0), x)
        # photometric, PIL's enhancement factors in [0.05, 1.95] (1 +- 0.95 m)
        factor = lambda name: 1 + sgn[name] * 0.95 * mag[name]  # noqa: E731
        lo = y.amin(dim=(2, 3), keepdim=True)
        hi = y.amax(dim=(2, 3), keepdim=True)
        y = keep("autocontrast", torch.where(hi > lo, (y - lo) / (hi - lo).clamp(min=1e-6), y), y)
        y = keep("equalize", _equalize(y), y)
        y = keep("brightness", _blend(y, torch.zeros_like(y), factor("brightness")), y)
        y = keep("color", _blend(y, _luma(y).expand_as(y), factor("color")), y)
        y = keep("contrast", _blend(y, _luma(y).mean(dim=(1, 2, 3), keepdim=True).expand_as(y), factor("contrast")), y)
        smooth = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]], device=dev, dtype=y.dtype) / 13
        soft = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), smooth.expand(C, 1, 3, 3), groups=C)
        y = keep("sharpness", _blend(y, soft, factor("sharpness")), y)
        bits = 8 - (mag["posterize"] * 5).floor()  # 4..8 bits kept
        step = _view(2 ** (8 - bits))
        y = keep("posterize", torch.floor(y * 255 / step) * step / 255, y)
        threshold = _view(1 - mag["solarize"])  # 1 (no change) .. 0 (inverted)
        y = keep("solarize", torch.where(y > threshold, 1 - y, y), y)
        # Cutout: a square of side up to `cutout` of the image's, centred anywhere, grey
        r = _rand((B, 3), generator, dev)
        side = (r[:, 0] * self.cutout * min(H, W)).view(B, 1, 1)
        cy, cx = (r[:, 1] * H).view(B, 1, 1), (r[:, 2] * W).view(B, 1, 1)
        rows = torch.arange(H, device=dev, dtype=torch.float32).view(1, H, 1) + 0.5
        cols = torch.arange(W, device=dev, dtype=torch.float32).view(1, 1, W) + 0.5
        box = ((rows - cy).abs() <= side / 2) & ((cols - cx).abs() <= side / 2)
        return torch.where(box.unsqueeze(1), torch.full_like(y, 0.5), y).clamp_(0.0, 1.0)
