"""Live progress for `jcp once` in a terminal: one line per active pull and an overall bar.

Log lines still appear, above the live block (the block is erased, the line written, the block
drawn again), so nothing a pipe would show is lost in a terminal.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from typing import TYPE_CHECKING, TextIO

from jcp.observer import Observer

if TYPE_CHECKING:
    from jcp.scheduler import Scheduler
    from jcp.sweep import Sweep

_BAR = 30


def _mb(n: int) -> str:
    return f"{n / 1e6:7.1f} MB"


class _LogStream(io.TextIOBase):
    def __init__(self, display: TerminalProgress) -> None:
        self._display = display

    def write(self, text: str) -> int:
        self._display.print_above(text)
        return len(text)


class TerminalProgress(Observer):
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._drawn = 0
        self._block: list[str] = []
        self._sweep: Sweep | None = None

    def log_stream(self) -> TextIO:
        return _LogStream(self)  # type: ignore[return-value]

    def sweep_started(self, sweep: Sweep, *, scheduler: Scheduler) -> None:
        self._sweep = sweep

    def _erase(self) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        for line in self._block:
            self.out.write(line + "\n")
        self._drawn = len(self._block)
        self.out.flush()

    def print_above(self, text: str) -> None:
        self._erase()
        self.out.write(text)
        self._draw()

    def render(self, scheduler: Scheduler) -> list[str]:
        width = max(
            40, os.get_terminal_size(self.out.fileno()).columns if self.out.isatty() else 100
        )
        lines = []
        active = [s for s in scheduler.states.values() if s.status == "pulling" and s.progress]
        for state in sorted(active, key=lambda s: str(s.target.image)):
            assert state.progress is not None
            cur, tot = state.progress.current, state.progress.total
            pct = f"{100 * cur // tot:3d}%" if tot else "   "
            name = str(state.target.image)
            room = width - 30
            if len(name) > room:
                name = "…" + name[-(room - 1) :]
            lines.append(f"  ↓ {name:<{room}} {_mb(cur)} {pct}")
        sweep = self._sweep
        if sweep is not None:
            done = len(sweep.results)
            total = done + len(sweep.remaining)
            filled = _BAR * done // total if total else _BAR
            got = sum(r.bytes for r in sweep.results) + sum(
                s.progress.current for s in active if s.progress
            )
            failed = len(sweep.failed)
            lines.append(
                f"[{'#' * filled}{'-' * (_BAR - filled)}] {done}/{total} images"
                f"{f', {failed} failed' if failed else ''}, {_mb(got).strip()}"
            )
        return lines

    async def run(self, scheduler: Scheduler) -> None:
        try:
            while True:
                self._erase()
                self._block = self.render(scheduler)
                self._draw()
                await asyncio.sleep(0.2)
        finally:
            self._erase()
            self._block = []
            self.out.flush()


def wants_display(mode: str, log_format: str) -> TerminalProgress | None:
    out = sys.stderr
    if mode == "never" or (mode == "auto" and (log_format == "json" or not out.isatty())):
        return None
    return TerminalProgress(out)
