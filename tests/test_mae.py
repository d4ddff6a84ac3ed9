"""Vision Transformers and MAE: the patch-mask sampler (ratio, independence per image, determinism under a seed),
patchify, the encoder on the visible patches equal to the whole-image encoder when nothing is hidden, the loss's
known value for a decoder that predicts nothing, the loss counting the hidden patches only, and a tiny MAE that
learns to fill in structured images (where a random network cannot)."""
import numpy as np
import pytest
import torch

from sslab.config import PretrainConfig
from sslab.errors import SslabError
from sslab.methods import build_for_data
from sslab.nets.image import build_backbone, vit_patch
from sslab.views.image import patchify, random_patch_mask, unpatchify

META = {"kind": "image", "in_chans": 3, "image_size": 16, "mean": [0.5] * 3, "std": [0.25] * 3}


def _mae(**args):
    torch.manual_seed(0)
    return build_for_data("mae", "vit-tiny", args, META, PretrainConfig(method="mae", backbone="vit-tiny"))


def test_mask_ratio_independence_and_seed():
    kept, mask = random_patch_mask(64, 64, 0.75, torch.Generator().manual_seed(0))
    assert kept.shape == (64, 16) and mask.shape == (64, 64)
    assert (mask.sum(1) == 48).all()  # exactly 75% hidden in every image
    assert not mask.gather(1, kept).any()  # the kept patches are the visible ones
    assert (kept.diff(dim=1) > 0).all()  # ascending, no repeats
    assert len({tuple(r.tolist()) for r in kept}) == 64  # every image its own draw
    again, _ = random_patch_mask(64, 64, 0.75, torch.Generator().manual_seed(0))
    assert torch.equal(kept, again)
    # over many draws every patch is hidden about 75% of the time
    _, many = random_patch_mask(4000, 64, 0.75, torch.Generator().manual_seed(1))
    assert many.float().mean(0).sub(0.75).abs().max() < 0.03
    with pytest.raises(SslabError):
        random_patch_mask(2, 4, 1.0)


def test_patchify_round_trip():
    x = torch.rand(2, 3, 16, 12)
    p = patchify(x, 4)
    assert p.shape == (2, 12, 48)
    assert torch.equal(p[0, 1], x[0, :, 0:4, 4:8].permute(1, 2, 0).reshape(-1))  # row-major, (p, p, C)
    assert torch.equal(unpatchify(p, 4, 3, 16, 12), x)


def test_vit_sizes_and_patches():
    assert [vit_patch(s) for s in (28, 32, 64, 224)] == [4, 4, 8, 16]
    net = build_backbone("vit-tiny", 1, image_size=28)
    assert net.dim == 192 and net(torch.rand(2, 1, 28, 28)).shape == (2, 192)
    assert build_backbone("vit-tiny/2", 3, image_size=32).net.patch_embed.num_patches == 256
    mini = build_backbone("vit-mini", 3, image_size=32)  # the CPU size of the mae / ijepa recipes
    assert mini.dim == 128 and len(mini.net.blocks) == 6 and mini.net.patch_embed.num_patches == 64
    with pytest.raises(SslabError, match="does not divide"):
        build_backbone("vit-tiny/5", 3, image_size=32)
    with pytest.raises(SslabError, match="Vision Transformer"):
        build_for_data("mae", "resnet-xs", {}, META)


def test_visible_encoder_equals_whole_image_encoder_and_is_cheaper():
    """With every patch kept, encoding the visible patches is the encoder's whole-image forward (the features
    used for transfer); with 75% hidden it sees a quarter of the tokens."""
    mae = _mae().eval()
    x = torch.rand(3, 3, 16, 16)
    every = torch.arange(16).expand(3, 16)
    tokens = mae.encode_visible(x, every)
    assert torch.allclose(tokens[:, 1:].mean(1), mae.backbone(x), atol=1e-6)
    kept, _ = random_patch_mask(3, 16, 0.75, torch.Generator().manual_seed(0))
    assert mae.encode_visible(x, kept).shape == (3, 1 + 4, 192)


def test_known_loss_for_a_decoder_that_predicts_nothing():
    """Targets are patches normalised by their mean and unbiased variance (the reference code's `var`), so
    predicting 0 everywhere costs (n - 1) / n per hidden patch of n = 4 x 4 x 3 values, whatever the image."""
    mae = _mae()
    torch.nn.init.zeros_(mae.decoder_pred.weight)
    torch.nn.init.zeros_(mae.decoder_pred.bias)
    raw = torch.randint(0, 256, (8, 16, 16, 3), dtype=torch.uint8)
    out = mae(**mae.views(raw, torch.Generator().manual_seed(0)))
    assert out["loss"].item() == pytest.approx(47 / 48, abs=1e-4)


