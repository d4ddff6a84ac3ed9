"""The study layer: the main job run stage by stage (`job`), its plan to a time limit (`plan`), and the statistics
and findings it draws (`summary`). It writes results.json; rendering is the report layer's (see `sslab.api`).
The names below load on first use, so the report can read the statistics without loading the training stack."""
from __future__ import annotations

import importlib

_NAMES = {"evaluate_run": "job", "load_foundation": "job", "save_results": "job", "study": "job", "Plan": "plan",
          "plan_lines": "summary", "assemble": "summary", "findings": "summary", "label_efficiency": "summary",
          "spread_text": "summary", "summarize": "summary"}
__all__ = list(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'sslab.studies' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sslab.studies.{_NAMES[name]}"), name)
