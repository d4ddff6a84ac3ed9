"""Every registered method on one data set, with its own recipe (sslab/recipes/<method>.yaml), the same backbone
and the same wall-clock pretraining budget:
kNN and linear-probe accuracy at 1% and 100% labels, mean ± std over pretraining seeds.

    python benchmarks/method_table.py --data fashion-mnist --budget 60 --seeds 3 --out runs/method-table

Writes <out>/table.json and <out>/table.md (the markdown table quoted in docs/methods.md)."""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import sslab
from sslab.config import RECIPES, EvalConfig, PretrainConfig, load_config
from sslab.engine import load_encoder
from sslab.evaluate import evaluate_encoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--budget", type=float, default=60.0, help="pretraining seconds per run")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--backbone", default="resnet-s2")
    ap.add_argument("--methods", default=",".join(sorted(n for n, c in sslab.METHODS.items() if c.kind == "image")))
    ap.add_argument("--fractions", default="0.01,1.0")
    ap.add_argument("--out", type=Path, default=Path("runs/method-table"))
    args = ap.parse_args()
    splits = sslab.load_images(args.data)
    fractions = [float(f) for f in args.fractions.split(",")]
    rows_path = args.out / "table.json"
    rows = json.loads(rows_path.read_text()) if rows_path.exists() else []
    done = {(r["method"], r["seed"]) for r in rows}
    for seed in range(args.seeds):  # seed-major: a partial table still covers every method
        for method in args.methods.split(","):
            if (method, seed) in done:
                continue
            run = args.out / f"{method}-{seed}"
            recipe = RECIPES / f"{method}.yaml"  # the method's own defaults, as `sslab pretrain --method` uses
            cfg = load_config(PretrainConfig, recipe if recipe.is_file() else None,
                              [f"method={method}", f"backbone={args.backbone}", f"budget={args.budget}", f"seed={seed}"])
            t = time.time()
            pre = sslab.pretrain(splits.train, cfg, run, show_progress=False)
            encoder, info = load_encoder(run)
            ev = evaluate_encoder(encoder, info, splits, EvalConfig(fractions=fractions, protocols=["knn", "linear"],
                                                                       baselines=[], seeds=1), log=lambda *a: None)
            # evaluation seed 0 for every pretraining seed: the spread is over pretraining runs
            acc = {f"{r['protocol']}@{r['fraction']}": r["test_acc"] for r in ev["runs"]}
            rows.append({"method": method, "seed": seed, "epochs": pre["epochs"], "seconds": pre["seconds"],
                         "images_per_s": pre["images_per_s"], "effective_rank": ev["health"]["effective_rank"],
                         "dim": ev["health"]["dim"], **acc, "wall": time.time() - t})
            args.out.mkdir(parents=True, exist_ok=True)
            rows_path.write_text(json.dumps(rows, indent=1))
            print(json.dumps(rows[-1]), flush=True)
    (args.out / "table.md").write_text(markdown(rows, fractions))
    print(markdown(rows, fractions))


def markdown(rows: list[dict], fractions: list[float]) -> str:
    cols = [f"{p}@{f}" for f in fractions for p in ("knn", "linear")]
    head = "| method | epochs | images/s | eff. rank | " + " | ".join(
        f"{c.split('@')[0]} {float(c.split('@')[1]):.0%}" for c in cols) + " |"
    lines = [head, "|" + " --- |" * (4 + len(cols))]
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method]

        def ms(key, pct=True):
            v = [r[key] for r in rs]
            m, s = statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0
            return f"{100 * m:.1f} ± {100 * s:.1f}" if pct else f"{m:.1f}"
        lines.append(f"| {method} | {ms('epochs', False)} | {ms('images_per_s', False)} | "
                     f"{ms('effective_rank', False)} | " + " | ".join(ms(c) for c in cols) + " |")
    lines.append(f"\nn = {len(rows) // max(1, len(set(r['method'] for r in rows)))} pretraining seeds per method.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
