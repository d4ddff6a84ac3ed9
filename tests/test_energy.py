"""`sslab energy RUN a.png b.png` and the API under it (sslab.engine.load_method, sslab.data.load_image_files)."""
import re

import numpy as np
import pytest
import torch
from PIL import Image

import sslab
from sslab import PretrainConfig, SslabError
from sslab.cli import main
from sslab.data import load_image_files
from sslab.engine import load_method


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 1-epoch SimCLR run on digits and three digit PNGs: a and a2 of one class, b of another."""
    tmp = tmp_path_factory.mktemp("energy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSLAB_CACHE", str(tmp / "cache"))
        d = sslab.load_images("digits")
    cfg = PretrainConfig(method="simclr", epochs=1, budget=None, batch_size=64, backbone="resnet-xs", log_every=5)
    sslab.pretrain(d.train, cfg, tmp / "run", show_progress=False, data_spec="digits")
    y = d.test.y
    i, j = np.flatnonzero(y == 0)[:2]
    k = np.flatnonzero(y == 1)[0]
    imgs = {}
    for name, idx in (("a", i), ("a2", j), ("b", k)):
        imgs[name] = tmp / f"{name}.png"
        Image.fromarray(d.test.x[idx, ..., 0]).save(imgs[name])
    return tmp / "run", imgs, d


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _energy(capsys, run_dir, a, b) -> float:
    code, out, err = _cli(capsys, "energy", run_dir, a, b)
    assert code == 0, err
    m = re.fullmatch(r"energy (\S+) \(cosine similarity (\S+) of simclr projections; 0 = identical, 2 = opposite\)\n", out)
    assert m, out
    e, cos = float(m.group(1)), float(m.group(2))
    assert e + cos == pytest.approx(1.0, abs=2e-3)
    return e


def test_energy_cli(capsys, run):
    run_dir, imgs, _ = run
    same = _energy(capsys, run_dir, imgs["a"], imgs["a"])
    assert same == pytest.approx(0.0, abs=1e-3)
    for x, y in (("a", "b"), ("a", "a2"), ("b", "a2")):
        assert 0.0 <= _energy(capsys, run_dir, imgs[x], imgs[y]) <= 2.0


def test_load_method_matches_checkpoint_and_backbone(run):
    run_dir, _, d = run
    model, info = load_method(run_dir)
    assert not model.training and info["method"] == "simclr"
    bb, _ = sslab.load_backbone(run_dir)
    x = torch.from_numpy(d.test.x[:8]).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(model.embed(x), bb.eval()(x), atol=1e-6)
    e = model.energy(x, x.flip(0))
    assert e.shape == (8,) and bool(((e >= 0) & (e <= 2)).all())


def test_load_image_files_converts_and_resizes(tmp_path):
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(rgb)
    gray = tmp_path / "g.png"
    Image.fromarray(np.full((8, 8), 255, dtype=np.uint8)).save(gray)
    x = load_image_files([rgb, gray], 1, 8)
    assert x.shape == (2, 8, 8, 1) and x.dtype == np.uint8
    assert np.all(x[1] == 255)
    assert load_image_files([gray], 3, 16).shape == (1, 16, 16, 3)
    with pytest.raises(SslabError, match="image not found"):
        load_image_files([tmp_path / "nope.png"], 1, 8)


def _one_line_error(code, err, contains):
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and contains in lines[0], err


def test_energy_bad_inputs(capsys, run, tmp_path):
    run_dir, imgs, _ = run
    _one_line_error(*_cli(capsys, "energy", tmp_path / "no-run", imgs["a"], imgs["b"])[::2], "run folder not found")
    (tmp_path / "empty").mkdir()
    _one_line_error(*_cli(capsys, "energy", tmp_path / "empty", imgs["a"], imgs["b"])[::2], "not a pretraining run")
    _one_line_error(*_cli(capsys, "energy", run_dir, imgs["a"], tmp_path / "missing.png")[::2], "image not found")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    _one_line_error(*_cli(capsys, "energy", run_dir, junk, imgs["a"])[::2], "cannot read image")


def test_energy_evaluation_separates_views_from_other_classes(run, tmp_path):
    """The report's energy section: held-out pairs of three kinds, the same sample for every method; after one
    epoch SimCLR gives two views of one image lower energy than images of two classes (a fresh network does not
    know views from classes as well), and the report draws the three distributions."""
    from sslab.engine import read_run_info
    from sslab.evaluate.image import energy_evaluation, energy_pairs, pair_energies
    from sslab.methods import build_for_data
    from sslab.report import write_report

    run_dir, _, d = run
    info = read_run_info(run_dir)
    ev = energy_evaluation(run_dir, info, pairs=128)
    kinds = ev["values"]["kinds"]
    assert list(kinds) == ["two views of one image", "one class, two images", "two classes"]
    assert all(k["n"] == 128 and 0 <= k["mean"] <= 2 for k in kinds.values())
    assert kinds["two views of one image"]["mean"] < kinds["one class, two images"]["mean"] < kinds["two classes"]["mean"]
    trained = ev["values"]["auc"]
    pairs = energy_pairs(d.test, 8, 128)
    torch.manual_seed(0)
    fresh_model = build_for_data("simclr", "resnet-xs", {}, d.train.meta(), PretrainConfig(method="simclr"))
    fresh = pair_energies(fresh_model, pairs)
    from sklearn.metrics import roc_auc_score

    a, b = fresh["two views of one image"], fresh["two classes"]
    assert trained > 0.8 and trained > roc_auc_score([0] * len(a) + [1] * len(b), a + b) + 0.05
    # the pairs are a fixed sample: the same on a second call; unlabelled data gets "two images"
    again = energy_pairs(d.test, 8, 128)
    assert all(torch.equal(pairs[k][1], again[k][1]) for k in pairs)
    unlabelled = type("Split", (), {"x": d.test.x, "y": None})()
    assert list(energy_pairs(unlabelled, 8, 16)) == ["two views of one image", "two images"]
    html = write_report(tmp_path, {"run_evaluations": {"energy": ev}}).read_text()
    assert "Energy of compatible and incompatible pairs" in html and (tmp_path / "plots" / "energy.png").is_file()


def test_trained_energy_ranks_views_of_one_image_below_other_images(run):
    """What SimCLR learns, measured by its energy: two augmented views of one digit get a lower energy than a view
    of another digit far more often after one epoch (ROC AUC about 0.76 over 256 test digits, measured) than with
    the same network at random initialisation (about 0.58); the identities of 1 - cosine above hold for any
    network, this does not."""
    from sslab.methods import build_for_data

    run_dir, _, d = run
    trained, _ = load_method(run_dir)
    cfg = PretrainConfig(method="simclr", epochs=1, budget=None, batch_size=64, backbone="resnet-xs")
    torch.manual_seed(0)
    random_net = build_for_data("simclr", "resnet-xs", {}, d.train.meta(limit=10000), cfg).eval()
    x = d.test.batch(torch.arange(256))

    def auc(model) -> float:
        v1, v2 = model.views(x, torch.Generator().manual_seed(0))
        with torch.no_grad():
            same, other = model.energy(v1, v2), model.energy(v1, v2.roll(1, 0))
        return (same[:, None] < other[None, :]).float().mean().item()

    a_trained, a_random = auc(trained), auc(random_net)
    assert a_trained > 0.68 and a_trained > a_random + 0.08, (a_trained, a_random)
