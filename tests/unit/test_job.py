"""One pull as one attempt (`jcp.engine.job.attempt`) over the scripted runtime.

Every limit here is a fraction of a second, and every wait is either the limit under test or
an event the scripted runtime signals: no sleep stands in for synchronisation.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from jcp.engine.job import Attempt, JobLimits, attempt
from jcp.model.credentials import RegistryAuth
from jcp.model.failures import Reason
from jcp.model.refs import ImageRef, parse_reference
from jcp.model.results import Outcome
from jcp.runtime.base import PullProgress
from jcp.runtime.fake import (
    ScriptedRuntime,
    digest_of,
    fail,
    hang,
    succeed,
    trickle,
    unchanged,
)

IMAGE = parse_reference("reg.example.com/team/app:1")
OTHER = parse_reference("reg.example.com/team/big:1")
GENEROUS = JobLimits(pull_timeout=10.0, stall_timeout=10.0)


async def run(
    runtime: ScriptedRuntime,
    image: ImageRef = IMAGE,
    *,
    limits: JobLimits = GENEROUS,
    reports_progress: bool = True,
    seen: list[PullProgress] | None = None,
    activity: float | None = None,
    auth: RegistryAuth | None = None,
) -> Attempt:
    return await attempt(
        runtime,
        image,
        platform="linux/amd64",
        auth=auth,
        limits=limits,
        reports_progress=reports_progress,
        on_progress=seen.append if seen is not None else None,
        activity=None if activity is None else (lambda: activity),
    )


async def test_success_reports_bytes_digest_and_progress() -> None:
    runtime = ScriptedRuntime()
    digest = digest_of("app v1")
    runtime.script(IMAGE, succeed(3, step=1000, digest=digest))
    seen: list[PullProgress] = []
    auth = RegistryAuth("reg.example.com", username="u", password="hunter2")
    done = await run(runtime, seen=seen, auth=auth)
    assert (done.outcome, done.bytes, done.digest, done.failure) == (
        Outcome.PULLED,
        3000,
        digest,
        None,
    )
    assert [p.current for p in seen] == [1000, 2000, 3000]
    assert 0 <= done.duration < 1
    (call,) = runtime.pulls
    assert (call.result, call.platform, call.auth) == ("done", "linux/amd64", auth)
    assert runtime.holds(f"reg.example.com/team/app@{digest}")


async def test_content_already_present_is_up_to_date() -> None:
    runtime = ScriptedRuntime()
    runtime.script(IMAGE, unchanged(digest_of("same")))
    done = await run(runtime)
    assert (done.outcome, done.bytes, done.digest) == (Outcome.UP_TO_DATE, 0, digest_of("same"))


async def test_success_without_progress_reports() -> None:
    """The CRI reports no bytes while pulling; the result still carries the runtime's count."""
    runtime = ScriptedRuntime(reports_progress=False)
    runtime.script(IMAGE, succeed(2, step=500))
    done = await run(runtime, reports_progress=False)
    assert (done.outcome, done.bytes) == (Outcome.PULLED, 1000)


@pytest.mark.parametrize(
    ("reason", "transient"),
    [
        (Reason.NOT_FOUND, False),
        (Reason.AUTH, False),
        (Reason.PLATFORM, False),
        (Reason.REGISTRY, True),
        (Reason.RATE_LIMITED, True),
        (Reason.DISK, True),
    ],
)
@pytest.mark.parametrize("reports_progress", [True, False])
async def test_runtime_failure_becomes_the_result(
    reason: Reason, transient: bool, reports_progress: bool
) -> None:
    runtime = ScriptedRuntime(reports_progress=reports_progress)
    runtime.script(IMAGE, fail(reason, "said the registry", events=2, retry_after=3.0))
    done = await run(runtime, reports_progress=reports_progress)
    assert done.outcome == Outcome.FAILED
    assert done.failure is not None
    assert (done.failure.reason, done.failure.message) == (reason, "said the registry")
    assert done.failure.retry_after == 3.0
    assert done.failure.transient is transient
    assert done.bytes == (2000 if reports_progress else 0)
    assert done.digest is None
    assert runtime.pulls[0].result == "failed"


async def test_runtime_down_is_a_daemon_failure() -> None:
    runtime = ScriptedRuntime()
    runtime.go_down()
    done = await run(runtime)
    assert done.failure is not None
    assert done.failure.reason == Reason.DAEMON

    runtime.come_up()
    runtime.script(IMAGE, hang(events=1))
    task = asyncio.create_task(run(runtime))
    await runtime.until(lambda: runtime.pulls[-1].bytes > 0, "the pull under way")
    runtime.go_down()
    done = await task
    assert done.failure is not None
    assert (done.failure.reason, done.bytes) == (Reason.DAEMON, 1000)


# -- the pull timeout ------------------------------------------------------------------------


@pytest.mark.parametrize("reports_progress", [True, False])
async def test_pull_timeout_cancels_the_runtime_pull(reports_progress: bool) -> None:
    runtime = ScriptedRuntime(reports_progress=reports_progress)
    runtime.script(IMAGE, hang(events=1))
    limits = JobLimits(pull_timeout=0.2, stall_timeout=10.0)
    done = await run(runtime, limits=limits, reports_progress=reports_progress)
    assert done.outcome == Outcome.FAILED
    assert done.failure is not None
    assert done.failure.reason == Reason.TIMEOUT
    assert done.failure.message == "pull took longer than 0.2s"
    assert done.failure.transient
    assert 0.2 <= done.duration < 1.0
    (call,) = runtime.pulls
    assert call.result == "cancelled"  # the runtime abandoned it before attempt() returned


