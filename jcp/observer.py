"""Hooks the scheduler calls as things happen; metrics and displays subclass this.

A no-op base keeps the scheduler free of any knowledge of Prometheus or terminals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jcp.config import Target
    from jcp.daemon import DaemonInfo
    from jcp.scheduler import Scheduler
    from jcp.sweep import PullResult, Sweep


class Observer:
    def config_reloaded(self, *, ok: bool, scheduler: Scheduler) -> None:
        """A config was applied (ok) or rejected."""

    def daemon_seen(self, info: DaemonInfo, *, scheduler: Scheduler) -> None:
        """The daemon answered."""

    def daemon_lost(self) -> None:
        """The daemon did not answer."""

    def disk_checked(self, *, scheduler: Scheduler) -> None:
        """The disk guard read the free space (scheduler.disk_reading)."""

    def sweep_started(self, sweep: Sweep, *, scheduler: Scheduler) -> None:
        """A sweep (or reload sweep) began."""

    def sweep_finished(self, sweep: Sweep, *, scheduler: Scheduler) -> None:
        """A sweep (or reload sweep) ended."""

    def pull_started(self, target: Target, *, scheduler: Scheduler) -> None:
        """A pull attempt began."""

    def pull_finished(self, result: PullResult, *, scheduler: Scheduler) -> None:
        """An image's outcome in a sweep is final."""


class Observers(Observer):
    """Several observers as one."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    def config_reloaded(self, *, ok: bool, scheduler: Scheduler) -> None:
        for o in self.observers:
            o.config_reloaded(ok=ok, scheduler=scheduler)

    def daemon_seen(self, info: DaemonInfo, *, scheduler: Scheduler) -> None:
        for o in self.observers:
            o.daemon_seen(info, scheduler=scheduler)

    def daemon_lost(self) -> None:
        for o in self.observers:
            o.daemon_lost()

    def disk_checked(self, *, scheduler: Scheduler) -> None:
        for o in self.observers:
            o.disk_checked(scheduler=scheduler)

    def sweep_started(self, sweep: Sweep, *, scheduler: Scheduler) -> None:
        for o in self.observers:
            o.sweep_started(sweep, scheduler=scheduler)

    def sweep_finished(self, sweep: Sweep, *, scheduler: Scheduler) -> None:
        for o in self.observers:
            o.sweep_finished(sweep, scheduler=scheduler)

    def pull_started(self, target: Target, *, scheduler: Scheduler) -> None:
        for o in self.observers:
            o.pull_started(target, scheduler=scheduler)

    def pull_finished(self, result: PullResult, *, scheduler: Scheduler) -> None:
        for o in self.observers:
            o.pull_finished(result, scheduler=scheduler)
