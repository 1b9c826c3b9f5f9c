"""One puller of the pool: takes the next job, decides, pulls, and returns what came of it.

A puller is handed its tools (as kopf's `queueing.worker(*, settings, processor, ...)` is), never
the scheduler: a `Desk` hands out jobs and takes back steps, the frozen `Tools` reach the
runtime, the registry and the disk. A step is data (`Done`, `Retry`, `Again`), and only the
scheduler applies it to the engine's state, in one place. Each image runs in a task of its own,
so that removing it from the config cancels exactly that pull (the runtime abandons it) and
nothing else; a failure is a result, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol

from jcp.engine import report
from jcp.engine.intake import Intake
from jcp.engine.job import Attempt, attempt
from jcp.engine.plan import Action, Why, decide
from jcp.engine.remote import RemoteError
from jcp.engine.tools import Again, Done, Job, Retry, Step, Tools
from jcp.model.credentials import CredentialError, RegistryAuth
from jcp.model.failures import Failure, Reason
from jcp.model.results import Outcome, PullResult
from jcp.runtime.base import PullProgress
from jcp.settings import Refresh

log = logging.getLogger(__name__)

UNPACKED_PER_COMPRESSED = 3
"""Disk a pull needs per compressed byte: application layers unpack to 2-3 times their gzip
size, and containerd keeps the compressed blobs beside the snapshots."""


class Desk(Protocol):
    """What a puller needs of the engine: the next job, and where its step goes."""

    async def take(self) -> Job:
        """The next job that should start now (blocks until there is one)."""
        ...

    def running(self, job: Job, task: asyncio.Task[Step]) -> None:
        """JOB is being pulled by TASK (cancelling TASK abandons the pull)."""
        ...

    def end(self, job: Job, step: Step | None) -> None:
        """JOB's pull came to STEP (None: it was cancelled, its image left the config)."""
        ...


async def work(desk: Desk, tools: Tools) -> None:
    """Forever: one image at a time."""
    while True:
        job = await desk.take()
        task = asyncio.create_task(pull_step(job, tools))
        desk.running(job, task)
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        if task.cancelled():
            desk.end(job, None)
        elif (bug := task.exception()) is not None:
            raise bug  # not a pull failure (those are results): let the task group say so
        else:
            desk.end(job, task.result())


@contextlib.asynccontextmanager
async def pool(pullers: list[Coroutine[Any, Any, None]], intake: Intake) -> AsyncIterator[None]:
    """PULLERS running for as long as the block runs. A puller that died of a bug (not of a
    pull failure: those are results) is raised at the end."""
    tasks = [asyncio.create_task(c) for c in pullers]
    try:
        yield
    finally:
        intake.cancel_timers()
        for task in tasks:
            task.cancel()
        ended = await asyncio.gather(*tasks, return_exceptions=True)
    bugs = [e for e in ended if isinstance(e, Exception)]
    if bugs:
        raise ExceptionGroup("a puller died of a bug", bugs)


async def pull_step(job: Job, t: Tools) -> Step:
    """Everything that happens to one image in one attempt, as one step."""
    target = job.item.target
    try:
        auth, fingerprint = await t.creds.of(target)
    except Exception as exc:
        if not isinstance(exc, CredentialError):
            # No traceback: an exception's text may quote the secret's content.
            log.error(f"BUG: the secret parser raised {type(exc).__name__} instead of a problem")
            exc = CredentialError(target.entry.secret, target.registry, "invalid secret")
        bad = Failure(Reason.CREDENTIALS, str(exc))
        known = job.known
        if known is not None and known[0] == repr(target.key) and known[1].message == bad.message:
            return Done(known[1], known[0], repeat=True)  # the same trouble: counted once
        return Done(result_of(job, Attempt(Outcome.FAILED, 0.0), bad), repr(target.key))
    if job.known is not None and job.known[0] == fingerprint:
        return Done(job.known[1], fingerprint, repeat=True)
    remote_digest = await _remote_digest(job, t, auth)
    if isinstance(remote_digest, PullResult):
        return Done(remote_digest, fingerprint)
    decision = decide(target, job.observed, remote_digest, t.refresh)
    if decision.why == Why.TAG_MOVED:
        t.events.tag_moved(str(target.image))
    if decision.action == Action.SKIP:
        done = Attempt(Outcome.UP_TO_DATE, 0.0, digest=target.image.digest)
        return Done(result_of(job, done, None), fingerprint)
    size = 0
    if decision.why.sizes:
        sized = await _sized(job, t, auth)
        if isinstance(sized, Failure):
            return await _conclude(job, t, Attempt(Outcome.FAILED, 0.0, failure=sized), fingerprint)
        size = sized
    return await _conclude(job, t, await _pull(job, t, auth, size, decision.why), fingerprint)


