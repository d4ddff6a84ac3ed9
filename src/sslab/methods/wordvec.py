"""Static word vectors (word2vec, GloVe): what both methods share. The corpus is tokenized into words (a WordLevel
tokenizer trained on it: lower-cased, words seen at least `min_count` times, `tokenizer.json` as for the other text
runs); `backbone` is the `WordVectors` tables; transfer averages a text's word vectors (`BagOfVectors`); the run
holds `vectors.txt` in the word2vec text format (gensim's `KeyedVectors.load_word2vec_format` reads it) and
`data/counts.npy`, each word's count in the corpus. The "backbone" name is the vector size: `d100`, `d300`, ..."""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslab.atomic import atomic_write
from sslab.errors import SslabError
from sslab.methods.text import TOKENIZER_DIR, TextMethod, load_tokenizer
from sslab.nets.text import BagOfVectors, WordVectors, write_word2vec_format

COUNTS = "data/counts.npy"
VECTORS = "vectors.txt"


def vector_size(backbone: str) -> int:
    m = re.fullmatch(r"d([1-9][0-9]*)", str(backbone))
    if not m or int(m.group(1)) > 4096:
        raise SslabError(f"unknown word vector size {backbone!r}; write it as d<size>, e.g. d100 or d300")
    return int(m.group(1))


class WordVectorMethod(TextMethod):
    """Subclasses set the `WordVectors` options (`biases`, `sum_contexts`, `zero_contexts`) and implement `views`
    and `forward`."""

    tokenizer_kind, lowercase = "word", True
    specials = {"pad_token": "[PAD]", "unk_token": "[UNK]"}
    default_context = 1024  # tokens per pretraining block, and the most words of a text averaged for transfer
    default_vocab = 200_000  # an upper bound: min_count decides
    run_evaluations = ("word-vectors",)
    biases = sum_contexts = False
    zero_contexts = True
    tiny_backbone = "d8"

    auto_class = None  # word vectors start from nothing pretrained

    def __init__(self, net, min_count: int = 5, **kw):
        super().__init__(net, **kw)
        self.min_count = min_count

    @classmethod
    def check_backbone(cls, backbone: str) -> None:
        vector_size(backbone)

    @classmethod
    def build_net(cls, backbone: str, meta: dict) -> WordVectors:
        return WordVectors(meta["vocab_size"], vector_size(backbone), cls.biases, cls.sum_contexts,
                           cls.zero_contexts)

    @classmethod
    def tokenizer_options(cls, cfg: Any) -> dict:
        return {"min_frequency": cfg.method_args.get("min_count", 5)}

    @classmethod
    def prepare(cls, splits, cfg: Any, out):
        prepared = super().prepare(splits, cfg, out)
        blocks = prepared.train.blocks
        counts = np.bincount(np.asarray(blocks.stream()[0]), minlength=blocks.vocab_size).astype(np.int64)
        buf = io.BytesIO()
        np.save(buf, counts, allow_pickle=False)
        atomic_write(Path(out) / COUNTS, buf.getvalue())
        return prepared

    def setup(self, meta: dict, cfg: Any) -> None:
        super().setup(meta, cfg)
        path = Path(meta.get("run_dir", ".")) / COUNTS
        # without the run's counts (a model built from a description alone): every word equally frequent
        counts = np.load(path, allow_pickle=False) if path.is_file() else np.ones(meta["vocab_size"], np.int64)
        counts = torch.from_numpy(counts.astype(np.int64))
        counts[self.special_ids] = 0  # unknown and padding tokens are never trained on
        self.register_buffer("counts", counts, persistent=False)

    # ------------------------------------------------------------------ what the run holds
    @property
    def backbone(self) -> WordVectors:
        return self.net

    def encoder(self) -> BagOfVectors:
        return BagOfVectors(self.net, self.meta["special_ids"])

    def configure_optimizer(self, cfg: Any) -> torch.optim.Optimizer:
        """Adagrad, as GloVe's authors train (and as sparse word-vector training does well with: each word's
        step shrinks with its own gradient history, so rare and frequent words both learn). Measured on
        wikitext-2 (word2vec skip-gram, 25 s each): WordSim353 Spearman 0.143 with Adagrad lr 0.1 against -0.03
        with Adam lr 1e-3 (vectors drift to one common direction) and SGD at word2vec.c's 0.025 diverging."""
        return torch.optim.Adagrad([p for p in self.parameters() if p.requires_grad], lr=cfg.lr)

    def word_list(self) -> tuple[list[str], torch.Tensor]:
        """The vocabulary without special tokens, in frequency order, and the ids of those words."""
        tok = load_tokenizer(Path(self.meta["run_dir"]) / self.meta.get("tokenizer", TOKENIZER_DIR))
        special = set(self.meta["special_ids"])
        ids = torch.tensor([i for i in range(len(tok)) if i not in special], dtype=torch.long)
        return tok.convert_ids_to_tokens(ids.tolist()), ids

    def export(self, out) -> None:
        """`vectors.txt` (word2vec text format) next to the tokenizer."""
        words, ids = self.word_list()
        write_word2vec_format(Path(out) / VECTORS, words, self.net.vectors().detach()[ids].cpu().numpy())

