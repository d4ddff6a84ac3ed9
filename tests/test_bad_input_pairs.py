"""The bad-input suite for image-text pairs: every kind of wrong pair input a user can give sslab, through the CLI,
under test_bad_input.py's contract (non-zero exit, one `error: ...` line naming the problem, no traceback, nothing
half-written). Captions naming missing or unreadable images are not errors: they are skipped and counted
(tests/test_clip.py)."""
import pytest

from cli_contract import assert_error, run_cli


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SSLAB_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("case, says", [
    ("no-columns", "needs a header with an image column"),
    ("all-missing", "0 readable images"),
    ("bad-coco", "not a COCO-style captions file"),
    ("bad-jsonl", "not a JSON object"),
    ("empty-caption", "no caption"),
])
def test_bad_pair_files(tmp_path, capsys, case, says):
    d = tmp_path / case
    d.mkdir()
    if case == "no-columns":
        (d / "captions.csv").write_text("image,caption\n")
        (d / "other.csv").write_text("a,b\nx.png,hello\n")
        spec = str(d / "other.csv")
    elif case == "all-missing":
        (d / "captions.csv").write_text("image,caption\nx.png,hello\ny.png,world\n")
        spec = str(d)
    elif case == "bad-coco":
        (d / "captions.json").write_text('{"images": [{"id": 1}], "annotations": []}')
        spec = str(d / "captions.json")
    elif case == "bad-jsonl":
        (d / "captions.jsonl").write_text('{"image": "a.png", "caption": "x"}\n[1, 2]\n')
        spec = str(d / "captions.jsonl")
    else:
        (d / "captions.csv").write_text("image,caption\na.png,\n")
        spec = str(d / "captions.csv")
    out = tmp_path / "run"
    assert_error(run_cli(capsys, "pretrain", "--data", spec, "--method", "clip", "--budget", "2s", "--out", out),
                 says, root=tmp_path, out=out)



def test_coco_layout_with_its_images_missing(tmp_path, capsys):
    """COCO's own layout (annotations/captions_train2017.json, the images in train2017/) without the images: the
    error says which folders were searched."""
    import json

    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").mkdir()
    doc = {"images": [{"id": k, "file_name": f"{k:012d}.jpg"} for k in range(3)],
           "annotations": [{"id": k, "image_id": k, "caption": f"picture {k}"} for k in range(3)]}
    (root / "annotations" / "captions_train2017.json").write_text(json.dumps(doc))
    out = tmp_path / "run"
    for spec in (root, root / "annotations" / "captions_train2017.json"):
        assert_error(run_cli(capsys, "pretrain", "--data", spec, "--method", "clip", "--budget", "2s", "--out", out),
                     "0 readable images (3 missing", f"{root / 'train2017'}", f"{root / 'annotations'}",
                     root=tmp_path, out=out)


def _four_shades(tmp_path):
    """A folder of four captioned images."""
    from PIL import Image

    d = tmp_path / "pairs"
    (d / "images").mkdir(parents=True)
    for k in range(4):
        Image.new("RGB", (16, 16), (40 * k, 0, 0)).save(d / "images" / f"{k}.png")
    (d / "captions.csv").write_text("image,caption\n" + "".join(f"{k}.png,shade {k}\n" for k in range(4)))
    return d


def test_probe_data_of_ones_own_that_is_missing(tmp_path, capsys):
    """probe_data naming a folder that is not there fails before any training (a named set that cannot be
    downloaded is skipped instead: tests/test_data_formats.py)."""
    d = _four_shades(tmp_path)
    out = tmp_path / "run"
    assert_error(run_cli(capsys, "study", "--data", d, "--backbone", "resnet-xs", "--epochs", "1", "--out", out,
                         f"probe_data={tmp_path / 'my-labelled-images'}"), "data folder not found",
                 "my-labelled-images", root=tmp_path, out=out)


def test_bad_pair_commands(tmp_path, capsys):
    from sslab.cli import main

    d = _four_shades(tmp_path)
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(d), "--method", "clip", "--backbone", "resnet-xs", "--budget", "1s",
                 "--out", str(out), "batch_size=2"]) == 0
    capsys.readouterr()
    for args, says in (
        (("retrieve", tmp_path / "nowhere"), "not a pretraining run"),
        (("evaluate", out), "give --data <a labelled image set>"),
        (("retrieve", out, "--split", "valid"), "split must be test or train"),
        (("zeroshot", out, "--data", "digits", "--prompts", "a photo"), "must hold one {}"),
        (("zeroshot", out, "--data", str(d)), "needs at least 2 classes"),
        (("energy", out, tmp_path / "none.png", "a caption"), "image not found"),
        (("study", "--data", str(d), "--out", tmp_path / "s", "--budget", "1s", "probe_data=nowhere-set"), "nowhere"),
        (("study", "--data", str(d), "--out", tmp_path / "s", "--budget", "1s", "prompts=[a photo]"), "one {}"),
        (("study", "--data", str(d), "--out", tmp_path / "s", "--budget", "1s", "--from", tmp_path),
         "takes no --from"),
        (("pretrain", "--data", str(d), "--method", "clip", "--budget", "1s", "--out", tmp_path / "r2",
          "method_args.loss=triplet"), "clip loss must be"),
        (("pretrain", "--data", str(d), "--method", "clip", "--budget", "1s", "--out", tmp_path / "r3",
          "method_args.text_size=huge"), "unknown clip text_size"),
    ):
        assert_error(run_cli(capsys, *args), says, root=tmp_path)