def test_loss_counts_hidden_patches_only():
    """Changing the prediction of a visible patch leaves the loss unchanged; of a hidden patch, changes it."""
    mae = _mae()
    v = mae.views(torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8), torch.Generator().manual_seed(0))
    pred = mae.predict(v["images"], v["kept"], v["mask"]).detach()
    target = mae.target(v["images"])

    def loss(p):
        err = (p - target).pow(2).mean(-1)
        return ((err * v["mask"]).sum() / v["mask"].sum()).item()

    visible, hidden = int(v["kept"][0, 0]), int(torch.nonzero(v["mask"][0])[0])
    for patch, changes in ((visible, False), (hidden, True)):
        q = pred.clone()
        q[0, patch] += 1.0
        assert (loss(q) != pytest.approx(loss(pred))) == changes
    torch.manual_seed(0)
    mae.decoder_pred.weight.data.normal_()
    assert mae(**v)["loss"].item() == pytest.approx(loss(mae.predict(v["images"], v["kept"], v["mask"])), rel=1e-5)


def _stripes(n: int, seed: int) -> torch.Tensor:
    """Images of vertical stripes, one random colour per column: a hidden patch is predictable from the visible
    patches above and below it."""
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, 256, (n, 1, 16, 3))
    return torch.from_numpy(np.repeat(cols, 16, axis=1).astype(np.uint8))


