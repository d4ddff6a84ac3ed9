"""Turn a study's ``results.json`` into ``report.html`` + PNG plots, and a terminal table.

The report is a single self-contained HTML page (inline CSS, no scripts, no external
resources) that references its plots with relative ``plots/*.png`` paths, so the whole
run folder can be copied or zipped and still open anywhere.

Every key of ``results.json`` except ``runs`` is optional: sections whose data is missing
are left out (e.g. no pretraining section for a scratch-only study).

Plots are drawn with matplotlib's object API (``matplotlib.figure.Figure`` renders PNGs
with the Agg canvas), so importing this module never touches pyplot's global backend.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

from sslab.atomic import atomic_write
from sslab.errors import SslabError
from sslab.progress import hms

__all__ = ["summarize", "write_report", "print_summary"]

# Preferred display order / colours. Anything else is accepted and placed after these.
INIT_ORDER = ["ssl", "ssl+aug", "foundation", "adapted", "scratch+aug", "scratch", "pixels", "tfidf"]
PROTOCOL_ORDER = ["selftrain", "finetune", "text2text", "linear", "knn", "logreg"]
INIT_COLORS = {
    "ssl": "#1f77b4",
    "ssl+aug": "#9467bd",
    "foundation": "#2ca02c",
    "adapted": "#17becf",
    "scratch": "#ff7f0e",
    "scratch+aug": "#d62728",
    "pixels": "#7f7f7f",
    "tfidf": "#7f7f7f",
}
_EXTRA_COLORS = ["#2ca02c", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939"]
PROTOCOL_STYLE = {  # (marker, linestyle)
    "selftrain": ("*", "-"),
    "finetune": ("o", "-"),
    "text2text": ("P", "--"),
    "linear": ("s", "-."),
    "knn": ("^", ":"),
    "logreg": ("D", "--"),
}
_EXTRA_MARKERS = ["v", "P", "X", "*", "h"]
BASELINE_INITS = {"pixels", "tfidf"}  # the no-learning baselines, drawn dashed in the label-fraction plot

_DPI = 110
# history keys drawn elsewhere (loss, health panels) or not measures at all; any other numeric key a method's probe
# or loss logs (held-out loss, perplexity, masked-token accuracy, ...) gets its own panel
_HISTORY_KNOWN = {"step", "epoch", "time", "loss", "lr", "emb_std", "eff_rank", "align", "uniform", "proj_std",
                  "proj_rank", "collapse"}


def _throughput(pretrain: dict) -> str | None:
    unit = pretrain.get("unit") or "images"
    rate = _num(pretrain.get("units_per_s", pretrain.get("images_per_s")))
    return f"{rate:,.0f} {unit}/s" if rate is not None else None


# --------------------------------------------------------------------------- helpers


def _num(x: Any) -> float | None:
    """A finite float, or None for anything missing / non-numeric / NaN / inf."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _order(value: str, preferred: list[str]) -> tuple[int, str]:
    try:
        return (preferred.index(value), value)
    except ValueError:
        return (len(preferred), value)


def _key_order(init: str, protocol: str) -> tuple:
    return (_order(init, INIT_ORDER), _order(protocol, PROTOCOL_ORDER))


def spread_text(d: dict, compact: bool = False, pct=None) -> str:
    """`mean ± std (n=K)` of a summarised group; a single run, or runs that all gave the same figure, are said so
    instead of printing a spread of 0."""
    pct = pct or _pct
    if d["n"] < 2:
        return f"{pct(d['mean'])} (one run)"
    if not d["std"]:
        return f"{pct(d['mean'])} (all {d['n']} runs equal)"
    if d.get("pretrain_runs"):  # n counts pretraining runs x label subsets
        runs = f"{d['pretrain_runs']} pretrainings"
        return (f"{pct(d['mean'])}±{pct(d['std'])} n={d['n']}, {runs}" if compact else
                f"{pct(d['mean'])} ± {pct(d['std'])} (n={d['n']}: {runs} x label subsets)")
    return f"{pct(d['mean'])}±{pct(d['std'])} n={d['n']}" if compact else f"{pct(d['mean'])} ± {pct(d['std'])} (n={d['n']})"


def _frac_label(f: float) -> str:
    return f"{f * 100:.3g}%"


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x * 100:.{digits}f}"


def _fmt_seconds(s: Any) -> str:
    s = _num(s)
    if s is None:
        return "–"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, (list, tuple)):
        return " × ".join(str(x) for x in v)
    return str(v)


def _as_dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _as_list(x: Any) -> list:
    return x if isinstance(x, list) else []


def _runs(results: dict) -> list[dict]:
    return [r for r in _as_list(results.get("runs")) if isinstance(r, dict)]


def _colors_for(inits: Iterable[str]) -> dict[str, str]:
    out, extra = {}, iter(_EXTRA_COLORS * 10)
    for i in inits:
        out[i] = INIT_COLORS.get(i) or next(extra)
    return out


def _style_for(protocols: Iterable[str]) -> dict[str, tuple[str, str]]:
    out, extra = {}, iter(_EXTRA_MARKERS * 10)
    for p in protocols:
        out[p] = PROTOCOL_STYLE.get(p) or (next(extra), "-")
    return out


# --------------------------------------------------------------------------- summarize


