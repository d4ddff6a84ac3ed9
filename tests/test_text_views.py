"""Property tests of the text views (sslab.views.text): masking, next-sentence pairs, causal shift, packing and
token augmentation. All on CPU tensors; rates are checked on large batches against binomial tolerances
(4.5 standard deviations), everything structural is checked exactly.

Speeds (CPU, 1 thread; stated in the module docstrings): mask_tokens (256, 128) in ~2.7 ms, next_sentence_pairs
(512, 128) in ~3.3 ms, augment_tokens (256, 128) in ~1.9 ms; not asserted here (the test machine is shared)."""
from __future__ import annotations

import math

import pytest
import torch

from sslab.errors import SslabError
from sslab.views.text import (
    IGNORE_INDEX,
    augment_tokens,
    causal_shift,
    mask_tokens,
    next_sentence_pairs,
    pack_sequences,
)

PAD, CLS, SEP, MASK, UNK = 0, 1, 2, 3, 4
SPECIALS = [PAD, CLS, SEP, MASK, UNK]
V = 1000
CONT_FROM = 600  # ids >= CONT_FROM are word continuations ("##xx") in the whole-word tests


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def within(count: float, n: int, p: float, k: float = 4.5) -> bool:
    """|count - n p| within k binomial standard deviations."""
    return abs(count - n * p) <= k * math.sqrt(max(n * p * (1 - p), 1e-12)) + 1e-9


def padded_batch(B: int, T: int, seed: int = 1, lo: int = 5, hi: int = V, min_len: int = 3):
    """[CLS] tokens... [SEP] pad... rows of random lengths in [min_len, T]; ids of the body in [lo, hi)."""
    g = gen(seed)
    ids = torch.randint(lo, hi, (B, T), generator=g)
    lengths = torch.randint(min_len, T + 1, (B,), generator=g)
    pos = torch.arange(T)
    att = (pos < lengths[:, None]).long()
    ids[:, 0] = CLS
    ids[torch.arange(B), lengths - 1] = SEP
    ids = torch.where(att.bool(), ids, PAD)
    return ids, att, lengths


def masked(ids, **kw):
    args = {"mask_id": MASK, "vocab_size": V, "special_ids": SPECIALS}
    args.update(kw)
    return mask_tokens(ids, **args)


# ------------------------------------------------------------------------------------------------ mask_tokens
def test_mask_labels_specials_and_unchosen_positions():
    ids, att, _ = padded_batch(1024, 64)
    out, labels = masked(ids, generator=gen(0), attention_mask=att)
    chosen = labels != IGNORE_INDEX
    assert out.shape == ids.shape and labels.shape == ids.shape and out.dtype == ids.dtype
    assert torch.equal(labels[chosen], ids[chosen])  # labels = original ids where chosen
    assert torch.equal(out[~chosen], ids[~chosen])  # everything else untouched
    special = torch.isin(ids, torch.tensor(SPECIALS))
    assert not (chosen & special).any() and not (chosen & (att == 0)).any()
    # random replacements are never special ids
    assert not torch.isin(out[chosen & (out != MASK)], torch.tensor(SPECIALS)).any()


def test_mask_count_per_row_is_rate_rounded_and_at_least_one():
    ids, att, lengths = padded_batch(2048, 64, min_len=2)  # min_len 2: some rows have nothing to mask
    _out, labels = masked(ids, generator=gen(3), attention_mask=att)
    n = (lengths - 2).float()  # maskable tokens per row (between [CLS] and [SEP])
    c = (labels != IGNORE_INDEX).sum(1).float()
    lo = torch.clamp(torch.floor(0.15 * n), min=1.0)
    hi = torch.clamp(torch.ceil(0.15 * n), min=1.0)
    has = n > 0
    assert ((c >= lo) & (c <= hi))[has].all()  # stochastic rounding of n * rate, never 0
    assert (c[~has] == 0).all() and (~has).any()
    # the expected count is exactly n * rate where n * rate >= 1; the rounding noise is <= 1/2 per row
    big = n * 0.15 >= 1
    assert abs(c[big].sum() - 0.15 * n[big].sum()) <= 4.5 * math.sqrt(big.sum() / 4)
    assert abs(c[big].sum() / n[big].sum() - 0.15) < 0.003


