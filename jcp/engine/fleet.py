"""The fleet's pull budget, as the engine sees it: one slot per node while it pulls upstream.

At most K nodes of a cluster pull from upstream at once (`--fleet-parallelism`); the slots
live in the Kubernetes API (`jcp.kube.fleet`), the engine only holds one while any of its pulls
runs. A steady sweep (one HEAD per image, no pull) never asks for a slot. The slot is kept for
LINGER seconds after the last pull ends, so the pulls of one sweep (and a retry) share one
claim instead of queueing for the fleet between images.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

LINGER = 2.0
"""Seconds the slot is kept after the node's last pull ends."""


class FleetSlot(Protocol):
    """A node's claim on the fleet's pull budget (one of K slots, cluster-wide)."""

    async def acquire(self) -> None:
        """Return once this node holds a slot (may wait; never raises: on API trouble it
        gives up after a bounded wait, says so once, and returns as if granted)."""
        ...

    async def release(self) -> None:
        """Give the slot back (never raises)."""
        ...

    def waiting(self) -> str | None:
        """While acquire() waits: what /status says; None otherwise."""
        ...


class NoBudget:
    """No fleet budget (the default): every node pulls when it likes."""

    async def acquire(self) -> None:
        return

    async def release(self) -> None:
        return

    def waiting(self) -> str | None:
        return None


class FleetHold:
    """The node's slot, held while any pull runs (reference counted)."""

    def __init__(
        self, slot: FleetSlot, *, exempt: frozenset[str] = frozenset(), linger: float = LINGER
    ) -> None:
        self.slot = slot
        self.exempt = exempt
        """Registry hosts whose pulls need no slot: a mirror in the cluster serves them."""
        self._linger = linger
        self._users = 0
        self._held = False
        self._lock = asyncio.Lock()
        self._release: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def held(self) -> bool:
        return self._held

    @contextlib.asynccontextmanager
    async def pulling(self, registry: str) -> AsyncIterator[None]:
        """For the length of one pull from REGISTRY (upstream, unless it is exempt)."""
        if registry in self.exempt:
            yield
            return
        self._users += 1
        if self._release is not None:
            self._release.cancel()
            self._release = None
        try:
            async with self._lock:  # one acquire for all the pulls waiting for it
                if not self._held:
                    await self.slot.acquire()
                    self._held = True
            yield
        finally:
            self._users -= 1
            if self._users == 0 and self._held:
                loop = asyncio.get_running_loop()
                self._release = loop.call_later(self._linger, self._start_release)

    def _start_release(self) -> None:
        self._release = None
        if self._users == 0 and self._held:
            self._held = False
            task = asyncio.get_running_loop().create_task(self.slot.release())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """At exit: give the slot back now, not after the linger."""
        if self._release is not None:
            self._release.cancel()
            self._release = None
        if self._held:
            self._held = False
            await self.slot.release()
