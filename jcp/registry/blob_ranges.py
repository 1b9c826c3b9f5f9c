"""The reorder window of the blob fetch (blobs.py): byte ranges of a blob fetched at once,
written into the sink in order, with the bytes held in between bounded.

A range that is not being written (not the head) reserves its whole length before it is asked
for, so it never waits for room while it holds a connection: the head, which needs a
connection to progress, always finds one freed by ranges that run to their end. The head
streams through at most HEAD_BUFFER bytes (plus one PIECE) it has not reserved.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

PIECE = 256 * 1024
"""Bytes per read from a registry's answer."""
WRITE = 1024 * 1024
"""Bytes per write into the sink: one Content.Write message (content_store.MESSAGE)."""
HEAD_BUFFER = 2 * 1024 * 1024
"""Bytes of the range being written that may wait for the sink."""


class Sink(Protocol):
    async def write(self, data: bytes) -> None: ...


@dataclass(eq=False)
class Range:
    """Bytes [start, end) of one blob; `pos` is the next byte to receive."""

    start: int
    end: int
    pos: int = 0
    head: bool = False
    pieces: list[bytes] = field(default_factory=list)
    buffered: int = 0
    reserved: int = 0

    def __post_init__(self) -> None:
        self.pos = self.start

    @property
    def complete(self) -> bool:
        return self.pos >= self.end


def plan(start: int, size: int, chunk: int) -> list[Range]:
    """[start, size) in ranges of CHUNK bytes; the first is the head from the outset."""
    ranges = [Range(a, min(a + chunk, size)) for a in range(start, size, chunk)]
    if ranges:
        ranges[0].head = True
    return ranges


class Window:
    """The bytes held between the registry and the sink, across every blob of a fetcher.

    Ranges waiting for room queue in order and are let in first come, first served, as room is
    freed, not woken all at once on every piece received (a 100 MB blob's ranges all wait here
    from the start: waking each of them per piece cost a tenth of the fetch's CPU)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        """Bytes reserved by ranges that are not the head."""
        self.held = 0
        """Bytes received and not yet written."""
        self.peak = 0
        self._cond = asyncio.Condition()
        self._queue: deque[tuple[Range, asyncio.Future[None]]] = deque()

    async def reserve(self, r: Range) -> None:
        """Wait for room for R's bytes (none needed once R is the head)."""
        if r.head or (not self._queue and self._fits(r)):
            self._take(r)
            return
        waiter = asyncio.get_running_loop().create_future()
        self._queue.append((r, waiter))
        try:
            await waiter
        finally:
            if not waiter.done() or waiter.cancelled():  # cancelled while waiting: out of
                waiter.cancel()  # the queue, and those behind it looked at again
                self._admit()

    def _fits(self, r: Range) -> bool:
        return r.head or self.used + (r.end - r.start) <= self.limit

    def _take(self, r: Range) -> None:
        if not r.head:
            r.reserved = r.end - r.start
            self.used += r.reserved

    def _admit(self) -> None:
        """Let in, in order, the waiting ranges that fit, and every head wherever it waits."""
        for entry in [e for e in self._queue if e[0].head or e[1].done()]:
            self._queue.remove(entry)
            if not entry[1].done():
                entry[1].set_result(None)
        while self._queue and self._fits(self._queue[0][0]):
            r, waiter = self._queue.popleft()
            self._take(r)
            waiter.set_result(None)

    async def put(self, r: Range, piece: bytes) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: not r.head or r.buffered < HEAD_BUFFER)
            r.pieces.append(piece)
            r.buffered += len(piece)
            r.pos += len(piece)
            self.held += len(piece)
            self.peak = max(self.peak, self.held)
            self._cond.notify_all()

    async def forget(self, ranges: Sequence[Range]) -> None:
        """Give back what RANGES still hold or reserve (a fetch cut off or failed)."""
        async with self._cond:
            for r in ranges:
                self.used -= r.reserved
                self.held -= r.buffered
                r.reserved = r.buffered = 0
                r.pieces = []
            self._cond.notify_all()
        self._admit()

    async def wake(self) -> None:
        async with self._cond:
            self._cond.notify_all()
        self._admit()

    async def drain(
        self,
        ranges: Sequence[Range],
        sink: Sink,
        failed: Callable[[], BaseException | None],
    ) -> None:
        """Write RANGES into SINK in order, as their bytes arrive; raises what FAILED says as
        soon as it says it (a range's fetch gave up)."""
        for r in ranges:
            async with self._cond:
                r.head = True
                self._cond.notify_all()
            self._admit()
            while True:
                async with self._cond:
                    await self._cond.wait_for(
                        lambda r=r: bool(r.pieces) or r.complete or failed() is not None  # type: ignore[misc]
                    )
                    error = failed()
                    if error is not None:
                        raise error
                    batch, r.pieces = r.pieces, []
                if not batch:
                    break
                for data in _grouped(batch):
                    await sink.write(data)
                    async with self._cond:
                        r.buffered -= len(data)
                        self.held -= len(data)
                        freed = min(r.reserved, len(data))
                        r.reserved -= freed
                        self.used -= freed
                        self._cond.notify_all()
                    self._admit()
            async with self._cond:  # a range cut short (ranges unsupported) frees the rest
                self.used -= r.reserved
                r.reserved = 0
                self._cond.notify_all()
            self._admit()


def _grouped(pieces: list[bytes]) -> list[bytes]:
    """PIECES joined into writes of about WRITE bytes (one copy, not one per piece)."""
    out: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for piece in pieces:
        if group and size + len(piece) > WRITE:  # never over one message: no split, no copy
            out.append(group[0] if len(group) == 1 else b"".join(group))
            group, size = [], 0
        group.append(piece)
        size += len(piece)
    if group:
        out.append(group[0] if len(group) == 1 else b"".join(group))
    return out
