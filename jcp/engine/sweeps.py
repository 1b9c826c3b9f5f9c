"""Sweeps: their numbering, which one is running, and when each ends.

A full sweep queues every selected image; a reload's additions join the running sweep (or a
reload sweep of their own when none runs), ahead of the rest. A sweep ends when its last image
has a result or has left the config; its end is logged and counted once.
"""

from __future__ import annotations

import itertools

from jcp.engine import report
from jcp.engine.events import Events
from jcp.engine.intake import Intake, Item, Priority
from jcp.engine.state import Revision, Sweep, SweepKind
from jcp.model.config import Target, TargetKey
from jcp.model.results import PullResult


class Sweeps:
    def __init__(self, intake: Intake, events: Events, rev: Revision) -> None:
        self._intake = intake
        self._events = events
        self._rev = rev
        self._numbers = itertools.count(1)
        self.current: Sweep | None = None
        self.last_full: Sweep | None = None

    async def idle(self) -> None:
        """Until no sweep runs (a reload sweep still in progress ends first)."""
        while self.current is not None:
            await self.current.done.wait()

    def start_full(self, targets: list[Target], skipped: int) -> Sweep:
        sweep = self._start(SweepKind.SWEEP, targets)
        sweep.skipped = skipped
        if not targets:
            sweep.close()
            self._finish(sweep)
        return sweep

    def add_new(self, targets: list[Target]) -> None:
        """Queue TARGETS ahead of the running sweep (or in a reload sweep of their own)."""
        sweep = self.current or self._start(SweepKind.RELOAD, [])
        for target in targets:
            sweep.add(target.key)
            self._intake.put(Priority.NEW, Item(target, sweep, 1))

    def drop(self, sweep: Sweep, key: TargetKey) -> None:
        if sweep.drop(key):
            self._finish(sweep)

    def drop_everywhere(self, key: TargetKey) -> None:
        """KEY left the config: the running sweep no longer waits for it."""
        if self.current is not None:
            self.drop(self.current, key)

    def record(self, sweep: Sweep, key: TargetKey, result: PullResult) -> None:
        if sweep.record(key, result):
            self._finish(sweep)

    def _start(self, kind: SweepKind, targets: list[Target]) -> Sweep:
        sweep = Sweep(
            number=next(self._numbers), kind=kind, remaining={t.key for t in targets}, rev=self._rev
        )
        self.current = sweep
        self._events.sweep_started(sweep.view())
        for target in targets:
            self._intake.put(Priority.SWEEP, Item(target, sweep, 1))
        return sweep

    def _finish(self, sweep: Sweep) -> None:
        if self.current is sweep:
            self.current = None
        if sweep.kind == SweepKind.SWEEP:
            self.last_full = sweep
        self._rev.bump()
        report.sweep_finished(sweep)
        self._events.sweep_finished(sweep.view())