def test_mask_80_10_10_split():
    ids, att, _ = padded_batch(4096, 64, seed=5)
    out, labels = masked(ids, generator=gen(1), attention_mask=att)
    chosen = labels != IGNORE_INDEX
    N = int(chosen.sum())
    assert N > 18000  # 80% +- 0.3%, 10% +- 0.2% (1 sd)
    n_mask = int((out[chosen] == MASK).sum())
    n_same = int((out[chosen] == ids[chosen]).sum())
    n_other = N - n_mask - n_same
    n_allowed = V - len(SPECIALS)
    assert within(n_mask, N, 0.8)
    assert within(n_same, N, 0.1 + 0.1 / n_allowed)  # kept, or a random draw that hit the original
    assert within(n_other, N, 0.1 * (1 - 1 / n_allowed))


def test_mask_branches_exact():
    ids, att, _ = padded_batch(256, 32, seed=7)
    # keep branch only: labels chosen, ids unchanged
    out, labels = masked(ids, generator=gen(2), attention_mask=att, mask_frac=0.0, random_frac=0.0)
    assert torch.equal(out, ids) and (labels != IGNORE_INDEX).any()
    # mask branch only
    out, labels = masked(ids, generator=gen(2), attention_mask=att, mask_frac=1.0, random_frac=0.0)
    chosen = labels != IGNORE_INDEX
    assert (out[chosen] == MASK).all() and torch.equal(out[~chosen], ids[~chosen])
    # same seed: same chosen positions whatever the replacement fractions
    _, labels2 = masked(ids, generator=gen(2), attention_mask=att, mask_frac=0.0, random_frac=1.0)
    assert torch.equal(labels, labels2)


def test_random_replacements_uniform_over_non_special_ids():
    vocab, specials = 20, [0, 3, 7, 19]
    ids = torch.full((4096, 40), 5)
    out, labels = mask_tokens(ids, mask_id=3, vocab_size=vocab, special_ids=specials, generator=gen(4),
                              rate=0.5, mask_frac=0.0, random_frac=1.0)
    drawn = out[labels != IGNORE_INDEX]
    allowed = [i for i in range(vocab) if i not in specials]
    counts = torch.bincount(drawn, minlength=vocab)
    assert counts[specials].sum() == 0
    N = drawn.numel()
    for i in allowed:
        assert within(int(counts[i]), N, 1 / len(allowed))
    # mask_id counts as special even when not listed
    out, labels = mask_tokens(ids, mask_id=3, vocab_size=vocab, special_ids=[0], generator=gen(4),
                              rate=0.5, mask_frac=0.0, random_frac=1.0)
    assert not (out == 3).any()


def test_padding_with_regular_ids_is_never_masked():
    ids, att, _ = padded_batch(512, 32, seed=9)
    ids = torch.where(att.bool(), ids, 77)  # "padding" that looks like a regular token
    _, labels = masked(ids, generator=gen(0), attention_mask=att)
    assert ((labels != IGNORE_INDEX) <= att.bool()).all()
    _, labels = masked(ids, generator=gen(0))  # without the attention mask they are fair game
    assert ((labels != IGNORE_INDEX) & (att == 0)).any()


def test_mask_dynamic_and_reproducible():
    ids, att, _ = padded_batch(64, 64, seed=11)
    g = gen(42)
    a = masked(ids, generator=g, attention_mask=att)
    b = masked(ids, generator=g, attention_mask=att)
    assert not torch.equal(a[1], b[1])  # a fresh mask every call
    state = gen(42).get_state()
    g2 = torch.Generator()
    g2.set_state(state)
    a2 = masked(ids, generator=g2, attention_mask=att)
    b2 = masked(ids, generator=g2, attention_mask=att)  # resumes the same stream
    assert all(torch.equal(x, y) for x, y in zip(a + b, a2 + b2))
    c = masked(ids, generator=gen(43), attention_mask=att)
    assert not torch.equal(a[1], c[1])
    assert torch.equal(ids, padded_batch(64, 64, seed=11)[0])  # input not modified


