"""One pull of one image as one attempt: its timeout and stall detection, and its result.

An attempt never raises for a pull problem: it returns an `Attempt` with the failure classified,
so that a bad image can never cancel its siblings. Cancelling the runtime's pull (on stall or
timeout) makes the runtime abandon it. Retries are the scheduler's: it decides from
`Failure.transient` whether to go again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from jcp.model.credentials import RegistryAuth
from jcp.model.failures import Failure, Reason
from jcp.model.refs import ImageRef
from jcp.model.results import Outcome
from jcp.runtime.base import ImageRuntime, Pulled, PullProgress, RuntimeFailure


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    duration: float
    bytes: int = 0
    digest: str | None = None
    failure: Failure | None = None


@dataclass(frozen=True)
class JobLimits:
    pull_timeout: float
    stall_timeout: float


async def _watch(
    pull: asyncio.Task[Pulled],
    *,
    stall_timeout: float,
    last_event: Callable[[], float],
    queued: Callable[[], bool],
    activity: Callable[[], float] | None,
) -> Pulled:
    """Wait for PULL; abandon it when it has been silent for STALL_TIMEOUT.

    A pull whose layers are queued behind the runtime's download slots is not stalled while
    the runtime makes progress elsewhere (ACTIVITY: monotonic time of the last event of any
    pull): a 10 GB image downloading next to it must not get it abandoned.
    """
    while True:
        await asyncio.wait({pull}, timeout=min(1.0, stall_timeout / 4))
        if pull.done():
            return pull.result()
        now = time.monotonic()
        if now - last_event() <= stall_timeout:
            continue
        elsewhere = activity() if activity is not None else last_event()
        if queued() and now - elsewhere <= stall_timeout:
            continue
        raise RuntimeFailure(
            Failure(Reason.STALL, f"no progress for {stall_timeout:g}s; pull abandoned")
        )


async def attempt(
    runtime: ImageRuntime,
    image: ImageRef,
    *,
    platform: str | None,
    auth: RegistryAuth | None,
    limits: JobLimits,
    reports_progress: bool,
    on_progress: Callable[[PullProgress], None] | None = None,
    activity: Callable[[], float] | None = None,
) -> Attempt:
    """One attempt at IMAGE.

    Stall detection needs progress events: for a runtime that reports none (the CRI), only the
    pull timeout bounds the pull.
    """
    started = time.monotonic()
    last = started
    latest = PullProgress(0, 0)

    def progressed(p: PullProgress) -> None:
        nonlocal last, latest
        last = time.monotonic()
        latest = p
        if on_progress is not None:
            on_progress(p)

    pull = asyncio.create_task(
        runtime.pull(image, auth=auth, platform=platform, on_progress=progressed)
    )
    try:
        async with asyncio.timeout(limits.pull_timeout):
            if reports_progress:
                pulled = await _watch(
                    pull,
                    stall_timeout=limits.stall_timeout,
                    last_event=lambda: last,
                    queued=lambda: latest.queued,
                    activity=activity,
                )
            else:
                pulled = await pull
    except TimeoutError:
        failure = Failure(Reason.TIMEOUT, f"pull took longer than {limits.pull_timeout:g}s")
        return Attempt(Outcome.FAILED, time.monotonic() - started, latest.current, failure=failure)
    except RuntimeFailure as exc:
        return Attempt(
            Outcome.FAILED, time.monotonic() - started, latest.current, failure=exc.failure
        )
    finally:
        if not pull.done():
            pull.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeFailure):
                await pull
    outcome = Outcome.PULLED if pulled.newer else Outcome.UP_TO_DATE
    return Attempt(outcome, time.monotonic() - started, pulled.bytes, pulled.digest)
