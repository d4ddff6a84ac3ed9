"""Text networks: BERT, RoBERTa and GPT-2 built from Hugging Face configs and trained from scratch.

Nothing is loaded from the hub: `build_text_model` makes a randomly initialised `transformers` model of a named
size (or a dict of sizes), so `save_pretrained` / `from_pretrained(local_dir)` round-trip with safetensors and
any HF tooling works on the result. `TextEncoder` turns a trunk (`text_base(model)`) into a fixed-size
representation (B, dim) for transfer evaluation.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from sslab.errors import SslabError

# Named sizes: Google's BERT miniatures (Turc et al. 2019: BERT-Tiny, -Mini, -Small). Measured on this machine
# (2 shared CPU cores, fp32, torch threads = 2, torch 2.14, transformers 5.24), vocabulary 8192, batches of
# 32 x 128 tokens, forward + backward + AdamW of BertForPreTraining (MLM on 15% of positions + next-sentence),
# several runs under other jobs' load (1-3), so ranges (at load ~5 with spin-waiting OpenMP threads everything
# ran 2-3x slower still; those runs are left out):
#   size   layers heads hidden ff    params(V=8192)  tokens/s, HF loss        tokens/s, MLM logits only at
#                                                    (logits at all 128 pos.)  the masked positions
#   tiny   2      2     128    512    1.5 M           3.0-4.6 k                14.5-15.5 k
#   mini   4      4     256    1024   5.4 M           1.3-2.0 k                1.7-3.3 k
#   small  4      8     512    2048   17.4 M          0.4-0.6 k                0.4-0.5 k
# RoBERTa (RobertaForMaskedLM) 1.3-3.3 k (tiny), 0.7-1.2 k (mini), 0.4-0.7 k (small); GPT-2 mini 1.2-1.6 k.
# With a vocabulary of 8192 the full-sequence MLM decoder dominates small trunks: computing the MLM logits only
# at masked positions (model.cls.predictions(h[masked]) / model.lm_head(h[masked])) is ~5x faster for tiny.
# An SST-2 epoch (~200k real tokens, if sentences are packed or bucketed rather than padded to 128) therefore
# takes ~15-65 s with tiny, ~60-150 s with mini and ~6-8 min with small: a 5-8 minute pretraining budget sees
# several epochs with "mini" (the default: 2-5 with the HF loss, 3-8 with masked-only logits), 5-30 with "tiny"
# (also for tests and smoke runs) and about one with "small".
# Attention: sdpa vs eager showed no consistent difference at length 128 (tiny 4.3 k vs 3.0 k tokens/s in one run,
# 3.0 k vs 3.9 k in another; mini likewise), within this machine's noise; sdpa (transformers' default) is kept.
TEXT_SIZES: dict[str, dict] = {
    "tiny": {"n_layers": 2, "n_heads": 2, "hidden": 128, "intermediate": 512},
    # nanoGPT's CPU Shakespeare model (4 layers, 4 heads, width 128): the GPT benchmark's size
    "nano": {"n_layers": 4, "n_heads": 4, "hidden": 128, "intermediate": 512},
    "mini": {"n_layers": 4, "n_heads": 4, "hidden": 256, "intermediate": 1024},
    "small": {"n_layers": 4, "n_heads": 8, "hidden": 512, "intermediate": 2048},
}
DEFAULT_TEXT_SIZE = "mini"
_SIZE_KEYS = ("n_layers", "n_heads", "hidden", "intermediate")


def text_size(size: str | dict) -> dict:
    """The size dict for a name in TEXT_SIZES, or a validated copy of a dict with the four size keys."""
    if isinstance(size, str):
        if size not in TEXT_SIZES:
            raise SslabError(f"unknown text model size {size!r}; choose one of: {', '.join(TEXT_SIZES)}")
        return dict(TEXT_SIZES[size])
    if not isinstance(size, dict):
        raise SslabError(f"text model size must be a name ({', '.join(TEXT_SIZES)}) or a dict, got {size!r}")
    missing = [k for k in _SIZE_KEYS if k not in size]
    extra = [k for k in size if k not in _SIZE_KEYS]
    if missing or extra:
        raise SslabError(f"text model size dict needs exactly the keys {', '.join(_SIZE_KEYS)}"
                         f" (missing: {', '.join(missing) or '-'}; unknown: {', '.join(map(str, extra)) or '-'})")
    for k in _SIZE_KEYS:
        if not isinstance(size[k], int) or isinstance(size[k], bool) or size[k] < 1:
            raise SslabError(f"text model size {k} must be a positive integer, got {size[k]!r}")
    if size["hidden"] % size["n_heads"]:
        raise SslabError(f"text model hidden size {size['hidden']} is not divisible by n_heads {size['n_heads']}")
    return dict(size)


def _t5(tf, s: dict, vocab_size: int, max_len: int, pad_id: int, bos_id, eos_id, dropout: float):
    """T5ForConditionalGeneration: as many decoder as encoder layers; relative position buckets, so `max_len`
    bounds nothing; the decoder starts from pad_id."""
    return tf.T5Config, tf.T5ForConditionalGeneration, {
        "vocab_size": vocab_size, "d_model": s["hidden"], "d_kv": s["hidden"] // s["n_heads"],
        "d_ff": s["intermediate"], "num_layers": s["n_layers"], "num_decoder_layers": s["n_layers"],
        "num_heads": s["n_heads"], "dropout_rate": dropout, "pad_token_id": pad_id, "eos_token_id": eos_id,
        "decoder_start_token_id": pad_id}


def _gpt2(tf, s: dict, vocab_size: int, max_len: int, pad_id: int, bos_id, eos_id, dropout: float):
    """GPT2LMHeadModel."""
    return tf.GPT2Config, tf.GPT2LMHeadModel, {
        "vocab_size": vocab_size, "n_positions": max_len, "n_embd": s["hidden"], "n_layer": s["n_layers"],
        "n_head": s["n_heads"], "n_inner": s["intermediate"], "resid_pdrop": dropout, "embd_pdrop": dropout,
        "attn_pdrop": dropout, "pad_token_id": pad_id, "bos_token_id": bos_id, "eos_token_id": eos_id,
        # GPT-2's tanh-approximated GELU as PyTorch's one fused op rather than transformers' "gelu_new" (the same
        # function written as five elementwise ops, forward and backward): the character-level GPT's step
        # (4 x 128, batch 8 x 64, 2 threads) took 74 ms against 83 ms (medians of 4 x 40 steps)
        "activation_function": "gelu_pytorch_tanh"}


def _bert_like(config_cls: str, model_cls: str, roberta: bool):
    def fields(tf, s: dict, vocab_size: int, max_len: int, pad_id: int, bos_id, eos_id, dropout: float):
        return getattr(tf, config_cls), getattr(tf, model_cls), {
            "vocab_size": vocab_size, "hidden_size": s["hidden"], "num_hidden_layers": s["n_layers"],
            "num_attention_heads": s["n_heads"], "intermediate_size": s["intermediate"],
            "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
            # RoBERTa numbers positions from pad_id + 1 (as fairseq did)
            "max_position_embeddings": max_len + pad_id + 1 if roberta else max_len,
            "type_vocab_size": 1 if roberta else 2, "pad_token_id": pad_id, "bos_token_id": bos_id,
            "eos_token_id": eos_id}
    fields.__doc__ = f"{model_cls}."
    return fields


# HF architectures by name: fn(transformers, size dict, vocab_size, max_len, pad_id, bos_id, eos_id, dropout) ->
# (config class, model class, config fields). A text method names its architecture (`arch`); a new one is an entry
# here (register_text_arch) or the method's own `build_net`, never a branch in the code that builds it.
TEXT_ARCHS = {"bert": _bert_like("BertConfig", "BertForPreTraining", roberta=False),
              "roberta": _bert_like("RobertaConfig", "RobertaForMaskedLM", roberta=True),
              "gpt2": _gpt2, "t5": _t5}


def register_text_arch(name: str, fields) -> None:
    TEXT_ARCHS[name] = fields


def build_text_model(arch: str, size: str | dict, vocab_size: int, max_len: int, pad_id: int,
                     bos_id: int | None = None, eos_id: int | None = None, dropout: float = 0.0, **overrides):
    """A randomly initialised HF model of an architecture in TEXT_ARCHS: bert -> BertForPreTraining (masked-LM +
    next-sentence heads), roberta -> RobertaForMaskedLM, gpt2 -> GPT2LMHeadModel, t5 ->
    T5ForConditionalGeneration.

    `max_len` is the longest input sequence. `overrides` are extra config fields (e.g. layer_norm_eps,
    initializer_range, attn_implementation); an unknown field is an error. RoBERTa numbers positions from
    pad_id + 1 (as fairseq did), so its position table has max_len + pad_id + 1 rows: keep pad_id small.
    """
    import transformers as tf

    if arch not in TEXT_ARCHS:
        raise SslabError(f"unknown text architecture {arch!r}; choose one of: {', '.join(TEXT_ARCHS)}")
    s = text_size(size)
    for name, v in (("vocab_size", vocab_size), ("max_len", max_len)):
        if not isinstance(v, int) or v < 1:
            raise SslabError(f"{name} must be a positive integer, got {v!r}")
    for name, v in (("pad_id", pad_id), ("bos_id", bos_id), ("eos_id", eos_id)):
        if v is not None and not (isinstance(v, int) and 0 <= v < vocab_size):
            raise SslabError(f"{name} must be a token id in [0, {vocab_size}), got {v!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise SslabError(f"dropout must be in [0, 1), got {dropout!r}")
    # sdpa is transformers' default; measured no slower than eager here (see the comment on TEXT_SIZES).
    overrides.setdefault("attn_implementation", "sdpa")
    cls, model_cls, fields = TEXT_ARCHS[arch](tf, s, vocab_size, max_len, pad_id, bos_id, eos_id, dropout)
    known = set(cls().to_dict()) | {"attn_implementation"}
    unknown = sorted(k for k in overrides if k not in known)
    if unknown:
        raise SslabError(f"unknown {arch} config field(s): {', '.join(unknown)}")
    fields.update(overrides)
    try:
        config = cls(**fields)
        return model_cls(config)
    except (ValueError, TypeError) as err:  # e.g. a bad attn_implementation name
        raise SslabError(f"cannot build {arch} model: {' '.join(str(err).split())}") from None


def load_hf_encoder(folder) -> nn.Module:
    """A pretrained Hugging Face text encoder (its base model, without task heads) from a local folder holding
    config.json and safetensors weights (`save_pretrained`'s layout). Nothing is downloaded and nothing pickled is
    read: a folder with only pytorch_model.bin is refused."""
    from pathlib import Path

    model = _from_folder(folder, "AutoModel")
    if getattr(model.config, "is_encoder_decoder", False):
        raise SslabError(f"{folder} holds an encoder-decoder model; --from takes a text encoder")
    return text_base(model)


def load_hf_config(folder):
    """The config of a local HF model folder (one-line errors for a folder that is not one)."""
    return _from_folder(folder, "AutoConfig")


def load_hf_pretraining(folder, arch: str, auto_class: str, config_only: bool = False, random_init: bool = False):
    """A local HF model folder loaded with a method's pretraining heads (`auto_class`, e.g. AutoModelForMaskedLM;
    heads the folder lacks start from random, as in continued pretraining of a sentence encoder), for a method
    of architecture `arch` (the folder's model_type must be it). `config_only`: just its config; `random_init`:
    its architecture with fresh weights."""
    import transformers as tf

    config = load_hf_config(folder)
    if getattr(config, "model_type", None) != arch:
        raise SslabError(f"{folder} holds a {getattr(config, 'model_type', 'unknown')} model; this method continues "
                         f"{arch} models")
    if config_only:
        return config
    return getattr(tf, auto_class).from_config(config) if random_init else _from_folder(folder, auto_class)


def _from_folder(folder, auto_class: str):
    """`transformers.<auto_class>.from_pretrained` on a local folder: config.json and safetensors weights required,
    nothing downloaded, nothing pickled read; every failure is one SslabError line."""
    from pathlib import Path

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise SslabError(f"pretrained model folder not found: {folder}")
    if not (folder / "config.json").is_file():
        raise SslabError(f"{folder} is not a Hugging Face model folder (no config.json)")
    if auto_class != "AutoConfig" and not any(folder.glob("*.safetensors")):
        raise SslabError(f"{folder} has no .safetensors weights (pickled pytorch_model.bin files are not loaded)")
    import transformers as tf
    from safetensors import SafetensorError

    tf.utils.logging.disable_progress_bar()  # no "Loading weights" bar in a study's log
    kw = {} if auto_class == "AutoConfig" else {"use_safetensors": True}
    level = tf.utils.logging.get_verbosity()
    tf.utils.logging.set_verbosity_error()  # heads new to a sentence encoder are expected: no load-report wall
    try:
        return getattr(tf, auto_class).from_pretrained(str(folder), local_files_only=True, **kw)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as err:
        first = " ".join(str(err).split())[:300]
        raise SslabError(f"cannot load the pretrained model in {folder}: {first}") from None
    finally:
        tf.utils.logging.set_verbosity(level)


def text_base(model) -> nn.Module:
    """The trunk without LM heads: model.bert / model.roberta / model.transformer (a base model is returned as is);
    for an encoder-decoder (T5) its encoder."""
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return model.get_encoder()
    base = getattr(model, "base_model", None)
    if not isinstance(base, nn.Module):
        raise SslabError(f"not a transformers model: {type(model).__name__}")
    return base


class TextEncoder(nn.Module):
    """Representation for transfer: trunk + pooling. forward(batch with input_ids, attention_mask) -> (B, dim).

    pooling: "mean" = mean of the hidden states of non-padding tokens; "cls" = the first token's state (BERT's
    [CLS], RoBERTa's <s>); "last" = the state of the last non-padding token (GPT with right padding).
    """

    POOLINGS = ("mean", "cls", "last")

    def __init__(self, trunk: nn.Module, pooling: Literal["mean", "cls", "last"], dim: int):
        super().__init__()
        if pooling not in self.POOLINGS:
            raise SslabError(f"unknown text pooling {pooling!r}; choose one of: {', '.join(self.POOLINGS)}")
        hidden = getattr(getattr(trunk, "config", None), "hidden_size", dim)
        if dim != hidden:
            raise SslabError(f"TextEncoder dim {dim} does not match the trunk's hidden size {hidden}")
        self.trunk = trunk
        self.pooling = pooling
        self.dim = dim

    def forward(self, batch: dict) -> torch.Tensor:
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(ids)
        h = self.trunk(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, dim)
        return pool(h, mask, self.pooling)


class Seq2SeqEncoder(TextEncoder):
    """An encoder-decoder (T5) for transfer: forward() pools its encoder's states like `TextEncoder` (the
    representation the frozen protocols and the classification head use), and `model` is the whole network, which
    text-to-text transfer (`LabelScorer`) fine-tunes."""

    def __init__(self, model: nn.Module, pooling: Literal["mean", "cls", "last"], dim: int):
        super().__init__(model.get_encoder(), pooling, dim)
        self.model = model


class LabelScorer(nn.Module):
    """Text-to-text classification (T5's way of casting every task): the class is the label written as words, and
    forward(batch) -> (B, C) gives the log-likelihood the decoder assigns to each class's words (with the closing
    end-of-sequence token) given the text; argmax ranks the label words (the encoder runs once per text, the
    decoder once per text and class). `loss(batch, y)` trains as T5 fine-tunes: the decoder writes the right
    label's words (teacher forcing, mean cross-entropy per label token), one decoder pass per text. Ranking by the
    summed log-likelihood favours short label words a little; fine-tuning makes the right one far likelier."""

    def __init__(self, encoder: Seq2SeqEncoder, label_ids: list[list[int]]):
        super().__init__()
        if not isinstance(encoder, Seq2SeqEncoder):
            raise SslabError("text-to-text transfer needs an encoder-decoder model (t5)")
        if not label_ids or any(len(ids) == 0 for ids in label_ids):
            raise SslabError("text-to-text transfer needs a non-empty token sequence for every class")
        if len({tuple(ids) for ids in label_ids}) < len(label_ids):
            raise SslabError("two classes have the same label words for the tokenizer; text-to-text cannot tell "
                             "them apart")
        self.model, self.pooling, self.dim = encoder.model, encoder.pooling, encoder.dim
        width = max(map(len, label_ids))
        labels = torch.full((len(label_ids), width), -100, dtype=torch.long)
        for c, ids in enumerate(label_ids):
            labels[c, : len(ids)] = torch.as_tensor(ids)
        self.register_buffer("labels", labels, persistent=False)

    def loss(self, batch: dict, y: torch.Tensor) -> torch.Tensor:
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        return self.model(input_ids=ids, attention_mask=torch.ones_like(ids) if mask is None else mask,
                          labels=self.labels[y]).loss  # HF's mean cross-entropy over the label tokens

    def forward(self, batch: dict, chunk: int = 2048) -> torch.Tensor:
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        mask = torch.ones_like(ids) if mask is None else mask
        h = self.model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        b, c = ids.shape[0], self.labels.shape[0]
        labels = self.labels.repeat(b, 1)  # (B*C, L): text i with class j at row i*C + j
        h, mask = h.repeat_interleave(c, 0), mask.repeat_interleave(c, 0)
        scores = []
        for i in range(0, len(labels), chunk):  # (rows, L, vocab) logits a chunk at a time
            lab = labels[i : i + chunk]
            logits = self.model(encoder_outputs=(h[i : i + chunk],), attention_mask=mask[i : i + chunk],
                                decoder_input_ids=self.model._shift_right(lab)).logits
            nll = nn.functional.cross_entropy(logits.transpose(1, 2).float(), lab, ignore_index=-100,
                                              reduction="none")
            scores.append(-nll.sum(1))
        return torch.cat(scores).view(b, c)


def pool(h: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool hidden states h (B, T, D) over the tokens where mask (B, T) is 1."""
    if pooling == "cls":
        return h[:, 0]
    m = mask.to(h.dtype)
    if pooling == "mean":
        return (h * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True).clamp(min=1.0)
    if pooling == "last":
        # index of the last position whose mask is 1 (right padding: length - 1); position 0 for an all-pad row
        pos = torch.arange(h.shape[1], device=h.device)
        last = (mask.long() * (pos + 1)).argmax(1)
        return h[torch.arange(h.shape[0], device=h.device), last]
    raise SslabError(f"unknown text pooling {pooling!r}; choose one of: {', '.join(TextEncoder.POOLINGS)}")


