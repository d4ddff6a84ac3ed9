"""Fine-tuned classifiers kept by `sslab evaluate --save-model`: for each trained protocol in `SAVED` and label
fraction, the model (the tuned encoder and its linear head) of the seed that scored best, as
`<run>/models/<protocol>-<fraction>.safetensors` with a JSON beside it. `sslab.export.load_classifier` rebuilds
one on the run's encoder (it lives in the layer below, so that export reads what evaluate writes); `sslab export
RUN --model FILE` exports it."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from torch import nn

from sslab.atomic import atomic_write
from sslab.checkpoint import save_weights
from sslab.config import label_text, per_class
from sslab.errors import SslabError

SAVED = ("finetune", "fixmatch")  # the protocols whose trained model is kept
FORMAT = "sslab-classifier"  # the safetensors metadata's "format" of a kept model
FOLDER = "models"


def model_stem(protocol: str, fraction: float) -> str:
    """A kept model's file name without suffix: finetune-1pct, fixmatch-0.5pct, finetune-8-per-class."""
    part = f"{int(fraction)}-per-class" if per_class(fraction) else f"{fraction * 100:.3g}pct"
    return f"{protocol}-{part}"


class ModelKeeper:
    """Keeps, per (protocol, fraction), the model of the best seed (highest validation accuracy, else test
    accuracy; the first seed on a tie). A model that leads is written at once, so no more than the one being
    offered is held in memory. `merge`: a model kept by an earlier evaluation stays unless a new one beats it (an
    evaluation of some seeds only, `--seed-list`)."""

    def __init__(self, run_dir: str | Path, merge: bool = False):
        self.run_dir, self.folder, self.merge = Path(run_dir), Path(run_dir) / FOLDER, merge
        self.info: dict | None = None  # the run's method, backbone and kind, read at the first model kept
        self.best: dict[tuple[str, float], dict] = {}
        self.unkept: set[str] = set()  # protocols that ran but returned no model

    def offer(self, protocol: str, fraction: float, seed: int, n_labels: int, res: dict, model: nn.Module | None,
              classes: list[str], data: str) -> None:
        """A trained run's result `res` and its `model`; written when it beats the kept one."""
        if protocol not in SAVED:
            return
        parts = _parts(model)
        if parts is None:
            self.unkept.add(protocol)
            return
        basis = "val_acc" if res.get("val_acc") is not None else "test_acc"
        key = (protocol, fraction)
        if key not in self.best and self.merge:
            self.best[key] = self._on_disk(protocol, fraction)
        kept = self.best.get(key)
        seeds = sorted({*(kept["seeds_compared"] if kept else []), seed})
        if kept and kept["chosen_by"] == basis and not res[basis] > kept[basis]:
            kept["seeds_compared"] = seeds
            self._write_json(kept)
            return
        encoder, head = parts
        stem = model_stem(protocol, fraction)
        if self.info is None:
            self.info = {}
            with contextlib.suppress(OSError, ValueError):
                self.info = json.loads((self.run_dir / "run.json").read_text())
            self.info = self.info if isinstance(self.info, dict) else {}
        about = {"format": FORMAT, "protocol": protocol, "fraction": fraction, "labels": label_text(fraction),
                 "seed": seed, "n_labels": int(n_labels), "chosen_by": basis,
                 **{k: res.get(k) for k in ("val_acc", "test_acc", "train_acc")}, "seeds_compared": seeds,
                 "classes": [str(c) for c in classes], "data": data, "run": str(self.run_dir),
                 **{k: self.info.get(k) for k in ("method", "backbone", "kind")}, "weights": f"{stem}.safetensors",
                 "outputs": "class scores (B, classes), in the order of `classes`",
                 "load": {"python": f"sslab.export.load_classifier('<run>', '<run>/models/{stem}.safetensors')",
                          "export": f"sslab export <run> --format onnx --model <run>/models/{stem}.safetensors"}}
        state = {**{f"encoder.{k}": v for k, v in encoder.state_dict().items()},
                 "head.weight": head.weight, "head.bias": head.bias}
        meta = {k: about[k] for k in ("format", "protocol", "fraction", "seed", "classes", "chosen_by", "val_acc",
                                      "test_acc", "data")}
        save_weights(self.folder / about["weights"], state, metadata=meta)
        self._write_json(about)
        self.best[key] = about

    def _write_json(self, about: dict) -> None:
        path = self.folder / f"{model_stem(about['protocol'], about['fraction'])}.json"
        try:
            atomic_write(path, (json.dumps(about, indent=2) + "\n").encode())
        except OSError as err:
            raise SslabError(f"could not write {path}: {err.strerror or err}") from None

    def _on_disk(self, protocol: str, fraction: float) -> dict | None:
        stem = model_stem(protocol, fraction)
        try:
            about = json.loads((self.folder / f"{stem}.json").read_text())
        except (OSError, ValueError):
            return None
        ok = isinstance(about, dict) and (self.folder / f"{stem}.safetensors").is_file() and \
            isinstance(about.get(about.get("chosen_by", "")), float)
        return about if ok else None

    def lines(self) -> list[str]:
        """What was kept, one line a model, for the log."""
        out = [f"kept {self.folder / m['weights']}: {m['protocol']} {m['labels']} seed {m['seed']} "
               f"({m['chosen_by'].removesuffix('_acc')} {m[m['chosen_by']]:.2%}, of seeds "
               f"{', '.join(map(str, m['seeds_compared']))})" for m in self.best.values() if m]
        out += [f"{p}: the protocol returns no model, so none is kept" for p in sorted(self.unkept)]
        return out


def _parts(model) -> tuple[nn.Module, nn.Linear] | None:
    """(encoder, linear head) of a protocol's classifier, nn.Sequential(encoder, nn.Linear), or None."""
    if isinstance(model, nn.Sequential) and len(model) == 2 and isinstance(model[1], nn.Linear):
        return model[0], model[1]
    return None
