"""One progress line for every long command: done/total, rate, time left.

On a terminal the line is redrawn in place (``rich.progress``, which Keras already
brings); written to a file or a pipe (CI, a job's log) it is a plain line every
``interval`` seconds and one at the end, so a log reads as a timeline::

    with Progress(1000, "build", unit="items") as bar:
        for ...:
            bar.update(done)          # or bar.advance(1)

The build, the evaluation, the Beam evaluation, prediction over several inputs and the
int8 export all show their progress through it. Beam-free and TensorFlow-free.
"""
from __future__ import annotations

import sys
import threading
import time

from pipeline import cli


class Progress:
    """A progress line on stderr; ``enabled=False`` shows nothing."""

    def __init__(self, total: int | None, label: str, *, unit: str = "items",
                 already: int = 0, enabled: bool = True, interval: float = 10.0,
                 stream=None):
        self.total, self.label, self.unit = total, label, unit
        self.already = already
        self.enabled = enabled
        self.interval = interval
        self.stream = stream or sys.stderr
        self.done = already
        self.start = time.monotonic()
        self._printed = -1.0
        self._shown = -1
        self._lock = threading.Lock()
        self._live = None
        self._task = None

    # ------------------------------------------------------------------ use
    def __enter__(self) -> "Progress":
        if self.enabled and self._terminal():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar,
                                       TaskProgressColumn, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            self._live = Bar(TextColumn(f"[{self.label}]"), BarColumn(),
                             MofNCompleteColumn(), TextColumn(self.unit),
                             TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
                             TimeElapsedColumn(), TimeRemainingColumn(),
                             console=Console(file=self.stream), transient=False)
            self._task = self._live.add_task(self.label, total=self.total,
                                             completed=self.done, rate="")
            self._live.start()
        return self

    def update(self, done: int, total: int | None = None) -> None:
        """Sets the count of things done (``already`` included) and, when it is learnt on
        the way (``total``), the count there is to do."""
        with self._lock:
            self.done = done
            if total:
                self.total = total
            if not self.enabled:
                return
            if self._live is not None:
                self._live.update(self._task, completed=done, total=self.total,
                                  rate=self._rate_text())
                return
            now = time.monotonic()
            if now - self._printed >= self.interval and done != self._shown:
                self._print(now)

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def __exit__(self, exc_type, *exc):
        with self._lock:
            if self._live is not None:
                self._live.update(self._task, completed=self.done, rate=self._rate_text())
                self._live.stop()
            elif self.enabled and exc_type is None and self.done != self._shown:
                self._print(time.monotonic())   # the last count (a stop says so itself)
        return False

    # ------------------------------------------------------------------ text
    def _terminal(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def _rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return (self.done - self.already) / elapsed if elapsed > 0 else 0.0

    def _rate_text(self) -> str:
        return f"{self._rate():.1f} {self.unit}/s"

    def line(self) -> str:
        """``[label] done/total unit (pct) · rate · elapsed · ETA``."""
        elapsed = time.monotonic() - self.start
        rate = self._rate()
        if self.total:
            pct = f" ({100.0 * self.done / self.total:.1f}%)"
            left = (self.total - self.done) / rate if rate > 0 else None
            eta = cli.format_seconds(left) if left is not None else "?"
            of = f"/{self.total}"
        else:
            pct, eta, of = "", "?", ""
        return (f"[{self.label}] {self.done}{of} {self.unit}{pct} · {rate:.1f} {self.unit}/s · "
                f"elapsed {cli.format_seconds(elapsed)} · ETA {eta}")

    def _print(self, now: float) -> None:
        print(self.line(), file=self.stream, flush=True)
        self._printed, self._shown = now, self.done
