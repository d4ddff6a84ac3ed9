"""What SetFit's templated examples add, paired on the same label subsets: the setfit protocol's steps (contrastive
tuning of the local MiniLM, logistic regression on the tuned embeddings of the labelled items and of 1,000
pseudo-labelled unlabelled items per class) with k copies of each class's templated example ("This sentence is
<class>", `evaluate.text.TEMPLATE`) joining the labelled items, for each k given; and `names_informative`'s check,
which decides whether the protocol adds them.

    python benchmarks/setfit_templates.py sst2 8 0,1,2 0,2,8     # data, label fraction or count, seeds, k values

Prints each subset's accuracies (the head on the labelled items alone, and with the pseudo-labels) and, per k,
mean ± std over the seeds (docs/results.md)."""
import os
import sys
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from sslab.config import EvalConfig
from sslab.data import label_subset, load_data, validation_split
from sslab.evaluate import extract_features, kind_adapter
from sslab.evaluate.protocols import _Subset, names_informative, pseudo_head, setfit_tune
from sslab.methods.text import foundation_encoder

sys.path.insert(0, os.path.dirname(__file__))
from setfit_text import minilm  # noqa: E402


def main() -> None:
    data, f = sys.argv[1], float(sys.argv[2])
    seeds, ks = [int(s) for s in sys.argv[3].split(",")], [int(k) for k in sys.argv[4].split(",")]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    splits = load_data(data, None, kind="text")
    enc, info, _ = foundation_encoder(os.environ.get("FROM") or minilm(), 128)
    kind = kind_adapter("text")
    train, test = kind.labelled(splits.train, info), kind.labelled(splits.test, info)
    if train.templates is None:
        sys.exit(f"{data}: the class names {splits.train.classes} are not words: no templated examples")
    cfg = EvalConfig()
    val, pool_all = validation_split(splits.train.y, cfg.val_items)
    res: dict = {}
    for seed in seeds:
        idx = pool_all[label_subset(splits.train.y[pool_all], f, seed, num_classes=len(splits.train.classes))]
        ok, names, labels = names_informative(enc, train, idx, train.templates, seed)
        line = [f"names {names:.2f} / labels {labels:.2f}: {'used' if ok else 'not used'}"]
        pool = np.setdiff1d(np.arange(len(train)), np.concatenate([idx, val]).astype(int))
        unlabelled = np.random.default_rng(seed + 100).permutation(pool)[: cfg.setfit_pool]
        for k in ks:
            t0 = time.time()
            joined = train.rows(idx, *[train.templates] * k)
            model, steps, _, _ = setfit_tune(enc, joined, np.arange(len(joined)), cfg, seed)
            ftr = extract_features(model, joined, "cpu").numpy()
            fte = extract_features(model, test, "cpu").numpy()
            fu = extract_features(model, _Subset(train, unlabelled), "cpu").numpy()
            head = LogisticRegression(max_iter=1000, random_state=seed).fit(ftr, joined.y)
            head2, _ = pseudo_head(head, ftr, joined.y, fu, cfg.setfit_pseudo, seed)
            acc = {"labels": head.score(fte, test.y) * 100, "pseudo": head2.score(fte, test.y) * 100}
            for name, a in acc.items():
                res.setdefault((k, name), []).append(a)
            line.append(f"k={k} ({steps} steps, {time.time() - t0:.0f}s): "
                        + " ".join(f"{n}={a:.1f}" for n, a in acc.items()))
        print(f"{data} {sys.argv[2]} seed {seed} ({len(idx)} labels): " + " | ".join(line), flush=True)
    for (k, name), v in res.items():
        spread = f" ± {np.std(v, ddof=1):.1f} (n={len(v)})" if len(v) > 1 else " (one run)"
        print(f"{data} {sys.argv[2]} k={k} {name}: {np.mean(v):.1f}{spread}  {[round(a, 1) for a in v]}")


if __name__ == "__main__":
    main()
