"""Backbones by name: small ResNets for small images, and any timm model for larger ones.

Every backbone maps a float batch in [0, 1] of shape (B, C, H, W) to features (B, dim); input
normalisation lives inside the network so pretraining, evaluation and users all feed raw pixels.
"""
from __future__ import annotations

import torch
from torch import nn

from sslab.errors import SslabError

# name -> (widths per stage, residual blocks per stage, stem stride). A stride-2 stem halves the resolution
# before the first stage: about twice the images/s of the same widths at full resolution on a CPU.
RESNETS: dict[str, tuple[tuple[int, ...], tuple[int, ...], int]] = {
    "resnet-xs": ((16, 32, 64), (1, 1, 1), 1),
    "resnet-s": ((32, 64, 128), (1, 1, 1), 1),
    "resnet-s2": ((32, 64, 128), (1, 1, 1), 2),
    "resnet-m": ((32, 64, 128), (2, 2, 2), 1),
    "resnet-m2": ((32, 64, 128), (2, 2, 2), 2),
    "resnet18": ((64, 128, 256, 512), (2, 2, 2, 2), 1),
}


# Vision Transformers (Dosovitskiy et al. 2021) on timm's blocks: name -> (width, depth, heads), the sizes of
# DeiT / the MAE paper, and `vit-mini` for CPU studies: training a classifier on 28-px images (49 patches, batch 128,
# 2 cores) measured resnet-s2 778 images/s, vit-tiny 47, 192 x 6 blocks 87, vit-mini 148, 128 x 4 blocks 240; the
# mini is the smallest that keeps MAE's depth for a 2-block decoder to sit on. `vit-tiny` picks its patch from the
# image side (`vit_patch`); `vit-tiny/2` names it.
VITS: dict[str, tuple[int, int, int]] = {
    "vit-mini": (128, 6, 4),
    "vit-tiny": (192, 12, 3),
    "vit-small": (384, 12, 6),
    "vit-base": (768, 12, 12),
}


def vit_patch(image_size: int) -> int:
    """The default patch side: 4 for images up to 32 px (8x8 = 64 patches at 32, 7x7 at 28), 8 up to 64 px, else
    16 (224 px: 14x14, the usual)."""
    return 4 if image_size <= 32 else 8 if image_size <= 64 else 16


def _vit_spec(name: str) -> tuple[str, int | None]:
    base, _, patch = name.partition("/")
    if base not in VITS or (patch and not patch.isdigit()):
        raise SslabError(f"unknown Vision Transformer {name!r}; choose from {', '.join(VITS)} (optionally /<patch>, "
                         "e.g. vit-tiny/4)")
    return base, int(patch) if patch else None


def build_vit(name: str, in_chans: int, image_size: int) -> nn.Module:
    """A timm `VisionTransformer` with a class token, learnt position embeddings and a final LayerNorm over every
    token; its features are the average of the patch tokens (`global_pool="avg"`, what MAE probes). The patch
    must divide the image side."""
    from timm.models.vision_transformer import VisionTransformer

    base, patch = _vit_spec(name)
    patch = patch or vit_patch(image_size)
    if patch < 1 or image_size % patch:
        raise SslabError(f"{name}: patch {patch} does not divide the {image_size}-pixel images")
    width, depth, heads = VITS[base]
    return VisionTransformer(img_size=image_size, patch_size=patch, in_chans=in_chans, num_classes=0,
                             global_pool="avg", fc_norm=False, embed_dim=width, depth=depth, num_heads=heads)


def is_vit(name: str) -> bool:
    return name.partition("/")[0] in VITS


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.skip(x))


