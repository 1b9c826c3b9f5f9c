"""Things that happen, for counters: metrics subclass this; no observer sees the engine itself.

State (what is cached, what is failing, the disk, the runtime) is read from the `Snapshot`;
these hooks carry only what a snapshot cannot: that something happened, once.
"""

from __future__ import annotations

from jcp.engine.state import SweepView
from jcp.model.results import PullResult
from jcp.runtime.base import RuntimeInfo


class Events:
    def config_loaded(self, *, ok: bool) -> None:
        """A config was applied (ok) or rejected."""

    def runtime_seen(self, info: RuntimeInfo) -> None:
        """The runtime answered."""

    def runtime_lost(self) -> None:
        """The runtime did not answer."""

    def sweep_started(self, sweep: SweepView) -> None:
        """A sweep (or reload sweep) began."""

    def sweep_finished(self, sweep: SweepView) -> None:
        """A sweep (or reload sweep) ended."""

    def pull_finished(self, result: PullResult) -> None:
        """An image's outcome in a sweep is final."""

    def rate_limited(self, registry: str, pause: float) -> None:
        """A registry answered 'too many requests'; its pulls pause for PAUSE seconds."""

    def evicted(self, image: str) -> None:
        """An image jcp had cached was found gone from the runtime."""

    def tag_moved(self, image: str) -> None:
        """The registry serves another digest for a tag jcp holds: it will be pulled."""


class Fanout(Events):
    """Several event sinks as one."""

    def __init__(self, *sinks: Events) -> None:
        self.sinks = list(sinks)

    def add(self, sink: Events) -> None:
        """One more sink (the node lifecycle's followers join after the engine is built)."""
        self.sinks.append(sink)

    def config_loaded(self, *, ok: bool) -> None:
        for s in self.sinks:
            s.config_loaded(ok=ok)

    def runtime_seen(self, info: RuntimeInfo) -> None:
        for s in self.sinks:
            s.runtime_seen(info)

    def runtime_lost(self) -> None:
        for s in self.sinks:
            s.runtime_lost()

    def sweep_started(self, sweep: SweepView) -> None:
        for s in self.sinks:
            s.sweep_started(sweep)

    def sweep_finished(self, sweep: SweepView) -> None:
        for s in self.sinks:
            s.sweep_finished(sweep)

    def pull_finished(self, result: PullResult) -> None:
        for s in self.sinks:
            s.pull_finished(result)

    def rate_limited(self, registry: str, pause: float) -> None:
        for s in self.sinks:
            s.rate_limited(registry, pause)

    def evicted(self, image: str) -> None:
        for s in self.sinks:
            s.evicted(image)

    def tag_moved(self, image: str) -> None:
        for s in self.sinks:
            s.tag_moved(image)
