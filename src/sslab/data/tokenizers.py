"""Tokenizers trained locally: HF ``tokenizers`` models wrapped as ``transformers`` ``PreTrainedTokenizerFast``
(save with ``save_pretrained``; reload with ``PreTrainedTokenizerFast`` or ``AutoTokenizer.from_pretrained(folder)``),
and the table of which tokens continue a word (whole-word masking)."""
from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import numpy as np
import torch

from sslab.errors import SslabError


_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _special_list(specials: dict[str, str]) -> list[str]:
    for k, v in specials.items():
        if k not in _SPECIAL_KEYS:
            raise SslabError(f"unknown special token kind {k!r} (expected: {', '.join(_SPECIAL_KEYS)})")
        if not isinstance(v, str) or not v:
            raise SslabError(f"special token {k} must be a non-empty string, got {v!r}")
    return list(dict.fromkeys(specials.values()))


def _counting(texts: Iterable[str], seen: list[int]) -> Iterator[str]:
    for t in texts:
        if not isinstance(t, str):
            raise SslabError(f"tokenizer training texts must be strings, got {type(t).__name__}")
        seen[0] += len(t.strip()) > 0
        yield t


# Words for word vectors: runs of word characters, a placeholder such as wikitext's "<unk>" whole, and every other
# non-space character on its own (punctuation never sticks to a word).
WORD_PATTERN = r"<\w+>|\w+|[^\w\s]"


