"""One puller of the pool: takes the next image, decides, pulls, retries, reports.

Each image runs in a task of its own, so that removing it from the config cancels exactly that
pull (the runtime abandons it) and nothing else; a failure is a result, never an exception.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from jcp.engine import report
from jcp.engine.job import Attempt, JobLimits, attempt
from jcp.engine.plan import TAG_MOVED, Action, Refresh, decide
from jcp.engine.remote import RemoteError
from jcp.engine.runtime_link import answers
from jcp.engine.scheduler import PRIORITY_SWEEP, Item, Scheduler
from jcp.engine.sizing import credentials, fall_back
from jcp.engine.state import ImageState
from jcp.model.credentials import CredentialError, RegistryAuth
from jcp.model.failures import Failure, Reason
from jcp.model.results import Outcome, PullResult
from jcp.runtime.base import PullProgress

log = logging.getLogger(__name__)

UNPACKED_PER_COMPRESSED = 3
"""Disk a pull needs per compressed byte: application layers unpack to 2-3 times their gzip
size, and containerd keeps the compressed blobs beside the snapshots."""


async def work(s: Scheduler) -> None:
    """Forever: one image at a time."""
    while True:
        item = await s.get()
        key = item.target.key
        if key not in s.wanted or item.sweep.done.is_set():
            s.drop(item.sweep, key)
            continue
        await _wait_for_disk(s)
        if key not in s.wanted or item.sweep.done.is_set():
            s.drop(item.sweep, key)
            continue
        pause = s.paused.get(item.target.registry, 0) - asyncio.get_running_loop().time()
        if pause > 0:  # the registry asked us to wait: do not spend an attempt on it
            s.later(pause, PRIORITY_SWEEP, item)
            continue
        task = asyncio.create_task(_process(s, item))
        s.in_flight[key] = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        finally:
            if s.in_flight.get(key) is task:
                del s.in_flight[key]
            s.last_progress = time.monotonic()
        if task.cancelled():
            _cancelled(s, item)
        elif (bug := task.exception()) is not None:
            raise bug  # not a pull failure (those are results): let the task group say so


async def _wait_for_disk(s: Scheduler) -> None:
    while not s.disk.check():
        s.last_progress = time.monotonic()
        await asyncio.sleep(s.settings.disk_poll)


async def _process(s: Scheduler, item: Item) -> None:
    target, key = item.target, item.target.key
    state = s.states.setdefault(key, ImageState(target))
    try:
        auth, fingerprint = await credentials(s.settings.docker_config_root, target)
    except Exception as exc:
        if not isinstance(exc, CredentialError):  # a bug in the secret parser: never fatal
            # No traceback: an exception's text may quote the secret's content.
            log.error(f"BUG: the secret parser raised {type(exc).__name__} instead of a problem")
            exc = CredentialError(item.target.entry.secret, item.target.registry, "invalid secret")
        bad = _result(item, Attempt(Outcome.FAILED, 0.0), Failure(Reason.CREDENTIALS, str(exc)))
        s.permanent[key] = (repr(key), bad)
        _complete(s, item, state, bad)
        return
    cached = s.permanent.get(key)
    if cached is not None and cached[0] == fingerprint:
        _complete(s, item, state, cached[1], repeat=True)
        return
    remote_digest = await _remote_digest(s, item, auth)
    if isinstance(remote_digest, PullResult):
        _complete(s, item, state, remote_digest)
        return
    decision = decide(target, s.observed, remote_digest, Refresh(s.settings.refresh))
    if decision.why == TAG_MOVED:
        s.events.tag_moved(str(target.image))
    if decision.action == Action.SKIP:
        done = Attempt(Outcome.UP_TO_DATE, 0.0, digest=target.image.digest)
        _complete(s, item, state, _result(item, done, None))
        return
    size = 0
    if decision.why in ("absent", TAG_MOVED):
        sized = await _sized(s, item, auth)
        if isinstance(sized, Failure):
            await _conclude(
                s, item, state, Attempt(Outcome.FAILED, 0.0, failure=sized), fingerprint
            )
            return
        size = sized
    state.status = "pulling"
    state.next_retry = None
    info = s.info
    reports_progress = info is None or info.reports_progress
    # A runtime without progress (the CRI) still shows what the pull is for: its size.
    state.progress = None if reports_progress or not size else PullProgress(0, size)
    present = s.observed is not None and s.observed.holds(target.image)
    report.pull_started(target, item.attempt, present=present, why=decision.why)
    assert s.node_arch is not None
    s.disk.reserved[key] = size * UNPACKED_PER_COMPRESSED
    try:
        done = await attempt(
            s.runtime,
            target.image,
            platform=f"linux/{s.node_arch}" if info is None or info.supports_platform else None,
            auth=auth,
            limits=JobLimits(s.settings.pull_timeout, s.settings.stall_timeout),
            reports_progress=reports_progress,
            on_progress=lambda p: _progressed(s, state, p),
            activity=lambda: s.last_progress,
        )
    finally:
        s.disk.reserved.pop(key, None)
    await _conclude(s, item, state, done, fingerprint)


async def _sized(s: Scheduler, item: Item, auth: RegistryAuth | None) -> int | Failure:
    """The compressed size of the image to pull (0: unknown), or why it must not be pulled:
    not built for this node (permanent), or it does not fit on the disk now (transient)."""
    assert s.node_arch is not None
    found = await s.sizing.inspect(item.target, auth, s.node_arch)
    if found is None or isinstance(found, Failure):
        return found or 0
    short = s.disk.shortfall(found.size * UNPACKED_PER_COMPRESSED)
    if short is not None:
        return Failure(Reason.DISK, f"{item.target.image} {short}")
    return found.size


async def _conclude(
    s: Scheduler, item: Item, state: ImageState, done: Attempt, fingerprint: str
) -> None:
    """Retry, wait out the runtime, or record the attempt's result."""
    key = item.target.key
    failure = done.failure
    if failure and failure.reason == Reason.DAEMON and await _outlast_runtime(s, item):
        return
    if failure and failure.reason == Reason.RATE_LIMITED:
        s.pause(item.target.registry, failure)
    retries = s.settings.backoff.retries
    if failure and failure.transient and item.attempt <= retries and key in s.wanted:
        _retry(s, item, state, failure)
        return
    result = _result(item, done, failure)
    if failure is not None and not failure.transient:
        s.permanent[key] = (fingerprint, result)
    else:
        s.permanent.pop(key, None)
    _complete(s, item, state, result)