def _mean_std(xs: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0.0 for a single value)."""
    mean = sum(xs) / len(xs)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0


def summarize(results: dict) -> list[dict]:
    """Group ``results["runs"]`` by (init, protocol, fraction) over seeds.

    Returns one dict per group: ``init, protocol, fraction, mean, std, n, train_mean``
    where ``mean``/``std`` are over the runs' ``test_acc`` (``std`` is the sample standard
    deviation, 0.0 when n == 1) and ``train_mean`` is the mean ``train_acc`` (None when no
    run has one); ``unconverged`` counts the runs that stopped at their cap before validation
    accuracy stopped rising, ``judged`` those whose convergence was judged at all. Runs without a usable init/protocol/fraction/test_acc are ignored.
    Sorted by a stable display order (init, protocol, fraction).
    """
    groups: "OrderedDict[tuple, dict]" = OrderedDict()
    for r in _runs(_as_dict(results)):
        init, proto, frac, acc = r.get("init"), r.get("protocol"), _num(r.get("fraction")), _num(r.get("test_acc"))
        if init is None or proto is None or frac is None or acc is None:
            continue
        key = (str(init), str(proto), round(frac, 9))
        g = groups.setdefault(key, {"test": [], "train": [], "unconverged": 0, "judged": 0, "by_pretrain": {}})
        g["test"].append(acc)
        if r.get("pretrain_seed") is not None:
            g["by_pretrain"].setdefault(r["pretrain_seed"], []).append(acc)
        g["unconverged"] += r.get("converged") is False
        g["judged"] += r.get("converged") is not None
        tr = _num(r.get("train_acc"))
        if tr is not None:
            g["train"].append(tr)

    rows = []
    for (init, proto, frac), g in groups.items():
        xs = g["test"]
        n = len(xs)
        mean, std = _mean_std(xs)
        train_mean = sum(g["train"]) / len(g["train"]) if g["train"] else None
        row = {"init": init, "protocol": proto, "fraction": frac, "mean": mean, "std": std,
               "n": n, "train_mean": train_mean, "unconverged": g["unconverged"], "judged": g["judged"]}
        if len(g["by_pretrain"]) > 1:  # several pretraining runs: the spread of their means too
            means = [_mean_std(v)[0] for v in g["by_pretrain"].values()]
            row["pretrain_runs"], row["pretrain_std"] = len(means), _mean_std(means)[1]
        rows.append(row)
    rows.sort(key=lambda d: (_key_order(d["init"], d["protocol"]), d["fraction"]))
    return rows


def _table(summary: list[dict]) -> tuple[list[tuple[str, str]], list[float], dict, dict]:
    """(row keys, fractions, cells[(init, proto)][frac] -> row, best mean per fraction)."""
    keys = sorted({(d["init"], d["protocol"]) for d in summary}, key=lambda k: _key_order(*k))
    fracs = sorted({d["fraction"] for d in summary})
    cells: dict = {}
    best: dict = {}
    for d in summary:
        cells.setdefault((d["init"], d["protocol"]), {})[d["fraction"]] = d
        if d["fraction"] not in best or d["mean"] > best[d["fraction"]]:
            best[d["fraction"]] = d["mean"]
    return keys, fracs, cells, best


def _is_best(d: dict, best: dict) -> bool:
    return abs(d["mean"] - best[d["fraction"]]) < 1e-12


# --------------------------------------------------------------------------- terminal


def seeds_text(seeds: list[int]) -> str:
    """'seed 0', 'seeds 0-2' or 'seeds 0,3'."""
    seeds = sorted(seeds)
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return f"seeds {seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else \
        "seeds " + ",".join(map(str, seeds))


def plan_lines(plan: dict) -> list[str]:
    """A study's plan (results["plan"]) in lines: the limit and estimate, the pretraining time, each encoder x label
    fraction with its seeds and trained runs, and what was skipped to fit, each with the command that runs it."""
    limit = plan.get("limit_seconds")
    head = "no time limit" if limit is None else f"time limit {hms(limit)}"
    out = [f"plan ({head}; about {hms(plan.get('eta_seconds') or 0)} in all, from a timed calibration):"]
    if plan.get("pretrain_seconds"):
        times = f" x {plan['pretrainings']} runs" if plan.get("pretrainings", 1) > 1 else ""
        out.append(f"  pretrain: {hms(plan['pretrain_seconds'])}{times}")
    for r in _as_list(plan.get("rows")):
        trained = (f"; trained ({seeds_text(r['trained_seeds'])}): " + ", ".join(r["trained"])) if r.get("trained") \
            else ""
        out.append(f"  {r['encoder']} at {_frac_label(r['fraction'])} labels ({r['labels']:,}), "
                   f"{seeds_text(r['seeds'])}: frozen-feature probes{trained}  ~{hms(r['seconds'])}")
    for g in _as_list(plan.get("skipped")):
        more = " (likewise --seed-list for each other seed)" if len(g.get("commands", [])) > 1 else ""
        out.append(f"  skipped ({g['why']}): {g['what']} (~{hms(g['seconds'])}); run it with: "
                   f"{g['commands'][0]}{more}")
    return out


def print_summary(results: dict, console=None) -> None:
    """Print a rich table: rows (init, protocol), one column per label fraction with
    ``mean ± std (n=K)`` of test accuracy in percent; the best mean per column is bold."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    console = console if console is not None else Console(width=None if sys.stdout.isatty() else 120)
    summary = summarize(results)
    if not summary:
        console.print("[yellow]No evaluation runs in results.[/yellow]")
        return
    keys, fracs, cells, best = _table(summary)
    data = _as_dict(_as_dict(results).get("data"))
    title = "Test accuracy (%), mean ± std over seeds"
    if data.get("name"):
        title += f" — {data['name']}"
    table = Table(title=escape(title), title_justify="left")
    table.add_column("init", style="cyan", no_wrap=True)
    table.add_column("protocol", no_wrap=True)
    for f in fracs:
        table.add_column(f"{_frac_label(f)} labels", justify="right", no_wrap=True)
    for k in keys:
        row = [Text(k[0]), Text(k[1])]
        for f in fracs:
            d = cells[k].get(f)
            if d is None:
                row.append(Text("–"))
                continue
            txt = spread_text(d, compact=True) + (" †" if d.get("unconverged") else "")
            row.append(Text(txt, style="bold" if _is_best(d, best) else ""))
        table.add_row(*row)
    console.print(table)
    if any(d.get("unconverged") for d in summary):
        console.print("† not converged: some runs stopped at their cap while validation accuracy was still rising")
    for g in _as_list(_as_dict(results.get("plan")).get("skipped")):
        console.print(escape(f"skipped ({g['why']}): {g['what']}: {g['commands'][0]}"
                             + (" (likewise --seed-list for each other seed)" if len(g["commands"]) > 1 else "")),
                      soft_wrap=True)