def train_tokenizer(texts: Iterable[str], kind: Literal["wordpiece", "bpe", "char", "word", "unigram"],
                    vocab_size: int, specials: dict[str, str], lowercase: bool = False, min_frequency: int = 1,
                    extra_specials: Sequence[str] = ()):
    """Train a tokenizer on ``texts`` -> ``transformers.PreTrainedTokenizerFast``.

    ``specials`` maps HF attribute names (``pad_token``, ``unk_token``, ``cls_token``, ``sep_token``,
    ``mask_token``, ``bos_token``, ``eos_token``) to strings; the distinct strings get ids ``0..k-1`` in the
    dict's order. Kinds:

    * ``wordpiece``: BERT normalizer (``lowercase`` also strips accents, like uncased BERT), BertPreTokenizer,
      WordPiece with ``##`` continuations; needs ``unk_token``. The alphabet is limited to a quarter of the budget
      (``limit_alphabet``; rarer characters become ``[UNK]``).
    * ``bpe``: byte-level BPE like GPT-2/RoBERTa (ByteLevel pre-tokenizer without prefix space, ByteLevel
      decoder; lossless, never unknown); ``vocab_size`` must be >= 256 + number of specials.
    * ``char``: one token per character (WordLevel over the characters, a per-character split, a fusing
      decoder): ``decode(encode(text)) == text`` for seen characters; the ``vocab_size - k`` most frequent
      characters are kept (sorted by code point), others map to ``unk_token``, which is required.
    * ``unigram``: SentencePiece-style (as T5's): a Unigram language model over pieces, NFKC normalisation,
      ``▁`` marking word starts (Metaspace), lossless for seen characters; needs ``unk_token``.
    * ``word``: one token per word (WordLevel; words are ``WORD_PATTERN`` matches, optionally lower-cased): the
      ``vocab_size - k`` most frequent words seen at least ``min_frequency`` times (word2vec's min_count);
      others map to ``unk_token``, which is required. Decoding joins words with spaces.

    With both ``cls_token`` and ``sep_token`` (wordpiece/bpe), a TemplateProcessing post-processor adds
    ``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]`` with token type ids 0/1, as BERT does (RoBERTa's ``</s></s>``
    pair separator is not reproduced). Otherwise nothing is added.

    ``extra_specials`` are more special tokens (T5's sentinels ``<extra_id_0>``, ...), after the named ones, in
    ``additional_special_tokens``.

    ``vocab_size`` is an upper bound: the trained vocabulary (``len(tokenizer)``, equal to
    ``tokenizer.vocab_size``) is smaller when the corpus cannot fill it — size models from ``len(tokenizer)``.
    A budget too small for the required alphabet raises SslabError.
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    if kind not in ("wordpiece", "bpe", "char", "word", "unigram"):
        raise SslabError(f"unknown tokenizer kind {kind!r} (expected wordpiece, bpe, char, word or unigram)")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, (int, np.integer)) or min_frequency < 1:
        raise SslabError(f"min_count must be a positive integer, got {min_frequency!r}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
        raise SslabError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    vocab_size = int(vocab_size)
    special_list = _special_list(specials) + [t for t in extra_specials if t not in specials.values()]
    k = len(special_list)
    unk = specials.get("unk_token")
    if kind in ("wordpiece", "char", "word", "unigram") and unk is None:
        raise SslabError(f"a {kind} tokenizer needs an unk_token in specials")
    seen = [0]
    stream = _counting(texts, seen)

    if kind == "char":
        counts: Counter[str] = Counter()
        for t in stream:
            counts.update(t.lower() if lowercase else t)
        for s in special_list:
            counts.pop(s, None)
        if vocab_size <= k:
            raise SslabError(f"vocab_size {vocab_size} leaves no room for characters after {k} special tokens")
        kept = sorted(c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:vocab_size - k])
        vocab = {s: i for i, s in enumerate(special_list)}
        for c in kept:
            vocab.setdefault(c, len(vocab))
        tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
        # one piece per character, line breaks included ("[\s\S]": "." would skip "\n")
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tok.decoder = decoders.Fuse()
        if lowercase:
            tok.normalizer = normalizers.Lowercase()
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.Sequence([normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else []))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        tok.train_from_iterator(stream, trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=special_list, unk_token=unk, show_progress=False))
    elif kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token=unk))
        if lowercase:
            tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                      pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="isolated")])
        tok.train_from_iterator(stream, trainers.WordLevelTrainer(
            vocab_size=vocab_size, min_frequency=int(min_frequency), special_tokens=special_list,
            show_progress=False))
        if tok.get_vocab_size() <= k:
            raise SslabError(f"no word occurs at least min_count={min_frequency} times in the corpus; "
                             "add text or lower min_count")
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=unk, continuing_subword_prefix="##"))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        limit = max(1, min(1000, (vocab_size - k) // 4))
        tok.train_from_iterator(stream, trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=special_list, continuing_subword_prefix="##",
            limit_alphabet=limit, show_progress=False))
    else:
        if vocab_size < 256 + k:
            raise SslabError(f"a byte-level bpe tokenizer needs vocab_size >= {256 + k} "
                             f"(256 bytes + {k} special tokens), got {vocab_size}")
        tok = Tokenizer(models.BPE())
        if lowercase:
            tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(stream, trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=special_list, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False))
    if seen[0] == 0:
        raise SslabError("no text to train the tokenizer on (all texts empty)")
    if tok.get_vocab_size() > vocab_size:
        raise SslabError(f"vocab_size {vocab_size} is too small for this corpus: the {kind} alphabet alone needs "
                         f"{tok.get_vocab_size()} tokens")
    tok.add_special_tokens(special_list)
    cls, sep = specials.get("cls_token"), specials.get("sep_token")
    with_pairs = kind != "char" and cls is not None and sep is not None
    if with_pairs:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    names = ["input_ids", "token_type_ids", "attention_mask"] if with_pairs else ["input_ids", "attention_mask"]
    extra = [t for t in extra_specials if t not in specials.values()]
    return PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False, padding_side="right",
                                   model_input_names=names, **specials,
                                   **({"additional_special_tokens": extra} if extra else {}))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by the ByteLevel pre-tokenizer."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _starts_word_char(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] in "PS"


def continuation_table(tokenizer) -> torch.Tensor:
    """``(len(tokenizer),)`` bool: True for tokens that continue the word of the token before (whole-word masking:
    a word = a token with False followed by its run of True tokens).

    * wordpiece: tokens starting with the ``##`` prefix.
    * byte-level bpe: tokens whose first byte is a letter, digit or other non-space, non-punctuation character
      (no ``Ġ`` space), or a UTF-8 continuation byte; tokens starting with a space/whitespace byte or
      punctuation/symbol are word starts (like BERT, which splits punctuation off).
    * char: characters other than whitespace and punctuation/symbols, so a word is a space (or punctuation)
      followed by its letters — the same grouping as byte-level BPE's ``Ġword``.

    Special tokens are always False. Per-token, so the first token of a sequence (or after a special token) must
    be treated as a word start by the caller even when its entry is True.
    """
    model = tokenizer.backend_tokenizer.model
    kind = type(model).__name__
    n = len(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(n)))
    special = set(tokenizer.all_special_ids)
    out = [False] * n
    if kind == "WordPiece":
        prefix = model.continuing_subword_prefix
        for i, t in enumerate(tokens):
            out[i] = i not in special and t is not None and t.startswith(prefix) and len(t) > len(prefix)
        return torch.tensor(out, dtype=torch.bool)
    byte_of = {c: b for b, c in _bytes_to_unicode().items()} if kind == "BPE" else None
    for i, t in enumerate(tokens):
        if i in special or not t:
            continue
        if byte_of is not None and all(c in byte_of for c in t):
            raw = bytes(byte_of[c] for c in t)
            if 0x80 <= raw[0] < 0xC0:  # inside a multi-byte character
                out[i] = True
                continue
            ch = raw.decode("utf-8", errors="ignore")[:1]
            out[i] = not ch or not _starts_word_char(ch)
        else:
            out[i] = not _starts_word_char(t[0])
    return torch.tensor(out, dtype=torch.bool)
