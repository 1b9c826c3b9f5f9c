"""What one sweep did, and what each image is doing now: the data behind logs, /status, metrics."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from jcp.config import Target, TargetKey
from jcp.failures import Reason
from jcp.pull import Outcome, Progress
from jcp.refs import ImageRef


@dataclass(frozen=True)
class PullResult:
    """The outcome of one image in one sweep, after retries."""

    image: ImageRef
    registry: str
    outcome: Outcome
    duration: float
    attempts: int = 1
    bytes: int = 0
    digest: str | None = None
    reason: Reason | None = None
    message: str | None = None
    permanent: bool = False
    present: bool = False
    """Whether the image is in the daemon after this result (a failed refresh may leave it)."""


@dataclass
class ImageState:
    """Live state of one selected image, kept across sweeps."""

    target: Target
    status: str = "pending"  # pending | pulling | retrying | cached | failed
    progress: Progress | None = None
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

    def add(self, key: TargetKey) -> None:
        self.remaining.add(key)

    def record(self, key: TargetKey, result: PullResult) -> bool:
        """Store RESULT; True when this was the last image of the sweep."""
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
        return (
            f"{self.kind} {self.number} done in {seconds:.1f}s: {c[Outcome.PULLED]} pulled, "
            f"{c[Outcome.UP_TO_DATE]} up to date, {self.skipped} skipped, "
            f"{c[Outcome.FAILED]} failed ({total / 1e6:.1f} MB downloaded)"
        )