class WordVectors(nn.Module):
    """word2vec / GloVe tables: a vector per word (`words`) and per context word (`contexts`), with a bias each for
    GloVe. `vectors()` are the word vectors sslab exports and transfers: the word table (word2vec, as word2vec.c
    and gensim publish) or word + context (GloVe, as its authors publish)."""

    def __init__(self, vocab_size: int, dim: int, biases: bool = False, sum_contexts: bool = False,
                 zero_contexts: bool = True):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise SslabError(f"word vector size must be a positive integer, got {dim!r}")
        self.dim, self.sum_contexts = dim, sum_contexts
        self.words = nn.Embedding(vocab_size, dim)
        self.contexts = nn.Embedding(vocab_size, dim)
        # word2vec.c: words uniform in +-0.5/dim, contexts zero; GloVe: both uniform, biases zero
        nn.init.uniform_(self.words.weight, -0.5 / dim, 0.5 / dim)
        if zero_contexts:
            nn.init.zeros_(self.contexts.weight)
        else:
            nn.init.uniform_(self.contexts.weight, -0.5 / dim, 0.5 / dim)
        if biases:
            self.word_bias = nn.Embedding(vocab_size, 1)
            self.context_bias = nn.Embedding(vocab_size, 1)
            nn.init.zeros_(self.word_bias.weight)
            nn.init.zeros_(self.context_bias.weight)

    def vectors(self) -> torch.Tensor:
        return self.words.weight + self.contexts.weight if self.sum_contexts else self.words.weight


