"""GloVe (Pennington et al. 2014): word and context vectors with biases fit by weighted least squares to the log of
the corpus's co-occurrence counts, f(X) = min(1, (X / x_max)^alpha) with x_max 100 and alpha 0.75, counts within a
symmetric `window` (10) weighted by 1 / distance. The counts are made once before training (in memory, from the
run's token stream); a step is a batch of nonzero entries. The published vectors are word + context."""

import numpy as np
import torch

from sslab import dist
from sslab.data.streams import Cooccurrences
from sslab.errors import SslabError
from sslab.methods import Prepared, register
from sslab.methods.wordvec import WordVectorMethod
from sslab.views.text import cooccurrences


@register("glove")
class GloVe(WordVectorMethod):
    biases = sum_contexts = True
    zero_contexts = False

    def __init__(self, net, window: int = 10, x_max: float = 100.0, alpha: float = 0.75, **kw):
        super().__init__(net, **kw)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise SslabError(f"glove window must be a positive integer, got {window!r}")
        if not isinstance(x_max, (int, float)) or x_max <= 0 or not isinstance(alpha, (int, float)) or alpha <= 0:
            raise SslabError(f"glove x_max and alpha must be positive numbers, got {x_max!r} and {alpha!r}")
        self.window, self.x_max, self.alpha = window, float(x_max), float(alpha)

    @classmethod
    def prepare(cls, splits, cfg, out) -> Prepared:
        prepared = super().prepare(splits, cfg, out)
        blocks, meta = prepared.train.blocks, prepared.train.meta()
        window = cfg.method_args.get("window", 10)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise SslabError(f"glove window must be a positive integer, got {window!r}")
        rows, cols, values = cooccurrences(*map(np.asarray, blocks.stream()), blocks.vocab_size,
                                           window, meta["special_ids"])
        if len(values) < 2:
            raise SslabError(f"{splits.train.name}: fewer than two co-occurring words; add text or lower min_count")
        return Prepared(Cooccurrences(rows, cols, values, meta), None, prepared.after)

    def views(self, batch, generator=None):
        return batch

    def forward(self, row, col, count):
        pred = (self.net.words(row) * self.net.contexts(col)).sum(-1) + self.net.word_bias(row).squeeze(-1) \
            + self.net.context_bias(col).squeeze(-1)
        weight = (count / self.x_max).pow(self.alpha).clamp(max=1.0)
        return dist.global_mean((weight * (pred - count.log()) ** 2).sum(), torch.tensor(len(count)))

    @classmethod
    def example_batch(cls, meta: dict, n: int, generator: torch.Generator) -> dict:
        """n random co-occurrence entries over the vocabulary of `meta` (for tests: a raw batch of GloVe's data)."""
        v, k = meta["vocab_size"], len(meta["special_ids"])
        return {"row": torch.randint(k, v, (n,), generator=generator),
                "col": torch.randint(k, v, (n,), generator=generator),
                "count": torch.rand(n, generator=generator) * 200 + 0.1}