async def _remote_digest(
    s: Scheduler, item: Item, auth: RegistryAuth | None
) -> str | PullResult | None:
    """The tag's digest at the registry, when asking it can spare the runtime a pull.

    None: not asked (no client, not present, pinned, another refresh mode, or the registry
    cannot be asked: then the runtime pulls). A PullResult: the image's outcome is already
    known (upstream lost a tag we hold: keep the image and say so).
    """
    image, registry = item.target.image, item.target.registry
    observed = s.observed
    if (
        s.remote is None
        or s.settings.refresh != Refresh.DIGEST
        or image.pinned
        or observed is None
        or not observed.holds(image)
        or registry in s.no_remote
    ):
        return None
    try:
        return await s.remote.digest(image, auth)
    except RemoteError as exc:
        failure = exc.failure
        if exc.unreachable:
            fall_back(s.no_remote, registry, failure.message)
            return None
        if failure.reason == Reason.NOT_FOUND:
            log.warning(
                f"{image}: the registry no longer has this tag ({failure.message}); keeping "
                "the local image",
                extra={"fields": {"event": "upstream_gone", "image": str(image)}},
            )
            done = Attempt(Outcome.UP_TO_DATE, 0.0)
            return _result(item, done, None)
        if failure.reason == Reason.RATE_LIMITED:
            s.pause(registry, failure)
        return None


def _progressed(s: Scheduler, state: ImageState, p: PullProgress) -> None:
    state.progress = p
    s.last_progress = time.monotonic()


async def _outlast_runtime(s: Scheduler, item: Item) -> bool:
    """If the runtime really is gone, wait for it and re-queue ITEM as it was. A probe
    decides, so that an error merely classified as a runtime error can never loop."""
    if not s.settings.outlast_runtime or item.target.key not in s.wanted:
        return False
    state = s.states.get(item.target.key)
    if state is not None:  # not pulling any more, whoever waits for the runtime
        state.status = "pending"
        state.progress = None
    outages = s.outages
    # A daemon that is shutting down still answers /version for a moment while it fails
    # pulls ("grpc: the client connection is closing"): probe once it has had time to go.
    await asyncio.sleep(1.0)
    async with s.runtime_lock:
        if s.outages == outages:  # nobody waited out an outage meanwhile: probe
            if await answers(s.runtime):
                return False
            log.warning(
                f"{s.label} went away while pulling {item.target.image}; waiting for it, "
                "then pulling again"
            )
            await s.connect(give_up=False)
            s.outages += 1
    s.put(PRIORITY_SWEEP, item)
    return True


def _retry(s: Scheduler, item: Item, state: ImageState, failure: Failure) -> None:
    delay = s.settings.backoff.delay(item.attempt)
    if failure.reason == Reason.RATE_LIMITED:
        delay = max(
            delay, s.paused.get(item.target.registry, 0) - asyncio.get_running_loop().time()
        )
    state.status = "retrying"
    state.next_retry = time.time() + delay
    report.retrying(
        item.target, failure, attempt=item.attempt, retries=s.settings.backoff.retries, delay=delay
    )
    s.later(delay, PRIORITY_SWEEP, Item(item.target, item.sweep, item.attempt + 1))


def _result(item: Item, done: Attempt, failure: Failure | None) -> PullResult:
    return PullResult(
        image=item.target.image,
        registry=item.target.registry,
        outcome=Outcome.FAILED if failure else done.outcome,
        duration=done.duration,
        attempts=item.attempt,
        bytes=done.bytes,
        digest=done.digest,
        reason=failure.reason if failure else None,
        message=failure.message if failure else None,
        permanent=bool(failure and not failure.transient),
    )


def _cancelled(s: Scheduler, item: Item) -> None:
    state = s.states.pop(item.target.key, None)
    got = state.progress.current if state is not None and state.progress is not None else 0
    result = PullResult(
        image=item.target.image,
        registry=item.target.registry,
        outcome=Outcome.CANCELLED,
        duration=0.0,
        attempts=item.attempt,
        bytes=got,
        message="removed from the config while pulling",
    )
    report.pull_finished(result, repeat=False)
    s.events.pull_finished(result)
    if item.sweep.record(item.target.key, result):
        s.finish(item.sweep)


def _complete(
    s: Scheduler, item: Item, state: ImageState, result: PullResult, *, repeat: bool = False
) -> None:
    if result.outcome == Outcome.FAILED:
        if result.reason == Reason.DAEMON:
            s.runtime_down()
        state.status = "failed"
    else:
        state.status = "cached"
        if state.cached_since is None:
            state.cached_since = time.time()
    result = dataclasses.replace(result, present=state.cached_since is not None)
    report.pull_finished(result, repeat=repeat)
    state.last = result
    state.next_retry = None
    state.progress = None  # byte counts matter only while pulling
    if item.target.key not in s.wanted:
        s.states.pop(item.target.key, None)
    s.events.pull_finished(result)
    if item.sweep.record(item.target.key, result):
        s.finish(item.sweep)
