"""The progress line of a sweep: visits done of the total, the cell being measured, time left."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from bpttbench.bench.fmt import seconds as fmt_seconds
from bpttbench.bench.grid import Cell


class Progress:
    """One status line on stderr: visits done/total, the current cell, time left.

    On a terminal the line is rewritten in place; in a log (not a terminal) a
    line is written at most every ``log_every`` seconds.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        enabled: bool = True,
        log_every: float = 10.0,
    ):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.measured = 0
        self.spent = 0.0
        self.log_every = log_every
        self._last_log = -math.inf
        self._width = 0

    def eta(self) -> float:
        if self.measured == 0:
            return float("nan")
        return self.spent / self.measured * (self.total - self.done)

    def start(self, cell: Cell, note: str = "") -> None:
        if not self.enabled:
            return
        pct = 100.0 * self.done / max(self.total, 1)
        bar_n = 20
        filled = int(bar_n * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (bar_n - filled)
        line = (
            f"[{bar}] {self.done}/{self.total} {pct:3.0f}%  left {fmt_seconds(self.eta())}  "
            f"{cell.label()}" + (f" {note}" if note else "")
        )
        if self.tty:
            pad = max(self._width - len(line), 0)
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            t = time.monotonic()
            if t - self._last_log < self.log_every:
                return
            self._last_log = t
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, seconds: float | None) -> None:
        self.done += 1
        if seconds is not None:
            self.measured += 1
            self.spent += seconds

    def say(self, message: str) -> None:
        """A line of its own (a skipped cell, an error), not overwritten by the bar."""
        if self.tty:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(message + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
