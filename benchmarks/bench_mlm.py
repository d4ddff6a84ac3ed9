"""Benchmark: masked-LM pretraining throughput (tokens/s), sslab against HF `Trainer` +
`DataCollatorForLanguageModeling`, on the same model config, tokenizer, blocks and batch, in one process.

  sslab roberta   sslab.pretrain() with the roberta method (dynamic 15% masking, 80/10/10, on the device), its
                  own reported tokens/s (includes the step-1 probe; checkpoints and probes otherwise off)
  sslab bert      the same for BERT (masked LM + next-sentence pairs: more work per token)
  HF Trainer      transformers.Trainer on RobertaForMaskedLM of the same config, DataCollatorForLanguageModeling
                  (mlm_probability 0.15) on the same fixed blocks, AdamW, dataloader in the main process; tokens/s
                  over the whole `train()` call

Data: WikiText-2 (`valid.txt`, the train split of sslab's `wikitext-2`) from SSLAB_DATA_ROOT, byte-level BPE
(8,192) trained by sslab, blocks of 128 tokens. Trainer needs `accelerate`, which is not an sslab dependency:
`pip install accelerate` into the venv to run this.

    python benchmarks/bench_mlm.py [--steps 60] [--batch 32] [--size mini]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import sslab  # noqa: E402
from sslab.config import PretrainConfig  # noqa: E402
from sslab.data import load_data  # noqa: E402
from sslab.methods import prepare_pretraining  # noqa: E402
from sslab.methods.text import load_tokenizer  # noqa: E402
from sslab.nets.text import build_text_model  # noqa: E402


def sslab_rate(method: str, splits, args, root: Path) -> tuple[float, Path]:
    cfg = PretrainConfig(method=method, backbone=args.size, batch_size=args.batch, context=args.context + 1,
                         vocab_size=8192, budget=None, epochs=1, lr=1e-3, lr_scaling="none", log_every=10**6,
                         checkpoint_every=10**6, channels_last=False, max_items=args.batch * args.steps)
    prep = prepare_pretraining(splits, cfg, root / method)
    res = sslab.pretrain(prep.train, cfg, root / method, show_progress=False)
    return res["tokens_per_s"], root / method


def hf_rate(run: Path, args) -> float:
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from sslab.data.streams import TokenBlocks

    tok = load_tokenizer(run / "tokenizer")
    blocks = TokenBlocks(run / "data" / "train.bin", args.context)  # the blocks sslab's roberta trained on
    n = args.batch * args.steps
    ids = blocks.batch(torch.arange(n))["ids"][:, :-1]
    dataset = [{"input_ids": row} for row in ids]
    model = build_text_model("roberta", args.size, len(tok), args.context + 1, tok.pad_token_id,
                             bos_id=tok.bos_token_id, eos_id=tok.eos_token_id)
    targs = TrainingArguments(output_dir=str(run.parent / "hf-trainer"), per_device_train_batch_size=args.batch,
                              max_steps=args.steps, learning_rate=1e-3, save_strategy="no", report_to=[],
                              logging_steps=10**6, dataloader_num_workers=0, use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=dataset,
                      data_collator=DataCollatorForLanguageModeling(tok, mlm_probability=0.15))
    t0 = time.perf_counter()
    trainer.train()
    return n * args.context / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--size", default="mini")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    splits = load_data("wikitext-2", kind="text")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rates = {}
        rates["sslab roberta"], run = sslab_rate("roberta", splits, args, root)
        rates["HF Trainer (roberta)"] = hf_rate(run, args)
        rates["sslab bert"], _ = sslab_rate("bert", splits, args, root)
    ref = rates["HF Trainer (roberta)"]
    print(f"masked-LM pretraining, {args.size} model, batch {args.batch} x {args.context} tokens, {args.steps} steps, "
          f"{args.threads} threads, one process")
    print("| pipeline | tokens/s | vs HF Trainer |\n| --- | --- | --- |")
    for name, r in rates.items():
        print(f"| {name} | {r:,.0f} | {r / ref:.2f}x |")


if __name__ == "__main__":
    main()