def test_mask_1d_and_empty_rows():
    row = torch.tensor([CLS, 10, 11, 12, 13, SEP, PAD, PAD])
    out, labels = masked(row, generator=gen(0))
    assert out.shape == row.shape and (labels != IGNORE_INDEX).sum() == 1  # 4 * 0.15 < 1 -> exactly one
    only_special = torch.tensor([[CLS, SEP, PAD, PAD]])
    out, labels = masked(only_special, generator=gen(0))
    assert torch.equal(out, only_special) and (labels == IGNORE_INDEX).all()


def test_mask_rate_one_dtypes_and_empty_shapes():
    ids, att, _ = padded_batch(64, 32, seed=19)
    cont = torch.zeros(V, dtype=torch.bool)
    cont[CONT_FROM:] = True
    maskable = att.bool() & ~torch.isin(ids, torch.tensor(SPECIALS))
    for ww in (False, True):  # rate 1: every maskable token (checks the top-k shortcut keeps enough words)
        _, labels = masked(ids, generator=gen(0), attention_mask=att, rate=1.0, whole_word=ww, continuation=cont)
        assert torch.equal(labels != IGNORE_INDEX, maskable)
    out, labels = masked(ids.int(), generator=gen(0), attention_mask=att)
    assert out.dtype == torch.int32 and labels.dtype == torch.long
    a, b = masked(ids, generator=gen(1))
    a32, b32 = masked(ids.int(), generator=gen(1))
    assert torch.equal(a, a32.long()) and torch.equal(b, b32)
    out, labels = masked(torch.zeros(3, 0, dtype=torch.long), generator=gen(0))
    assert out.shape == labels.shape == (3, 0)


def words_of(row: list[int]) -> list[list[int]]:
    """Reference word split: positions of maskable runs, a continuation id joins the previous maskable token."""
    words: list[list[int]] = []
    prev_ok = False
    for t, tok in enumerate(row):
        ok = tok not in SPECIALS
        if ok and prev_ok and tok >= CONT_FROM:
            words[-1].append(t)
        elif ok:
            words.append([t])
        prev_ok = ok
    return words


def test_whole_word_masks_entire_words_at_rate():
    cont = torch.zeros(V, dtype=torch.bool)
    cont[CONT_FROM:] = True  # 40% of the body ids continue a word: mean word length ~1.7 tokens
    ids, att, _ = padded_batch(1024, 64, seed=13)
    ids[:, 1] = CONT_FROM + 1  # a continuation right after [CLS] starts a word
    out, labels = masked(ids, generator=gen(5), attention_mask=att, whole_word=True, continuation=cont)
    chosen = labels != IGNORE_INDEX
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(out[~chosen], ids[~chosen])
    n_tok = n_chosen = 0
    ch = chosen.tolist()
    for r, row in enumerate(ids.tolist()):
        words = words_of(row)
        picked = [w for w in words if ch[r][w[0]]]
        assert all(all(ch[r][t] for t in w) for w in picked)  # a chosen word is chosen entirely
        assert sum(ch[r]) == sum(len(w) for w in picked)  # and nothing outside chosen words
        assert len(picked) >= 1
        n_tok += sum(len(w) for w in words)
        n_chosen += sum(ch[r])
    assert abs(n_chosen / n_tok - 0.15) < 0.01
    N = int(chosen.sum())
    assert within(int((out[chosen] == MASK).sum()), N, 0.8)


def test_whole_word_with_one_token_words_equals_token_level():
    ids, att, _ = padded_batch(128, 64, seed=17)
    no_cont = torch.zeros(V, dtype=torch.bool)
    a = masked(ids, generator=gen(8), attention_mask=att)
    b = masked(ids, generator=gen(8), attention_mask=att, whole_word=True, continuation=no_cont)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("kw", [
    {"mask_id": V}, {"rate": 0.0}, {"rate": 1.5}, {"mask_frac": 0.9, "random_frac": 0.2},
    {"special_ids": [V + 3]}, {"whole_word": True}, {"whole_word": True, "continuation": torch.zeros(5)},
    {"vocab_size": 0}, {"special_ids": [0.5]},
])
def test_mask_bad_arguments(kw):
    ids, _, _ = padded_batch(4, 8)
    with pytest.raises(SslabError):
        masked(ids, **kw)


