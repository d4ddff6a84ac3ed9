"""Formatting shared by the report's terminal table, HTML page and figures."""
from __future__ import annotations

from typing import Any

from sslab.config import label_order
from sslab.studies.summary import key_order, num

BASELINE_INITS = {"pixels", "tfidf"}  # the no-learning baselines, drawn dashed in the label-fraction plot


def throughput(pretrain: dict) -> str | None:
    unit = pretrain.get("unit") or "images"
    rate = num(pretrain.get("units_per_s", pretrain.get("images_per_s")))
    return f"{rate:,.0f} {unit}/s" if rate is not None else None


def fmt_seconds(s: Any) -> str:
    s = num(s)
    if s is None:
        return "–"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, (list, tuple)):
        return " × ".join(str(x) for x in v)
    return str(v)


def results_grid(summary: list[dict]) -> tuple[list[tuple[str, str]], list[float], dict, dict]:
    """(row keys, fractions, cells[(init, proto)][frac] -> row, best mean per fraction)."""
    keys = sorted({(d["init"], d["protocol"]) for d in summary}, key=lambda k: key_order(*k))
    fracs = sorted({d["fraction"] for d in summary}, key=label_order)
    cells: dict = {}
    best: dict = {}
    for d in summary:
        cells.setdefault((d["init"], d["protocol"]), {})[d["fraction"]] = d
        if d["fraction"] not in best or d["mean"] > best[d["fraction"]]:
            best[d["fraction"]] = d["mean"]
    return keys, fracs, cells, best


def is_best(d: dict, best: dict) -> bool:
    return abs(d["mean"] - best[d["fraction"]]) < 1e-12


def early_stop_text(es) -> str | None:
    """The early-stopping verdict of a run (pretrain.early_stop), in words."""
    if not isinstance(es, dict) or num(es.get("value")) is None:
        return None
    why = "then stopped early: no better since" if es.get("stopped") else "the best before the budget ran out"
    return (f"step {es.get('kept_step')} (epoch {num(es.get('kept_epoch')) or 0:.1f}): "
            f"{str(es.get('on', '')).replace('_', ' ')} {num(es['value']):.4f} on training data held out ({why})")