class BagOfVectors(nn.Module):
    """A text as the average of its word vectors: forward(batch with input_ids, attention_mask) -> (B, dim).
    Tokens in `skip_ids` (unknown, padding) count for nothing; a text with no known word gives zeros."""

    def __init__(self, net: WordVectors, skip_ids):
        super().__init__()
        self.net, self.dim = net, net.dim
        self.register_buffer("skip_ids", torch.as_tensor(list(skip_ids), dtype=torch.long), persistent=False)

    def forward(self, batch: dict) -> torch.Tensor:
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        m = (torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()) & ~torch.isin(ids, self.skip_ids)
        v = nn.functional.embedding(ids, self.net.vectors())
        m = m.unsqueeze(-1).to(v.dtype)
        return (v * m).sum(1) / m.sum(1).clamp(min=1.0)


def write_word2vec_format(path, words: list[str], vectors) -> "Path":
    """The word2vec text format ("<count> <dim>", then "<word> <v1> ... <vdim>" per line), written atomically:
    what word2vec.c writes with -binary 0 and `gensim.models.KeyedVectors.load_word2vec_format(path)` reads."""
    from pathlib import Path

    import numpy as np

    from sslab.atomic import atomic_write

    vectors = np.asarray(vectors, dtype=np.float32)
    lines = [f"{len(words)} {vectors.shape[1]}"]
    lines += [w + " " + " ".join(f"{x:.6g}" for x in row) for w, row in zip(words, vectors.tolist())]
    atomic_write(Path(path), ("\n".join(lines) + "\n").encode("utf-8"))
    return Path(path)


def read_word2vec_format(path) -> tuple[list[str], "np.ndarray"]:
    """Words and vectors of a word2vec text-format file (gensim's `save_word2vec_format(binary=False)`, GloVe's
    files with the count line added)."""
    from pathlib import Path

    import numpy as np

    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            head = f.readline().split()
            if len(head) != 2 or not all(h.isdigit() for h in head):
                raise SslabError(f"{path} is not in the word2vec text format (its first line is not '<count> <dim>')")
            count, dim = map(int, head)
            words, rows = [], []
            for n, line in enumerate(f, start=2):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if len(parts) != dim + 1:
                    raise SslabError(f"{path}:{n}: expected a word and {dim} numbers, got {len(parts)} fields")
                words.append(parts[0])
                rows.append(parts[1:])
    except UnicodeDecodeError as err:
        raise SslabError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise SslabError(f"cannot read {path}: {err.strerror or err}") from None
    if len(words) != count:
        raise SslabError(f"{path} announces {count} words but holds {len(words)}")
    try:
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(words), dim)
    except ValueError:
        raise SslabError(f"{path} holds a value that is not a number") from None
    return words, vectors
