"""sslab: self-supervised pretraining and label-efficiency measurement in one Python API and CLI.

    import sslab
    splits = sslab.load_images("fashion-mnist")
    run = sslab.pretrain(splits.train, sslab.PretrainConfig(method="vicreg", budget=300), "runs/v1")
    results = sslab.evaluate_run("runs/v1", sslab.EvalConfig())

The names below load on first use (PEP 562), so importing one layer (`sslab.views.text`) loads only what it needs.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from sslab.version import __version__

_API = {  # name -> the module that defines it
    "EvalConfig": "sslab.config", "PretrainConfig": "sslab.config", "StudyConfig": "sslab.config",
    "load_config": "sslab.config", "load_images": "sslab.data", "label_subset": "sslab.data",
    "pretrain": "sslab.engine", "load_backbone": "sslab.engine", "load_method": "sslab.engine",
    "SslabError": "sslab.errors", "METHODS": "sslab.methods", "build_method": "sslab.methods",
    "register": "sslab.methods", "build_backbone": "sslab.nets", "write_report": "sslab.report",
    "study": "sslab.api", "evaluate_run": "sslab.api",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:  # a layer reached as an attribute (`sslab.data.load_data`) loads like one imported
        if importlib.util.find_spec(f"sslab.{name}") is None:
            raise AttributeError(f"module 'sslab' has no attribute {name!r}")
        return importlib.import_module(f"sslab.{name}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


if TYPE_CHECKING:  # what static tools and editors see
    from sslab.api import evaluate_run, study  # noqa: F401
    from sslab.config import EvalConfig, PretrainConfig, StudyConfig, load_config  # noqa: F401
    from sslab.data import label_subset, load_images  # noqa: F401
    from sslab.engine import load_backbone, load_method, pretrain  # noqa: F401
    from sslab.errors import SslabError  # noqa: F401
    from sslab.methods import METHODS, build_method, register  # noqa: F401
    from sslab.nets import build_backbone  # noqa: F401
    from sslab.report import write_report  # noqa: F401
