"""The fixmatch protocol on text from the local MiniLM, through sslab's harness on the study's label subsets, with
the text recipes' evaluation settings (a fixed budget, no validation items, lr 2e-4, batch 32): the frozen linear
probe, fine-tuning, and fixmatch from each subset's fine-tuned model.

    OMP_NUM_THREADS=1 python benchmarks/fixmatch_text.py trec 0.01 2
    OMP_NUM_THREADS=1 python benchmarks/fixmatch_text.py trec 0.01 1 fixmatch_threshold=0.95

The encoder is the MiniLM that `setup.sh --test` installs, or a folder given as FROM=<path>. Prints every run and,
per fraction and protocol, mean ± std over the seeds (docs/results.md)."""
import os
import sys
import time

import numpy as np
import torch

from sslab.config import EvalConfig
from sslab.data import load_data
from sslab.evaluate import evaluate_encoder
from sslab.methods.text import foundation_encoder

sys.path.insert(0, os.path.dirname(__file__))
from setfit_text import minilm  # noqa: E402

TEXT_RECIPE = dict(val_items=0, finetune_until="budget", finetune_images=10000, finetune_epochs=30,
                   finetune_min_steps=80, finetune_lr=2e-4, batch_size=32)  # as recipes/gpt.yaml's eval


def main() -> None:
    data, fracs, seeds = sys.argv[1], [float(x) for x in sys.argv[2].split(",")], int(sys.argv[3])
    over = dict(a.split("=", 1) for a in sys.argv[4:])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    splits = load_data(data, None, kind="text")
    enc, info, _ = foundation_encoder(os.environ.get("FROM") or minilm(), 128)
    base = EvalConfig()
    cfg = EvalConfig(**{**TEXT_RECIPE, "fractions": fracs, "seeds": seeds, "baselines": [],
                        "protocols": ["linear", "finetune", "fixmatch"],
                        **{k: type(getattr(base, k))(v) for k, v in over.items()}})
    t = time.time()
    ev = evaluate_encoder(enc, info, splits, cfg, log=print, name="foundation")
    print(f"took {time.time() - t:.0f}s")
    for p in ("linear", "finetune", "fixmatch"):
        for f in fracs:
            v = [r["test_acc"] * 100 for r in ev["runs"] if r["protocol"] == p and r["fraction"] == f]
            if v:
                spread = f" ± {np.std(v, ddof=1):.1f} (n={len(v)})" if len(v) > 1 else " (one run)"
                print(f"{data} {f:.0%} {p}: {np.mean(v):.1f}{spread}")


if __name__ == "__main__":
    main()
