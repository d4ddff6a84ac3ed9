"""Atomic, checksummed checkpoints: weights as safetensors, training state loaded with weights_only=True."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
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


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors for safetensors, which refuses tensors that share memory: a tied weight (a language
    model's input embedding and output layer) is written once per name, as a copy."""
    out, seen = {}, set()
    for k, v in state.items():
        v = v.detach().cpu().contiguous()
        key = (v.untyped_storage().data_ptr(), v.storage_offset()) if v.numel() else None
        if key in seen:
            v = v.clone()
        seen.add(key)
        out[k] = v
    return out


def save_weights(path: Path, state: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    tensors = _tensors(state)
    meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    _write(path, st_save(tensors, metadata=meta))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return st_load(Path(path).read_bytes())
    except FileNotFoundError:
        raise SslabError(f"weights not found: {path}") from None
    except Exception as e:
        raise SslabError(f"cannot read weights {path}: {e}") from None


def load_weights_metadata(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors of a safetensors file and its metadata, each value JSON-decoded as `save_weights` encodes it
    (a value that is not JSON is left out); a one-line SslabError for a file that is not safetensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
            raw = f.metadata() or {}
    except Exception as e:  # safetensors raises several types for a file that is not one
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise SslabError(f"{path} is not a safetensors file ({first})") from None
    meta = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except ValueError:
            pass
    return state, meta


def save_checkpoint(folder: Path, model_state: dict, train_state: dict) -> None:
    """Write `model.safetensors` + `state.pt` (+ sha256 of both in `checkpoint.json`, written last) into
    `<folder>.tmp/`, then rotate: `<folder>` becomes `<folder>.prev` and `<folder>.tmp` becomes `<folder>`. A crash
    (or a full disk) at any point leaves at least one complete checkpoint; a failed write removes its temp folder."""
    folder = Path(folder)
    tmp, prev = _sibling(folder, "tmp"), _sibling(folder, "prev")
    weights = st_save(_tensors(model_state))
    buf = io.BytesIO()
    torch.save(train_state, buf)
    state = buf.getvalue()
    digest = {"model.safetensors": hashlib.sha256(weights).hexdigest(), "state.pt": hashlib.sha256(state).hexdigest()}
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write(tmp / "model.safetensors", weights)
        _write(tmp / "state.pt", state)
        _write(tmp / "checkpoint.json", json.dumps(digest).encode())
    except SslabError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        if _complete(folder):
            shutil.rmtree(prev, ignore_errors=True)
            os.replace(folder, prev)
        else:
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        _fsync_dir(folder.parent)
    except OSError as e:
        raise SslabError(f"could not write checkpoint {folder}: {e.strerror or e}") from None


def load_checkpoint(folder: Path, log=None) -> tuple[dict, dict]:
    """The newest complete checkpoint whose checksums match: `<folder>.tmp` (complete only when a rotation was cut
    short, and then the newest), else `<folder>`, else `<folder>.prev`. If a newer one is damaged, say so through
    `log` and fall back."""
    problems = []
    for cand in _candidates(Path(folder)):
        try:
            weights, state = _read_checkpoint(cand)
        except SslabError as e:
            if cand.exists():
                problems.append(str(e))
            continue
        if problems and log is not None:
            step = state.get("step", "?") if isinstance(state, dict) else "?"
            log(f"{problems[0]}; using the previous good checkpoint {cand.name} (step {step})")
        return weights, state
    raise SslabError(problems[0] if problems else f"no complete checkpoint in {folder}")


def has_checkpoint(folder: Path) -> bool:
    """Whether `folder` (or its rotation siblings) holds a complete checkpoint to resume from."""
    return any(_complete(c) for c in _candidates(Path(folder)))


def _candidates(folder: Path) -> tuple[Path, Path, Path]:
    """Where a checkpoint may be, newest first (see save_checkpoint's rotation)."""
    return _sibling(folder, "tmp"), folder, _sibling(folder, "prev")


def _read_checkpoint(folder: Path) -> tuple[dict, dict]:
    try:
        digest = json.loads((folder / "checkpoint.json").read_text())
        weights = (folder / "model.safetensors").read_bytes()
        state = (folder / "state.pt").read_bytes()
    except (OSError, ValueError):
        raise SslabError(f"no complete checkpoint in {folder}") from None
    if not isinstance(digest, dict) or hashlib.sha256(weights).hexdigest() != digest.get("model.safetensors") or \
            hashlib.sha256(state).hexdigest() != digest.get("state.pt"):
        raise SslabError(f"checkpoint in {folder} is corrupt (checksum mismatch)")
    try:
        return st_load(weights), torch.load(io.BytesIO(state), weights_only=True)
    except Exception as e:  # a checksum-valid file that is still not ours (e.g. a crafted pickle): refuse it
        raise SslabError(f"checkpoint in {folder} cannot be loaded safely: {str(e).splitlines()[0][:200]}") from None


def _sibling(folder: Path, suffix: str) -> Path:
    return folder.with_name(f"{folder.name}.{suffix}")


def _complete(folder: Path) -> bool:
    return (folder / "checkpoint.json").is_file()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
