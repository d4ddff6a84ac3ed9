"""End-to-end accuracy on real tiny data (scikit-learn's 8x8 digits) through the Python API."""
import json

import pytest

import sslab
from sslab import StudyConfig, load_config

OVERRIDES = [
    "data=digits",
    "pretrain.budget=8",
    "pretrain.batch_size=128",
    "pretrain.seed=0",
    "eval.seeds=2",
    "eval.fractions=[0.1,1.0]",
    "eval.protocols=[knn,linear,finetune]",
    "eval.baselines=[scratch,pixels]",
    "eval.finetune_epochs=4",
    "eval.finetune_min_steps=100",
    "eval.linear_steps=300",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        cfg = load_config(StudyConfig, overrides=OVERRIDES)
        logged = []
        res = sslab.study(cfg, out, log=logged.append, show_progress=False)
    return out, res, logged


def _mean(res, init, protocol, fraction):
    rows = [s for s in res["summary"] if (s["init"], s["protocol"], s["fraction"]) == (init, protocol, fraction)]
    assert len(rows) == 1, (init, protocol, fraction)
    return rows[0]


def test_accuracy_on_digits(results):
    _, res, _ = results
    assert _mean(res, "pixels", "logreg", 1.0)["mean"] >= 0.9
    assert _mean(res, "ssl", "linear", 1.0)["mean"] >= 0.85
    assert _mean(res, "ssl", "knn", 0.1)["mean"] >= 0.6
    assert _mean(res, "ssl", "finetune", 1.0)["mean"] >= 0.8
    chance = 0.1
    for s in res["summary"]:
        assert chance < s["mean"] <= 1.0, s


def test_summary_has_seed_spread(results):
    _, res, _ = results
    keys = {(s["init"], s["protocol"], s["fraction"]) for s in res["summary"]}
    expected = {("ssl", p, f) for p in ("knn", "linear", "finetune") for f in (0.1, 1.0)}
    expected |= {("scratch", "finetune", f) for f in (0.1, 1.0)} | {("pixels", "logreg", f) for f in (0.1, 1.0)}
    assert keys == expected
    for s in res["summary"]:
        assert s["std"] >= 0.0
        # fine-tuning at fractions >= 10% runs finetune_seeds_large (= 1) seed; the rest run eval.seeds = 2
        # kNN with all labels has no randomness: one run, not two identical ones printed as "± 0.0"
        one = s["protocol"] == "finetune" or (s["protocol"] == "knn" and s["fraction"] == 1.0)
        assert s["n"] == (1 if one else 2), s
    # different label subsets at 10% give different kNN accuracies
    assert _mean(res, "ssl", "knn", 0.1)["std"] > 0
    n_labels = {r["n_labels"] for r in res["runs"] if r["fraction"] == 1.0}
    assert n_labels == {res["data"]["n_train"]}


def test_findings_and_files(results):
    out, res, logged = results
    assert isinstance(res["findings"], list) and res["findings"]
    assert all(isinstance(s, str) and s for s in res["findings"])
    assert any("labels" in s for s in res["findings"])
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"] == res["summary"] and saved["findings"] == res["findings"]
    assert (out / "report.html").is_file()
    assert res["data"]["name"] == "digits" and res["data"]["shape"] == [8, 8, 1]
    assert res["pretrain"]["seconds"] >= 8 and res["pretrain"]["steps"] > 0
    assert res["health"]["effective_rank"] > 1
    assert any(line.startswith("report:") for line in logged)
