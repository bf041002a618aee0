"""Progress of long command-line work (gc, cleanup, export, import, backup): counts and bytes as it
goes, a progress bar (rich) on a terminal, else a plain line at most once a second, always on
standard error so that standard output keeps only a command's result (and its --json summary)."""

from __future__ import annotations

import sys
import time
from typing import IO, Any


class Progress:
    """Counts and bytes as work goes: a progress bar on a terminal, else a plain line at most once a
    second (and one at the end of each phase). Everything goes to standard error."""

    def __init__(self, command: str, stream: IO[str] | None = None, interval: float = 1.0) -> None:
        self.command = command
        self.stream = stream or sys.stderr
        self.interval = interval
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar: Any = None
        self._task: Any = None
        self.phase = ""
        self.items = self.total_items = 0
        self.bytes = self.total_bytes = 0
        self._started = self._last = time.monotonic()

    def start(self, phase: str, total_items: int, total_bytes: int) -> None:
        self.finish()
        self.phase, self.items, self.bytes = phase, 0, 0
        self.total_items, self.total_bytes = total_items, total_bytes
        self._started = self._last = time.monotonic()
        if self.tty:
            from rich import progress as bar
            from rich.console import Console

            self._bar = bar.Progress(
                bar.TextColumn("{task.description}"),
                bar.BarColumn(),
                bar.DownloadColumn(binary_units=True),
                bar.TransferSpeedColumn(),
                bar.TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self._label(), total=max(total_bytes, 1))

    def advance(self, items: int = 0, nbytes: int = 0) -> None:
        self.items += items
        self.bytes += nbytes
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(self._task, completed=self.bytes, description=self._label())
        elif now - self._last >= self.interval:
            self._last = now
            self._line()

    def finish(self) -> None:
        if not self.phase:
            return
        if self._bar is not None:
            self._bar.update(
                self._task, completed=max(self.bytes, self.total_bytes, 1), description=self._label()
            )
            self._bar.stop()
            self._bar = None
        else:
            self._line()
        self.phase = ""

    def _label(self) -> str:
        return f"{self.command} {self.phase} {self.items}/{self.total_items}"

    def _line(self) -> None:
        text = f"{self.command}: {self.phase} {self.items}/{self.total_items}"
        if self.total_bytes:
            elapsed = max(time.monotonic() - self._started, 1e-9)
            text += (
                f", {human(self.bytes)}/{human(self.total_bytes)} ({100 * self.bytes // self.total_bytes}%)"
                f", {human(self.bytes / elapsed)}/s"
            )
        print(text, file=self.stream, flush=True)


def human(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover - the loop returns first
