"""Live progress for `jcp once` in a terminal: one line per active pull and an overall bar.

Log lines still appear, above the live block (the block is erased, the line written, the block
drawn again), so nothing a pipe would show is lost in a terminal. Every line is cut to the
terminal's width, so a narrow terminal never wraps a line and leaves a stale copy behind.
The display reads only the engine's snapshot.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Callable
from typing import TextIO

from jcp.engine.state import Snapshot

_BAR = 30


def _mb(n: int) -> str:
    return f"{n / 1e6:7.1f} MB"


def _fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"


class _LogStream(io.TextIOBase):
    def __init__(self, display: TerminalProgress) -> None:
        self._display = display

    def write(self, text: str) -> int:
        self._display.print_above(text)
        return len(text)


class TerminalProgress:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._drawn = 0
        self._block: list[str] = []

    def log_stream(self) -> TextIO:
        return _LogStream(self)  # type: ignore[return-value]

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

    def width(self) -> int:
        if self.out.isatty():
            try:
                return max(20, os.get_terminal_size(self.out.fileno()).columns - 1)
            except OSError:
                pass
        return 100

    def render(self, snap: Snapshot, width: int) -> list[str]:
        lines = []
        bars = snap.runtime is None or snap.runtime.reports_progress
        active = sorted(
            (v for v in snap.images if v.state == "pulling"), key=lambda v: str(v.image)
        )
        got = 0
        for view in active:
            cur = view.progress.current if view.progress is not None else 0
            tot = view.progress.total if view.progress is not None else 0
            got += cur
            if bars:
                tail = f"{_mb(cur)} {100 * cur // tot:3d}%" if tot else f"{_mb(cur)}    "
            else:  # the CRI tells nothing until the end: the size from the manifest, if known
                tail = f"pulling {_mb(tot).strip()}" if tot else "pulling"
            room = max(8, width - len(tail) - 5)
            name = str(view.image)
            if len(name) > room:
                name = "…" + name[-(room - 1) :]
            lines.append(_fit(f"  ↓ {name:<{room}} {tail}", width))
        sweep = snap.sweep or snap.last_full_sweep
        if sweep is not None:
            total = sweep.done + sweep.remaining
            filled = _BAR * sweep.done // total if total else _BAR
            failed = f", {sweep.failed} failed" if sweep.failed else ""
            lines.append(
                _fit(
                    f"[{'#' * filled}{'-' * (_BAR - filled)}] {sweep.done}/{total} images"
                    f"{failed}, {_mb(sweep.bytes + got).strip()}",
                    width,
                )
            )
        return lines

    async def run(self, snapshot: Callable[[], Snapshot]) -> None:
        try:
            while True:
                self._erase()
                self._block = self.render(snapshot(), self.width())
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