# --------------------------------------------------------------------------- plots


def _new_figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=_DPI, layout="constrained")


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    atomic_write(path, buf.getvalue())


def _series(points: list, xkeys: tuple[str, ...], ykey: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, p in enumerate(points):
        if not isinstance(p, dict):
            continue
        y = _num(p.get(ykey))
        if y is None:
            continue
        x = None
        for k in xkeys:
            x = _num(p.get(k))
            if x is not None:
                break
        xs.append(float(i + 1) if x is None else x)
        ys.append(y)
    return xs, ys


def _history_xkey(history: list) -> tuple[tuple[str, ...], str]:
    if any(isinstance(p, dict) and _num(p.get("step")) is not None for p in history):
        return ("step",), "step"
    if any(isinstance(p, dict) and _num(p.get("epoch")) is not None for p in history):
        return ("epoch",), "epoch"
    return (), "logged point"


def _plot_pretrain_loss(pretrain: dict, path: Path) -> str | None:
    history = _as_list(pretrain.get("history"))
    xkeys, xlabel = _history_xkey(history)
    xs, ys = _series(history, xkeys, "loss")
    if not xs:
        return None
    fig = _new_figure(7.5, 3.6)
    ax = fig.add_subplot()
    ax.plot(xs, ys, color="#1f77b4", lw=1.6, label="loss")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pretraining loss", color="#1f77b4")
    ax.grid(alpha=0.3)
    method = pretrain.get("method")
    ax.set_title(f"Pretraining loss{f' ({method})' if method else ''}")
    lx, ly = _series(history, xkeys, "lr")
    if lx:
        ax2 = ax.twinx()
        ax2.plot(lx, ly, color="#ff7f0e", lw=1.2, ls="--", label="learning rate")
        ax2.set_ylabel("learning rate", color="#ff7f0e")
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="center right", fontsize=8)
    _save(fig, path)
    return "Pretraining loss versus " + xlabel + (" with the learning rate on a second axis" if lx else "")


def _early_stop(es) -> str | None:
    """The early-stopping verdict of a run (pretrain.early_stop), in words."""
    if not isinstance(es, dict) or _num(es.get("value")) is None:
        return None
    why = "then stopped early: no better since" if es.get("stopped") else "the best before the budget ran out"
    return (f"step {es.get('kept_step')} (epoch {_num(es.get('kept_epoch')) or 0:.1f}): "
            f"{str(es.get('on', '')).replace('_', ' ')} {_num(es['value']):.4f} on training data held out ({why})")


