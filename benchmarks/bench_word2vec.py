"""sslab word2vec and GloVe against gensim's Word2Vec on the same corpus in the same wall time (one run each).

    .venv/bin/python benchmarks/bench_word2vec.py --budget 120          # needs `pip install gensim`

Corpus: WikiText-2's validation and test text (what `sslab pretrain --data wikitext-2 --corpus
<root>/wikitext-2/test.txt` trains on), split into words by the tokenizer sslab trains (lower-cased, punctuation
apart); gensim gets exactly those words, one paragraph a sentence, and the same min_count (5), vector size (100),
window (5), negatives (5) and sample (1e-3). sslab trains through `sslab.pretrain` for `--budget` seconds; gensim
(2 worker threads) runs as many epochs as fit in the same time, measured from one epoch first. Scores: WordSim353
and SimLex-999 Spearman and analogy accuracy (sslab.evaluate.wordvec, gensim's rules: pairs / questions with a
word outside the vocabulary are skipped and counted). Words/s: corpus words (min_count rejects included, as
gensim counts raw words) x epochs / training seconds; GloVe's counting time is stated apart.

RESULTS (2026-11-30, --budget 120, one run each; README "Word vectors"):
    system                       seconds  epochs            speed  WordSim353 (pairs)  SimLex-999 (pairs)  analogy
    sslab word2vec skipgram        120.0    34.1      132,562 w/s  0.440 (183/353)  0.051 (420/999)  0.033 (2654/19544)
    gensim Word2Vec skipgram       126.1   103.0      384,369 w/s  0.387 (183/353)  0.024 (420/999)  0.030 (2654/19544)
    sslab GloVe (+3s counting)     120.0    47.4  672,908 pairs/s  0.208 (183/353)  0.004 (420/999)  0.007 (2654/19544)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch


def sslab_run(method: str, budget: float, root: Path, out: Path, args: dict) -> dict:
    from sslab.config import PretrainConfig, load_config
    from sslab.data import load_data
    from sslab.engine import pretrain
    from sslab.evaluate.wordvec import intrinsic, run_word_table
    from sslab.methods import prepare_pretraining
    from sslab.config import RECIPES

    cfg = load_config(PretrainConfig, RECIPES / f"{method}.yaml", [f"budget={budget}"] +
                      [f"method_args.{k}={v}" for k, v in args.items()])
    t0 = time.time()
    splits = load_data("wikitext-2", root, kind="text")
    prepared = prepare_pretraining(splits, cfg, out, root, [str(root / "wikitext-2" / "test.txt")])
    t_prep = time.time() - t0
    res = pretrain(prepared.train, cfg, out, show_progress=False, val_data=prepared.val)
    words = int(prepared.train.blocks.n_tokens) if hasattr(prepared.train, "blocks") else None
    return {"seconds": res["seconds"], "prepare": t_prep, "epochs": res["epochs"], "units_per_s": res["units_per_s"],
            "unit": res["unit"], "scores": intrinsic(run_word_table(out), root), "words": words}


def corpus_words(run: Path, root: Path) -> list[list[str]]:
    """The corpus as sslab's tokenizer splits it, one list of words per paragraph."""
    from sslab.data import load_data
    from sslab.data.text import load_corpus
    from sslab.methods.text import load_tokenizer

    tok = load_tokenizer(run / "tokenizer").backend_tokenizer
    splits = load_data("wikitext-2", root, kind="text")
    texts = list(splits.train.texts) + list(load_corpus([str(root / "wikitext-2" / "test.txt")], root=root))
    lines = [line for t in texts for line in t.split("\n") if line.strip()]  # gensim cuts sentences at 10,000 words
    return [[w for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(t))] for t in lines]


def gensim_run(sentences: list[list[str]], budget: float, sg: int) -> dict:
    from gensim.models import Word2Vec

    from sslab.evaluate.wordvec import WordTable, intrinsic

    kw = dict(vector_size=100, window=5, min_count=5, negative=5, sample=1e-3, sg=sg, workers=2, seed=0)
    t = time.time()
    Word2Vec(sentences, epochs=1, **kw)
    one = time.time() - t
    epochs = max(1, round(budget / one))
    t = time.time()
    model = Word2Vec(sentences, epochs=epochs, **kw)
    seconds = time.time() - t
    words = sum(map(len, sentences))
    table = WordTable(list(model.wv.index_to_key), model.wv.vectors)
    return {"seconds": seconds, "epochs": epochs, "words_per_s": words * epochs / seconds, "scores": intrinsic(table)}


def row(name: str, seconds: float, epochs: float, rate: str, scores: dict) -> str:
    ws, sl, an = scores["wordsim353"], scores["simlex999"], scores["analogy"]
    f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    return (f"{name:28s} {seconds:7.1f} {epochs:7.1f} {rate:>16s}  {f(ws['spearman'])} ({ws['pairs']}/"
            f"{ws['pairs'] + ws['oov_pairs']})  {f(sl['spearman'])} ({sl['pairs']}/{sl['pairs'] + sl['oov_pairs']})"
            f"  {f(an['accuracy'])} ({an['questions']}/{an['questions'] + an['oov_questions']})")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=120.0, help="training seconds for each system")
    ap.add_argument("--data-root", default=os.environ.get("SSLAB_DATA_ROOT", "/work/shared/data"))
    ap.add_argument("--modes", default="skipgram", help="word2vec modes: skipgram, cbow or both")
    ap.add_argument("--no-glove", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    root = Path(args.data_root)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        first = None
        for mode in args.modes.split(","):
            out = Path(tmp) / f"w2v-{mode}"
            r = sslab_run("word2vec", args.budget, root, out, {"mode": mode})
            first = first or out
            lines.append(row(f"sslab word2vec {mode}", r["seconds"], r["epochs"], f"{r['units_per_s']:,.0f} w/s",
                             r["scores"]))
            print(lines[-1], flush=True)
        sentences = corpus_words(first, root)
        for mode in args.modes.split(","):
            g = gensim_run(sentences, args.budget, sg=int(mode == "skipgram"))
            lines.append(row(f"gensim Word2Vec {mode}", g["seconds"], g["epochs"], f"{g['words_per_s']:,.0f} w/s",
                             g["scores"]))
            print(lines[-1], flush=True)
        if not args.no_glove:
            r = sslab_run("glove", args.budget, root, Path(tmp) / "glove", {})
            lines.append(row(f"sslab GloVe (+{r['prepare']:.0f}s counting)", r["seconds"], r["epochs"],
                             f"{r['units_per_s']:,.0f} pairs/s", r["scores"]))
            print(lines[-1], flush=True)
    print(f"\nwikitext-2 valid+test, {sum(map(len, sentences)):,} words, budget {args.budget:.0f} s each, one run each "
          f"(torch {torch.__version__}, 2 threads)")
    print(f"{'system':28s} {'seconds':>7s} {'epochs':>7s} {'speed':>16s}  WordSim353 (pairs)  SimLex-999 (pairs)  "
          "analogy (questions)")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