def test_mask_bad_inputs():
    with pytest.raises(SslabError):
        masked(torch.rand(2, 4))
    with pytest.raises(SslabError):
        masked(torch.tensor([[1, V + 5]]))
    with pytest.raises(SslabError):
        masked(torch.tensor([[1, 5]]), attention_mask=torch.ones(3))
    with pytest.raises(SslabError):
        mask_tokens(torch.tensor([[0, 1]]), mask_id=1, vocab_size=2, special_ids=[0])  # no random ids left


# ------------------------------------------------------------------------------------------------ NSP
def stream_blocks(B: int, T: int, seed: int = 0, doc_len=(5, 80)):
    """A token stream with unique ids (10 + stream position) cut in (B, T) blocks, and each token's document."""
    g = gen(seed)
    n = B * T
    lens = torch.randint(doc_len[0], doc_len[1] + 1, (n // doc_len[0] + 1,), generator=g)
    doc = torch.repeat_interleave(torch.arange(lens.numel()), lens)[:n]
    ids = torch.arange(n) + 10
    return ids.view(B, T), doc.view(B, T), doc


def split_pair(row_ids: list[int], row_types: list[int], row_att: list[int]):
    assert row_ids[0] == CLS
    end = sum(row_att) - 1
    seps = [i for i, t in enumerate(row_ids[: end + 1]) if t == SEP]
    assert len(seps) == 2 and seps[1] == end
    a = row_ids[1:seps[0]]
    b = row_ids[seps[0] + 1:end]
    assert row_types == [0] * (seps[0] + 1) + [1] * (len(b) + 1) + [0] * (len(row_ids) - end - 1)
    assert row_att == [1] * (end + 1) + [0] * (len(row_ids) - end - 1)
    assert all(t == PAD for t in row_ids[end + 1:])
    return a, b


@pytest.mark.parametrize("p_next,max_len", [(0.5, None), (0.3, 40)])
def test_next_sentence_pairs_structure_and_labels(p_next, max_len):
    B, T = 1024, 64
    ids, doc, flat_doc = stream_blocks(B, T, seed=1)
    out = next_sentence_pairs(ids, doc, cls_id=CLS, sep_id=SEP, pad_id=PAD, generator=gen(0), max_len=max_len,
                              p_next=p_next)
    L = max_len or T + 3
    assert out["input_ids"].shape == (B, L) and out["token_type_ids"].shape == (B, L)
    assert out["attention_mask"].shape == (B, L) and out["next_sentence_label"].shape == (B,)
    labels = out["next_sentence_label"]
    assert set(labels.unique().tolist()) <= {0, 1}
    assert within(int((labels == 0).sum()), B, p_next)
    rows = zip(out["input_ids"].tolist(), out["token_type_ids"].tolist(), out["attention_mask"].tolist(),
               labels.tolist())
    def run_starts_at(p):  # stream position p is the first token of its document's run in its row
        return p % T == 0 or flat_doc[p - 1] != flat_doc[p]

    for r, (row, types, att, label) in enumerate(rows):
        a, b = split_pair(row, types, att)
        pa = [t - 10 for t in a]  # stream positions
        pb = [t - 10 for t in b]
        assert len(a) >= 2 and len(b) >= 2 and len(a) + len(b) + 3 <= L
        assert pa == list(range(pa[0], pa[0] + len(pa))) and pb == list(range(pb[0], pb[0] + len(pb)))
        assert all(p // T == r for p in pa)  # A comes from this row's block
        assert len({int(flat_doc[p]) for p in pa}) == 1 and len({int(flat_doc[p]) for p in pb}) == 1
        if label == 0:  # IsNext: B is what follows A in the stream, same document
            assert pb[0] == pa[-1] + 1 and flat_doc[pb[0]] == flat_doc[pa[-1]]
        else:  # NotNext: B is from another row and another document
            assert flat_doc[pb[0]] != flat_doc[pa[0]] and pb[0] // T != r
        # the pair fills the budget unless B runs to the end of its document run and A back to its start
        if len(a) + len(b) < L - 3:
            assert run_starts_at(pa[0]) and (pb[-1] + 1 == B * T or run_starts_at(pb[-1] + 1))


def test_next_sentence_pairs_reproducible_and_fresh():
    ids, doc, _ = stream_blocks(64, 32, seed=2)
    kw = {"cls_id": CLS, "sep_id": SEP, "pad_id": PAD}
    g = gen(7)
    a = next_sentence_pairs(ids, doc, generator=g, **kw)
    b = next_sentence_pairs(ids, doc, generator=g, **kw)
    a2 = next_sentence_pairs(ids, doc, generator=gen(7), **kw)
    assert all(torch.equal(a[k], a2[k]) for k in a)
    assert not torch.equal(a["input_ids"], b["input_ids"])


def test_next_sentence_pairs_fallbacks():
    kw = {"cls_id": CLS, "sep_id": SEP, "pad_id": PAD}
    ids = torch.arange(10, 10 + 8 * 16).view(8, 16)
    # one document for the whole batch: no NotNext segment exists -> every pair is IsNext
    out = next_sentence_pairs(ids, torch.zeros_like(ids), generator=gen(0), p_next=0.0, **kw)
    assert (out["next_sentence_label"] == 0).all()
    # a single row: nowhere else to take B from
    out = next_sentence_pairs(ids[:1], torch.arange(16).view(1, 16) // 8, generator=gen(0), p_next=0.0, **kw)
    assert (out["next_sentence_label"] == 0).all()
    # documents of 2 tokens: min_len=2 impossible inside a row -> relaxed to one-token segments
    doc = torch.arange(8 * 16).view(8, 16) // 2
    out = next_sentence_pairs(ids, doc, generator=gen(0), **kw)
    for row, types, att, label in zip(out["input_ids"].tolist(), out["token_type_ids"].tolist(),
                                      out["attention_mask"].tolist(), out["next_sentence_label"].tolist()):
        a, b = split_pair(row, types, att)
        assert len(a) == 1 and len(b) in (1, 2)  # B: the rest of a 2-token document (NotNext) or 1 (IsNext)
        assert label == 1 or len(b) == 1


def test_next_sentence_pairs_errors():
    kw = {"cls_id": CLS, "sep_id": SEP, "pad_id": PAD}
    ids = torch.arange(10, 42).view(2, 16)
    with pytest.raises(SslabError):  # every token its own document
        next_sentence_pairs(ids, torch.arange(32).view(2, 16), **kw)
    with pytest.raises(SslabError):
        next_sentence_pairs(ids, torch.zeros_like(ids), max_len=6, **kw)
    with pytest.raises(SslabError):
        next_sentence_pairs(ids, torch.zeros(2, 15, dtype=torch.long), **kw)
    with pytest.raises(SslabError):
        next_sentence_pairs(ids.float(), torch.zeros_like(ids), **kw)
    with pytest.raises(SslabError):
        next_sentence_pairs(ids, torch.zeros_like(ids), p_next=2.0, **kw)


# ------------------------------------------------------------------------------------------------ causal, packing
def test_causal_shift():
    ids = torch.arange(20).view(2, 10)
    x, y = causal_shift(ids)
    assert x.shape == (2, 9) and y.shape == (2, 9)
    assert torch.equal(x, ids[:, :-1]) and torch.equal(y, ids[:, 1:]) and torch.equal(y[:, :-1], x[:, 1:])
    with pytest.raises(SslabError):
        causal_shift(torch.arange(5).view(5, 1))
    with pytest.raises(SslabError):
        causal_shift(torch.arange(5))


def test_pack_sequences():
    seqs = [[5, 6, 7], [8], [], [9, 10, 11, 12]]
    assert torch.equal(pack_sequences(seqs, 4), torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]]))
    got = pack_sequences(seqs, 3, sep_id=2)  # 5 6 7 2 8 2 2 9 10 11 12 -> 3 rows, 2 dropped
    assert torch.equal(got, torch.tensor([[5, 6, 7], [2, 8, 2], [2, 9, 10]]))
    assert got.dtype == torch.long
    assert pack_sequences([[1, 2]], 5).shape == (0, 5)
    assert pack_sequences([], 5).shape == (0, 5)
    assert torch.equal(pack_sequences([torch.tensor([1, 2]), (3, 4)], 2), torch.tensor([[1, 2], [3, 4]]))
    g = gen(0)
    seqs = [torch.randint(0, 50, (int(n),), generator=g).tolist() for n in torch.randint(0, 30, (200,), generator=g)]
    flat = [t for i, s in enumerate(seqs) for t in ([99] if i else []) + s]
    got = pack_sequences(seqs, 16, sep_id=99)
    assert got.shape == (len(flat) // 16, 16) and got.reshape(-1).tolist() == flat[: got.numel()]
    for bad in ({"block": 0}, {"block": 2.0}, {"sep_id": "x"}):
        with pytest.raises(SslabError):
            pack_sequences([[1, 2]], **{"block": 2, **bad})
    with pytest.raises(SslabError):
        pack_sequences([[1.5, 2.0]], 2)
    with pytest.raises(SslabError):
        pack_sequences("abc", 2)


# ------------------------------------------------------------------------------------------------ augment_tokens
def unique_batch(B: int, T: int, seed: int = 21):
    """Padded [CLS] ... [SEP] rows whose body ids are distinct within the row (so moves are traceable)."""
    ids, att, lengths = padded_batch(B, T, seed=seed, min_len=2)
    body = torch.argsort(torch.rand(B, T, generator=gen(seed + 1)), 1) + 10
    inner = (torch.arange(T) > 0) & (torch.arange(T) < (lengths - 1)[:, None])
    return torch.where(inner, body, ids), att, lengths


def aug(ids, att, **kw):
    args = {"special_ids": [CLS, SEP, PAD], "unk_id": UNK, "p_dropout": 0.0, "p_delete": 0.0, "p_swap": 0.0,
            "pad_id": PAD}
    args.update(kw)
    return augment_tokens(ids, att, **args)


def check_layout(out, att_out):
    """Right-padded with pad_id, attention 1..1 0..0, [CLS] first and [SEP] last attended token."""
    n = att_out.sum(1)
    assert torch.equal(att_out, (torch.arange(out.shape[1]) < n[:, None]).to(att_out.dtype))
    assert (out[att_out == 0] == PAD).all()
    assert (out[:, 0] == CLS).all() and (out[torch.arange(out.shape[0]), n - 1] == SEP).all()


def test_augment_dropout():
    ids, att, lengths = unique_batch(2048, 48)
    out, a = aug(ids, att, generator=gen(0), p_dropout=0.2)
    check_layout(out, a)
    assert torch.equal(a, att)
    changed = out != ids
    assert (out[changed] == UNK).all()
    editable = int((lengths - 2).sum())
    assert within(int(changed.sum()), editable, 0.2)


def test_augment_delete_keeps_order_specials_and_one_token():
    ids, att, lengths = unique_batch(2048, 48)
    out, a = aug(ids, att, generator=gen(1), p_delete=0.3)
    check_layout(out, a)
    editable = lengths - 2
    kept = a.sum(1) - 2
    assert ((kept >= 1) | (editable == 0)).all()  # never emptied
    # each editable token goes with p = 0.3, except that a row never loses all: E[deleted] = n p - p^n
    ed = editable[editable > 0].double()
    expected = float((ed * 0.3 - 0.3 ** ed).sum())
    assert abs(int((editable - kept).sum()) - expected) <= 4.5 * math.sqrt(expected * 0.7)
    for r in range(0, 2048, 7):  # order preserved: the output is a subsequence of the input
        src = ids[r, : lengths[r]].tolist()
        dst = out[r, : a[r].sum()].tolist()
        it = iter(src)
        assert all(t in it for t in dst)
    # everything deleted but the rescue: exactly one body token per row
    out, a = aug(ids, att, generator=gen(1), p_delete=1.0)
    check_layout(out, a)
    assert torch.equal(a.sum(1), torch.where(editable > 0, 3, 2))


def test_augment_swap_rate_and_adjacency():
    p = 0.2
    ids, att, lengths = unique_batch(2048, 48)
    out, a = aug(ids, att, generator=gen(2), p_swap=p)
    assert torch.equal(a, att)
    assert torch.equal(out.sort(1).values, ids.sort(1).values)  # a permutation of each row
    left = (out[:, :-1] == ids[:, 1:]) & (out[:, 1:] == ids[:, :-1]) & (ids[:, :-1] != ids[:, 1:])
    moved = out != ids
    assert torch.equal(moved, torch.nn.functional.pad(left, (0, 1)) | torch.nn.functional.pad(left, (1, 0)))
    assert not (left[:, 1:] & left[:, :-1]).any()  # swaps never overlap
    pairs = (lengths - 3).clamp(min=0)  # adjacent pairs inside [CLS] ... [SEP]
    expected = float(((pairs > 0).float() * p + (pairs - 1).clamp(min=0).float() * p * (1 - p)).sum())
    n = int(left.sum())
    assert abs(n - expected) <= 4.5 * math.sqrt(expected)
    assert not (moved & torch.isin(ids, torch.tensor([CLS, SEP, PAD]))).any()  # specials never move


def test_augment_all_ops_reproducible():
    ids, att, _lengths = unique_batch(512, 40)
    kw = {"p_dropout": 0.1, "p_delete": 0.1, "p_swap": 0.1}
    g = gen(3)
    a = aug(ids, att, generator=g, **kw)
    b = aug(ids, att, generator=g, **kw)
    a2 = aug(ids, att, generator=gen(3), **kw)
    assert torch.equal(a[0], a2[0]) and torch.equal(a[1], a2[1])
    assert not torch.equal(a[0], b[0])
    check_layout(*a)
    specials = torch.isin(a[0], torch.tensor([CLS, SEP])).sum(1)
    assert (specials == 2).all()
    assert (a[1].sum(1) <= att.sum(1)).all()
    # no-op settings return the input unchanged
    same = aug(ids, att, generator=gen(3))
    assert torch.equal(same[0], ids) and torch.equal(same[1], att)


def test_augment_left_padding_is_repacked():
    ids = torch.tensor([[PAD, PAD, CLS, 10, 11, SEP]])
    att = torch.tensor([[0, 0, 1, 1, 1, 1]])
    out, a = aug(ids, att, generator=gen(0))
    assert out.tolist() == [[CLS, 10, 11, SEP, PAD, PAD]] and a.tolist() == [[1, 1, 1, 1, 0, 0]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_match_cpu_with_a_cpu_generator():
    """Draws come from the (CPU) generator, so CUDA inputs give exactly the CPU results, on the CUDA device."""
    dev = torch.device("cuda")
    ids, att, _ = padded_batch(256, 64, seed=23)
    cont = torch.zeros(V, dtype=torch.bool)
    cont[CONT_FROM:] = True
    for ww in (False, True):
        cpu = masked(ids, generator=gen(0), attention_mask=att, whole_word=ww, continuation=cont)
        gpu = masked(ids.to(dev), generator=gen(0), attention_mask=att.to(dev), whole_word=ww,
                     continuation=cont.to(dev))
        assert all(g.device.type == "cuda" and torch.equal(c, g.cpu()) for c, g in zip(cpu, gpu))
    sids, doc, _ = stream_blocks(256, 64)
    kw = {"cls_id": CLS, "sep_id": SEP, "pad_id": PAD}
    cpu = next_sentence_pairs(sids, doc, generator=gen(0), **kw)
    gpu = next_sentence_pairs(sids.to(dev), doc.to(dev), generator=gen(0), **kw)
    assert all(gpu[k].device.type == "cuda" and torch.equal(cpu[k], gpu[k].cpu()) for k in cpu)
    uids, uatt, _ = unique_batch(256, 48)
    kw = {"p_dropout": 0.1, "p_delete": 0.1, "p_swap": 0.1}
    cpu = aug(uids, uatt, generator=gen(0), **kw)
    gpu = aug(uids.to(dev), uatt.to(dev), generator=gen(0), **kw)
    assert all(g.device.type == "cuda" and torch.equal(c, g.cpu()) for c, g in zip(cpu, gpu))
    # a CUDA generator works too (different stream, same properties)
    _out, labels = masked(ids.to(dev), generator=torch.Generator(dev).manual_seed(0), attention_mask=att.to(dev))
    chosen = labels != IGNORE_INDEX
    assert chosen.any() and torch.equal(labels[chosen], ids.to(dev)[chosen])


def test_augment_errors():
    ids, att, _ = unique_batch(4, 8)
    with pytest.raises(SslabError):
        augment_tokens(ids, att, p_dropout=0.1)  # no unk_id
    with pytest.raises(SslabError):
        aug(ids, att[:, :4])
    with pytest.raises(SslabError):
        aug(ids, att, p_delete=-0.1)
    with pytest.raises(SslabError):
        aug(ids.float(), att)