class SmallResNet(nn.Module):
    """CIFAR-style ResNet: 3x3 stem (stride 1 or 2) without max-pool, stages halve resolution, global average pool."""

    def __init__(self, widths, blocks, in_chans: int = 3, stem_stride: int = 1):
        super().__init__()
        layers = [nn.Conv2d(in_chans, widths[0], 3, stem_stride, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
        c = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(BasicBlock(c, w, 2 if (i > 0 and j == 0) else 1))
                c = w
        self.trunk = nn.Sequential(*layers)
        self.dim = c

    def forward(self, x):
        return self.trunk(x).mean(dim=(2, 3))


class Backbone(nn.Module):
    """Normalise raw [0, 1] pixels with the data set's statistics, then run the network."""

    def __init__(self, net: nn.Module, dim: int, mean, std):
        super().__init__()
        self.net, self.dim = net, dim
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def backbone_names() -> list[str]:
    return sorted(RESNETS) + sorted(VITS) + ["timm:<model name>"]


def check_backbone_name(name: str) -> None:
    """The one-line SslabError build_backbone would raise for an unknown name, without building anything."""
    if name in RESNETS:
        return
    if is_vit(name):
        _vit_spec(name)
        return
    from pathlib import Path

    if (Path(name).expanduser() / "run.json").is_file():  # an earlier sslab run (sslab.methods.base.image_backbone)
        return
    if "=" in name:  # pretrained weights: torchvision:<arch>=<file> / timm:<model>=<file>
        lib, _, rest = name.partition(":")
        arch, _, path = rest.partition("=")
        if lib not in ("torchvision", "timm") or not arch or not path:
            raise SslabError(f"backbone {name!r}: write torchvision:<architecture>=<weights file> or "
                             "timm:<model>=<weights file>")
        if not Path(path).expanduser().is_file():
            raise SslabError(f"weights file not found: {path}")
        return
    if name.startswith("timm:"):
        import timm

        if not timm.is_model(name[5:]):
            raise SslabError(f"unknown timm model {name[5:]!r}; timm.list_models() lists them")
        return
    raise SslabError(f"unknown backbone {name!r}; choose from {', '.join(backbone_names())}")


def build_backbone(name: str, in_chans: int, mean=None, std=None, size: int | None = None,
                   load: bool = True, image_size: int | None = None) -> nn.Module:
    """`name` is one of RESNETS, VITS (for `image_size`-pixel images) or `timm:<model>` (random init; no weights
    are fetched), or a pretrained network
    `torchvision:<arch>=<weights file>` / `timm:<model>=<weights file>` (`pretrained_backbone`, images resized to
    `size`): what continued (domain-adaptive) pretraining starts from; with `load=False` its architecture only."""
    if "=" in name:
        if not load:
            return pretrained_backbone(name, size, load=False)[0]
        check_backbone_name(name)
        return pretrained_backbone(name, size)[0]
    check_backbone_name(name)
    mean = [0.5] * in_chans if mean is None else mean
    std = [0.25] * in_chans if std is None else std
    if name in RESNETS:
        widths, blocks, stem_stride = RESNETS[name]
        net = SmallResNet(widths, blocks, in_chans, stem_stride)
        return Backbone(net, net.dim, mean, std)
    if is_vit(name):
        if not image_size:
            raise SslabError(f"{name}: a Vision Transformer needs the image side")
        net = build_vit(name, in_chans, image_size)
        return Backbone(net, net.num_features, mean, std)
    import timm

    try:
        net = timm.create_model(name[5:], pretrained=False, num_classes=0, in_chans=in_chans)
    except Exception as e:  # timm raises many types (e.g. for settings a model does not support)
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SslabError(f"cannot build timm model {name[5:]!r}: {why}") from None
    return Backbone(net, net.num_features, mean, std)


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Pretrained(nn.Module):
    """An ImageNet-pretrained network on sslab's images: grey images repeated to 3 channels, resized to `size`
    (bilinear), normalised with ImageNet's statistics, classifier removed: (B, C, H, W) in [0, 1] -> (B, dim)."""

    def __init__(self, net: nn.Module, dim: int, size: int):
        super().__init__()
        self.net, self.dim, self.size = net, dim, size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x):
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net((x - self.mean) / self.std)


def _weights(path) -> dict:
    """A state dict from a .safetensors file, or from a PyTorch .pth/.pt file through `torch.load(weights_only=True)`
    (PyTorch's restricted unpickler: tensors and plain containers only, never arbitrary objects)."""
    from pathlib import Path

    path = Path(path).expanduser()
    if not path.is_file():
        raise SslabError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError, SafetensorError, ...: all mean "not weights"
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise SslabError(f"{path} is not a readable weights file ({first})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a training checkpoint
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SslabError(f"{path} does not hold a state dict of tensors")
    return state


def pretrained_backbone(spec: str, size: int | None = None, load: bool = True) -> tuple[Pretrained, str]:
    """`torchvision:<architecture>=<weights file>` or `timm:<model>=<weights file>`: the architecture built
    locally, the weights loaded strictly (every key of the network, same shapes; a classifier of another number of
    classes is dropped), the classifier removed. `size`: the side images are resized to (default 64: ImageNet
    networks need larger images than CIFAR's 32 pixels, and each step up costs ~3x). Measured with torchvision's
    MobileNetV2 on 1,000 + 1,000 CIFAR-10 images (frozen features, 2 CPU threads), kNN / cross-validated logistic
    regression accuracy and feature extraction speed: 32 px 0.385 / 0.452 at 1,399 images/s; 64 px 0.545 / 0.604
    at 346; 96 px 0.621 / 0.658 at 122; 128 px 0.650 / 0.700 at 66; 160 px 0.653 / 0.699 at 37.
    `load=False` builds the architecture without reading the weights (a saved run's network, whose own weights are
    loaded next, or the scratch baseline). Returns (backbone, description)."""
    lib, sep, rest = spec.partition(":")
    arch, eq, path = rest.partition("=")
    if lib not in ("torchvision", "timm") or not sep or not eq or not arch or not path:
        raise SslabError(f"--from {spec!r}: write torchvision:<architecture>=<weights file> or "
                         "timm:<model>=<weights file> (or give a folder)")
    state = _weights(path) if load else None
    if lib == "torchvision":
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
        if arch not in names:
            raise SslabError(f"unknown torchvision classification model {arch!r}; torchvision.models.list_models() "
                             "lists them")
        net = torchvision.models.get_model(arch, weights=None)
    else:
        import timm

        if not timm.is_model(arch):
            raise SslabError(f"unknown timm model {arch!r}; timm.list_models() lists them")
        net = timm.create_model(arch, pretrained=False)
    if state is not None:
        _load_strictly(net, lib, arch, state, path)
    _drop_head(net, lib)
    size = size or 64
    net.eval()
    with torch.no_grad():
        dim = int(net(torch.zeros(1, 3, size, size)).shape[1])
    return Pretrained(net, dim, size), f"{lib} {arch} ({path.rsplit('/', 1)[-1]})"


def _load_strictly(net: nn.Module, lib: str, arch: str, state: dict, path: str) -> None:
    """Every key of the network, same shapes (a classifier of another number of classes excepted)."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    head = _head_keys(net, lib)
    if missing or unexpected or [k for k in wrong if k not in head]:
        first = (missing + unexpected + wrong)[0]
        raise SslabError(f"{path} does not fit {lib} {arch}: {len(missing)} weights missing, {len(unexpected)} "
                         f"unexpected, {len(wrong)} of another shape (e.g. {first!r}); a weights file of another "
                         "architecture?")
    net.load_state_dict({k: v for k, v in state.items() if k not in wrong}, strict=not wrong)


def _head_keys(net: nn.Module, lib: str) -> set[str]:
    if lib == "timm":
        return {f"{net.default_cfg.get('classifier', 'head')}.{k}" for k in ("weight", "bias")}
    name = next((n for n in ("fc", "classifier", "heads", "head") if hasattr(net, n)), None)
    return {k for k in net.state_dict() if name and k.startswith(name + ".")}


def _drop_head(net: nn.Module, lib: str) -> None:
    if lib == "timm":
        net.reset_classifier(0)
        return
    for name in ("fc", "classifier", "heads", "head"):
        if hasattr(net, name):
            setattr(net, name, nn.Identity())
            return
    raise SslabError(f"cannot find the classifier of {type(net).__name__} to remove")
