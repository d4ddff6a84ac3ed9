"""Token streams for pretraining and encoded examples for transfer: texts encoded once into a token stream on disk
(:func:`write_token_stream`, nanoGPT style ``np.memmap``) read as packed blocks (:class:`TokenBlocks`, and
:class:`TokenData` with the tokenizer's description as a data kind's split); co-occurrence counts as a split
(:class:`Cooccurrences`, GloVe); padded, trimmed :class:`Examples` for transfer (:func:`encode_examples`)."""
from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sslab.atomic import atomic_write
from sslab.data.base import one_line
from sslab.data.text import TextData
from sslab.errors import SslabError


def _stream_paths(path: Path) -> tuple[Path, Path]:
    return path.with_suffix(".doc.bin"), path.with_suffix(".meta.json")


def write_token_stream(tokenizer, texts: Iterable[str], path: str | Path, sep_id: int | None,
                       docs: Iterable[int] | None = None, chunk: int = 1024) -> Path:
    """Encode ``texts`` (batches of ``chunk``, no special tokens added) into one token stream on disk.

    Writes the ids to ``path`` (uint16 when ``len(tokenizer) <= 65536``, else int32), a document index per token
    to ``path.with_suffix(".doc.bin")`` (int32, documents numbered 0, 1, ... in order of appearance) and
    ``path.with_suffix(".meta.json")`` (dtype, n_tokens, n_docs, vocab_size, sep_id). ``docs`` gives a document
    key per text (consecutive equal keys = one document; ``None``: each text is a document); texts of one document
    are concatenated as given (add ``"\\n"`` to them if wanted). ``sep_id`` (if given) is appended after every
    document and carries that document's index. Documents that encode to no token are skipped. Streams texts to
    temp files, then renames them into place (a reader never sees half a stream). Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vocab = len(tokenizer)
    dtype = np.uint16 if vocab <= 65536 else np.int32
    if sep_id is not None and not 0 <= int(sep_id) < vocab:
        raise SslabError(f"sep_id {sep_id} is outside the vocabulary (size {vocab})")
    doc_path, meta_path = _stream_paths(path)
    tmps = []
    for target in (path, doc_path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        tmps.append(Path(tmp))
    sentinel = object()
    keys: Iterable[Any] = itertools.count() if docs is None else docs
    state = {"key": sentinel, "doc": -1, "open": False, "n": 0}
    try:
        with open(tmps[0], "wb") as f_ids, open(tmps[1], "wb") as f_doc:
            def emit(ids: list[int], doc: int) -> None:
                f_ids.write(np.asarray(ids, dtype=dtype).tobytes())
                f_doc.write(np.full(len(ids), doc, dtype=np.int32).tobytes())
                state["n"] += len(ids)

            def flush(batch: list[str], batch_keys: list[Any]) -> None:
                enc = tokenizer(batch, add_special_tokens=False, return_attention_mask=False,
                                return_token_type_ids=False)["input_ids"] if batch else []
                pieces: list[list[int]] = []  # token runs, each of one document (texts and separators)
                piece_docs: list[int] = []
                for ids, key in zip(enc, batch_keys):
                    if key != state["key"]:
                        if state["open"] and sep_id is not None:
                            pieces.append([int(sep_id)])
                            piece_docs.append(state["doc"])
                        state["key"], state["open"] = key, False
                    if ids:
                        if not state["open"]:
                            state["doc"] += 1
                            state["open"] = True
                        pieces.append(ids)
                        piece_docs.append(state["doc"])
                if pieces:
                    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
                    total = int(lengths.sum())
                    ids_arr = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int64, count=total)
                    f_ids.write(ids_arr.astype(dtype).tobytes())
                    f_doc.write(np.repeat(np.asarray(piece_docs, dtype=np.int32), lengths).tobytes())
                    state["n"] += total

            batch, batch_keys = [], []
            for t, key in itertools.zip_longest(texts, keys, fillvalue=sentinel):
                if t is sentinel or key is sentinel:
                    if docs is None:
                        break
                    raise SslabError("write_token_stream: texts and docs have different lengths")
                if not isinstance(t, str):
                    raise SslabError(f"write_token_stream: texts must be strings, got {type(t).__name__}")
                batch.append(t)
                batch_keys.append(key)
                if len(batch) >= chunk:
                    flush(batch, batch_keys)
                    batch, batch_keys = [], []
            flush(batch, batch_keys)
            if state["open"] and sep_id is not None:
                emit([int(sep_id)], state["doc"])
            for f in (f_ids, f_doc):
                f.flush()
                os.fsync(f.fileno())
        if state["n"] == 0:
            raise SslabError("write_token_stream: the texts produced no tokens")
        os.replace(tmps[1], doc_path)
        os.replace(tmps[0], path)
        meta = {"dtype": np.dtype(dtype).name, "n_tokens": state["n"], "n_docs": state["doc"] + 1,
                "vocab_size": vocab, "sep_id": None if sep_id is None else int(sep_id)}
        atomic_write(meta_path, (json.dumps(meta, indent=1) + "\n").encode())
    finally:
        for tmp in tmps:
            if tmp.exists():
                tmp.unlink()
    return path


class TokenBlocks:
    """Packed fixed-length blocks over a token stream (memmap); item i = tokens ``[i*block, i*block + block + 1)``
    (inputs and their next-token targets overlap by one); a stream shorter than ``block + 1`` tokens has no
    block (``len() == 0``). The files stay on disk: only the rows a batch touches are read, so corpora larger
    than memory work."""

    kind = "text"
    unit = "tokens"

    def __init__(self, path: str | Path, block: int):
        if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
            raise SslabError(f"block length must be a positive integer, got {block!r}")
        self.path = Path(path)
        self.block = int(block)
        doc_path, meta_path = _stream_paths(self.path)
        try:
            meta = json.loads(meta_path.read_text())
            self.dtype = np.dtype(meta["dtype"])
            self._n = int(meta["n_tokens"])
            self.vocab_size = int(meta["vocab_size"])
            self.sep_id = meta.get("sep_id")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SslabError(f"cannot read token stream {self.path} ({meta_path}: {one_line(err)}); "
                             "write it with write_token_stream") from None
        for p, itemsize in ((self.path, self.dtype.itemsize), (doc_path, 4)):
            size = p.stat().st_size if p.is_file() else -1
            if size != self._n * itemsize:
                raise SslabError(f"token stream file {p} has {size} bytes, expected {self._n * itemsize} "
                                 f"({self._n} tokens); rewrite it")
        self._open()

    def _open(self) -> None:
        doc_path, _ = _stream_paths(self.path)
        self._ids = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self._n,))
        self._docs = np.memmap(doc_path, dtype=np.int32, mode="r", shape=(self._n,))

    def __getstate__(self) -> dict:  # pickle (DataLoader workers) without copying the memmaps
        state = dict(self.__dict__)
        state.pop("_ids", None)
        state.pop("_docs", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()

    @property
    def n_tokens(self) -> int:
        return self._n

    def stream(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole stream as (token ids, document numbers), memory-mapped."""
        return self._ids, self._docs

    def __len__(self) -> int:
        return max(0, (self._n - 1) // self.block)

    def batch(self, idx: torch.Tensor | Sequence[int]) -> dict[str, torch.Tensor]:
        """``{"ids": int64 (B, block+1), "doc": int64 (B, block+1)}`` for block indices ``idx``."""
        i = torch.as_tensor(idx, dtype=torch.int64).reshape(-1).numpy()
        if i.size and (i.min() < 0 or i.max() >= len(self)):
            raise SslabError(f"block index out of range [0, {len(self)})")
        pos = i[:, None] * self.block + np.arange(self.block + 1)
        return {"ids": torch.from_numpy(np.array(self._ids[pos], dtype=np.int64)),
                "doc": torch.from_numpy(np.array(self._docs[pos], dtype=np.int64))}

    def units(self, batch: dict[str, torch.Tensor]) -> int:
        """Tokens trained on: ``B * block`` (each block predicts ``block`` next tokens)."""
        return int(batch["ids"].shape[0]) * self.block


# ===========================================================================================
# Tokenized labelled examples (transfer)
# ===========================================================================================
class Examples:
    """Tokenized examples padded on the right to the longest one; ``batch`` trims to the longest in the batch."""

    kind = "text"
    unit = "sequences"

    def __init__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, y: np.ndarray | None,
                 classes: Sequence[str], texts: Sequence[str], pad_id: int = 0):
        if input_ids.shape != attention_mask.shape or input_ids.ndim != 2:
            raise SslabError(f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)} "
                             "must be the same (N, L) shape")
        if y is not None and len(y) != input_ids.shape[0]:
            raise SslabError(f"{len(y)} labels for {input_ids.shape[0]} examples")
        self.input_ids = input_ids
        self.attention_mask = attention_mask
        self.y = y
        self.classes = list(classes)
        self.texts = list(texts)
        self.lengths = attention_mask.sum(1)
        self.pad_id = int(pad_id)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def batch(self, idx: torch.Tensor | Sequence[int]) -> dict[str, torch.Tensor]:
        i = torch.as_tensor(idx, dtype=torch.int64).reshape(-1)
        width = int(self.lengths[i].max()) if i.numel() else 0
        return {"input_ids": self.input_ids[i, :width], "attention_mask": self.attention_mask[i, :width]}

    def units(self, batch: dict[str, torch.Tensor]) -> int:
        """Real (unpadded) tokens in the batch."""
        return int(batch["attention_mask"].sum())

    def rows(self, idx: Sequence[int], *more: "Examples") -> "Examples":
        """The examples `idx` of this set followed by all of `more` (tokenized alike), as a new set padded with
        this set's pad token; labels are kept where every part has them."""
        i = np.asarray(idx, dtype=np.int64)
        parts = [(self.input_ids[i], self.attention_mask[i], None if self.y is None else self.y[i],
                  [self.texts[k] for k in i])] + [(m.input_ids, m.attention_mask, m.y, m.texts) for m in more]
        width = max(p[0].shape[1] for p in parts)
        ids = torch.cat([F.pad(p[0], (0, width - p[0].shape[1]), value=self.pad_id) for p in parts])
        mask = torch.cat([F.pad(p[1], (0, width - p[1].shape[1])) for p in parts])
        y = None if any(p[2] is None for p in parts) else np.concatenate([p[2] for p in parts])
        return Examples(ids, mask, y, self.classes, [t for p in parts for t in p[3]], self.pad_id)