def _plot_measures(pretrain: dict, path: Path) -> str | None:
    """One panel per other measure the method logged during pretraining (held-out loss, perplexity, masked-token
    and next-sentence accuracy, ...)."""
    history = _as_list(pretrain.get("history"))
    xkeys, xlabel = _history_xkey(history)
    keys = sorted({k for p in history if isinstance(p, dict) for k, v in p.items()
                   if k not in _HISTORY_KNOWN and _num(v) is not None})
    series = [(k, *_series(history, xkeys, k)) for k in keys]
    series = [s for s in series if s[1]]
    if not series:
        return None
    cols = min(4, len(series))
    rows = math.ceil(len(series) / cols)
    fig = _new_figure(4.0 * cols, 3.0 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
    for ax in axes[len(series):]:
        ax.set_axis_off()
    for ax, (k, xs, ys) in zip(axes, series):
        ax.plot(xs, ys, color="#1f77b4", lw=1.6, marker="o", ms=3)
        ax.set_xlabel(xlabel)
        ax.set_title(k.replace("_", " "), fontsize=10)
        ax.grid(alpha=0.3)
        if k == "perplexity":
            ax.set_yscale("log")
    _save(fig, path)
    return ", ".join(k.replace("_", " ") for k, *_ in series) + " during pretraining versus " + xlabel


def _plot_fraction(summary: list[dict], path: Path) -> str | None:
    if not summary:
        return None
    keys, fracs, cells, _ = _table(summary)
    colors = _colors_for(dict.fromkeys(k[0] for k in keys))
    styles = _style_for(dict.fromkeys(k[1] for k in keys))
    fig = _new_figure(7.5, 4.6)
    ax = fig.add_subplot()
    for k in keys:
        pts = [cells[k][f] for f in fracs if f in cells[k]]
        x = [d["fraction"] for d in pts]
        y = [d["mean"] * 100 for d in pts]
        e = [d["std"] * 100 for d in pts]
        marker, ls = styles[k[1]]
        baseline = k[0] in BASELINE_INITS
        if baseline:
            ls = "--"
        label = f"{k[0]} / {k[1]}" + (" (baseline)" if baseline else "")
        if len(x) == 1 and baseline and len(fracs) > 1:
            # a single-point baseline: draw it across the whole range
            ax.axhline(y[0], color=colors[k[0]], ls="--", lw=1.4, label=label)
            continue
        ax.errorbar(x, y, yerr=e, color=colors[k[0]], marker=marker, ls=ls, lw=1.6 if not baseline else 1.4,
                    ms=5, capsize=3, label=label, alpha=0.9 if baseline else 1.0)
    ax.set_xscale("log")
    ax.set_xticks(fracs)
    ax.set_xticklabels([_frac_label(f) for f in fracs])
    ax.minorticks_off()
    if len(fracs) == 1:
        ax.set_xlim(fracs[0] / 2, fracs[0] * 2)
    else:
        ax.set_xlim(fracs[0] / 1.4, fracs[-1] * 1.4)
    ax.set_xlabel("fraction of labelled training data (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy vs. label fraction (error bars: std over seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right", ncol=2 if len(keys) > 5 else 1)
    _save(fig, path)
    return "Test accuracy versus label fraction, one line per initialisation and protocol, error bars are the standard deviation over seeds"


def _seed0_curves(runs: list[dict], fractions: list[float]) -> "OrderedDict[tuple, dict]":
    """(init, protocol) -> {fraction: curve} using seed 0 (else the lowest seed) per fraction."""
    chosen: dict = {}
    for r in runs:
        curve = [p for p in _as_list(r.get("curve")) if isinstance(p, dict)]
        frac = _num(r.get("fraction"))
        if not curve or frac is None or r.get("init") is None or r.get("protocol") is None:
            continue
        f = next((g for g in fractions if abs(g - frac) < 1e-9), None)
        if f is None:
            continue
        seed = _num(r.get("seed"))
        seed = 0.0 if seed is None else seed
        key = (str(r["init"]), str(r["protocol"]), f)
        rank = (seed != 0, seed)
        if key not in chosen or rank < chosen[key][0]:
            chosen[key] = (rank, curve)
    out: "OrderedDict[tuple, dict]" = OrderedDict()
    for (init, proto, f) in sorted(chosen, key=lambda k: _key_order(k[0], k[1])):
        out.setdefault((init, proto), {})[f] = chosen[(init, proto, f)][1]
    return out


def _plot_curves(runs: list[dict], path: Path) -> str | None:
    fractions = [0.1, 0.01]
    curves = _seed0_curves(runs, fractions)
    if not curves:
        return None
    n = len(curves)
    ncols = 2 if n == 4 else min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _new_figure(4.0 * ncols, 3.0 * nrows + 0.5)
    frac_colors = {0.1: "#1f77b4", 0.01: "#d62728"}
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, ((init, proto), by_frac) in zip(axes.flat, curves.items()):
        for f in fractions:
            curve = by_frac.get(f)
            if not curve:
                continue
            c = frac_colors[f]
            tx, ty = _series(curve, ("epoch",), "train_acc")
            vx, vy = _series(curve, ("epoch",), "test_acc")
            if tx:
                ax.plot(tx, [v * 100 for v in ty], color=c, ls="--", lw=1.3, label=f"train, {_frac_label(f)}")
            if vx:
                ax.plot(vx, [v * 100 for v in vy], color=c, ls="-", lw=1.8, label=f"test, {_frac_label(f)}")
            if tx and vx and tx == vx:
                ax.fill_between(tx, [v * 100 for v in ty], [v * 100 for v in vy], color=c, alpha=0.10)
        ax.set_title(f"{init} / {proto}", fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.set_ylabel("accuracy (%)", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Train (dashed) vs. test (solid) accuracy during training, seed 0 — shaded: generalisation gap",
                 fontsize=10)
    _save(fig, path)
    return "Train and test accuracy per epoch at 10% and 1% labels for seed 0; the shaded area is the gap between them"


def _twin_axes(ax, xlabel: str, left: tuple, right: tuple) -> None:
    """Plot two series (x, y, colour, axis label, legend label) on `ax` and, if both exist, a twin y axis."""
    handles = []
    for i, (x, y, color, ylabel, label) in enumerate((left, right)):
        if not x:
            continue
        target = ax.twinx() if i == 1 and left[0] else ax
        handles += target.plot(x, y, color=color, lw=1.4, label=label)
        target.set_ylabel(ylabel, color=color)
    ax.set_xlabel(xlabel)
    ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="best")


def _plot_histogram(rev: dict, path: Path) -> str | None:
    """Overlaid histograms of a run evaluation's `histogram` ({"xlabel", "series": {name: [values]}}): the energy
    of compatible and incompatible pairs."""
    hist = _as_dict(rev.get("histogram"))
    series = {str(k): [v for v in (_num(x) for x in _as_list(xs)) if v is not None]
              for k, xs in _as_dict(hist.get("series")).items()}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    lo, hi = min(min(v) for v in series.values()), max(max(v) for v in series.values())
    bins = [lo + (hi - lo) * i / 40 for i in range(41)] if hi > lo else 10
    fig = _new_figure(7.5, 3.4)
    ax = fig.add_subplot()
    for name, values in series.items():
        ax.hist(values, bins=bins, alpha=0.5, label=f"{name} (n={len(values)})")
    ax.set_xlabel(str(hist.get("xlabel", "value")))
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8)
    _save(fig, path)
    return f"{hist.get('xlabel', 'value')} distributions of " + ", ".join(series)


