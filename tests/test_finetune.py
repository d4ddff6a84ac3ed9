"""The supervised runs of every study: fit_classifier's plateau rule (warm-up, stable, decay)."""
import numpy as np
import pytest
import torch

from sslab.config import EvalConfig
from sslab.evaluate.protocols import fit_classifier, plateau_steps


def test_plateau_run_warms_up_holds_then_decays_to_zero_and_stops():
    """The plateau rule with a cooldown (warm-up, stable, decay): the rate rises over the warm-up, stays constant
    until finetune_patience checks bring no gain above finetune_min_delta, then falls linearly to 0 over
    finetune_cooldown of the steps so far (whole checks) and the run stops converged, keeping the weights of its
    best validation check; with finetune_cooldown=0 (the default) the rate is divided by 10 at a plateau and the
    next one stops the run."""
    rng = np.random.default_rng(0)

    class Split:  # two separable classes: validation accuracy reaches its plateau in a few checks
        y = np.arange(600) % 2
        x = (rng.normal(0, 1, (600, 4, 4, 1)) + 2 * y[:, None, None, None]).astype(np.float32)

        def __len__(self):
            return len(self.x)

        def batch(self, idx):
            return torch.as_tensor(self.x[idx]).permute(0, 3, 1, 2)

    rates = []

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(16, 2)

        def forward(self, x):
            return self.fc(x.flatten(1))

    class Spy(torch.optim.AdamW):
        def step(self, closure=None):
            rates.append(self.param_groups[0]["lr"])
            return super().step(closure)

    cfg = EvalConfig(batch_size=16, check_images=64, finetune_lr=0.01, finetune_images=40_000, finetune_min_steps=1,
                     finetune_min_delta=0.005, finetune_cooldown=0.25)
    train, val = np.arange(400), np.arange(400, 600)
    real = torch.optim.AdamW
    torch.optim.AdamW = Spy
    try:
        torch.manual_seed(0)
        out = fit_classifier(Net(), Split(), train, Split(), cfg, seed=0, val=val)
    finally:
        torch.optim.AdamW = real
    bs, cap, check = plateau_steps(len(train), cfg)
    assert (bs, check) == (16, 25) and out["converged"] is True and len(rates) < cap
    assert out["val_acc"] == max(p["val_acc"] for p in out["curve"]) > 0.9
    warm = min(check, 500)
    assert rates[:warm] == pytest.approx([0.01 * (i + 1) / warm for i in range(warm)])
    start = next(i for i, r in enumerate(rates) if r < 0.01 and i >= warm)  # the first step of the decay
    decay = rates[start - 1 :]
    assert len(rates) - start == check * max(1, round(0.25 * start / check))  # whole checks, a quarter of the run
    n = len(rates) - start
    assert np.allclose(decay[1:], [0.01 * (n - i) / (n + 1) for i in range(n)])  # linear, 0 one step past the end

    rates.clear()
    torch.optim.AdamW = Spy
    try:
        torch.manual_seed(0)
        old = fit_classifier(Net(), Split(), train, Split(), cfg.model_copy(
            update={"finetune_cooldown": 0, "finetune_min_delta": 0}), seed=0, val=val)
    finally:
        torch.optim.AdamW = real
    assert old["converged"] is True and {round(r, 6) for r in rates[warm:]} == {0.01, 0.001}
