"""I-JEPA: the multi-block mask sampler (block shapes and scales, no overlap between context and targets, equal
context sizes in a batch, independence per image, determinism), the context encoder on every patch equal to the
whole-image encoder, the EMA target encoder (no gradient, the momentum rule), and the energy view after a little
training: an image's own targets are predicted better than another image's."""
import pytest
import torch

from sslab.config import PretrainConfig
from sslab.errors import SslabError
from sslab.methods import build_for_data
from sslab.methods.ijepa import _block
from sslab.views.image import block_masks

META = {"kind": "image", "in_chans": 3, "image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}


def _ijepa(size: int = 32, **args):
    torch.manual_seed(0)
    meta = {**META, "image_size": size}
    return build_for_data("ijepa", "vit-tiny", args, meta, PretrainConfig(method="ijepa", backbone="vit-tiny"))


def test_block_masks_shapes_overlap_and_independence():
    g = torch.Generator().manual_seed(0)
    context, targets = block_masks(32, 8, 8, g)
    assert len(targets) == 4 and context.shape[0] == 32
    for t in targets:
        k = t.shape[1]
        assert 0.1 <= k / 64 <= 0.3  # the reference's 15-20% of the grid, up to rounding to whole patches
        rows, cols = t // 8, t % 8
        h, w = int(rows[0].max() - rows[0].min() + 1), int(cols[0].max() - cols[0].min() + 1)
        assert h * w == k and 0.5 <= w / h <= 2.0  # a full rectangle, aspect within the reference's 0.75-1.5
        assert (rows.max(1).values - rows.min(1).values + 1 == h).all()  # the same block size in every image
        assert len({tuple(r.tolist()) for r in t}) > 1  # positions drawn per image
        assert not (context.unsqueeze(2) == t.unsqueeze(1)).any()  # no target patch in any context
    assert (context.diff(dim=1) > 0).all()
    again, _ = block_masks(32, 8, 8, torch.Generator().manual_seed(0))
    assert torch.equal(context, again)


def test_context_encoder_on_every_patch_is_the_whole_image_encoder():
    m = _ijepa().eval()
    x = torch.rand(2, 3, 32, 32)
    tokens = m._tokens(m.backbone, x, torch.arange(64).expand(2, 64))
    assert torch.allclose(tokens.mean(1), m.backbone(x), atol=1e-6)
    with pytest.raises(SslabError, match="Vision Transformer"):
        build_for_data("ijepa", "resnet-xs", {}, META)


def test_target_encoder_gets_no_gradient_and_follows_by_ema():
    m = _ijepa(momentum=0.9)
    v = m.views(torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8), torch.Generator().manual_seed(0))
    assert v["targets"].shape[:2] == (4, 4) and _block(v["targets"], 0).min() >= 0
    m(**v)["loss"].backward()
    assert all(p.grad is None for p in m.target_backbone.parameters())
    assert all(p.grad is not None for p in m.backbone.parameters())
    online = next(m.backbone.parameters())
    with torch.no_grad():
        online.add_(1.0)
    before = next(m.target_backbone.parameters()).clone()
    m.after_step(0.0)
    assert torch.allclose(next(m.target_backbone.parameters()), 0.9 * before + 0.1 * online)


def _stripes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    cols = torch.randint(0, 256, (n, 1, 16, 3), generator=g)
    return cols.expand(n, 16, 16, 3).to(torch.uint8).contiguous()


def test_energy_prefers_the_image_itself_after_training():
    """After 150 steps on stripe images (a hidden block is predictable from the columns above and below it), the
    energy of (x, x) is below that of (x, another image) for most held-out pairs; a fresh network shows no such
    preference."""
    from sslab.views.image import to_float

    m = _ijepa(size=16)
    m.setup(META, PretrainConfig(method="ijepa"))
    x = to_float(_stripes(32, 99), "cpu")
    y = x.roll(1, dims=0)
    fresh = (m.eval().energy(x, x) < m.energy(x, y)).float().mean().item()
    opt = torch.optim.AdamW(m.optim_groups(0.05), lr=1e-3, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(0)
    m.train()
    for step in range(150):
        loss = m(**m.views(_stripes(32, step), g))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        m.after_step(step / 150)
    m.eval()
    trained = (m.energy(x, x) < m.energy(x, y)).float().mean().item()
    assert trained > 0.8 and trained > fresh + 0.2, (fresh, trained)


def test_pretrain_and_energy_through_the_cli(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from sslab.cli import main

    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "stripes"
    for i, im in enumerate(_stripes(24, 0).numpy()):
        (data / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(data / f"c{i % 2}" / f"{i}.png")
    out = tmp_path / "ijepa"
    assert main(["pretrain", "--data", str(data), "--method", "ijepa", "--epochs", "2", "--out", str(out),
                 "batch_size=8"]) == 0
    capsys.readouterr()
    a, b = data / "c0" / "0.png", data / "c1" / "1.png"
    assert main(["energy", str(out), str(a), str(b)]) == 0
    line = capsys.readouterr().out
    assert line.startswith("energy ") and "predicted from the first's context" in line
    from sslab.engine import read_run_info
    from sslab.evaluate import run_evaluations
    from sslab.report import write_report

    evals = run_evaluations(out, read_run_info(out))  # the report's energy section: the same pairs as for JE methods
    energy = evals["energy"]
    assert set(energy["values"]["kinds"]) == {"two views of one image", "one class, two images", "two classes"}
    assert all(min(v) > 0 for v in energy["histogram"]["series"].values())  # a prediction error, never 0
    assert 0 <= energy["values"]["auc"] <= 1 and "ROC AUC" in energy["lines"][-2]
    html = write_report(out, {"run_evaluations": evals}).read_text()
    assert (out / "plots" / "energy.png").stat().st_size > 1000 and 'src="plots/energy.png"' in html
