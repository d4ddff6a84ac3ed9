"""The study's results as a rich table on the terminal."""
from __future__ import annotations

import sys

from sslab.report.format import is_best, results_grid
from sslab.studies.summary import as_dict, as_list, frac_label, spread_text, summarize


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
        if not as_dict(results).get("run_evaluations"):  # (an image-text study's retrieval is its evaluation)
            console.print("[yellow]No evaluation runs in results.[/yellow]")
        return
    keys, fracs, cells, best = results_grid(summary)
    data = as_dict(as_dict(results).get("data"))
    title = "Test accuracy (%), mean ± std over seeds"
    probe = as_dict(as_dict(results).get("probe"))
    if probe.get("name"):  # an image-text study: the rows are its image tower's probes on a labelled image set
        title += f" — the image tower on {probe['name']} (probe data)"
    elif data.get("name"):
        title += f" — {data['name']}"
    table = Table(title=escape(title), title_justify="left")
    table.add_column("init", style="cyan", no_wrap=True)
    table.add_column("protocol", no_wrap=True)
    for f in fracs:
        table.add_column(f"{frac_label(f)} labels", justify="right", no_wrap=True)
    for k in keys:
        row = [Text(k[0]), Text(k[1])]
        for f in fracs:
            d = cells[k].get(f)
            if d is None:
                row.append(Text("–"))
                continue
            txt = spread_text(d, compact=True) + (" †" if d.get("unconverged") else "")
            row.append(Text(txt, style="bold" if is_best(d, best) else ""))
        table.add_row(*row)
    console.print(table)
    if any(d.get("unconverged") for d in summary):
        console.print("† not converged: some runs stopped at their cap while validation accuracy was still rising")
    for g in as_list(as_dict(results.get("plan")).get("skipped")):
        console.print(escape(f"skipped ({g['why']}): {g['what']}: {g['commands'][0]}"
                             + (" (likewise --seed-list for each other seed)" if len(set(g["commands"])) > 1 else "")),
                      soft_wrap=True)
