"""The report's figures, drawn with matplotlib's object API (``matplotlib.figure.Figure`` renders PNGs with the Agg
canvas), so drawing them never touches pyplot's global backend."""
from __future__ import annotations

import io
import math
import re
import textwrap
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

from sslab.atomic import atomic_write
from sslab.report.format import BASELINE_INITS, results_grid
from sslab.studies.summary import as_dict, as_list, frac_label, key_order, num, runs_of

# Colours and markers of the known rows; anything else gets the next of the extra ones.
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
    "fixmatch": ("X", "-"),
    "setfit": ("v", "-"),
    "selftrain": ("*", "-"),
    "finetune": ("o", "-"),
    "text2text": ("P", "--"),
    "linear": ("s", "-."),
    "knn": ("^", ":"),
    "logreg": ("D", "--"),
}
_EXTRA_MARKERS = ["v", "P", "X", "*", "h"]

_DPI = 110
# history keys drawn elsewhere (loss, health panels) or not measures at all; any other numeric key a method's probe
# or loss logs (held-out loss, perplexity, masked-token accuracy, ...) gets its own panel
_HISTORY_KNOWN = {"step", "epoch", "time", "loss", "lr", "emb_std", "eff_rank", "align", "uniform", "proj_std",
                  "proj_rank", "collapse"}


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
        y = num(p.get(ykey))
        if y is None:
            continue
        x = None
        for k in xkeys:
            x = num(p.get(k))
            if x is not None:
                break
        xs.append(float(i + 1) if x is None else x)
        ys.append(y)
    return xs, ys


def _history_xkey(history: list) -> tuple[tuple[str, ...], str]:
    if any(isinstance(p, dict) and num(p.get("step")) is not None for p in history):
        return ("step",), "step"
    if any(isinstance(p, dict) and num(p.get("epoch")) is not None for p in history):
        return ("epoch",), "epoch"
    return (), "logged point"


def _plot_pretrain_loss(pretrain: dict, path: Path) -> str | None:
    history = as_list(pretrain.get("history"))
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


