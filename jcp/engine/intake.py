"""The pullers' queue: images in the order they should start, and retries that wait off-queue.

One priority queue feeds every puller: images a reload adds go ahead of the rest of a running
sweep (so they start as soon as a slot is free), and a retry waits on a timer, not in a puller,
so a waiting image never holds a slot another image could use.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from enum import IntEnum

from jcp.engine.state import Sweep
from jcp.model.config import Target


class Priority(IntEnum):
    NEW = 0
    """Added by a reload or a fixed secret: ahead of the rest of the sweep."""
    SWEEP = 1


@dataclass(frozen=True)
class Item:
    """One image to take in one sweep, and which attempt this is (1: the first)."""

    target: Target
    sweep: Sweep
    attempt: int


class Intake:
    def __init__(self) -> None:
        self._queue: asyncio.PriorityQueue[tuple[int, int, Item]] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._timers: set[asyncio.TimerHandle] = set()

    def put(self, priority: Priority, item: Item) -> None:
        self._queue.put_nowait((priority, next(self._seq), item))

    async def get(self) -> Item:
        return (await self._queue.get())[2]

    def later(self, delay: float, priority: Priority, item: Item) -> None:
        """Queue ITEM after DELAY seconds without holding a puller meanwhile."""

        def requeue() -> None:
            self._timers.discard(handle)
            self.put(priority, item)

        handle = asyncio.get_running_loop().call_later(delay, requeue)
        self._timers.add(handle)

    def cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
