"""The desk the pullers take jobs from and hand their steps back to: the one writer of what a
pull did to an image's state.

Pullers (`worker.py`) never see the scheduler; they get a `Job` from `take` (stale items
dropped, the disk guard and registry pauses waited out first) and hand their `Step` to `end`,
which applies it: a retry waits on a timer, a result goes to the image's state, the log, the
counters and the sweep, once. A cancelled pull (its image left the config) ends here too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from jcp.engine import report
from jcp.engine.intake import Intake, Item, Priority
from jcp.engine.plan import Observed
from jcp.engine.state import ImageState, Revision, Status
from jcp.engine.sweeps import Sweeps
from jcp.engine.tools import Again, Done, Job, Retry, Step, Tools
from jcp.model.config import Target, TargetKey
from jcp.model.failures import Reason
from jcp.model.refs import ImageRef
from jcp.model.results import Outcome, PullResult
from jcp.runtime.base import PullProgress


class Book:
    """The live state of the selected images, shared by the scheduler and the desk."""

    def __init__(self) -> None:
        self.rev = Revision()
        self.wanted: dict[TargetKey, Target] = {}
        self.states: dict[TargetKey, ImageState] = {}
        self.permanent: dict[TargetKey, tuple[str, PullResult]] = {}
        """Target -> (fingerprint of its entry and secret, its permanent failure)."""
        self.in_flight: dict[TargetKey, asyncio.Task[Step]] = {}
        self.last_progress = time.monotonic()
        """Monotonic time of the last sign of life of any pull (/healthz, stall detection)."""
        self.observed: Observed | None = None
        """The runtime's images as read at the current sweep's start."""
        self.cancelled: dict[TargetKey, str] = {}
        """Pulls cancelled because their image left the selection, and why."""

    def state(self, target: Target) -> ImageState:
        return self.states.setdefault(target.key, ImageState(target, self.rev))

    def alive(self) -> None:
        self.last_progress = time.monotonic()

    def observe(self, observed: Observed) -> list[ImageRef]:
        """The runtime's images as read at a sweep's start: which selected images are cached
        now, and which jcp had cached are gone (the kubelet's image GC? said, and returned,
        so that operators see a GC fight instead of guessing)."""
        self.observed = observed
        now, evicted = time.time(), []
        for state in self.states.values():
            if state.status in (Status.PULLING, Status.RETRYING):
                continue
            if observed.holds(state.target.image):
                if state.cached_since is None:
                    state.cached_since = now
                if state.status == Status.PENDING:
                    state.status = Status.CACHED
            elif state.status == Status.CACHED:
                report.evicted(state.target.image, state.cached_since or now, now)
                state.status, state.cached_since = Status.PENDING, None
                evicted.append(state.target.image)
        return evicted


class Desk:
    def __init__(
        self,
        book: Book,
        intake: Intake,
        sweeps: Sweeps,
        tools: Tools,
        *,
        arch: Callable[[], str | None],
        disk_poll: float,
    ) -> None:
        self.book, self.intake, self.sweeps, self.tools = book, intake, sweeps, tools
        self._arch, self._disk_poll = arch, disk_poll

    async def take(self) -> Job:
        while True:
            item = await self.intake.get()
            if self._stale(item):
                continue
            while not self.tools.disk.check():
                self.book.alive()  # waiting for space is not being wedged
                await asyncio.sleep(self._disk_poll)
            if self._stale(item):
                continue
            pause = self.tools.gate.wait_left(item.target.registry)
            if pause > 0:  # the registry asked us to wait: do not spend an attempt on it
                self.intake.later(pause, Priority.SWEEP, item)
                continue
            arch = self._arch()
            assert arch is not None
            book, key = self.book, item.target.key
            live = _Live(book, book.state(item.target))
            known = book.permanent.get(key)
            return Job(item, book.observed, arch, self.tools.link.info, known, live)

    def _stale(self, item: Item) -> bool:
        """ITEM's image left the config, or its sweep ended: drop it."""
        if item.target.key in self.book.wanted and not item.sweep.done.is_set():
            return False
        self.sweeps.drop(item.sweep, item.target.key)
        return True

    def running(self, job: Job, task: asyncio.Task[Step]) -> None:
        self.book.in_flight[job.item.target.key] = task

    def end(self, job: Job, step: Step | None) -> None:
        """Apply what one pull came to: the one place an image's outcome is written."""
        book, item, key = self.book, job.item, job.item.target.key
        task = book.in_flight.get(key)
        if task is not None and task.done():
            del book.in_flight[key]
        book.alive()
        if isinstance(step, Again):
            self.intake.put(Priority.SWEEP, item)
            return
        if isinstance(step, Retry) and key in book.wanted:
            self._retry(item, step)
            return
        repeat = False
        if step is None:
            gone = book.states.pop(key, None)
            got = gone.progress.current if gone and gone.progress else 0
            why = book.cancelled.pop(key, "removed from the config while pulling")
            result = _cancelled(item, got, why)
        else:
            repeat = isinstance(step, Done) and step.repeat
            fingerprint = step.fingerprint if isinstance(step, Done) else repr(key)
            if step.result.permanent:
                book.permanent[key] = (fingerprint, step.result)
            else:
                book.permanent.pop(key, None)
            result = self._settle(key, step.result)
        report.pull_finished(result, repeat=repeat)
        if not repeat:  # a permanent failure on record is counted once, not per sweep or signal
            self.tools.events.pull_finished(result)
        self.sweeps.record(item.sweep, key, result)

    def _retry(self, item: Item, step: Retry) -> None:
        state = self.book.states[item.target.key]
        state.status, state.next_retry = Status.RETRYING, time.time() + step.delay
        report.retrying(
            item.target,
            step.failure,
            attempt=item.attempt,
            retries=self.tools.retry.retries,
            delay=step.delay,
        )
        again = Item(item.target, item.sweep, item.attempt + 1)
        self.intake.later(step.delay, Priority.SWEEP, again)

    def _settle(self, key: TargetKey, result: PullResult) -> PullResult:
        """The image's live state after RESULT; the result as observers see it."""
        state = self.book.states[key]
        if result.outcome == Outcome.FAILED:
            if result.reason == Reason.DAEMON:
                self.tools.link.down()
            state.status = Status.FAILED
        else:
            state.status = Status.CACHED
            if state.cached_since is None:
                state.cached_since = time.time()
        result = dataclasses.replace(result, present=state.cached_since is not None)
        state.last, state.next_retry, state.progress = result, None, None
        if key not in self.book.wanted:
            self.book.states.pop(key, None)
        return result


class _Live:
    """A running pull's handle on its image's state (the `Live` port)."""

    def __init__(self, book: Book, state: ImageState) -> None:
        self._book, self._state = book, state

    def pulling(self, progress: PullProgress | None) -> None:
        self._state.status, self._state.next_retry = Status.PULLING, None
        self._state.progress = progress

    def progressed(self, progress: PullProgress) -> None:
        self._state.progress = progress
        self._book.alive()

    def waiting(self) -> None:
        self._state.status, self._state.progress = Status.PENDING, None

    def wanted(self) -> bool:
        return self._state.target.key in self._book.wanted

    def activity(self) -> float:
        return self._book.last_progress


def _cancelled(item: Item, got: int, why: str) -> PullResult:
    return PullResult(
        image=item.target.image,
        registry=item.target.registry,
        outcome=Outcome.CANCELLED,
        duration=0.0,
        attempts=item.attempt,
        bytes=got,
        message=why,
    )