def _plot_measures(pretrain: dict, path: Path) -> str | None:
    """One panel per other measure the method logged during pretraining (held-out loss, perplexity, masked-token
    and next-sentence accuracy, ...)."""
    history = as_list(pretrain.get("history"))
    xkeys, xlabel = _history_xkey(history)
    keys = sorted({k for p in history if isinstance(p, dict) for k, v in p.items()
                   if k not in _HISTORY_KNOWN and num(v) is not None})
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
    keys, fracs, cells, _ = results_grid(summary)
    colors = _colors_for(dict.fromkeys(k[0] for k in keys))
    styles = _style_for(dict.fromkeys(k[1] for k in keys))
    fig = _new_figure(7.5, 4.6)
    ax = fig.add_subplot()
    # x: the labelled items when every row records them (counts per class and fractions on one axis), else the
    # fraction
    by_labels = all(d.get("labels") for d in summary)
    pos = {f: (sum(d["labels"] for d in summary if d["fraction"] == f)
               / sum(1 for d in summary if d["fraction"] == f)) if by_labels else f for f in fracs}
    for k in keys:
        pts = sorted((cells[k][f] for f in fracs if f in cells[k]), key=lambda d: pos[d["fraction"]])  # along x
        x = [pos[d["fraction"]] for d in pts]
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
    ticks, labels, last = [], [], None
    for f in sorted(fracs, key=pos.get):  # a tick close to the one before it (8/class beside 10%) goes lower
        low = last is not None and pos[f] < 1.4 * last and not labels[-1].startswith("\n")
        ticks.append(pos[f])
        labels.append(("\n\n" if low else "") + frac_label(f) + (f"\n{pos[f]:,.0f}" if by_labels else ""))
        last = pos[f]
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    ax.minorticks_off()
    lo, hi = min(pos.values()), max(pos.values())
    ax.set_xlim(lo / 2, hi * 2) if lo == hi else ax.set_xlim(lo / 1.4, hi * 1.4)
    ax.set_xlabel("labelled training items (log scale)" if by_labels else
                  "fraction of labelled training data (log scale)")
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
        curve = [p for p in as_list(r.get("curve")) if isinstance(p, dict)]
        frac = num(r.get("fraction"))
        if not curve or frac is None or r.get("init") is None or r.get("protocol") is None:
            continue
        f = next((g for g in fractions if abs(g - frac) < 1e-9), None)
        if f is None:
            continue
        seed = num(r.get("seed"))
        seed = 0.0 if seed is None else seed
        key = (str(r["init"]), str(r["protocol"]), f)
        rank = (seed != 0, seed)
        if key not in chosen or rank < chosen[key][0]:
            chosen[key] = (rank, curve)
    out: "OrderedDict[tuple, dict]" = OrderedDict()
    for (init, proto, f) in sorted(chosen, key=lambda k: key_order(k[0], k[1])):
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
                ax.plot(tx, [v * 100 for v in ty], color=c, ls="--", lw=1.3, label=f"train, {frac_label(f)}")
            if vx:
                ax.plot(vx, [v * 100 for v in vy], color=c, ls="-", lw=1.8, label=f"test, {frac_label(f)}")
            if tx and vx and tx == vx:
                ax.fill_between(tx, [v * 100 for v in ty], [v * 100 for v in vy], color=c, alpha=0.10)
        ax.set_title(f"{init} / {proto}", fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.set_ylabel("accuracy (%)", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    # wrapped to the figure's width (about 13 characters an inch at 10 pt): one panel is 4 inches wide
    title = "Train (dashed) vs. test (solid) accuracy during training, seed 0 — shaded: generalisation gap"
    fig.suptitle(textwrap.fill(title, int(13 * 4.0 * ncols)), fontsize=10)
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
    hist = as_dict(rev.get("histogram"))
    series = {str(k): [v for v in (num(x) for x in as_list(xs)) if v is not None]
              for k, xs in as_dict(hist.get("series")).items()}
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
    std = [v for v in (num(x) for x in as_list(health.get("std_per_dim"))) if v is not None]
    sv = [v for v in (num(x) for x in as_list(health.get("singular_values"))) if v is not None and v >= 0]
    history = as_list(pretrain.get("history"))
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
    dim = num(health.get("dim")) or len(std) or len(sv)
    ideal = num(health.get("std_ideal")) or (1 / math.sqrt(dim) if dim else None)
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
            er = num(health.get("effective_rank"))
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


def _safe_name(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_-]+", str(name)))


def draw_figures(results: dict, summary: list[dict], plot_dir: Path) -> list[tuple[str, str, str]]:
    """Every figure the results allow, as plot_dir/*.png: [(file name, alt text, heading)] of those drawn."""
    pretrain, health = as_dict(results.get("pretrain")), as_dict(results.get("health"))
    runs = runs_of(results)
    specs = [
        ("pretrain_loss.png", "Pretraining loss", lambda p: _plot_pretrain_loss(pretrain, p)),
        ("accuracy_vs_fraction.png", "Accuracy vs. label fraction", lambda p: _plot_fraction(summary, p)),
        ("train_vs_test.png", "Overfitting: train vs. test curves", lambda p: _plot_curves(runs, p)),
        ("embedding_health.png", "Embedding health", lambda p: _plot_health(health, pretrain, p)),
        ("pretext_measures.png", "Pretext measures", lambda p: _plot_measures(pretrain, p)),
    ]
    specs += [(f"{name}.png", as_dict(rev).get("title", name), lambda p, rev=as_dict(rev): _plot_histogram(rev, p))
              for name, rev in as_dict(results.get("run_evaluations")).items()
              if as_dict(rev).get("histogram") and _safe_name(name)]
    plots = []
    for fname, heading, fn in specs:
        alt = fn(plot_dir / fname)
        if alt:
            plots.append((fname, alt, heading))
    return plots

