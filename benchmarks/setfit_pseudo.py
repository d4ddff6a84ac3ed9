"""What the setfit head gains from pseudo-labelled unlabelled items, per count, on the same tuned encoder: SetFit's
contrastive tuning of the local MiniLM once per label subset (the study's subsets: validation items held out), then
logistic-regression heads on the labelled items alone (k=0) and with k of `setfit_pool` unlabelled items per class
labelled by that head (`evaluate.protocols.pseudo_labelled`), and a second round (k=300, then k=1000 by the
first round's head).

    python benchmarks/setfit_pseudo.py sst2 8,0.01 3          # data, label fractions or counts per class, seeds
    COUNTS=0,1000,3000 python benchmarks/setfit_pseudo.py sst2 8 3 setfit_pool=6000

Prints each subset's accuracies and, per fraction and k, mean ± std over the seeds (docs/results.md)."""
import os
import sys
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from sslab.config import EvalConfig, label_text
from sslab.data import label_subset, load_data, validation_split
from sslab.evaluate import extract_features, kind_adapter
from sslab.evaluate.protocols import _Subset, pseudo_head, setfit_tune
from sslab.methods.text import foundation_encoder

sys.path.insert(0, os.path.dirname(__file__))
from setfit_text import minilm  # noqa: E402

COUNTS = tuple(int(k) for k in os.environ.get("COUNTS", "0,25,100,300,1000").split(","))  # pseudo-labels per class


def main() -> None:
    data, fracs, seeds = sys.argv[1], [float(x) for x in sys.argv[2].split(",")], int(sys.argv[3])
    over = dict(a.split("=", 1) for a in sys.argv[4:])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    base = EvalConfig()
    cfg = EvalConfig(**{k: type(getattr(base, k))(v) for k, v in over.items()})
    splits = load_data(data, None, kind="text")
    enc, info, _ = foundation_encoder(os.environ.get("FROM") or minilm(), 128)
    kind = kind_adapter("text")
    train, test = kind.labelled(splits.train, info), kind.labelled(splits.test, info)
    val, pool_all = validation_split(splits.train.y, cfg.val_items)
    n_classes = len(splits.train.classes)
    res: dict = {}
    for f in fracs:
        for seed in range(seeds):
            t0 = time.time()
            idx = pool_all[label_subset(splits.train.y[pool_all], f, seed, num_classes=n_classes)]
            model, steps, _, rng = setfit_tune(enc, train, idx, cfg, seed)
            y = train.y[idx]
            ftr = extract_features(model, _Subset(train, idx), "cpu").numpy()
            fte = extract_features(model, test, "cpu").numpy()
            pool = np.setdiff1d(np.arange(len(train)), np.concatenate([idx, val]).astype(int))
            fu = extract_features(model, _Subset(train, rng.permutation(pool)[: cfg.setfit_pool]), "cpu").numpy()
            head = LogisticRegression(max_iter=1000, random_state=seed).fit(ftr, y)

            def refit(h, k):
                return pseudo_head(h, ftr, y, fu, k, seed)[0]
            heads = {k: head if k == 0 else refit(head, k) for k in COUNTS}
            heads["2 rounds"] = refit(refit(head, 300), 1000)
            line = []
            for k, h in heads.items():
                a = h.score(fte, test.y) * 100
                res.setdefault((f, k), []).append(a)
                line.append(f"k={k}: {a:.1f}")
            print(f"{data} {label_text(f)} seed {seed} ({len(idx)} labels, {steps} steps, {time.time() - t0:.0f}s): "
                  + "  ".join(line), flush=True)
    for (f, k), v in res.items():
        spread = f" ± {np.std(v, ddof=1):.1f} (n={len(v)})" if len(v) > 1 else " (one run)"
        print(f"{data} {label_text(f)} k={k}: {np.mean(v):.1f}{spread}")


if __name__ == "__main__":
    main()
