"""A study's statistics, where the study computes them: results grouped over seeds (`summarize`), a group's
spread as text, and the findings drawn from them. The report renders what this module computes."""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from sslab.config import label_order, label_text, per_class
from sslab.progress import hms

# Preferred display order of initialisations and protocols; anything else is accepted and placed after these.
INIT_ORDER = ["ssl", "ssl+aug", "foundation", "adapted", "scratch+aug", "scratch", "pixels", "tfidf"]
PROTOCOL_ORDER = ["fixmatch", "setfit", "selftrain", "finetune", "text2text", "linear", "knn", "logreg"]


def num(x: Any) -> float | None:
    """A finite float, or None for anything missing / non-numeric / NaN / inf."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def display_order(value: str, preferred: list[str]) -> tuple[int, str]:
    try:
        return (preferred.index(value), value)
    except ValueError:
        return (len(preferred), value)


def key_order(init: str, protocol: str) -> tuple:
    return (display_order(init, INIT_ORDER), display_order(protocol, PROTOCOL_ORDER))


def spread_text(d: dict, compact: bool = False, pct=None) -> str:
    """`mean ± std (n=K)` of a summarised group; a single run, or runs that all gave the same figure, are said so
    instead of printing a spread of 0."""
    pct = pct or pct_text
    if d["n"] < 2:
        return f"{pct(d['mean'])} (one run)"
    if d["std"] < 1e-9:  # equal runs (float rounding of their mean can leave a spread of 1e-16)
        return f"{pct(d['mean'])} (all {d['n']} runs equal)"
    if pct(d["std"]) in (pct(0.0), pct(-0.0)):  # a spread below the printed precision: print its size, not "0.0"
        unit = "%" if pct(0.5).endswith("%") else ""
        pct = lambda v, _p=pct: f"{v * 100:.2g}{unit}" if abs(v) < 0.001 else _p(v)  # noqa: E731
    if d.get("pretrain_runs"):  # n counts pretraining runs x label subsets
        runs = f"{d['pretrain_runs']} pretrainings"
        return (f"{pct(d['mean'])}±{pct(d['std'])} n={d['n']}, {runs}" if compact else
                f"{pct(d['mean'])} ± {pct(d['std'])} (n={d['n']}: {runs} x label subsets)")
    return f"{pct(d['mean'])}±{pct(d['std'])} n={d['n']}" if compact else f"{pct(d['mean'])} ± {pct(d['std'])} (n={d['n']})"


frac_label = label_text  # how a label fraction or count per class is written (sslab.config)


def pct_text(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x * 100:.{digits}f}"


def as_dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def as_list(x: Any) -> list:
    return x if isinstance(x, list) else []


def runs_of(results: dict) -> list[dict]:
    return [r for r in as_list(results.get("runs")) if isinstance(r, dict)]


def mean_std(xs: list[float]) -> tuple[float, float]:
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
    for r in runs_of(as_dict(results)):
        init, proto, frac, acc = r.get("init"), r.get("protocol"), num(r.get("fraction")), num(r.get("test_acc"))
        if init is None or proto is None or frac is None or acc is None:
            continue
        key = (str(init), str(proto), round(frac, 9))
        g = groups.setdefault(key, {"test": [], "train": [], "unconverged": 0, "judged": 0, "by_pretrain": {},
                                    "labels": []})
        if num(r.get("n_labels")) is not None:
            g["labels"].append(num(r.get("n_labels")))
        g["test"].append(acc)
        g.setdefault("metric", r.get("metric") or "accuracy")
        if r.get("pretrain_seed") is not None:
            g["by_pretrain"].setdefault(r["pretrain_seed"], []).append(acc)
        g["unconverged"] += r.get("converged") is False
        g["judged"] += r.get("converged") is not None
        tr = num(r.get("train_acc"))
        if tr is not None:
            g["train"].append(tr)

    rows = []
    for (init, proto, frac), g in groups.items():
        xs = g["test"]
        n = len(xs)
        mean, std = mean_std(xs)
        train_mean = sum(g["train"]) / len(g["train"]) if g["train"] else None
        row = {"init": init, "protocol": proto, "fraction": frac, "mean": mean, "std": std,
               "n": n, "train_mean": train_mean, "unconverged": g["unconverged"], "judged": g["judged"],
               "metric": g["metric"], "labels": sum(g["labels"]) / len(g["labels"]) if g["labels"] else None}
        if len(g["by_pretrain"]) > 1:  # several pretraining runs: the spread of their means too
            means = [mean_std(v)[0] for v in g["by_pretrain"].values()]
            row["pretrain_runs"], row["pretrain_std"] = len(means), mean_std(means)[1]
        rows.append(row)
    rows.sort(key=lambda d: (key_order(d["init"], d["protocol"]), label_order(d["fraction"])))
    return rows


def seeds_text(seeds: list[int]) -> str:
    """'seed 0', 'seeds 0-2' or 'seeds 0,3'."""
    seeds = sorted(seeds)
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return f"seeds {seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else \
        "seeds " + ",".join(map(str, seeds))


def _unconverged(*groups) -> str:
    """'' when every run of the summarised `groups` converged or had a fixed budget; else which did not, and that no
    conclusion is drawn from them."""
    bad = [g for g in groups if g.get("unconverged")]
    if not bad:
        return ""
    return ("; ".join(f"{g['init']} {g['protocol']} stopped at its cap before validation accuracy stopped rising in "
                      f"{g['unconverged']} of {g['n']} runs" for g in bad) + ": no conclusion is drawn")


def _difference(a: dict, b: dict) -> str:
    """a's mean minus b's and whether it exceeds the seed spread, or why no conclusion is drawn."""
    d = a["mean"] - b["mean"]
    return _unconverged(a, b) or f"{d:+.1%}{_spread(a, b, d)}"


def findings(summary: list[dict], n_train: int | None = None, augmentation: str | None = None) -> list[str]:
    """Plain-language answers to the study's questions, from the summarised numbers (`n_train`: the labelled
    training items at 100%; `augmentation`: what scratch+aug does). A comparison with a run that had not converged
    says so instead of answering."""
    get = {(s["init"], s["protocol"], s["fraction"]): s for s in summary}
    fmt = lambda s: spread_text(s, pct=lambda v: f"{v:.1%}")  # noqa: E731
    out = []
    for frac in (0.1, 0.01):
        s = get.get(("scratch", "finetune", frac))
        if s and s.get("train_mean") is not None:
            gap = s["train_mean"] - s["mean"]
            verdict = "it overfits" if gap > 0.05 else "the train/test gap is small"
            out.append(f"At {label_text(frac)} labels the scratch model reaches {s['train_mean']:.1%} train accuracy and "
                       f"{fmt(s)} test accuracy: {verdict} (gap {gap:.1%}).")
    for frac in sorted({k[2] for k in get}, key=label_order):
        a, b = get.get(("scratch+aug", "finetune", frac)), get.get(("scratch", "finetune", frac))
        if a and b:
            d = a["mean"] - b["mean"]
            what = f" ({augmentation})" if augmentation else ""
            if unjudged := _unconverged(a, b):
                out.append(f"Augmentation{what} at {label_text(frac)} labels: {fmt(b)} -> {fmt(a)}; {unjudged}.")
                continue
            beyond, spread = _judged(a, b, d)
            verdict = {True: "improves" if d > 0 else "lowers", False: "does not measurably change",
                       None: "changes" if abs(d) >= 5e-4 else "does not change"}[beyond]
            out.append(f"Augmentation{what} {verdict} scratch test accuracy at {label_text(frac)} labels: {fmt(b)} -> "
                       f"{fmt(a)} ({d:+.1%}{spread}).")
    for frac in sorted({k[2] for k in get}, key=label_order):  # the question "how much does SSL add over training from scratch?"
        ssl = [v for k, v in get.items() if k[0] == "ssl" and k[2] == frac]
        b = get.get(("scratch", "finetune", frac))
        if ssl and b:  # the best row that can be judged (every run converged), else the best of all
            s = max([v for v in ssl if not v.get("unconverged")] or ssl, key=lambda v: v["mean"])
            d = s["mean"] - b["mean"]
            unjudged = _unconverged(s, b)
            verdict = f"; {unjudged}" if unjudged else f" {'adds' if d > 0 else 'loses'} {abs(d):.1%}{_spread(s, b, d)}"
            out.append(f"Against the same network trained from scratch at {label_text(frac)} labels ({fmt(b)}), SSL pretraining "
                       f"(best protocol: {s['protocol']}, {fmt(s)}){verdict}.")
    for frac in sorted({k[2] for k in get}, key=label_order):  # where a pretrained foundation model stands
        found = [v for k, v in get.items() if k[0] == "foundation" and k[2] == frac]
        if found:
            f = max(found, key=lambda v: v["mean"])
            best = lambda init: max((v for k, v in get.items() if k[0] == init and k[2] == frac),  # noqa: E731
                                    key=lambda v: v["mean"], default=None)
            parts = [f"{name} {fmt(v)} ({f['mean'] - v['mean']:+.1%}{_spread(f, v, f['mean'] - v['mean'])})"
                     for name, v in (("adapted (continued pretraining)", best("adapted")),
                                     ("own SSL", best("ssl")),
                                     ("scratch", get.get(("scratch", "finetune", frac)))) if v]
            out.append(f"The foundation model at {label_text(frac)} labels (best protocol: {f['protocol']}, {fmt(f)}) against "
                       + ("; ".join(parts) or "nothing else measured") + ".")
    for frac in sorted({k[2] for k in get}, key=label_order):
        ssl = sorted((v for k, v in get.items() if k[0] == "ssl" and k[2] == frac), key=lambda v: -v["mean"])
        base = [v for k, v in get.items() if k[0] not in ("ssl", "foundation", "adapted") and k[2] == frac]  # the
        # pretrained starts have their own finding
        if ssl and base:
            b = max(base, key=lambda v: v["mean"])
            head = (f"SSL pretraining at {label_text(frac)} labels, against the best baseline ({b['init']} {b['protocol']} "
                    f"{fmt(b)})")
            if unjudged := _unconverged(b):
                out.append(f"{head}: {unjudged}.")
                continue
            out.append(f"{head}: " + "; ".join(f"{s['protocol']} {fmt(s)} ({_difference(s, b)})" for s in ssl) + ".")
    for frac in sorted({k[2] for k in get}, key=label_order):  # what the unlabelled items add (consistency training)
        for init in dict.fromkeys(k[0] for k in get if k[1] == "fixmatch" and k[2] == frac):
            a, f = get[(init, "fixmatch", frac)], get.get((init, "finetune", frac))
            if f:
                out.append(f"Consistency training on the unlabelled items ({init} fixmatch, from its fine-tuned model) "
                           f"at {label_text(frac)} labels: {fmt(f)} -> {fmt(a)} ({_difference(a, f)}).")
        a, sc = get.get(("ssl", "fixmatch", frac)), get.get(("scratch", "fixmatch", frac))
        if a and sc:
            out.append(f"What the SSL start buys under consistency training at {label_text(frac)} labels: fixmatch "
                       f"from scratch {fmt(sc)}, from the SSL encoder {fmt(a)} ({_difference(a, sc)}).")
    for s in summary:  # how much the pretraining run itself moves the figures
        if s.get("pretrain_runs") and s["fraction"] == min((k[2] for k in get), key=label_order):
            out.append(f"Over {s['pretrain_runs']} pretraining runs, {s['init']} {s['protocol']} at {label_text(s['fraction'])} "
                       f"labels has means that spread by {s['pretrain_std']:.1%} (std of the runs' means; "
                       f"{fmt(s)} over all).")
    return out + label_efficiency(summary, n_train)


def label_efficiency(summary: list[dict], n_train: int | None = None) -> list[str]:
    """Two findings on how far each starting point goes with few labels: the share of the gap between scratch at the
    smallest and at the largest label fraction that each initialisation's best row recovers at the smallest; and
    how many labels the best SSL row needs to match scratch at the largest fraction (linear in log-fraction between
    the two measured fractions around it; `n_train` labelled items at 100%)."""
    get = {(s["init"], s["protocol"], s["fraction"]): s for s in summary if not per_class(s["fraction"])}
    fracs = sorted({k[2] for k in get})  # fractions only: counts per class are not on the log-fraction scale
    if len(fracs) < 2:
        return []
    lo, hi = fracs[0], fracs[-1]
    a, b = get.get(("scratch", "finetune", lo)), get.get(("scratch", "finetune", hi))
    if not a or not b or b["mean"] <= a["mean"]:
        return []
    pct = lambda v: f"{v:.1%}"  # noqa: E731
    best = lambda init, f: max((v for k, v in get.items() if k[0] == init and k[2] == f),  # noqa: E731
                               key=lambda v: v["mean"], default=None)
    parts = []
    for init in dict.fromkeys(k[0] for k in get if k[0] != "scratch"):
        v = best(init, lo)
        if v:
            share = (v["mean"] - a["mean"]) / (b["mean"] - a["mean"])
            parts.append(f"{init} ({v['protocol']}, {pct(v['mean'])}) "
                         + (f"all of it and more ({share:.0%}: above scratch at {label_text(hi)})" if round(share, 2) > 1
                            else f"{share:.0%}"))
    out = [f"Label efficiency: of the gap between scratch at {label_text(lo)} labels ({pct(a['mean'])}) and at {label_text(hi)} "
           f"({pct(b['mean'])}), the best row of each starting point at {label_text(lo)} recovers " + "; ".join(parts) + "."]
    curve = [(f, best("ssl", f)) for f in fracs if best("ssl", f)]
    if curve:
        count = lambda f: f" ({f * n_train:,.0f} labels)" if n_train else ""  # noqa: E731
        reached = next((i for i, (f, v) in enumerate(curve) if v["mean"] >= b["mean"]), None)
        if reached is None:
            f, v = curve[-1]
            out.append(f"The best SSL row does not reach scratch at {label_text(hi)} labels ({pct(b['mean'])}) at any measured "
                       f"fraction (at {label_text(f)}: {v['protocol']} {pct(v['mean'])}).")
        elif reached == 0:
            f, v = curve[0]
            out.append(f"The best SSL row matches scratch at {label_text(hi)} labels ({pct(b['mean'])}) already at {label_text(f)}"
                       f"{count(f)}: {v['protocol']} {pct(v['mean'])}.")
        else:
            (f0, v0), (f1, v1) = curve[reached - 1], curve[reached]
            t = (b["mean"] - v0["mean"]) / (v1["mean"] - v0["mean"])
            f = math.exp(math.log(f0) + t * (math.log(f1) - math.log(f0)))
            out.append(f"The best SSL row matches scratch at {label_text(hi)} labels ({pct(b['mean'])}) at about {f:.1%} of the "
                       f"labels{count(f)}, interpolated between {label_text(f0)} ({pct(v0['mean'])}) and {label_text(f1)} "
                       f"({pct(v1['mean'])}).")
    return out


def _judged(a: dict, b: dict, d: float) -> tuple[bool | None, str]:
    """Whether a difference `d` between two summarised groups exceeds their combined seed spread (None: not
    judged), and the words that say so. With one run on one side, the other side's seed spread stands in for it
    (twice that spread: the sum of two alike); with one run on each side, or an unvaried other side, nothing is
    judged."""
    if min(a["n"], b["n"]) >= 2:
        if a["std"] + b["std"] < 1e-9:
            return None, ", equal runs on both sides: spread not measured"
        beyond = abs(d) > a["std"] + b["std"]
        return beyond, f", {'beyond' if beyond else 'within'} the seed spread"
    other = a if a["n"] >= 2 else b
    if other["n"] < 2:
        return None, ", one run each: spread not measured"
    if other["std"] < 1e-9:
        return None, ", one run on one side and equal runs on the other: spread not measured"
    beyond = abs(d) > 2 * other["std"]
    return beyond, f", one run on one side: {'beyond' if beyond else 'within'} twice the other's seed spread"


def _spread(a: dict, b: dict, d: float) -> str:
    return _judged(a, b, d)[1]


def pair_findings(run_evaluations: dict) -> list[str]:
    """What a captioned-image study measured on its pairs, against chance: retrieval R@K both ways, zero-shot."""
    out = []
    r = as_dict(as_dict(run_evaluations.get("retrieval")).get("values"))
    ks = sorted(int(k[5:]) for k in r if k.startswith("i2t_r") and num(r[k]) is not None)
    if ks:
        chance = as_dict(r.get("chance"))
        parts = [f"R@{k} {r[f'i2t_r{k}']:.1%} image-to-text and {r[f't2i_r{k}']:.1%} text-to-image against "
                 f"{chance.get(f'r{k}', 0):.1%} by chance" for k in ks[:2]]
        out.append(f"Retrieval among {r.get('images')} held-out images and their {r.get('captions')} captions: "
                   + "; ".join(parts) + " (one pretraining run).")
    z = as_dict(as_dict(run_evaluations.get("zero-shot")).get("values"))
    if num(z.get("accuracy")) is not None and num(z.get("chance")) is not None:
        verdict = "above" if z["accuracy"] > 2 * z["chance"] else "near"
        out.append(f"Zero-shot classification from caption prompts alone: {z['accuracy']:.1%} on {z.get('images')} "
                   f"images of {z.get('classes')} classes, {verdict} chance ({z['chance']:.1%}; one pretraining run).")
    return out


def paired(runs: list[dict], a: tuple[str, str], b: tuple[str, str]) -> list[dict]:
    """Per label fraction, `a`'s test accuracy minus `b`'s ((init, protocol) each) on the label subsets both ran
    (the same seed draws the same subset; several pretraining runs of one subset count as their mean): the mean and
    sample std of those differences, how many subsets, and on how many `a` is ahead. A run stopped at its cap
    before it converged (†) takes no part."""
    acc: dict = {}
    capped: dict = {}  # fraction -> runs left out
    for r in runs:
        key, frac, seed, x = (r.get("init"), r.get("protocol")), num(r.get("fraction")), r.get("seed"), \
            num(r.get("test_acc"))
        if key in (a, b) and frac is not None and seed is not None and x is not None:
            if r.get("converged") is False:
                capped[round(frac, 9)] = capped.get(round(frac, 9), 0) + 1
            else:
                acc.setdefault((round(frac, 9), seed), {}).setdefault(key, []).append(x)
    diffs: dict = {}
    for (frac, _), v in acc.items():
        if a in v and b in v:
            diffs.setdefault(frac, []).append(sum(v[a]) / len(v[a]) - sum(v[b]) / len(v[b]))
    return [{"fraction": f, "mean": mean_std(d)[0], "std": mean_std(d)[1], "n": len(d),
             "ahead": sum(x > 0 for x in d), "left_out": capped.get(f, 0)}
            for f, d in sorted(diffs.items(), key=lambda kv: label_order(kv[0]))]


def capped_text(n: int) -> str:
    return f"; {n} run{'s' if n > 1 else ''} stopped at the cap left out" if n else ""


def own_ssl_findings(results: dict) -> list[str]:
    """Own SSL against scratch paired on identical label subsets (fine-tuned both), and for text, the size of the
    corpus own pretraining read and what that size means when it does not pay at the fewest labels."""
    out, pairs = [], paired(runs_of(results), ("ssl", "finetune"), ("scratch", "finetune"))
    fixmatch = paired(runs_of(results), ("ssl", "fixmatch"), ("scratch", "fixmatch"))
    for what, found in (("SSL fine-tuned minus scratch fine-tuned", pairs),
                        ("consistency training (fixmatch) from the SSL start minus from scratch", fixmatch)):
        for p in found:
            if p["n"] > 1:
                verdict = "beyond" if abs(p["mean"]) > p["std"] else "within"
                out.append(f"Paired on the same {p['n']} label subsets at {label_text(p['fraction'])} labels, {what}: "
                           f"{p['mean']:+.1%} ± {p['std']:.1%}, ahead on {p['ahead']} of {p['n']} ({verdict} the spread "
                           f"of the differences{capped_text(p['left_out'])}).")
    data, pre = as_dict(results.get("data")), as_dict(results.get("pretrain"))
    fewest = next((p for p in pairs if p["n"] > 1), None)
    if data.get("kind") == "text" and data.get("n_train") and data.get("mean_words") and fewest \
            and fewest["mean"] <= fewest["std"]:
        words = data["n_train"] * data["mean_words"]
        epochs = f", {pre['epochs']:.1f} epochs of it" if num(pre.get("epochs")) is not None else ""
        out.append(f"Own pretraining ({pre.get('method', 'ssl')}) read the task's own training texts: about "
                   f"{round(words, -3):,.0f} words ({data['n_train']:,} texts of {data['mean_words']:.1f} words on average"
                   f"{epochs}). At this size it does not lift fine-tuning at {label_text(fewest['fraction'])} labels "
                   f"beyond the spread ({fewest['mean']:+.1%} ± {fewest['std']:.1%} paired): a language model learnt "
                   "from scratch needs millions of words (the BabyLM baselines train on 10 million), so at this "
                   "size the pretrained foundation rows are the answer; --corpus adds unlabelled text to pretrain on.")
    return out


def assemble(results: dict) -> dict:
    """A study's results with their summary (grouped over seeds) and findings added: for a captioned-image study,
    what it measured on the pairs first."""
    results["summary"] = summarize(results)
    data = results.get("data") or {}
    labels = data["n_train"] - data.get("n_val", 0) if data.get("n_train") else None  # labelled items at 100%
    results["findings"] = (pair_findings(as_dict(results.get("run_evaluations")))
                           + findings(results["summary"], labels, results.get("augmentation"))
                           + own_ssl_findings(results))
    return results


def plan_lines(plan: dict) -> list[str]:
    """A study's plan (results["plan"]) in lines: the limit and estimate, the pretraining time, each encoder x label
    fraction with its seeds and trained runs, and what was skipped to fit, each with the command that runs it."""
    limit = plan.get("limit_seconds")
    head = "no time limit" if limit is None else f"time limit {hms(limit)}"
    out = [f"plan ({head}; about {hms(plan.get('eta_seconds') or 0)} in all, from a timed calibration):"]
    if plan.get("pretrain_seconds"):
        times = f" x {plan['pretrainings']} runs" if plan.get("pretrainings", 1) > 1 else ""
        out.append(f"  pretrain: {hms(plan['pretrain_seconds'])}{times}")
    for r in as_list(plan.get("rows")):
        trained = (f"; trained ({seeds_text(r['trained_seeds'])}): " + ", ".join(r["trained"])) if r.get("trained") \
            else ""
        out.append(f"  {r['encoder']} at {frac_label(r['fraction'])} labels ({r['labels']:,}), "
                   f"{seeds_text(r['seeds'])}: frozen-feature probes{trained}  ~{hms(r['seconds'])}")
    for g in as_list(plan.get("skipped")):
        more = " (likewise --seed-list for each other seed)" if len(set(g.get("commands", []))) > 1 else ""
        out.append(f"  skipped ({g['why']}): {g['what']} (~{hms(g['seconds'])}); run it with: "
                   f"{g['commands'][0]}{more}")
    return out
