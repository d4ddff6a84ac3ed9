"""Atomic, checksummed checkpoints: weights as safetensors, training state loaded with weights_only=True."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from sslab.atomic import atomic_write
from sslab.errors import SslabError


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data)
    except OSError as e:
        raise SslabError(f"could not write {path}: {e.strerror or e}") from None


def save_weights(path: Path, state: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    _write(path, st_save(tensors, metadata=meta))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return st_load(Path(path).read_bytes())
    except FileNotFoundError:
        raise SslabError(f"weights not found: {path}") from None
    except Exception as e:
        raise SslabError(f"cannot read weights {path}: {e}") from None


def save_checkpoint(folder: Path, model_state: dict, train_state: dict) -> None:
    """`model.safetensors` + `state.pt` (+ sha256 of both in `checkpoint.json`, written last)."""
    folder = Path(folder)
    weights = st_save({k: v.detach().cpu().contiguous() for k, v in model_state.items()})
    buf = io.BytesIO()
    torch.save(train_state, buf)
    state = buf.getvalue()
    _write(folder / "model.safetensors", weights)
    _write(folder / "state.pt", state)
    digest = {"model.safetensors": hashlib.sha256(weights).hexdigest(), "state.pt": hashlib.sha256(state).hexdigest()}
    _write(folder / "checkpoint.json", json.dumps(digest).encode())


def load_checkpoint(folder: Path) -> tuple[dict, dict]:
    folder = Path(folder)
    try:
        digest = json.loads((folder / "checkpoint.json").read_text())
        weights = (folder / "model.safetensors").read_bytes()
        state = (folder / "state.pt").read_bytes()
    except (OSError, ValueError):
        raise SslabError(f"no complete checkpoint in {folder}") from None
    if hashlib.sha256(weights).hexdigest() != digest.get("model.safetensors") or \
            hashlib.sha256(state).hexdigest() != digest.get("state.pt"):
        raise SslabError(f"checkpoint in {folder} is corrupt (checksum mismatch)")
    return st_load(weights), torch.load(io.BytesIO(state), weights_only=True)