def _plot_health(health: dict, pretrain: dict, path: Path) -> str | None:
    std = [v for v in (_num(x) for x in _as_list(health.get("std_per_dim"))) if v is not None]
    sv = [v for v in (_num(x) for x in _as_list(health.get("singular_values"))) if v is not None and v >= 0]
    history = _as_list(pretrain.get("history"))
    xkeys, xlabel = _history_xkey(history)
    sx, sy = _series(history, xkeys, "emb_std")
    rx, ry = _series(history, xkeys, "eff_rank")
    ax_, ay = _series(history, xkeys, "align")
    ux, uy = _series(history, xkeys, "uniform")
    panels = [p for p, ok in (("std", bool(std)), ("sv", sum(sv) > 0), ("hist", bool(sx or rx)),
                              ("au", bool(ax_ or ux))) if ok]
    if not panels:
        return None
    fig = _new_figure(4.2 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    dim = _num(health.get("dim")) or len(std) or len(sv)
    ideal = _num(health.get("std_ideal")) or (1 / math.sqrt(dim) if dim else None)
    parts = []
    for ax, panel in zip(axes, panels):
        if panel == "std":
            s = sorted(std, reverse=True)
            ax.plot(range(1, len(s) + 1), s, color="#1f77b4", lw=1.6, label="per-dimension std")
            if ideal:
                ax.axhline(ideal, color="#2ca02c", ls="--", lw=1.2, label=f"ideal 1/√d = {ideal:.3g}")
            ax.set_xlabel("dimension (sorted)")
            ax.set_ylabel("std of normalised embedding")
            ax.set_ylim(bottom=0)
            ax.set_title("Per-dimension std", fontsize=10)
            ax.legend(fontsize=8)
            parts.append("sorted per-dimension standard deviation against the ideal 1/sqrt(dim)")
        elif panel == "sv":
            total = sum(sv)
            p = sorted((v / total for v in sv), reverse=True)
            ax.semilogy(range(1, len(p) + 1), [max(v, 1e-12) for v in p], color="#9467bd", lw=1.6)
            er = _num(health.get("effective_rank"))
            if er is None:
                q = [v for v in p if v > 0]
                er = math.exp(-sum(v * math.log(v) for v in q))
            ax.set_xlabel("index")
            ax.set_ylabel("singular value / sum")
            ax.set_title(f"Singular value spectrum (effective rank {er:.1f} / {len(p)})", fontsize=10)
            parts.append(f"normalised singular value spectrum (effective rank {er:.1f})")
        elif panel == "au":
            _twin_axes(ax, xlabel, (ax_, ay, "#2ca02c", "alignment", "alignment (lower: views agree)"),
                       (ux, uy, "#d62728", "uniformity", "uniformity (lower: spread out)"))
            ax.set_title("Alignment and uniformity (Wang & Isola 2020)", fontsize=10)
            parts.append("alignment of positive pairs and uniformity over pretraining")
        else:
            _twin_axes(ax, xlabel, (sx, sy, "#1f77b4", "embedding std", "embedding std"),
                       (rx, ry, "#ff7f0e", "effective rank", "effective rank"))
            if sx and ideal:
                ax.axhline(ideal, color="#1f77b4", ls=":", lw=1)
            ax.set_title("Collapse indicators during pretraining", fontsize=10)
            parts.append("embedding std and effective rank over pretraining")
        ax.grid(alpha=0.3)
    _save(fig, path)
    return "Embedding health: " + "; ".join(parts)


# --------------------------------------------------------------------------- html

_CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dee7; --accent:#1f5fbf; --bg:#f6f7f9; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 28px 32px 48px; background:#fff;
       min-height:100vh; box-shadow: 0 0 0 1px var(--line); }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 14px; font-size: 13.5px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
code.cmd { display:block; background:#0f1724; color:#e6edf7; padding:10px 14px; border-radius:6px;
           white-space: pre-wrap; word-break: break-all; }
pre.config { background:#f3f5f8; border:1px solid var(--line); border-radius:6px; padding:12px 14px;
             overflow:auto; max-height: 480px; }
