"""Tests for sslab.views: batched on-device SSL augmentations."""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sslab.errors import SslabError
from sslab.views import (
    Augment,
    AugmentConfig,
    multi_views,
    simclr_config,
    supervised_config,
    two_views,
)

CIFAR_TAR = Path("/work/shared/data/cifar10/cifar10-jpg.tar.gz")

# every random op off, crop = whole image
IDENTITY = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0, blur_p=0.0, solarize_p=0.0)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rand_images(b: int, c: int, h: int, w: int | None = None, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w or h, generator=gen(seed))


@pytest.fixture(scope="module")
def real_images() -> torch.Tensor:
    """(16, 3, 32, 32) float in [0, 1]: CIFAR-10 jpgs if the archive is here, else sklearn digits."""
    if CIFAR_TAR.is_file():
        from PIL import Image

        imgs = []
        with tarfile.open(CIFAR_TAR, "r:gz") as tf:
            for m in tf:
                if m.isfile() and m.name.endswith(".jpg"):
                    with Image.open(io.BytesIO(tf.extractfile(m).read())) as im:
                        imgs.append(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
                if len(imgs) == 16:
                    break
        if len(imgs) == 16:
            return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
    from sklearn.datasets import load_digits

    d = torch.from_numpy(load_digits().images[:16].astype(np.float32) / 16.0)[:, None]  # (16, 1, 8, 8)
    d = F.interpolate(d, size=(32, 32), mode="bilinear", align_corners=False).clamp(0, 1)
    tint = torch.rand(16, 3, 1, 1, generator=gen(5)) * 0.5 + 0.5  # make the colour ops do something
    return (d * tint).contiguous()


# ---------------------------------------------------------------------------- shapes, range, dtype


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("in_hw,size", [((32, 32), 32), ((28, 28), 28), ((40, 24), 16), ((20, 20), 36)])
def test_shape_dtype_range(c, in_hw, size):
    cfg = dataclasses.replace(simclr_config(size, channels=c), blur_p=0.5, solarize_p=0.3)
    x = rand_images(12, c, *in_hw)
    y = Augment(cfg)(x, gen(1))
    assert y.shape == (12, c, size, size)
    assert y.dtype == x.dtype
    assert torch.isfinite(y).all()
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_float64_preserved_and_extremes_stay_in_range():
    x = torch.cat([torch.zeros(4, 3, 16, 16), torch.ones(4, 3, 16, 16)]).double()
    cfg = AugmentConfig(size=16, jitter_p=1.0, brightness=0.9, contrast=0.9, saturation=0.9, hue=0.5,
                        blur_p=1.0, solarize_p=0.5)
    y = Augment(cfg)(x, gen(0))
    assert y.dtype == torch.float64
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_gray_input_all_colour_ops_on_does_not_crash():
    cfg = AugmentConfig(size=28, jitter_p=1.0, brightness=0.5, contrast=0.5, saturation=0.5, hue=0.3,
                        gray_p=1.0, blur_p=1.0, solarize_p=1.0)
    x = rand_images(8, 1, 28)
    y = Augment(cfg)(x, gen(0))
    assert y.shape == (8, 1, 28, 28)
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_bad_inputs_raise():
    aug = Augment(AugmentConfig(size=8))
    with pytest.raises(SslabError):
        aug(torch.rand(2, 4, 8, 8))
    with pytest.raises(SslabError):
        aug(torch.rand(3, 8, 8))
    with pytest.raises(SslabError):
        aug(torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8))
    p = aug.sample_params(3, gen())
    with pytest.raises(SslabError):
        aug.apply(torch.rand(2, 3, 8, 8), p)


@pytest.mark.parametrize(
    "kw",
    [dict(size=0), dict(size=8, flip_p=1.5), dict(size=8, scale=(0.5, 0.2)), dict(size=8, scale=(0.0, 1.0)),
     dict(size=8, ratio=(0.0, 1.0)), dict(size=8, hue=0.6), dict(size=8, brightness=-0.1),
     dict(size=8, blur_sigma=(0.0, 1.0)), dict(size=8, scale=0.5)],
)
def test_config_validation(kw):
    with pytest.raises(SslabError):
        AugmentConfig(**kw)


