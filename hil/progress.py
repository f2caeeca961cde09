"""A progress bar for long lab work (a table build, a nightly suite): redrawn in place on a
terminal, one line per finished item otherwise (so logs and CI keep every figure). Bars go to
stderr, so a command's `--json` output on stdout stays clean while its progress still shows."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def progress_printer(as_json: bool) -> Callable[[str], None]:
    """A command's progress lines: on stdout, or on stderr when stdout carries its JSON."""
    stream = sys.stderr if as_json else sys.stdout
    return lambda line: print(line, file=stream, flush=True)


@dataclass
class ProgressBar:
    """`advance(message)` once per finished item of `total`."""

    total: int
    label: str = ""
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    interactive: bool | None = None  # None: redraw in place only when the stream is a terminal
    quiet_steps: int = 0  # off a terminal, print only this many lines over the whole run (0: every item)
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.interactive is None:
            self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())

    def eta_seconds(self) -> float | None:
        if self.done == 0 or self.done >= self.total:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed / self.done * (self.total - self.done)

    def render(self, message: str = "") -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(round(fraction * BAR_WIDTH))
        eta = self.eta_seconds()
        timing = (f"eta {format_duration(eta)}" if eta is not None
                  else f"took {format_duration(time.monotonic() - self.started)}")
        head = f"{self.label} " if self.label else ""
        return (f"{head}[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.done}/{self.total} "
                f"{fraction:4.0%} {timing}" + (f"  {message}" if message else ""))

    def advance(self, message: str = "", to: int | None = None) -> None:
        """One more item finished, or (`to`) as many as `to` in all."""
        before = self.done
        self.done = self.done + 1 if to is None else to
        line = self.render(message)
        if self.interactive:
            self.stream.write("\r\033[K" + line + ("\n" if self.done >= self.total else ""))
        elif self._worth_a_line(before):
            self.stream.write(line + "\n")
        self.stream.flush()

    def _worth_a_line(self, before: int) -> bool:
        """Off a terminal, whether the items since `before` crossed one of `quiet_steps` even steps
        (always the last)."""
        if not self.quiet_steps or self.done >= self.total:
            return True
        return self.done * self.quiet_steps // self.total != before * self.quiet_steps // self.total