def encode_examples(tokenizer, data: TextData, max_len: int, add_special_tokens: bool = True) -> Examples:
    """Tokenize ``data.texts`` (truncated to ``max_len`` tokens, specials included) and right-pad with
    ``tokenizer.pad_token_id`` (else ``eos_token_id``) to the longest example."""
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise SslabError(f"max_len must be a positive integer, got {max_len!r}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise SslabError("the tokenizer has no pad_token (nor eos_token) to pad examples with")
    texts = list(data.texts)
    enc = tokenizer(texts, add_special_tokens=add_special_tokens, truncation=True, max_length=int(max_len),
                    return_attention_mask=False, return_token_type_ids=False)["input_ids"] if texts else []
    width = max((len(e) for e in enc), default=0)
    ids = np.full((len(enc), width), pad, dtype=np.int64)
    mask = np.zeros((len(enc), width), dtype=np.int64)
    for r, e in enumerate(enc):
        ids[r, :len(e)] = e
        mask[r, :len(e)] = 1
    return Examples(torch.from_numpy(ids), torch.from_numpy(mask), data.y, data.classes, texts, pad)


class TokenData:
    """Token blocks (`TokenBlocks`) plus the description of the tokenizer the networks need."""

    kind, unit = "text", "tokens"

    def __init__(self, blocks, meta: dict):
        self.blocks, self._meta = blocks, meta

    def __len__(self) -> int:
        return len(self.blocks)

    def batch(self, idx):
        return self.blocks.batch(torch.as_tensor(idx, dtype=torch.long))

    def units(self, batch) -> int:
        return self.blocks.units(batch)

    def meta(self, limit: int | None = None) -> dict:
        return dict(self._meta)


class Cooccurrences:
    """The nonzero entries (row, col, count) of a co-occurrence matrix as a data kind's split."""

    kind, unit = "text", "co-occurrences"

    def __init__(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, meta: dict):
        self.rows, self.cols = torch.from_numpy(rows), torch.from_numpy(cols)
        self.values, self._meta = torch.from_numpy(values), meta

    def __len__(self) -> int:
        return len(self.values)

    def batch(self, idx):
        i = torch.as_tensor(idx, dtype=torch.long)
        return {"row": self.rows[i], "col": self.cols[i], "count": self.values[i]}

    def units(self, batch) -> int:
        return len(batch["count"])

    def meta(self, limit=None) -> dict:
        return dict(self._meta)