async def _pull(job: Job, t: Tools, auth: RegistryAuth | None, size: int, why: Why) -> Attempt:
    target, info = job.item.target, job.info
    reports_progress = info is None or info.reports_progress
    # A runtime without progress (the CRI) still shows what the pull is for: its size.
    job.live.pulling(None if reports_progress or not size else PullProgress(0, size))
    present = job.observed is not None and job.observed.holds(target.image)
    report.pull_started(target, job.item.attempt, present=present, why=why)
    t.disk.reserved[target.key] = size * UNPACKED_PER_COMPRESSED
    try:
        async with t.fleet.pulling(
            target.registry
        ):  # waiting for a slot is before the stall clock starts
            return await attempt(
                t.runtime,
                target.image,
                platform=f"linux/{job.arch}" if info is None or info.supports_platform else None,
                auth=auth,
                limits=t.limits,
                reports_progress=reports_progress,
                on_progress=job.live.progressed,
                activity=job.live.activity,
            )
    finally:
        t.disk.reserved.pop(target.key, None)


async def _sized(job: Job, t: Tools, auth: RegistryAuth | None) -> int | Failure:
    """The compressed size of the image to pull (0: unknown), or why it must not be pulled:
    not built for this node (permanent), or it does not fit on the disk now (transient)."""
    target = job.item.target
    found = await t.sizing.inspect(target, auth, job.arch)
    if found is None or isinstance(found, Failure):
        return found or 0
    short = t.disk.shortfall(found.size * UNPACKED_PER_COMPRESSED)
    if short is not None:
        return Failure(Reason.DISK, f"{target.image} {short}")
    return found.size


async def _conclude(job: Job, t: Tools, done: Attempt, fingerprint: str) -> Step:
    """What the attempt comes to: done, a retry after a delay, or the same job again once the
    runtime that went away is back (no attempt spent)."""
    target, failure = job.item.target, done.failure
    if (
        failure is not None
        and failure.reason == Reason.DAEMON
        and t.outlast_runtime
        and job.live.wanted()
    ):
        job.live.waiting()  # not pulling any more, whoever waits for the runtime
        if await t.link.outlast(target.image):
            return Again()
    if failure is not None and failure.reason == Reason.RATE_LIMITED:
        t.gate.pause(target.registry, failure)
    result = result_of(job, done, failure)
    if failure is not None:
        delay = t.retry.next_delay(failure, job.item.attempt, target.registry)
        if delay is not None:
            return Retry(result, failure, delay)
    return Done(result, fingerprint)


async def _remote_digest(job: Job, t: Tools, auth: RegistryAuth | None) -> str | PullResult | None:
    """The tag's digest at the registry, when asking it can spare the runtime a pull.

    None: not asked (no client, not present, pinned, another refresh mode, or the registry
    cannot be asked: then the runtime pulls). A PullResult: the image's outcome is already
    known (upstream lost a tag we hold: keep the image and say so).
    """
    image, registry = job.item.target.image, job.item.target.registry
    observed = job.observed
    if (
        t.remote is None
        or t.refresh != Refresh.DIGEST
        or image.pinned
        or observed is None
        or not observed.holds(image)
        or registry in t.gate.no_remote
    ):
        return None
    try:
        return await t.remote.digest(image, auth)
    except RemoteError as exc:
        failure = exc.failure
        if exc.unreachable:
            t.gate.fall_back(registry, failure.message)
            return None
        if failure.reason == Reason.NOT_FOUND:
            log.warning(
                f"{image}: the registry no longer has this tag ({failure.message}); keeping "
                "the local image",
                extra={"fields": {"event": "upstream_gone", "image": str(image)}},
            )
            return result_of(job, Attempt(Outcome.UP_TO_DATE, 0.0), None)
        if failure.reason == Reason.RATE_LIMITED:
            t.gate.pause(registry, failure)
        return None


def result_of(job: Job, done: Attempt, failure: Failure | None) -> PullResult:
    target = job.item.target
    return PullResult(
        image=target.image,
        registry=target.registry,
        outcome=Outcome.FAILED if failure else done.outcome,
        duration=done.duration,
        attempts=job.item.attempt,
        bytes=done.bytes,
        digest=done.digest,
        reason=failure.reason if failure else None,
        message=failure.message if failure else None,
        permanent=bool(failure and not failure.transient),
    )
