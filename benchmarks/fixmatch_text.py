"""The fixmatch protocol on text from the local MiniLM, through sslab's harness on the study's label subsets, with
the text recipes' evaluation settings (a fixed budget, no validation items, lr 2e-4, batch 32): the frozen linear
probe, fine-tuning, and fixmatch from each subset's fine-tuned model.

    OMP_NUM_THREADS=1 python benchmarks/fixmatch_text.py trec 0.01 2
    OMP_NUM_THREADS=1 python benchmarks/fixmatch_text.py trec 0.01 1 fixmatch_threshold=0.95

The encoder is the MiniLM that `setup.sh --test` installs, or a folder given as FROM=<path>. Prints every run and,
per fraction and protocol, mean ± std over the seeds (docs/results.md)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from setfit_text import run  # noqa: E402

TEXT_RECIPE = dict(val_items=0, finetune_until="budget", finetune_images=10000, finetune_epochs=30,
                   finetune_min_steps=80, finetune_lr=2e-4, batch_size=32)  # as recipes/gpt.yaml's eval


def main() -> None:
    run(["linear", "finetune", "fixmatch"], [], TEXT_RECIPE, ("linear", "finetune", "fixmatch"))


if __name__ == "__main__":
    main()