async def test_busy_pull_that_never_ends_times_out_not_stalls() -> None:
    runtime = ScriptedRuntime()
    runtime.script(IMAGE, trickle(0.02))
    limits = JobLimits(pull_timeout=0.3, stall_timeout=0.1)
    done = await run(runtime, limits=limits)
    assert done.failure is not None
    assert done.failure.reason == Reason.TIMEOUT
    assert done.bytes >= 5000  # what arrived before the limit is reported
    assert runtime.pulls[0].result == "cancelled"


# -- stall detection ------------------------------------------------------------------------


@pytest.mark.parametrize("events", [0, 2])
async def test_silent_pull_stalls(events: int) -> None:
    runtime = ScriptedRuntime()
    runtime.script(IMAGE, hang(events=events))
    limits = JobLimits(pull_timeout=5.0, stall_timeout=0.2)
    done = await run(runtime, limits=limits)
    assert done.failure is not None
    assert done.failure.reason == Reason.STALL
    assert done.failure.message == "no progress for 0.2s; pull abandoned"
    assert done.failure.transient
    assert 0.2 <= done.duration < 1.0
    assert done.bytes == events * 1000
    assert runtime.pulls[0].result == "cancelled"


async def test_no_stall_detection_without_progress_reports() -> None:
    """A runtime that reports no progress (the CRI) is bounded by the pull timeout alone."""
    runtime = ScriptedRuntime(reports_progress=False)
    runtime.script(IMAGE, hang())
    limits = JobLimits(pull_timeout=0.4, stall_timeout=0.05)
    done = await run(runtime, limits=limits, reports_progress=False)
    assert done.failure is not None
    assert done.failure.reason == Reason.TIMEOUT
    assert done.duration >= 0.4
    assert runtime.pulls[0].result == "cancelled"


async def test_queued_pull_waits_while_another_pull_progresses() -> None:
    """A pull whose layers wait for a download slot is silent, but not stalled while a big
    pull next to it moves; once nothing moves anywhere, it is."""
    runtime = ScriptedRuntime()
    runtime.script(OTHER, trickle(0.02))
    runtime.script(IMAGE, hang(events=1, queued=True))
    stall = 0.15
    limits = JobLimits(pull_timeout=5.0, stall_timeout=stall)
    last_activity = time.monotonic()

    def moved(_: PullProgress) -> None:
        nonlocal last_activity
        last_activity = time.monotonic()

    big = asyncio.create_task(
        attempt(
            runtime,
            OTHER,
            platform=None,
            auth=None,
            limits=limits,
            reports_progress=True,
            on_progress=moved,
        )
    )
    queued = asyncio.create_task(
        attempt(
            runtime,
            IMAGE,
            platform=None,
            auth=None,
            limits=limits,
            reports_progress=True,
            activity=lambda: last_activity,
        )
    )
    # The big pull moves for several stall timeouts; the queued one must outlive them all.
    await runtime.until(
        lambda: sum(p.bytes for p in runtime.pulls_of(OTHER)) >= 25_000, "the big pull moving"
    )
    assert not queued.done()
    (waiting,) = runtime.pulls_of(IMAGE)
    assert waiting.running
    assert time.monotonic() - waiting.started > 2 * stall
    big.cancel()
    with pytest.raises(asyncio.CancelledError):
        await big
    quiet_since = last_activity
    done = await queued
    assert done.failure is not None
    assert done.failure.reason == Reason.STALL
    assert time.monotonic() - quiet_since > stall  # abandoned only once nothing moved
    assert waiting.result == "cancelled"


@pytest.mark.parametrize("elsewhere", ["stale", "none"])
async def test_queued_pull_stalls_when_nothing_moves_elsewhere(elsewhere: str) -> None:
    runtime = ScriptedRuntime()
    runtime.script(IMAGE, hang(events=1, queued=True))
    limits = JobLimits(pull_timeout=5.0, stall_timeout=0.15)
    activity = time.monotonic() - 60 if elsewhere == "stale" else None
    done = await run(runtime, limits=limits, activity=activity)
    assert done.failure is not None
    assert done.failure.reason == Reason.STALL
    assert done.duration < 1.0


# -- the caller's cancellation ---------------------------------------------------------------


@pytest.mark.parametrize("reports_progress", [True, False])
async def test_cancelling_the_caller_cancels_the_runtime_pull(reports_progress: bool) -> None:
    runtime = ScriptedRuntime(reports_progress=reports_progress)
    runtime.script(IMAGE, hang(events=1))
    task = asyncio.create_task(run(runtime, reports_progress=reports_progress))
    await runtime.until(lambda: runtime.running(IMAGE), "the pull in flight")
    task.cancel("removed from the config")
    with pytest.raises(asyncio.CancelledError):
        await task
    (call,) = runtime.pulls
    assert call.result == "cancelled"
    assert not runtime.holds(IMAGE)
