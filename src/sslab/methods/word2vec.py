"""word2vec (Mikolov et al. 2013): skip-gram (predict each context word from the centre word) or CBOW (predict the
centre word from the average of its context words), with negative sampling (`negatives` words drawn from the
unigram distribution raised to 3/4), subsampling of frequent words (`sample`) and a dynamic window (a reduced
window drawn uniformly in 1..`window` per centre word): the choices of word2vec.c and gensim's defaults."""
import torch
import torch.nn.functional as F

from sslab import dist
from sslab.errors import SslabError
from sslab.methods import register
from sslab.methods.wordvec import WordVectorMethod
from sslab.views.text import randint, cbow_windows, keep_probabilities, skipgram_masks, subsample_words

NEG_TABLE = 1 << 21  # word2vec.c's unigram table (1e8 there); 2M slots give each of 200k words its share to 1%
# Negatives are shared: each step draws, for every block of the batch, `pool` words that all the block's examples
# are scored against, each weighted negatives / pool, so that the expected loss is word2vec's (`negatives`
# independent draws per example) while the scores are one batched matrix product instead of a gather per example.
# Skip-gram pairs are scored where they lie, as products of the block's word vectors with its context vectors
# shifted by 1..window, and a centre's negative term is computed once and weighted by its number of pairs (the same
# loss as pair by pair). Measured (16 blocks of 1,024 words = 57k pairs, vectors of 100, 2 CPU threads): forward +
# backward 373 ms pair by pair with 5 draws each, 125 ms with one pool of 64 for the batch, and a whole Adagrad step
# 79 ms as written (a pool of 64 per block). One pool for the whole batch learned less (WikiText-2, 30 s: loss 4.1
# vs 2.5 with a pool per block, WordSim353 0.10 vs 0.20); a pool of 128 per block with batches of 8 blocks and lr
# 0.4 was best per second (60 s: 0.414; lr 0.2 0.364, 0.8 0.394; pool 256 0.337).

@register("word2vec")
class Word2Vec(WordVectorMethod):
    def __init__(self, net, mode: str = "skipgram", window: int = 5, negatives: int = 5, sample: float = 1e-3,
                 pool: int = 128, **kw):
        super().__init__(net, **kw)
        if mode not in ("skipgram", "cbow"):
            raise SslabError(f"unknown word2vec mode {mode!r}; choose skipgram or cbow")
        for name, v in (("window", window), ("negatives", negatives), ("pool", pool)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SslabError(f"word2vec {name} must be a positive integer, got {v!r}")
        if not isinstance(sample, (int, float)) or sample < 0:
            raise SslabError(f"word2vec sample must be a number >= 0, got {sample!r}")
        self.mode, self.window, self.negatives, self.sample, self.pool = mode, window, negatives, float(sample), pool

    def setup(self, meta, cfg):
        super().setup(meta, cfg)
        self.register_buffer("keep_prob", keep_probabilities(self.counts, self.sample), persistent=False)
        weights = self.counts.double() ** 0.75
        cdf = torch.cumsum(weights / weights.sum().clamp(min=1e-12), 0)
        slots = (torch.arange(NEG_TABLE, dtype=torch.float64) + 0.5) / NEG_TABLE
        self.register_buffer("neg_table", torch.searchsorted(cdf, slots).clamp(max=len(cdf) - 1), persistent=False)

    def views(self, batch, generator=None):
        ids, doc, filled = subsample_words(batch["ids"], batch["doc"], self.keep_prob, generator)
        if self.mode == "skipgram":
            out = {"ids": ids, "pairs": skipgram_masks(doc, filled, self.window, generator)}
        else:
            centres, ctx, mask = cbow_windows(ids, doc, filled, self.window, generator)
            out = {"ids": centres, "context_ids": ctx, "context_mask": mask}
        rows = ids.shape[0] if self.mode == "skipgram" else 1  # skip-gram: a pool per block
        draw = randint(0, NEG_TABLE, (rows, self.pool), generator, ids.device)
        return {**out, "negatives": self.neg_table[draw]}

    def forward(self, ids, negatives, pairs=None, context_ids=None, context_mask=None):
        """Skip-gram: ids (B, L) subsampled blocks, pairs their (B, 2 * window, L) masks (`skipgram_masks`).
        CBOW: ids (N,) centre words, context_ids / context_mask (N, 2 * window) the words around each.
        negatives (pool,): words every example rejects."""
        neg_vectors = self.net.contexts(negatives)
        if pairs is not None:
            # masks multiply rather than select: no data-dependent shapes, so no host synchronisation on a GPU
            h, c = self.net.words(ids), self.net.contexts(ids)
            weights = pairs.to(h.dtype)
            pos = h.new_zeros(())
            for k in range(pairs.shape[1]):
                d = k // 2 + 1
                hk, ck = (h[:, :-d], c[:, d:]) if k % 2 == 0 else (h[:, d:], c[:, :-d])
                pos = pos + (F.softplus(-(hk * ck).sum(-1)) * weights[:, k, :-d]).sum()
            # each centre's pairs: its forward masks at its own column, its backward ones d columns to the left
            per_centre = weights[:, 0::2].sum(1)
            for k in range(1, pairs.shape[1], 2):
                d = k // 2 + 1
                per_centre[:, d:] += weights[:, k, :-d]
            neg = (F.softplus(torch.bmm(h, neg_vectors.transpose(1, 2))).mean(-1) * per_centre).sum() * self.negatives
            return dist.global_mean(pos + neg, weights.sum())
        m = context_mask.unsqueeze(-1).to(neg_vectors.dtype)
        h = (self.net.words(context_ids) * m).sum(1) / m.sum(1).clamp(min=1.0)
        pos = (h * self.net.contexts(ids)).sum(-1)
        neg = F.softplus(h @ neg_vectors[0].T).mean(-1) * self.negatives
        return dist.global_mean((F.softplus(-pos) + neg).sum(), torch.tensor(len(ids)))
