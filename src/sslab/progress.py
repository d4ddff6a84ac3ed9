"""Progress with an ETA for long work: a rich bar on a terminal, and a plain line every few seconds when the output
is a log file (so a logged run is never silent for minutes)."""
from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("sslab")
PLAIN_EVERY = 10.0  # seconds between plain progress lines


def hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """`update(fraction, text)`; `message(line)` prints one warning line above the bar (or logs it)."""

    def __init__(self, label: str, enabled: bool = True, stream=None, ends_by: float | None = None):
        """`ends_by`: when the work will have ended at the latest (a time limit's deadline, time.time() clock):
        the ETA shown is never later than it."""
        self.label, self.enabled, self.health, self.ends_by = label, enabled, "ok", ends_by
        self.stream = stream or sys.stdout  # stderr is kept for the one `error:` line of a failed command
        self.bar = None
        self.t0 = time.time()
        self.last_plain = -PLAIN_EVERY
        if enabled and self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn, \
                TimeRemainingColumn

            self.bar = RichProgress(TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                    TextColumn("{task.fields[text]}"), console=Console(file=self.stream),
                                    transient=False)
            self.task = self.bar.add_task(label, total=1000, text="")
            self.bar.start()

    def update(self, fraction: float, text: str = "") -> None:
        if not self.enabled:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        elapsed = time.time() - self.t0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        if self.ends_by is not None:
            eta = min(eta, max(0.0, self.ends_by - time.time())) if eta == eta else max(0.0, self.ends_by - time.time())
        if self.bar is not None:
            if self.ends_by is not None:
                text = f"done within {hms(max(0.0, self.ends_by - time.time()))} | {text}"
            self.bar.update(self.task, completed=int(fraction * 1000), text=text)
            return
        if elapsed - self.last_plain >= PLAIN_EVERY or fraction >= 1.0:
            self.last_plain = elapsed
            eta_text = hms(eta) if eta == eta else "?"
            print(f"{self.label} {fraction:4.0%} | {hms(elapsed)} elapsed, eta {eta_text} | {text}",
                  file=self.stream, flush=True)

    def message(self, text: str) -> None:
        """One warning line: printed above the bar when it is shown, else logged (logger 'sslab')."""
        if self.bar is not None:
            self.bar.console.print(f"[yellow]warning:[/yellow] {text}")
        else:
            log.warning(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
