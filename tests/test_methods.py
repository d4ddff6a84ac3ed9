"""Every registered joint-embedding image method (iterated from sslab.METHODS, so new ones are covered) and every
backbone; the text methods are covered in tests/test_text_methods.py, the masked-image ones in tests/test_mae.py."""
import pytest
import torch

import sslab
from sslab import SslabError, build_backbone, build_method
from sslab.nets import RESNETS

METHOD_NAMES = sorted(n for n, c in sslab.METHODS.items() if issubclass(c, sslab.methods.JointEmbedding))


def _views(seed: int, b: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, 16, 16, generator=g), torch.rand(b, 1, 16, 16, generator=g)


def _model(name: str, **kwargs):
    torch.manual_seed(0)
    return build_method(name, build_backbone("resnet-xs", 1), **kwargs)


def test_builtin_methods_registered():
    assert {"simclr", "byol", "vicreg"} <= set(sslab.METHODS)
    with pytest.raises(SslabError, match="unknown method"):
        build_method("no-such-method", build_backbone("resnet-xs", 1))


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_forward_backward(name):
    model = _model(name).train()
    x1, x2 = _views(1)
    loss = model(x1, x2)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert grads and all(gr is not None for gr in grads)
    assert sum(gr.abs().sum().item() for gr in grads) > 0
    # the first convolution (furthest from the loss) also learns
    first_conv = next(p for p in model.backbone.parameters() if p.ndim == 4)
    assert first_conv.grad.abs().sum() > 0


# Methods whose loss aligns the two views' projections directly (contrastive, clustering, regularised): for them
# the energy (1 - cos of projections) is what training lowers. BYOL, SimSiam, MoCo v3 (a predictor on one side) and
# DINO (a sharpened teacher) align a prediction with a target instead: measured, 20 steps on noise pairs leave their
# projection energy matching 0-4 of 16 pairs.
ALIGNS_PROJECTIONS = {"simclr", "moco-v2", "swav", "barlow-twins", "vicreg"}


