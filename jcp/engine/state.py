"""Live state of sweeps and images (engine-private), and the read model published from it.

The engine mutates `ImageState` and `Sweep`; everybody else (probes, /status, metrics, the
progress display, the node signal) reads only a `Snapshot`: an immutable picture of the whole
agent, built on demand and cached until something changes, so readers never reach into the
scheduler and a scrape of 1000 images costs one O(n) build, not one per event.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from jcp.model.config import Target, TargetKey
from jcp.model.refs import ImageRef
from jcp.model.results import Outcome, PullResult
from jcp.runtime.base import FsUsage, PullProgress, RuntimeInfo


@dataclass
class ImageState:
    """Live state of one selected image, kept across sweeps."""

    target: Target
    status: str = "pending"  # pending | pulling | retrying | cached | failed
    progress: PullProgress | None = None
    last: PullResult | None = None
    next_retry: float | None = None  # wall-clock time
    cached_since: float | None = None


@dataclass
class Sweep:
    """One pass over the selected images ("sweep"), or over the images a reload added ("reload")."""

    number: int
    kind: str
    remaining: set[TargetKey]
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    ended: float | None = None
    results: list[PullResult] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    recorded: set[ImageRef] = field(default_factory=set)

    def add(self, key: TargetKey) -> None:
        self.remaining.add(key)

    def record(self, key: TargetKey, result: PullResult) -> bool:
        """Store RESULT; True when this was the last image of the sweep. An image that went
        again in this sweep (a secret fixed, an entry re-added) keeps only its last result."""
        if result.image in self.recorded:
            self.results = [r for r in self.results if r.image != result.image]
        self.recorded.add(result.image)
        self.results.append(result)
        return self.drop(key)

    def drop(self, key: TargetKey) -> bool:
        """Forget KEY (its image left the config); True when the sweep is now complete."""
        self.remaining.discard(key)
        if not self.remaining and not self.done.is_set():
            self.close()
            return True
        return False

    def close(self) -> None:
        self.ended = time.monotonic()
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
    kind: str
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
    state: str
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