def test_tiny_mae_learns_to_fill_in_stripes():
    mae = _mae(crop_scale=(1.0, 1.0))
    mae.setup(META, PretrainConfig(method="mae"))
    opt = torch.optim.AdamW(mae.optim_groups(0.05), lr=1e-3, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(0)
    held = _stripes(64, 99)
    before = mae.eval().probe(held)["val_loss"]
    mae.train()
    for step in range(150):
        loss = mae(**mae.views(_stripes(32, step), g))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = mae.eval().probe(held)["val_loss"]
    assert before > 0.8 and after < 0.75 * before, (before, after)


def test_pretrain_and_reconstruct_through_the_cli(tmp_path, capsys, monkeypatch):
    """`sslab pretrain --method mae` on a folder of images, then `sslab reconstruct`: a PNG of three rows
    (original, masked, reconstruction) of the requested images; a run of another method is refused in one line."""
    from PIL import Image

    from sslab.cli import main

    from cli_contract import assert_error, run_cli

    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "stripes"
    imgs = _stripes(24, 0).numpy()
    for i, im in enumerate(imgs):
        (data / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(data / f"c{i % 2}" / f"{i}.png")
    out = tmp_path / "mae"
    assert main(["pretrain", "--data", str(data), "--method", "mae", "--epochs", "2", "--out", str(out),
                 "batch_size=8"]) == 0
    capsys.readouterr()
    assert main(["reconstruct", str(out), "--images", "3"]) == 0
    assert "reconstruction of 3 images" in capsys.readouterr().out
    grid = np.asarray(Image.open(out / "reconstruction.png"))
    assert grid.shape == (3 * 16 * 4, 3 * 16 * 4, 3)
    other = tmp_path / "simclr"
    assert main(["pretrain", "--data", str(data), "--method", "simclr", "--backbone", "resnet-xs", "--epochs", "1",
                 "--out", str(other), "batch_size=8"]) == 0
    assert_error(run_cli(capsys, "reconstruct", other), "mae", root=tmp_path)
    assert_error(run_cli(capsys, "pretrain", "--data", data, "--method", "mae", "--backbone", "resnet-xs", "--out",
                         tmp_path / "bad"), "vision transformer", root=tmp_path, out=tmp_path / "bad")


def test_finetuning_a_vit_decays_the_learning_rate_by_layer():
    """MAE's layer-wise decay: the task head and final norm at the full rate, block i at decay^(12 - i), the
    patch and position embeddings at decay^13; a network without a ViT keeps one group."""
    from torch import nn

    from sslab.evaluate.protocols import lr_groups

    vit = build_backbone("vit-tiny", 1, image_size=16)
    model = nn.Sequential(vit, nn.Linear(192, 3))
    groups = lr_groups(model, 1e-3, 0.75)
    assert len(groups) == 14 and sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    lrs = [g["lr"] for g in groups]
    assert lrs[-1] == pytest.approx(1e-3) and lrs[0] == pytest.approx(1e-3 * 0.75 ** 13)
    assert all(a < b for a, b in zip(lrs, lrs[1:]))
    head = next(g for g in groups if any(p is model[1].weight for p in g["params"]))
    assert head["lr"] == pytest.approx(1e-3)
    assert len(lr_groups(nn.Sequential(build_backbone("resnet-xs", 1), nn.Linear(64, 3)), 1e-3, 0.75)) == 1


def test_study_report_shows_the_reconstructions(tmp_path, capsys, monkeypatch):
    """`sslab study --method mae` on a folder it has never seen: the report holds the held-out reconstruction loss
    and the reconstruction grid."""
    from PIL import Image

    from sslab.cli import main

    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "stripes"
    for i, im in enumerate(_stripes(40, 0).numpy()):
        (data / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(data / f"c{i % 2}" / f"{i}.png")
    out = tmp_path / "study"
    assert main(["study", "--data", str(data), "--method", "mae", "--out", str(out), "pretrain.epochs=1",
                 "pretrain.budget=null", "pretrain.batch_size=8", "eval.protocols=[knn]", "eval.baselines=[]",
                 "eval.seeds=1", "eval.fractions=[1.0]"]) == 0
    html = (out / "report.html").read_text()
    assert "Reconstructions of held-out images" in html and 'src="plots/reconstruction.png"' in html
    assert (out / "plots" / "reconstruction.png").is_file()


def test_finetune_budget_under_one_epoch_is_kept():
    """More labelled images than `finetune_images`: the run trains on that many (at least finetune_min_steps
    batches), part of one epoch, and says so in its curve; fewer: whole epochs as before."""
    import numpy as np

    from sslab.config import EvalConfig
    from sslab.evaluate.protocols import fit_classifier

    class Split:
        x = np.random.default_rng(0).integers(0, 256, (400, 4, 4, 1), dtype=np.uint8)
        y = np.arange(400) % 2

        def __len__(self):
            return len(self.x)

        def batch(self, idx):
            return torch.as_tensor(self.x[idx]).permute(0, 3, 1, 2).float() / 255

    seen = []

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(16, 2)

        def forward(self, x):
            if self.training:
                seen.append(len(x))
            return self.fc(x.flatten(1))

    cfg = EvalConfig(batch_size=32, finetune_images=100, finetune_min_steps=2, curve_points=2)
    out = fit_classifier(Net(), Split(), np.arange(400), Split(), cfg, seed=0)
    assert seen == [32] * 4 and out["curve"][-1]["epoch"] == 0.308  # 4 of 13 batches
    seen.clear()
    fit_classifier(Net(), Split(), np.arange(40), Split(), cfg.model_copy(update={"finetune_epochs": 2}), seed=0)
    assert sum(seen) == 80  # 2 whole epochs of the 40 labelled images


def test_scratch_baselines_train_every_layer_at_one_rate(monkeypatch):
    """Layer-wise decay is for fine-tuning pretrained layers: the scratch baselines get layer_decay 1, the
    pretrained encoder the configured 0.75."""
    import dataclasses

    import numpy as np

    from sslab.config import EvalConfig
    from sslab.data import DataSplits, ImageData
    from sslab.evaluate import PROTOCOLS, evaluate_encoder

    seen = {}

    def fake(net, train, idx, test, cfg, seed, n_classes, augment=None, device="cpu", val=None):
        seen[net is encoder] = cfg.layer_decay
        return {"train_acc": 1.0, "test_acc": 1.0, "curve": None}

    monkeypatch.setitem(PROTOCOLS, "finetune", dataclasses.replace(PROTOCOLS["finetune"], fn=fake))
    x = np.random.default_rng(0).integers(0, 256, (40, 16, 16, 1), dtype=np.uint8)
    y = np.arange(40) % 2
    splits = DataSplits(ImageData(x, y, ["a", "b"], "toy"), ImageData(x[:10], y[:10], ["a", "b"], "toy"))
    from sslab.methods.base import ImageEncoder

    encoder = ImageEncoder(build_backbone("vit-tiny", 1, image_size=16))
    info = {"kind": "image", "image_size": 16, "in_chans": 1}
    evaluate_encoder(encoder, info, splits, EvalConfig(fractions=[1.0], seeds=1, protocols=["finetune"],
                                                       baselines=["scratch"]), log=lambda s: None,
                     fresh=lambda seed: ImageEncoder(build_backbone("vit-tiny", 1, image_size=16)))
    assert seen == {True: 0.75, False: 1.0}
