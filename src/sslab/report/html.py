"""report.html: the study's results gathered into plain values here, laid out by the jinja2 template beside this
module (`report.html.j2`, autoescaped; the page's CSS is `report.css`)."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from sslab.config import label_order
from sslab.progress import hms
from sslab.report.format import (BASELINE_INITS, early_stop_text, fmt_seconds, fmt_value, is_best, results_grid,
                                 throughput)
from sslab.studies.summary import (PROTOCOL_ORDER, as_dict, as_list, display_order, frac_label, num, pct_text,
                                   plan_lines, runs_of, spread_text)

HERE = Path(__file__).parent
LEADING = ("retrieval", "zero-shot")  # what a captioned-image study measured on its pairs: shown before the probe


@lru_cache(maxsize=1)
def _template():
    import jinja2

    # a missing field renders empty, as every key of results.json except "runs" is optional
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE)), autoescape=True)
    return env.get_template("report.html.j2")


def render_html(results: dict, summary: list[dict], plots: list[tuple[str, str, str]]) -> str:
    """The page for `results` (results.json's content), its `summary` and the drawn `plots` (file, alt, heading)."""
    data, pretrain, health = (as_dict(results.get(k)) for k in ("data", "pretrain", "health"))
    name = data.get("name") or "study"
    run_evals = as_dict(results.get("run_evaluations"))
    pairs_study = data.get("kind") == "pairs"
    beside = {f"{n}.png" for n in run_evals}  # drawn in their run evaluation's own section
    sub = [f"self-supervised method: {pretrain['method']}" if pretrain.get("method") else None,
           f"backbone: {pretrain['backbone']}" if pretrain.get("backbone") else None,
           f"created {results['created']}" if results.get("created") else None,
           f"sslab {results['sslab_version']}" if results.get("sslab_version") else None]
    ran = {d["init"] for d in summary}
    return _template().render(
        title=f"sslab report — {name}", sub=[s for s in sub if s], command=results.get("command"),
        css=(HERE / "report.css").read_text(), data=_data(results) if data else None,
        run_evaluations=_run_evaluations(run_evals, plots, lead=pairs_study),
        results_heading="Image tower probes" if pairs_study else "Results",
        probe=_probe(results), table=_table(summary) if summary else None,
        probe_skipped=results.get("probe_skipped"),
        findings=[f for f in as_list(results.get("findings")) if f not in (None, "")],
        plan=_plan(results), starts=_starting_points(results),
        # the baselines paragraph only where a baseline ran
        baseline_notes=results.get("baseline_notes") if ran & {"scratch", "scratch+aug", *BASELINE_INITS} else None,
        plots=[{"file": f, "alt": a, "heading": h} for f, a, h in plots if f not in beside],
        examples=[x for x in as_list(results.get("retrieval_examples")) if isinstance(x, dict)],
        samples=[s for s in as_list(results.get("samples")) if isinstance(s, dict)],
        pretrain=_pairs(_pretraining(pretrain)) if pretrain else None,
        health=_pairs(_health(health)) if health else None,
        measured=_pairs(_measured(results, summary)), config=_config_text(results.get("config")),
        version=results.get("sslab_version"))


def _pairs(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in pairs if v not in (None, "", [])]


def _data(results: dict) -> dict:
    data = as_dict(results.get("data"))
    unit = str(data.get("unit") or "images")  # the data kind's unit (results.json before text: images)
    classes = [str(c) for c in as_list(data.get("classes"))]
    source = as_dict(results.get("pretrain_data"))  # pretrained on other data (--pretrain-data)
    return {"name": data.get("name"), "pairs": _pairs([
        ("dataset", data.get("name")),
        (f"training {unit}", fmt_value(data["n_train"]) if data.get("n_train") is not None else None),
        (f"test {unit}", fmt_value(data["n_test"]) if data.get("n_test") is not None else None),
        (f"validation {unit} (training {unit} held out of every labelled subset)",
         fmt_value(data["n_val"]) if data.get("n_val") else None),
        ("image shape (H × W × C)", fmt_value(data["shape"]) if data.get("shape") else None),
        ("classes", len(classes) if classes else None)]),
        "source": {"name": source.get("name"), "n": fmt_value(source.get("n_train")),
                   "unit": source.get("unit") or unit} if source else None,
        "classes": ", ".join(classes[:30]) + (f" … (+{len(classes) - 30} more)" if len(classes) > 30 else "")}


def _run_evaluations(run_evals: dict, plots: list[tuple[str, str, str]], lead: bool) -> list[dict]:
    """Label-free measures of the run, each with its lines and figure; `lead`: retrieval and zero-shot first."""
    drawn = {p[0]: p[1] for p in plots}
    out = []
    for name, rev in run_evals.items():
        rev = as_dict(rev)
        lines = [x for x in as_list(rev.get("lines")) if isinstance(x, str)]
        if not lines:
            continue
        figure = {"file": f"{name}.png", "alt": drawn[f"{name}.png"]} if f"{name}.png" in drawn else None
        out.append({"title": rev.get("title", "Run evaluation"), "lines": lines, "figure": figure,
                    "image": rev["image"] if isinstance(rev.get("image"), str) else None,
                    "lead": lead and name in LEADING})
    return sorted(out, key=lambda e: not e["lead"])


def _probe(results: dict) -> dict | None:
    probe = as_dict(results.get("probe"))
    return {"name": probe.get("name"), "n_train": fmt_value(probe.get("n_train")),
            "n_test": fmt_value(probe.get("n_test")), "classes": len(as_list(probe.get("classes")))} if probe else None


def _table(summary: list[dict]) -> dict:
    keys, fracs, cells, best = results_grid(summary)
    rows = []
    for k in keys:
        row = []
        for f in fracs:
            d = cells[k].get(f)
            row.append(None if d is None else {
                "text": spread_text(d) + (" †" if d.get("unconverged") else ""), "best": is_best(d, best),
                "train": pct_text(d["train_mean"]) if d["train_mean"] is not None else None})
        rows.append({"init": k[0], "protocol": k[1], "baseline": k[0] in BASELINE_INITS, "cells": row})
    metrics = sorted({d.get("metric") or "accuracy" for d in summary})
    what = "Test accuracy" if metrics == ["accuracy"] else "Test " + " / ".join(metrics)
    return {"fractions": [frac_label(f) for f in fracs], "rows": rows,
            "metric_caption": f"{what} in %, mean ± sample std over n seeds",
            "unconverged": any(d.get("unconverged") for d in summary), "judged": any(d.get("judged") for d in summary)}


def _plan(results: dict) -> dict | None:
    plan = as_dict(results.get("plan"))
    if not plan:
        return None
    lines = plan_lines(plan)
    timing = as_dict(results.get("timing"))
    took = f" It took {hms(timing['total_seconds'])}." if num(timing.get("total_seconds")) is not None else ""
    return {"head": lines[0] + took, "lines": [x.strip() for x in lines[1:] if not x.strip().startswith("skipped")],
            "skipped": [{"what": g["what"], "time": hms(g["seconds"]), "why": g["why"], "commands": g["commands"]}
                        for g in as_list(plan.get("skipped"))]}


def _starting_points(results: dict) -> list[str]:
    """What the foundation and adapted rows start from (a study with --from)."""
    out = []
    found = as_dict(results.get("foundation"))
    if found.get("skipped"):
        out.append(f"foundation: {found.get('path')}, not run ({found['skipped']})")
    elif found:
        params = found.get("parameters")
        out.append(f"foundation: {found.get('backbone') or found.get('path')}"
                   + (f", {params / 1e6:.1f} M parameters" if isinstance(params, (int, float)) else "")
                   + ", evaluated as it is (frozen protocols) and fine-tuned")
    adapted = as_dict(results.get("adapted"))
    if adapted.get("skipped"):
        out.append(f"adapted: not run ({adapted['skipped']})")
    elif adapted:
        out.append(f"adapted: the foundation model after continued {adapted.get('method')} pretraining on the task's "
                   f"unlabelled training data (domain-adaptive pretraining), {fmt_value(adapted.get('epochs'))} "
                   f"epochs in {fmt_value(adapted.get('seconds'))} s at learning rate {adapted.get('lr')}")
    return out


def _pretraining(pretrain: dict) -> list[tuple[str, Any]]:
    hist = as_list(pretrain.get("history"))
    last = next((p for p in reversed(hist) if isinstance(p, dict) and num(p.get("loss")) is not None), None)
    return [("method", pretrain.get("method")), ("backbone", pretrain.get("backbone")),
            ("epochs", fmt_value(pretrain["epochs"]) if pretrain.get("epochs") is not None else None),
            ("optimizer steps", fmt_value(pretrain["steps"]) if pretrain.get("steps") is not None else None),
            ("wall time", fmt_seconds(pretrain.get("seconds")) if pretrain.get("seconds") is not None else None),
            ("throughput", throughput(pretrain)), ("final loss", f"{num(last['loss']):.4g}" if last else None),
            ("weights kept", early_stop_text(pretrain.get("early_stop")))]


def _health(health: dict) -> list[tuple[str, Any]]:
    def g(key: str, fmt: str):
        return format(num(health[key]), fmt) if num(health.get(key)) is not None else None

    return [("embedding dim", health.get("dim")), ("mean per-dim std", g("std_mean", ".4g")),
            ("ideal std (1/√dim)", g("std_ideal", ".4g")), ("effective rank", g("effective_rank", ".1f"))]


def _measured(results: dict, summary: list[dict]) -> list[tuple[str, Any]]:
    data, pretrain, timing = (as_dict(results.get(k)) for k in ("data", "pretrain", "timing"))
    runs = runs_of(results)
    unit = str(data.get("unit") or "images")
    seeds = sorted({s for s in (num(r.get("seed")) for r in runs) if s is not None})
    ns = [d["n"] for d in summary]
    protocols = sorted({d["protocol"] for d in summary}, key=lambda p: display_order(p, PROTOCOL_ORDER))
    fracs = sorted({d["fraction"] for d in summary}, key=label_order)
    pre_s = timing.get("pretrain_seconds") if timing.get("pretrain_seconds") is not None else pretrain.get("seconds")
    pairs: list[tuple[str, Any]] = [
        ("evaluation runs", len(runs) if runs else None),
        ("seeds", f"{len(seeds)} ({', '.join(f'{s:g}' for s in seeds)})" if seeds else None),
        ("runs per cell (n)", (f"{min(ns)}" if min(ns) == max(ns) else f"{min(ns)}–{max(ns)}") if ns else None),
        ("protocols", ", ".join(protocols) if protocols else None),
        ("label fractions", ", ".join(frac_label(f) for f in fracs) if fracs else None),
        ("test set", f"{fmt_value(data['n_test'])} held-out {unit}" if data.get("n_test") is not None else None),
        ("total time", fmt_seconds(timing.get("total_seconds")) if timing.get("total_seconds") is not None else None),
        ("pretraining time", fmt_seconds(pre_s) if pre_s is not None else None),
        ("pretraining throughput", throughput(pretrain))]
    for k, v in timing.items():
        if k not in ("total_seconds", "pretrain_seconds") and num(v) is not None and k.endswith("seconds"):
            pairs.append((k.replace("_seconds", "").replace("_", " ") + " time", fmt_seconds(v)))
    return pairs


def _config_text(config: Any) -> str | None:
    if config in (None, {}, []):
        return None
    try:
        import yaml

        return yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip()
    except Exception:  # a value YAML cannot represent: JSON with strings for the rest
        return json.dumps(config, indent=2, sort_keys=False, default=str, ensure_ascii=False)