table { border-collapse: collapse; margin: 6px 0 4px; }
th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background:#eef1f6; font-weight:600; border-bottom: 2px solid #c6cdd9; }
table.results td.num, table.results th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.results td.num small { display:block; color: var(--muted); font-size: 11.5px; }
table.results td.best { background: #eaf3ea; }
table.results tr.baseline td { color: var(--muted); }
table.kv th { font-weight: 600; color: var(--muted); min-width: 13em; white-space: nowrap; background: none;
              border-bottom: 1px solid var(--line); }
.caption { color: var(--muted); font-size: 13px; margin: 2px 0 0; }
ul.findings li { margin: 5px 0; }
.classes { color: var(--muted); font-size: 13px; }
figure { margin: 18px 0 26px; }
figure img { display:block; max-width:100%; height:auto; border:1px solid var(--line); border-radius:4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.note { background:#fff8e6; border-left: 4px solid #f0b429; padding: 8px 12px; margin: 10px 0; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _kv_table(pairs: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs if v not in (None, "", []))
    return f'<table class="kv">{rows}</table>' if rows else ""


def _config_text(config: Any) -> str:
    try:
        import yaml  # type: ignore

        return yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip()
    except Exception:
        return json.dumps(config, indent=2, sort_keys=False, default=str, ensure_ascii=False)


def _results_table_html(summary: list[dict]) -> str:
    keys, fracs, cells, best = _table(summary)
    head = "".join(f'<th class="num">{_e(_frac_label(f))} labels</th>' for f in fracs)
    body = []
    for k in keys:
        tds = []
        for f in fracs:
            d = cells[k].get(f)
            if d is None:
                tds.append('<td class="num">–</td>')
                continue
            txt = spread_text(d) + (" †" if d.get("unconverged") else "")
            is_best = _is_best(d, best)
            txt = f"<b>{_e(txt)}</b>" if is_best else _e(txt)
            train = f"<small>train {_e(_pct(d['train_mean']))}</small>" if d["train_mean"] is not None else ""
            tds.append(f'<td class="num{" best" if is_best else ""}">{txt}{train}</td>')
        cls = ' class="baseline"' if k[0] in BASELINE_INITS else ""
        body.append(f"<tr{cls}><td>{_e(k[0])}</td><td>{_e(k[1])}</td>{''.join(tds)}</tr>")
    return (f'<table class="results" id="summary-table"><thead><tr><th>init</th><th>protocol</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
            '<p class="caption">Test accuracy in %, mean ± sample std over n seeds; best mean per label fraction in '
            "bold. Small grey number: mean final train accuracy (a large train/test gap means overfitting)."
            + (" †: some of these runs stopped at their image or epoch cap while validation accuracy was still "
               "rising (not converged); the findings draw no conclusion from them." if any(d.get("unconverged") for d in summary) else "")
            + (" Supervised runs trained until validation accuracy stopped rising (a fixed validation part of the "
               "training split, never trained on), keeping their best weights." if any(d.get("judged") for d in summary) else "")
            + "</p>")


def _starting_points(results: dict) -> list[str]:
    """What the foundation and adapted rows start from (a study with --from)."""
    out = []
    found = _as_dict(results.get("foundation"))
    if found:
        params = found.get("parameters")
        out.append(f"foundation: {found.get('backbone') or found.get('path')}"
                   + (f", {params / 1e6:.1f} M parameters" if isinstance(params, (int, float)) else "")
                   + ", evaluated as it is (frozen protocols) and fine-tuned")
    adapted = _as_dict(results.get("adapted"))
    if adapted.get("skipped"):
        out.append(f"adapted: not run ({adapted['skipped']})")
    elif adapted:
        out.append(f"adapted: the foundation model after continued {adapted.get('method')} pretraining on the task's "
                   f"unlabelled training data (domain-adaptive pretraining), {_fmt_value(adapted.get('epochs'))} "
                   f"epochs in {_fmt_value(adapted.get('seconds'))} s at learning rate {adapted.get('lr')}")
    return out


def _render_html(results: dict, plots: list[tuple[str, str, str]]) -> str:
    data = _as_dict(results.get("data"))
    pretrain = _as_dict(results.get("pretrain"))
    health = _as_dict(results.get("health"))
    timing = _as_dict(results.get("timing"))
    runs = _runs(results)
    summary = summarize(results)

    name = data.get("name") or "study"
    title = f"sslab report — {name}"
    out: list[str] = []
    w = out.append
    w("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
    w('<meta name="viewport" content="width=device-width, initial-scale=1">')
    w(f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>")
    w(f"<h1>{_e(title)}</h1>")
    sub = []
    if pretrain.get("method"):
        sub.append(f"self-supervised method: {pretrain['method']}")
    if pretrain.get("backbone"):
        sub.append(f"backbone: {pretrain['backbone']}")
    if results.get("created"):
        sub.append(f"created {results['created']}")
    if results.get("sslab_version"):
        sub.append(f"sslab {results['sslab_version']}")
    if sub:
        w(f'<p class="sub">{_e(" · ".join(str(s) for s in sub))}</p>')
    if results.get("command"):
        w(f'<code class="cmd">$ {_e(results["command"])}</code>')

    # data
    unit = str(data.get("unit") or "images")  # the data kind's unit (results.json before text: images)
    if data:
        w("<h2>Data</h2>")
        classes = [str(c) for c in _as_list(data.get("classes"))]
        w(_kv_table([
            ("dataset", data.get("name")),
            (f"training {unit}", _fmt_value(data["n_train"]) if data.get("n_train") is not None else None),
            (f"test {unit}", _fmt_value(data["n_test"]) if data.get("n_test") is not None else None),
            (f"validation {unit} (training {unit} held out of every labelled subset)",
             _fmt_value(data["n_val"]) if data.get("n_val") else None),
            ("image shape (H × W × C)", _fmt_value(data["shape"]) if data.get("shape") else None),
            ("classes", len(classes) if classes else None),
        ]))
        source = _as_dict(results.get("pretrain_data"))
        if source:  # pretrained on other data (--pretrain-data), transferred to this task
            w(f'<p class="note">Pretrained on {_e(source.get("name"))} ({_fmt_value(source.get("n_train"))} '
              f'{_e(source.get("unit") or unit)}, labels unused), transferred to {_e(data.get("name"))}.</p>')
        if classes:
            shown = classes[:30]
            more = f" … (+{len(classes) - 30} more)" if len(classes) > 30 else ""
            w(f'<p class="classes">{_e(", ".join(shown) + more)}</p>')

    # results
    w("<h2>Results</h2>")
    if summary:
        w(_results_table_html(summary))
    else:
        w('<p class="note">No evaluation runs were recorded.</p>')

    findings = [f for f in _as_list(results.get("findings")) if f not in (None, "")]
    if findings:
        w("<h2>Findings</h2><ul class=\"findings\">")
        w("".join(f"<li>{_e(f)}</li>" for f in findings))
        w("</ul>")
    probe = _as_dict(results.get("probe"))
    if probe:
        w(f"<p class=\"note\">Image tower probed on {_e(probe.get('name'))} ({_fmt_value(probe.get('n_train'))} "
          f"training / {_fmt_value(probe.get('n_test'))} test images, {len(_as_list(probe.get('classes')))} classes); "
          "the results table is on it.</p>")
    if results.get("probe_skipped"):
        w(f"<p class=\"note\">Probe skipped: {_e(results['probe_skipped'])}; no zero-shot classification or image "
          "tower probes.</p>")
    plan = _as_dict(results.get("plan"))
    if plan:
        w("<h2>Plan</h2>")
        lines = plan_lines(plan)
        timing = _as_dict(results.get("timing"))
        took = (f" It took {hms(timing['total_seconds'])}." if _num(timing.get("total_seconds")) is not None
                else "")
        w(f"<p>{_e(lines[0])}{_e(took)}</p><ul class=\"plan\">")
        w("".join(f"<li>{_e(x.strip())}</li>" for x in lines[1:] if not x.strip().startswith("skipped")))
        w("</ul>")
        skipped = _as_list(plan.get("skipped"))
        if skipped:
            w("<p>Skipped to fit the time limit, with the command that runs each into this study's folder "
              "(<code>--time none</code> runs everything):</p><ul class=\"skipped\">")
            w("".join(f"<li>{_e(g['what'])} (~{_e(hms(g['seconds']))}; {_e(g['why'])}):<br>"
                      + "<br>".join(f"<code>{_e(c)}</code>" for c in g["commands"]) + "</li>" for g in skipped))
            w("</ul>")
    starts = _starting_points(results)
    if starts:
        w("<h2>Starting points</h2><ul>" + "".join(f"<li>{_e(x)}</li>" for x in starts) + "</ul>")
    if results.get("baseline_notes"):
        w(f"<h2>Baselines</h2><p>{_e(results['baseline_notes'])}</p>")

    # plots
    run_evals = _as_dict(results.get("run_evaluations"))
    beside = {f"{name}.png" for name in run_evals}  # drawn in their own section below
    if any(p[0] not in beside for p in plots):
        w("<h2>Plots</h2>")
        for fname, alt, heading in (p for p in plots if p[0] not in beside):
            w(f'<figure><img src="plots/{_e(fname)}" alt="{_e(alt)}"><figcaption><b>{_e(heading)}.</b> {_e(alt)}.'
              "</figcaption></figure>")

    drawn = {p[0]: p[1] for p in plots}
    for name, rev in run_evals.items():  # label-free measures of the run
        rev = _as_dict(rev)
        lines = [x for x in _as_list(rev.get("lines")) if isinstance(x, str)]
        if lines:
            w(f"<h2>{_e(rev.get('title', 'Run evaluation'))}</h2><ul>")
            w("".join(f"<li>{_e(x)}</li>" for x in lines))
            w("</ul>")
            if isinstance(rev.get("image"), str):
                w(f'<img src="{_e(rev["image"])}" alt="{_e(rev.get("title", ""))}">')
            if f"{name}.png" in drawn:
                w(f'<figure><img src="plots/{_e(name)}.png" alt="{_e(drawn[name + ".png"])}"><figcaption>'
                  f"{_e(drawn[name + '.png'])}.</figcaption></figure>")

    examples = [x for x in _as_list(results.get("retrieval_examples")) if isinstance(x, dict)]
    if examples:
        w("<h2>Retrieved captions for held-out images</h2><p class=\"note\">Top 3 captions among all held-out "
          "captions; ✓ marks one of the image's own.</p><table class=\"grid\">")
        for x in examples:
            tops = "".join(f"<li>{'✓ ' if _as_dict(t).get('own') else ''}{_e(_as_dict(t).get('caption', ''))}</li>"
                           for t in _as_list(x.get("top")))
            w(f'<tr><td><img src="{_e(x.get("image", ""))}" alt="held-out image" width="128" height="128"></td>'
              f'<td><ol>{tops}</ol><p class="caption">its own: {_e(x.get("truth", ""))}</p></td></tr>')
        w("</table>")

    samples = [s for s in _as_list(results.get("samples")) if isinstance(s, dict)]
    if samples:
        w("<h2>Sample generations</h2>")
        for s in samples:
            w(f'<p class="caption">{_e(s.get("note", ""))}</p><pre class="config"><b>{_e(s.get("prompt", ""))}</b>'
              f'{_e(s.get("text", ""))}</pre>')

    # pretraining
    if pretrain:
        w("<h2>Pretraining</h2>")
        hist = _as_list(pretrain.get("history"))
        last = next((p for p in reversed(hist) if isinstance(p, dict) and _num(p.get("loss")) is not None), None)
        w(_kv_table([
            ("method", pretrain.get("method")),
            ("backbone", pretrain.get("backbone")),
            ("epochs", _fmt_value(pretrain["epochs"]) if pretrain.get("epochs") is not None else None),
            ("optimizer steps", _fmt_value(pretrain["steps"]) if pretrain.get("steps") is not None else None),
            ("wall time", _fmt_seconds(pretrain.get("seconds")) if pretrain.get("seconds") is not None else None),
            ("throughput", _throughput(pretrain)),
            ("final loss", f"{_num(last['loss']):.4g}" if last else None),
            ("weights kept", _early_stop(pretrain.get("early_stop"))),
        ]))
    if health:
        w("<h2>Embedding health</h2>")
        w(_kv_table([
            ("embedding dim", health.get("dim")),
            ("mean per-dim std", f"{_num(health['std_mean']):.4g}" if _num(health.get("std_mean")) is not None else None),
            ("ideal std (1/√dim)", f"{_num(health['std_ideal']):.4g}" if _num(health.get("std_ideal")) is not None else None),
            ("effective rank", f"{_num(health['effective_rank']):.1f}" if _num(health.get("effective_rank")) is not None else None),
        ]))
        w('<p class="caption">A per-dimension std far below the ideal, or an effective rank much smaller than the '
          "dimension, indicates (partial) representation collapse.</p>")

    # how it was measured
    w("<h2>How it was measured</h2>")
    seeds = sorted({s for s in (_num(r.get("seed")) for r in runs) if s is not None})
    ns = [d["n"] for d in summary]
    protocols = sorted({d["protocol"] for d in summary}, key=lambda p: _order(p, PROTOCOL_ORDER))
    fracs = sorted({d["fraction"] for d in summary})
    pairs: list[tuple[str, Any]] = [
        ("evaluation runs", len(runs) if runs else None),
        ("seeds", f"{len(seeds)} ({', '.join(f'{s:g}' for s in seeds)})" if seeds else None),
        ("runs per cell (n)", (f"{min(ns)}" if min(ns) == max(ns) else f"{min(ns)}–{max(ns)}") if ns else None),
        ("protocols", ", ".join(protocols) if protocols else None),
        ("label fractions", ", ".join(_frac_label(f) for f in fracs) if fracs else None),
        ("test set", f"{_fmt_value(data['n_test'])} held-out {unit}" if data.get("n_test") is not None else None),
        ("total time", _fmt_seconds(timing.get("total_seconds")) if timing.get("total_seconds") is not None else None),
        ("pretraining time", _fmt_seconds(timing.get("pretrain_seconds") if timing.get("pretrain_seconds") is not None
                                          else pretrain.get("seconds"))
         if (timing.get("pretrain_seconds") is not None or pretrain.get("seconds") is not None) else None),
        ("pretraining throughput", _throughput(pretrain)),
    ]
    for k, v in timing.items():
        if k not in ("total_seconds", "pretrain_seconds") and _num(v) is not None and k.endswith("seconds"):
            pairs.append((k.replace("_seconds", "").replace("_", " ") + " time", _fmt_seconds(v)))
    w(_kv_table(pairs))
    w('<p class="caption">Each cell of the results table averages the final test accuracy of independent runs that '
      "differ only in the random seed (label subset, initialisation of the head, data order); the std is the sample "
      "standard deviation across those runs.</p>")

    if "config" in results and results["config"] not in (None, {}, []):
        w("<h2>Configuration</h2>")
        w(f'<pre class="config">{_e(_config_text(results["config"]))}</pre>')

    w(f"<footer>Generated by sslab{(' ' + _e(results['sslab_version'])) if results.get('sslab_version') else ''}."
      "</footer></main></body></html>\n")
    return "\n".join(out)


# --------------------------------------------------------------------------- entry point


def _load_results(run_dir: Path) -> dict:
    path = run_dir / "results.json"
    if not path.is_file():
        raise SslabError(f"no results.json in {run_dir} (run the study first)")
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SslabError(f"malformed {path}: {msg}") from None
    except OSError as exc:
        raise SslabError(f"cannot read {path}: {exc.strerror or exc}") from None
    return results


def _safe_name(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_-]+", str(name)))


def write_report(run_dir: str | Path, results: dict | None = None) -> Path:
    """Write ``run_dir/plots/*.png`` and ``run_dir/report.html``; return the HTML path.

    ``results`` None reads ``run_dir/results.json``. Raises ``SslabError`` when that file is
    missing or malformed. Every file is written atomically (temp file + ``os.replace``).
    """
    run_dir = Path(run_dir)
    if results is None:
        results = _load_results(run_dir)
    if not isinstance(results, dict):
        raise SslabError(f"malformed results for {run_dir}: expected a JSON object, got {type(results).__name__}")
    if "runs" in results and results["runs"] is not None and not isinstance(results["runs"], list):
        raise SslabError(f"malformed results for {run_dir}: 'runs' must be a list")
    run_dir.mkdir(parents=True, exist_ok=True)
    plot_dir = run_dir / "plots"

    pretrain = _as_dict(results.get("pretrain"))
    health = _as_dict(results.get("health"))
    runs = _runs(results)
    summary = summarize(results)

    specs = [
        ("pretrain_loss.png", "Pretraining loss", lambda p: _plot_pretrain_loss(pretrain, p)),
        ("accuracy_vs_fraction.png", "Accuracy vs. label fraction", lambda p: _plot_fraction(summary, p)),
        ("train_vs_test.png", "Overfitting: train vs. test curves", lambda p: _plot_curves(runs, p)),
        ("embedding_health.png", "Embedding health", lambda p: _plot_health(health, pretrain, p)),
        ("pretext_measures.png", "Pretext measures", lambda p: _plot_measures(pretrain, p)),
    ]
    specs += [(f"{name}.png", _as_dict(rev).get("title", name), lambda p, rev=_as_dict(rev): _plot_histogram(rev, p))
              for name, rev in _as_dict(results.get("run_evaluations")).items()
              if _as_dict(rev).get("histogram") and _safe_name(name)]
    plots: list[tuple[str, str, str]] = []
    for fname, heading, fn in specs:
        alt = fn(plot_dir / fname)
        if alt:
            plots.append((fname, alt, heading))

    html_path = run_dir / "report.html"
    atomic_write(html_path, _render_html(results, plots).encode("utf-8"))
    return html_path