def test_config_coerces_lists_and_is_frozen():
    cfg = AugmentConfig(size=8, scale=[0.3, 1], ratio=[1, 1])
    assert cfg.scale == (0.3, 1.0) and cfg.ratio == (1.0, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.size = 4  # type: ignore[misc]


# ---------------------------------------------------------------------------- determinism / independence


def test_determinism_same_seed_same_output_different_seed_different():
    aug = Augment(dataclasses.replace(simclr_config(32), blur_p=0.5, solarize_p=0.2))
    x = rand_images(16, 3, 32)
    a = aug(x, gen(123))
    b = aug(x, gen(123))
    c = aug(x, gen(124))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_two_views_differ_and_are_reproducible():
    aug = Augment(simclr_config(32))
    x = rand_images(8, 3, 32)
    v1, v2 = two_views(aug, x, gen(7))
    w1, w2 = two_views(aug, x, gen(7))
    assert torch.equal(v1, w1) and torch.equal(v2, w2)
    assert (v1 - v2).flatten(1).abs().amax(1).min() > 1e-3  # every sample's two views differ


def test_global_rng_used_without_generator():
    aug = Augment(simclr_config(16))
    x = rand_images(4, 3, 16)
    torch.manual_seed(3)
    a = aug(x)
    torch.manual_seed(3)
    b = aug(x)
    assert torch.equal(a, b)


def test_copies_of_one_image_get_pairwise_different_outputs(real_images):
    x = real_images[:1].expand(16, -1, -1, -1).contiguous()
    y = Augment(simclr_config(32))(x, gen(0)).flatten(1)
    d = torch.cdist(y, y)
    off = d[~torch.eye(16, dtype=torch.bool)]
    assert off.min() > 1e-3


def test_sample_i_does_not_depend_on_other_samples_content():
    aug = Augment(dataclasses.replace(simclr_config(24), blur_p=0.5, solarize_p=0.3))
    x = rand_images(10, 3, 32, seed=1)
    x2 = x.clone()
    x2[4] = torch.rand(3, 32, 32, generator=gen(99))  # replace sample j = 4
    p = aug.sample_params(10, gen(5), image_size=(32, 32))
    p_again = aug.sample_params(10, gen(5), image_size=(32, 32))
    for k in p:  # params depend on the seed only
        assert torch.equal(p[k], p_again[k]), k
    y, y2 = aug.apply(x, p), aug.apply(x2, p)
    keep = torch.arange(10) != 4
    assert torch.allclose(y[keep], y2[keep], atol=1e-6)
    assert not torch.allclose(y[4], y2[4])
    # and the same through forward with a seeded generator
    assert torch.allclose(aug(x, gen(5))[keep], aug(x2, gen(5))[keep], atol=1e-6)
    # forward == sample_params + apply
    assert torch.equal(aug(x, gen(5)), y)


def test_sample_params_keys_and_ranges():
    cfg = AugmentConfig(size=32)
    p = Augment(cfg).sample_params(2000, gen(3), image_size=(32, 32))
    assert p["theta"].shape == (2000, 2, 3)
    for k in ("flip", "jitter", "gray", "blur", "solarize"):
        assert p[k].dtype == torch.bool and p[k].shape == (2000,)
    assert abs(p["flip"].float().mean() - 0.5) < 0.05
    assert abs(p["jitter"].float().mean() - 0.8) < 0.05
    assert abs(p["gray"].float().mean() - 0.2) < 0.05
    assert not p["blur"].any() and not p["solarize"].any()
    for k, m in (("brightness", 0.4), ("contrast", 0.4), ("saturation", 0.4)):
        assert p[k].min() >= 1 - m and p[k].max() <= 1 + m
    assert p["hue"].abs().max() <= 0.1
    # the crop window always lies inside the image: |centre| + half-extent <= 1
    th = p["theta"]
    assert (th[:, 0, 2].abs() + th[:, 0, 0].abs() <= 1 + 1e-5).all()
    assert (th[:, 1, 2].abs() + th[:, 1, 1].abs() <= 1 + 1e-5).all()


def test_crop_area_and_ratio_statistics():
    p = Augment(AugmentConfig(size=32, scale=(0.2, 1.0))).sample_params(20000, gen(11), image_size=(32, 32))
    area, aspect = p["area"], p["aspect"]
    assert area.min() >= 0.2 - 1e-5 and area.max() <= 1.0 + 1e-5
    assert aspect.min() >= 3 / 4 - 1e-5 and aspect.max() <= 4 / 3 + 1e-5
    # uniform area in [0.2, 1] would average 0.6; rejecting boxes that do not fit (as torchvision
    # does) lowers it: torchvision's RandomResizedCrop measures ~0.544 here.
    assert 0.50 < area.mean().item() < 0.58
    # crops are spread over the image
    assert p["theta"][:, 0, 2].std() > 0.1 and p["theta"][:, 1, 2].std() > 0.1


def test_crop_fallback_is_centre_crop():
    # scale > 1 can never fit: every sample falls back to the central crop clipped to the ratio
    aug = Augment(AugmentConfig(size=16, scale=(2.0, 3.0), ratio=(1.0, 1.0), flip_p=0.0))
    p = aug.sample_params(5, gen(0), image_size=(32, 64))
    exp = torch.tensor([[0.5, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert torch.allclose(p["theta"], exp.expand(5, 2, 3), atol=1e-6)


def test_crop_matches_slicing_for_integer_box():
    # a crop box on pixel boundaries with output size == box size is a pure slice
    x = rand_images(2, 3, 32)
    aug = Augment(AugmentConfig(size=16, **IDENTITY))
    p = aug.sample_params(2, gen())
    # box x0=8..24 (w=16), y0=4..20 (h=16) in a 32x32 image
    p["theta"] = torch.tensor([[0.5, 0.0, (8 + 8) / 32 * 2 - 1], [0.0, 0.5, (4 + 8) / 32 * 2 - 1]]).expand(2, 2, 3)
    y = aug.apply(x, p)
    assert torch.allclose(y, x[:, :, 4:20, 8:24], atol=1e-5)


# ---------------------------------------------------------------------------- individual ops


@pytest.mark.parametrize("c", [1, 3])
def test_identity_config_returns_input(c, real_images):
    x = real_images if c == 3 else real_images[:, :1]
    y = Augment(AugmentConfig(size=32, **IDENTITY))(x, gen(0))
    assert torch.allclose(y, x, atol=1e-5)


def test_identity_config_with_jitter_magnitudes_zero_p():
    # jitter_p=1 but all magnitudes 0 -> still the identity
    x = rand_images(4, 3, 16)
    cfg = AugmentConfig(size=16, **{**IDENTITY, "jitter_p": 1.0}, brightness=0, contrast=0, saturation=0, hue=0)
    assert torch.allclose(Augment(cfg)(x, gen(0)), x, atol=1e-5)


def test_identity_crop_resizes_like_bilinear_interpolate():
    x = rand_images(3, 3, 32)
    y = Augment(AugmentConfig(size=48, **IDENTITY))(x, gen(0))
    ref = F.interpolate(x, size=(48, 48), mode="bilinear", align_corners=False)
    # reflection padding vs edge clamping only differ for out-of-range samples, which do not occur
    assert torch.allclose(y, ref, atol=1e-5)


@pytest.mark.parametrize("c", [1, 3])
def test_flip(c):
    x = rand_images(5, c, 20, 20)
    y = Augment(AugmentConfig(size=20, **{**IDENTITY, "flip_p": 1.0}))(x, gen(0))
    assert torch.allclose(y, x.flip(-1), atol=1e-5)


def test_grayscale_equal_channels_and_luma(real_images):
    x = real_images
    y = Augment(AugmentConfig(size=32, **{**IDENTITY, "gray_p": 1.0}))(x, gen(0))
    assert torch.allclose(y[:, 0], y[:, 1], atol=1e-6) and torch.allclose(y[:, 0], y[:, 2], atol=1e-6)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert torch.allclose(y[:, 0], luma, atol=1e-5)


def test_solarize_matches_reference():
    x = rand_images(6, 3, 16)
    y = Augment(AugmentConfig(size=16, **{**IDENTITY, "solarize_p": 1.0}))(x, gen(0))
    ref = torch.where(x >= 0.5, 1.0 - x, x)
    assert torch.allclose(y, ref, atol=1e-6)


def _hf_energy(x: torch.Tensor) -> torch.Tensor:
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    b, c, h, w = x.shape
    return F.conv2d(x.reshape(b * c, 1, h, w), lap).pow(2).mean()


def _ref_blur(x: torch.Tensor, sigma: float, radius: int) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    b, c, h, w = x.shape
    z = F.pad(x.reshape(b * c, 1, h, w), (radius,) * 4, mode="reflect")
    z = F.conv2d(z, k.view(1, 1, 1, -1))
    z = F.conv2d(z, k.view(1, 1, -1, 1))
    return z.view(b, c, h, w)


@pytest.mark.parametrize("hw", [32, 80])  # banded-matmul path and grouped-conv path
def test_blur_matches_reference_and_removes_high_frequencies(hw, real_images):
    x = F.interpolate(real_images[:6], size=(hw, hw), mode="nearest") if hw != 32 else real_images[:6]
    cfg = AugmentConfig(size=hw, **{**IDENTITY, "blur_p": 1.0}, blur_sigma=(1.5, 1.5))
    y = Augment(cfg)(x, gen(0))
    assert torch.allclose(y, _ref_blur(x, 1.5, math.ceil(3 * 1.5)), atol=1e-5)
    assert _hf_energy(y) < 0.2 * _hf_energy(x)


def test_blur_per_sample_sigma_and_mask():
    x = rand_images(8, 3, 24)
    aug = Augment(AugmentConfig(size=24, **{**IDENTITY, "blur_p": 0.5}, blur_sigma=(0.5, 2.0)))
    p = aug.sample_params(8, gen(0))
    p["blur"] = torch.tensor([True, False] * 4)
    p["sigma"] = torch.tensor([0.5, 1.0, 1.0, 1.0, 2.0, 1.0, 1.5, 1.0])
    y = aug.apply(x, p)
    for i in range(8):
        ref = _ref_blur(x[i : i + 1], p["sigma"][i].item(), 6) if p["blur"][i] else x[i : i + 1]
        assert torch.allclose(y[i : i + 1], ref, atol=1e-5), i


def test_brightness_contrast_saturation_match_torchvision():
    TF = pytest.importorskip("torchvision.transforms.v2.functional")
    x = rand_images(6, 3, 16)
    cfg = AugmentConfig(size=16, **{**IDENTITY, "jitter_p": 1.0}, brightness=0.5, contrast=0.5, saturation=0.5, hue=0.0)
    aug = Augment(cfg)
    p = aug.sample_params(6, gen(2))
    y = aug.apply(x, p)
    for i in range(6):
        r = TF.adjust_brightness(x[i], p["brightness"][i].item())
        r = TF.adjust_contrast(r, p["contrast"][i].item())
        r = TF.adjust_saturation(r, p["saturation"][i].item())
        # torchvision's luma uses 0.2989 for red (weights sum to 0.9999), sslab 0.299
        assert torch.allclose(y[i], r, atol=5e-4), i


def test_gray_input_brightness_contrast_match_torchvision():
    TF = pytest.importorskip("torchvision.transforms.v2.functional")
    x = rand_images(4, 1, 16)
    cfg = AugmentConfig(size=16, **{**IDENTITY, "jitter_p": 1.0}, brightness=0.5, contrast=0.5)
    aug = Augment(cfg)
    p = aug.sample_params(4, gen(2))
    y = aug.apply(x, p)
    for i in range(4):
        r = TF.adjust_contrast(TF.adjust_brightness(x[i], p["brightness"][i].item()), p["contrast"][i].item())
        assert torch.allclose(y[i], r, atol=1e-5), i


def test_hue_shift_properties():
    aug = Augment(AugmentConfig(size=4, **{**IDENTITY, "jitter_p": 1.0}, brightness=0, contrast=0, saturation=0,
                                hue=0.5))
    p = aug.sample_params(3, gen())
    p["hue"] = torch.tensor([0.1, -0.1, 0.3])
    # grays are unchanged by any hue shift
    g = torch.full((3, 3, 4, 4), 0.4)
    assert torch.allclose(aug.apply(g, p), g, atol=1e-5)
    # the shift keeps luma (YIQ rotation) when nothing clips, and moves colour in HSV's direction:
    # +shift turns red towards yellow (green grows), -shift towards magenta (blue grows)
    x = torch.tensor([0.6, 0.35, 0.35]).view(1, 3, 1, 1).expand(3, 3, 4, 4).contiguous()
    y = aug.apply(x, p)
    luma = lambda t: 0.299 * t[:, 0] + 0.587 * t[:, 1] + 0.114 * t[:, 2]  # noqa: E731
    assert torch.allclose(luma(y[:2]), luma(x[:2]), atol=1e-4)
    assert y[0, 1].mean() > y[0, 2].mean() + 0.02
    assert y[1, 2].mean() > y[1, 1].mean() + 0.02
    assert (y[2] - x[2]).abs().max() > 0.05


def test_jitter_mask_leaves_unselected_samples_exact(real_images):
    cfg = AugmentConfig(size=32, **{**IDENTITY, "jitter_p": 0.5})
    aug = Augment(cfg)
    p = aug.sample_params(16, gen(4))
    y = aug.apply(real_images, p)
    off = ~p["jitter"]
    assert off.any() and p["jitter"].any()
    assert torch.allclose(y[off], real_images[off], atol=1e-5)
    assert (y[p["jitter"]] - real_images[p["jitter"]]).flatten(1).abs().amax(1).min() > 1e-3


def test_real_images_simclr_pipeline_statistics(real_images):
    aug = Augment(simclr_config(32))
    g = gen(0)
    ys = torch.stack([aug(real_images, g) for _ in range(8)])  # 8 successive draws from one generator
    assert ys.min() >= 0 and ys.max() <= 1
    # the views vary a lot but keep the image statistics in a sensible range
    assert 0.15 < ys.mean().item() < 0.85
    assert ys.std(0).mean() > 0.05


# ---------------------------------------------------------------------------- views and recipes


def test_multi_views_sizes():
    x = rand_images(4, 3, 32)
    g_aug = Augment(simclr_config(32))
    l_aug = Augment(dataclasses.replace(simclr_config(16), scale=(0.05, 0.4)))
    views = multi_views([g_aug, g_aug, l_aug, l_aug, l_aug], x, gen(0))
    assert [v.shape[-1] for v in views] == [32, 32, 16, 16, 16]
    assert not torch.allclose(views[0], views[1])
    with pytest.raises(SslabError):
        multi_views([], x)


def test_simclr_config_recipes():
    c = simclr_config(32)
    assert c.scale == (0.2, 1.0) and c.blur_p == 0.0 and c.jitter_p == 0.8 and c.gray_p == 0.2
    assert (c.brightness, c.contrast, c.saturation, c.hue) == (0.4, 0.4, 0.4, 0.1)
    big = simclr_config(96, strength=2.0)
    assert big.scale == (0.08, 1.0) and big.blur_p == 0.5
    assert big.brightness == pytest.approx(0.8) and big.hue == pytest.approx(0.2)
    assert simclr_config(64, strength=10.0).hue == 0.5
    gray = simclr_config(28, channels=1)
    assert gray.saturation == 0 and gray.hue == 0 and gray.gray_p == 0 and gray.brightness > 0
    assert gray.scale[0] >= 0.2
    with pytest.raises(SslabError):
        simclr_config(32, channels=2)


def test_supervised_config_is_mild():
    c = supervised_config(32)
    assert c.scale == (0.6, 1.0) and c.ratio == (0.8, 1.25) and c.flip_p == 0.5
    assert c.jitter_p == 0 and c.gray_p == 0 and c.blur_p == 0 and c.solarize_p == 0
    x = rand_images(64, 3, 32)
    p = Augment(c).sample_params(64, gen(0))
    assert p["area"].min() >= 0.6 - 1e-5
    y = Augment(c)(x, gen(0))
    assert y.shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_with_cpu_and_cuda_generators():
    aug = Augment(dataclasses.replace(simclr_config(32), blur_p=0.5, solarize_p=0.2))
    x = rand_images(8, 3, 32)
    y_cpu = aug(x, gen(0))
    y_cuda = aug(x.cuda(), gen(0))  # CPU generator, CUDA data: same params -> same result
    assert y_cuda.device.type == "cuda"
    assert torch.allclose(y_cuda.cpu(), y_cpu, atol=1e-4)
    gc = torch.Generator(device="cuda").manual_seed(0)
    y1 = aug(x.cuda(), gc)
    gc.manual_seed(0)
    assert torch.equal(aug(x.cuda(), gc), y1)


def test_all_pairs_of_16_differ_under_supervised_config_too():
    x = rand_images(1, 3, 32).expand(16, -1, -1, -1).contiguous()
    y = Augment(supervised_config(32))(x, gen(1)).flatten(1)
    for i, j in itertools.combinations(range(16), 2):
        assert not torch.allclose(y[i], y[j])


def test_internal_affine_grid_matches_torch():
    from sslab.views.image import _affine_grid

    theta = torch.randn(5, 2, 3, generator=gen(0))
    for h, w in ((7, 7), (5, 9)):
        assert torch.allclose(_affine_grid(theta, h, w), F.affine_grid(theta, [5, 3, h, w], align_corners=False),
                              atol=1e-6)


def test_border_padding_equals_reflection_for_sampled_crops(real_images):
    aug = Augment(AugmentConfig(size=24, scale=(0.05, 1.0), ratio=(0.3, 3.0)))
    p = aug.sample_params(16, gen(9), image_size=(32, 32))
    y = aug.apply(real_images, p)
    from sslab.views.image import _affine_grid

    grid = _affine_grid(p["theta"], 24, 24)
    ref = F.grid_sample(real_images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    geo_only = Augment(dataclasses.replace(aug.cfg, jitter_p=0.0, gray_p=0.0))
    assert torch.allclose(geo_only.apply(real_images, p), ref, atol=1e-6)
    assert y.shape == ref.shape
