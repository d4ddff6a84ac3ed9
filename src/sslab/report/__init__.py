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

import json
from pathlib import Path

from sslab.atomic import atomic_write
from sslab.errors import SslabError
from sslab.report.figures import draw_figures
from sslab.report.html import render_html
from sslab.report.terminal import print_summary
from sslab.studies.summary import summarize

__all__ = ["write_report", "print_summary"]


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

    summary = summarize(results)
    plots = draw_figures(results, summary, run_dir / "plots")
    html_path = run_dir / "report.html"
    atomic_write(html_path, render_html(results, summary, plots).encode("utf-8"))
    return html_path
