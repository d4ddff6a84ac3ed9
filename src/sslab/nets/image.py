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
    return sorted(RESNETS) + ["timm:<model name>"]


def check_backbone_name(name: str) -> None:
    """The one-line SslabError build_backbone would raise for an unknown name, without building anything."""
    if name in RESNETS:
        return
    if name.startswith("timm:"):
        import timm

        if not timm.is_model(name[5:]):
            raise SslabError(f"unknown timm model {name[5:]!r}; timm.list_models() lists them")
        return
    raise SslabError(f"unknown backbone {name!r}; choose from {', '.join(backbone_names())}")


def build_backbone(name: str, in_chans: int, mean=None, std=None) -> Backbone:
    """`name` is one of RESNETS or `timm:<model>` (random init; no weights are fetched)."""
    check_backbone_name(name)
    mean = [0.5] * in_chans if mean is None else mean
    std = [0.25] * in_chans if std is None else std
    if name in RESNETS:
        widths, blocks, stem_stride = RESNETS[name]
        net = SmallResNet(widths, blocks, in_chans, stem_stride)
        return Backbone(net, net.dim, mean, std)
    import timm

    try:
        net = timm.create_model(name[5:], pretrained=False, num_classes=0, in_chans=in_chans)
    except Exception as e:  # timm raises many types (e.g. for settings a model does not support)
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SslabError(f"cannot build timm model {name[5:]!r}: {why}") from None
    return Backbone(net, net.num_features, mean, std)