def _train(model, x1, x2, steps: int) -> None:
    """`steps` AdamW steps (lr 1e-3, no decay) on one fixed pair of view batches, each followed by `after_step`."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0)
    for i in range(steps):
        loss = model(x1, x2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_step(i / steps)


def _matched(model, x1, x2) -> float:
    """The share of x1's items whose lowest energy among all of x2 is their own pair's (chance: 1 / len(x2))."""
    model.eval()
    energies = torch.stack([model.energy(x1, x2.roll(-s, 0)) for s in range(len(x2))], 1)
    model.train()
    return (energies.argmin(1) == 0).float().mean().item()


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_energy_of_trained_pairs(name):
    """`energy` is 1 - cos of the projections: 0 for an image with itself, within [0, 2], no gradient. Twenty AdamW
    steps on 16 fixed pairs of noise images teach the network which items are pairs: measured, the methods that
    align projections then give every item's own pair the lowest energy (16 of 16), where the untrained network
    matches 0-2 of 16 (its projections of noise all point one way)."""
    model = _model(name)
    x1, x2 = _views(3, b=16)
    assert model.embed(x1).shape == (16, model.backbone.dim)
    model.eval()
    assert torch.allclose(model.energy(x1, x1), torch.zeros(16), atol=1e-5)
    e = model.energy(x1, x2)
    assert e.shape == (16,) and not e.requires_grad and bool(((e >= -1e-6) & (e <= 2 + 1e-6)).all())
    assert e.abs().sum() > 0
    model.train()
    before = _matched(model, x1, x2)
    _train(model, x1, x2, steps=20)
    after = _matched(model, x1, x2)
    if name in ALIGNS_PROJECTIONS:
        assert before <= 0.25 and after >= 0.9, (before, after)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_training_steps_and_after_step_lower_the_loss(name):
    """Six AdamW steps (lr 1e-3), each followed by `after_step` (target-network and centre updates), on one fixed
    pair of view batches lower the method's loss: measured, DINO falls least (6.85 -> 6.55, 0.96x), SimCLR, BYOL,
    MoCo v3 and Barlow Twins to a seventh or less; an untrained network would keep its loss."""
    model = _model(name).train()
    x1, x2 = _views(3, b=16)
    first = model(x1, x2).item()
    _train(model, x1, x2, steps=6)
    last = model(x1, x2)
    assert torch.isfinite(last) and last.item() < 0.98 * first, (first, last.item())


def _target_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith("target_")}


def test_byol_target_only_moves_by_ema():
    model = _model("byol").train()
    x1, x2 = _views(4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)  # target params included on purpose
    params_before = {k: v.clone() for k, v in model.named_parameters() if k.startswith("target_")}
    assert params_before
    loss = model(x1, x2)
    opt.zero_grad()
    loss.backward()
    opt.step()
    for k, p in model.named_parameters():
        if k.startswith("target_"):
            assert p.grad is None, k
            assert torch.equal(p, params_before[k]), k
    online_bb = dict(model.backbone.named_parameters())
    changed_online = [k for k, p in online_bb.items() if not torch.equal(p, params_before["target_backbone." + k])]
    assert changed_online  # the online network did move
    model.after_step(0.0)  # momentum = base 0.99
    for k, p in model.target_backbone.named_parameters():
        expected = 0.99 * params_before["target_backbone." + k] + 0.01 * online_bb[k]
        assert torch.allclose(p, expected, atol=1e-6), k
    assert any(not torch.equal(p, params_before["target_backbone." + k]) for k, p in model.target_backbone.named_parameters())


def test_byol_momentum_zero_copies_online():
    model = _model("byol", momentum=0.0).train()
    x1, x2 = _views(5)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = model(x1, x2)
    opt.zero_grad()
    loss.backward()
    opt.step()
    model.after_step(0.0)
    for online, target in ((model.backbone, model.target_backbone), (model.projector, model.target_projector)):
        t = target.state_dict()
        for k, v in online.state_dict().items():
            assert torch.equal(v, t[k]), k


def test_byol_momentum_one_freezes_target():
    model = _model("byol").train()
    before = _target_state(model)
    loss = model(*_views(6))
    loss.backward()
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.0)
    model.after_step(1.0)  # cosine schedule ends at momentum 1.0: parameters frozen
    for k, v in model.target_backbone.named_parameters():
        assert torch.equal(v, before["target_backbone." + k])


# ----------------------------------------------------------------------------------------- nets
@pytest.mark.parametrize("name", sorted(RESNETS))
@pytest.mark.parametrize("chans", [1, 3])
def test_resnet_output_shape(name, chans):
    torch.manual_seed(0)
    bb = build_backbone(name, chans).eval()
    with torch.no_grad():
        out = bb(torch.rand(2, chans, 16, 16))
    assert out.shape == (2, bb.dim)
    assert bb.dim == RESNETS[name][0][-1]
    assert torch.isfinite(out).all()


def test_backbone_normalises_with_given_stats():
    bb = build_backbone("resnet-xs", 3, mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.5])
    assert bb.mean.flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert bb.std.shape == (1, 3, 1, 1)


def test_unknown_backbone():
    with pytest.raises(SslabError, match="unknown backbone 'resnet-zz'"):
        build_backbone("resnet-zz", 1)
    with pytest.raises(SslabError, match="unknown timm model"):
        build_backbone("timm:definitely_not_a_model_xyz", 3)


def test_timm_backbone():
    pytest.importorskip("timm")
    torch.manual_seed(0)
    bb = build_backbone("timm:resnet18", 3).eval()
    assert bb.dim == 512
    with torch.no_grad():
        assert bb(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    bb1 = build_backbone("timm:resnet18", 1).eval()
    with torch.no_grad():
        assert bb1(torch.rand(1, 1, 32, 32)).shape == (1, 512)
