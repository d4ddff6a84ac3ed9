"""Which pooled representation of a text run serves transfer best: linear probe and kNN on frozen features,
mean-pooled vs the first token ([CLS] / <s>) vs the last token, at label fractions, mean ± std over label seeds.

    python benchmarks/text_pooling.py runs/sst2-bert runs/sst2-gpt [--data sst2] [--fractions 0.01,1.0] [--seeds 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sslab.config import EvalConfig  # noqa: E402
from sslab.data import label_subset, load_data  # noqa: E402
from sslab.engine import load_encoder  # noqa: E402
from sslab.evaluate import kind_adapter  # noqa: E402
from sslab.evaluate.protocols import extract_features, knn_accuracy, linear_probe  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--data", default=None, help="labelled text set (default: each run's own)")
    ap.add_argument("--fractions", default="0.01,1.0")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    fractions = [float(f) for f in args.fractions.split(",")]
    cfg = EvalConfig()
    print("| run | pooling | protocol | " + " | ".join(f"{f:.0%} labels" for f in fractions) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in fractions) + " |")
    for run in args.runs:
        encoder, info = load_encoder(run)
        splits = load_data(args.data or info["data"], kind="text")
        kind = kind_adapter("text")
        tr, te = kind.labelled(splits.train, info), kind.labelled(splits.test, info)
        n_classes = len(splits.train.classes)
        for pooling in ("mean", "cls", "last"):
            encoder.pooling = pooling
            ftr, fte = extract_features(encoder, tr), extract_features(encoder, te)
            for proto in ("linear", "knn"):
                cells = []
                for f in fractions:
                    accs = []
                    for seed in range(args.seeds if f < 1 else 1):
                        idx = label_subset(splits.train.y, f, seed)
                        if proto == "linear":
                            acc = linear_probe(ftr[idx], splits.train.y[idx], fte, splits.test.y, cfg, seed,
                                               n_classes)["test_acc"]
                        else:
                            acc = knn_accuracy(ftr[idx], splits.train.y[idx], fte, splits.test.y, cfg.knn_k,
                                               cfg.knn_temperature)
                        accs.append(100 * acc)
                    sd = f" ± {statistics.stdev(accs):.1f} (n={len(accs)})" if len(accs) > 1 else " (n=1)"
                    cells.append(f"{statistics.mean(accs):.1f}{sd}")
                print(f"| {run.name} ({info['method']}) | {pooling} | {proto} | " + " | ".join(cells) + " |",
                      flush=True)


if __name__ == "__main__":
    main()
