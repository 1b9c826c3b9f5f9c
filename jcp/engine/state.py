"""Live state of sweeps and images (engine-private), and the read model published from it.

The engine mutates `ImageState` and `Sweep`; everybody else (probes, /status, metrics, the
progress display, the node signal, purge, pins) reads only a `Snapshot`: an immutable picture
of the whole agent. Every mutation bumps a shared `Revision`, so the Snapshot is rebuilt only
when something changed (`readmodel.py`), never per read, and readers can cache what they render
from it by its identity.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jcp.model.config import Config, Target, TargetKey
from jcp.model.refs import ImageRef
from jcp.model.results import Outcome, PullResult
from jcp.runtime.base import FsUsage, PullProgress, RuntimeInfo


class Status(StrEnum):
    """Where one selected image stands (also /status's `state`)."""

    PENDING = "pending"
    PULLING = "pulling"
    RETRYING = "retrying"
    CACHED = "cached"
    FAILED = "failed"


class SweepKind(StrEnum):
    SWEEP = "sweep"
    """A pass over every selected image."""
    RELOAD = "reload"
    """A pass over the images a reload (or a fixed secret) added."""


class Revision:
    """A counter every mutation of the live state bumps: the read model's cache key."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def bump(self) -> None:
        self.n += 1


@dataclass(eq=False)
class ImageState:
    """Live state of one selected image, kept across sweeps. Assigning any field bumps the
    revision and drops the cached view, so the read model never misses a change."""

    target: Target
    rev: Revision = field(default_factory=Revision, repr=False)
    status: Status = Status.PENDING
    progress: PullProgress | None = None
    last: PullResult | None = None
    next_retry: float | None = None  # wall-clock time
    cached_since: float | None = None
    _view: ImageView | None = field(default=None, init=False, repr=False)

    def __setattr__(self, name: str, value: Any) -> None:  # noqa: ANN401 - any field's value
        d = self.__dict__
        if name in d and d[name] is value:  # None -> None, the same status: nothing changed
            return
        d[name] = value
        if name != "_view":
            d["_view"] = None
            rev = d.get("rev")
            if rev is not None:
                rev.n += 1

    def view(self) -> ImageView:
        if self._view is None:
            self._view = image_view(self)
        return self._view


@dataclass(eq=False)
class Sweep:
    """One pass over the selected images, or over the images a reload added."""

    number: int
    kind: SweepKind
    remaining: set[TargetKey]
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    ended: float | None = None
    results: list[PullResult] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    recorded: set[ImageRef] = field(default_factory=set)
    rev: Revision = field(default_factory=Revision, repr=False)
    _view: SweepView | None = field(default=None, init=False, repr=False)

    def _changed(self) -> None:
        self._view = None
        self.rev.bump()

    def add(self, key: TargetKey) -> None:
        self.remaining.add(key)
        self._changed()

    def record(self, key: TargetKey, result: PullResult) -> bool:
        """Store RESULT; True when this was the last image of the sweep. An image that went
        again in this sweep (a secret fixed, an entry re-added) keeps only its last result."""
        if result.image in self.recorded:
            self.results = [r for r in self.results if r.image != result.image]
        self.recorded.add(result.image)
        self.results.append(result)
        self._changed()
        return self.drop(key)

    def drop(self, key: TargetKey) -> bool:
        """Forget KEY (its image left the config); True when the sweep is now complete."""
        self.remaining.discard(key)
        self._changed()
        if not self.remaining and not self.done.is_set():
            self.close()
            return True
        return False

    def close(self) -> None:
        self.ended = time.monotonic()
        self._changed()
        self.done.set()

    @property
    def counts(self) -> Counter[Outcome]:
        return Counter(r.outcome for r in self.results)

    @property
    def failed(self) -> list[PullResult]:
        return [r for r in self.results if r.outcome == Outcome.FAILED]

    def summary(self) -> str:
        c = self.counts
        seconds = (self.ended or time.monotonic()) - self.started
        total = sum(r.bytes for r in self.results)
        cancelled = f", {c[Outcome.CANCELLED]} cancelled" if c[Outcome.CANCELLED] else ""
        return (
            f"{self.kind} {self.number} done in {seconds:.1f}s: {c[Outcome.PULLED]} pulled, "
            f"{c[Outcome.UP_TO_DATE]} up to date, {self.skipped} skipped, "
            f"{c[Outcome.FAILED]} failed{cancelled} ({total / 1e6:.1f} MB downloaded)"
        )

    def view(self) -> SweepView:
        """The sweep as observers see it; an ended sweep's view is built once (its summary is
        O(n)), a running one's at each read model build (its duration moves)."""
        if self.ended is None:
            return self._build_view()
        if self._view is None:
            self._view = self._build_view()
        return self._view

    def _build_view(self) -> SweepView:
        return SweepView(
            number=self.number,
            kind=self.kind,
            remaining=len(self.remaining),
            done=len(self.results),
            failed=len(self.failed),
            bytes=sum(r.bytes for r in self.results),
            started=self.started,
            started_wall=self.started_wall,
            ended=self.ended,
            summary=self.summary(),
        )


# -- the read model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepView:
    number: int
    kind: SweepKind
    remaining: int
    done: int
    failed: int
    bytes: int
    started: float
    started_wall: float
    ended: float | None
    summary: str


@dataclass(frozen=True)
class ImageView:
    image: ImageRef
    registry: str
    entry: int
    private: bool
    state: Status
    progress: PullProgress | None
    last: PullResult | None
    next_retry: float | None
    cached_since: float | None


@dataclass(frozen=True)
class DiskView:
    path: str
    free: int
    total: int
    required: int
    active: bool


@dataclass(frozen=True)
class ConfigView:
    generation: int
    digest: str | None
    entries: int
    interval: float | None
    last_reload_ok: bool
    last_error: str | None
    config: Config | None = None
    """The config in force, whole: purge reads every entry of it (any architecture)."""


@dataclass(frozen=True)
class Snapshot:
    """Everything an observer may know, at one instant."""

    taken: float
    """time.monotonic() when built."""
    config: ConfigView
    loaded: bool
    node_arch: str | None
    runtime_endpoint: str
    runtime: RuntimeInfo | None
    runtime_reachable: bool
    runtime_choice: str | None
    disk: DiskView | None
    image_fs: FsUsage | None
    """What the runtime says of its image file system (used bytes and inodes, for the CRI)."""
    sweep: SweepView | None
    last_full_sweep: SweepView | None
    last_progress: float
    stall_timeout: float
    images: tuple[ImageView, ...]
    waiting_for: str | None = None
    """What the agent waits for before its engine can start (a runtime to answer)."""
    node_labels: Mapping[str, str] | None = None
    """The node's labels the selection is made against; None: unknown."""
    labels_waiting: int = 0
    """Entries with a selector not pulled because the node's labels are unknown."""
    labels_trouble: str | None = None
    """Why the node's labels are unknown or may be stale."""
    fleet_waiting: str | None = None
    """While the node waits for a fleet slot: who holds the slots (`--fleet-parallelism`)."""

    @property
    def disk_guard_active(self) -> bool:
        return self.disk is not None and self.disk.active


def image_view(state: ImageState) -> ImageView:
    t = state.target
    return ImageView(
        image=t.image,
        registry=t.registry,
        entry=t.entry.index,
        private=t.entry.private,
        state=state.status,
        progress=state.progress,
        last=state.last,
        next_retry=state.next_retry,
        cached_since=state.cached_since,
    )
