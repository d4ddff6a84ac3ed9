"""A method added from outside sslab, as docs/adding-a-method.md describes: this file defines and registers it, a
recipe beside it sets its defaults, and nothing inside src/ changes. It pretrains through the engine, is chosen by
name on the command line, and evaluates through the harness."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sslab
from cli_contract import run_cli
from sslab.config import EvalConfig, PretrainConfig
from sslab.methods import METHODS, JointEmbedding, register


class ToyOutside(JointEmbedding):
    """Two augmented views (JointEmbedding's); the loss pulls the views' projections together and keeps every
    dimension's spread above 1 (VICReg without its covariance term)."""

    def __init__(self, backbone, proj_dim: int = 32):
        super().__init__()
        self.backbone, self.projector = backbone, nn.Linear(backbone.dim, proj_dim)

    def forward(self, x1, x2):
        z1, z2 = self.projector(self.backbone(x1)), self.projector(self.backbone(x2))
        invariance = F.mse_loss(z1, z2)
        variance = sum(F.relu(1 - torch.sqrt(z.var(0) + 1e-4)).mean() for z in (z1, z2))
        return {"loss": 25 * invariance + 25 * variance, "invariance": invariance}


RECIPE = """# toy-outside: a method defined in tests/test_outside_method.py
pretrain:
  method: toy-outside
  method_args: {proj_dim: 16}
  backbone: resnet-xs
  batch_size: 128
  log_every: 5
eval:
  fractions: [0.1]
  seeds: 1
  protocols: [knn, linear]
  baselines: [raw]
"""


@pytest.fixture(autouse=True)
def toy_registered():
    """Registered for these tests only: other test files iterate over every registered method."""
    register("toy-outside")(ToyOutside)
    yield
    METHODS.pop("toy-outside", None)


def test_a_method_registered_outside_src_pretrains_and_evaluates(digits, tmp_path):
    assert METHODS["toy-outside"] is ToyOutside and ToyOutside.__module__ == __name__
    cfg = PretrainConfig(method="toy-outside", backbone="resnet-xs", epochs=3, budget=None, batch_size=128,
                         log_every=5)
    res = sslab.pretrain(digits.train, cfg, tmp_path / "run", show_progress=False, data_spec="digits")
    first, last = res["history"][0], res["history"][-1]
    assert "invariance" in first and last["loss"] < 0.7 * first["loss"], (first, last)
    ev = EvalConfig(fractions=[0.1], seeds=1, protocols=["knn", "linear"], baselines=["raw"])
    results = sslab.evaluate_run(tmp_path / "run", ev, log=lambda *a: None)
    acc = {r["protocol"]: r["test_acc"] for r in results["runs"]}
    assert set(acc) == {"knn", "linear", "logreg"}
    assert acc["linear"] > 0.6 and acc["knn"] > 0.5, acc  # 10 classes: chance is 0.1 (measured 0.81 and 0.65)
    assert (tmp_path / "run" / "report.html").is_file()


def test_the_cli_runs_it_by_name_with_its_recipe(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "toy-outside.yaml"
    recipe.write_text(RECIPE)
    code, out, err = run_cli(capsys, "pretrain", "--data", "digits", "--config", recipe, "--epochs", "1",
                             "--out", tmp_path / "run")
    assert code == 0, err
    info = sslab.engine.read_run_info(tmp_path / "run")
    assert info["method"] == "toy-outside" and info["method_args"] == {"proj_dim": 16}
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "run", "--config", recipe)
    assert code == 0, err
    assert "knn" in out and "linear" in out
