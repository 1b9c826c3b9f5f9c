"""Reaching the runtime: wait for it at start and after an outage, logging each failure.

A node agent must outlive a runtime restart, so `jcp run` waits forever (give_up=False);
`jcp once` gives up after the backoff's retries and reports it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from jcp.model.errors import JcpError
from jcp.model.failures import Backoff
from jcp.runtime.base import ImageRuntime, RuntimeFailure, RuntimeInfo

log = logging.getLogger(__name__)


class RuntimeUnavailableError(JcpError):
    """The runtime did not answer within the allowed attempts (only `jcp once` gives up)."""


class UnknownArchError(JcpError):
    """The runtime runs on an architecture jcp does not know, and no --arch was given."""


async def wait_for_runtime(
    runtime: ImageRuntime,
    backoff: Backoff,
    *,
    give_up: bool,
    label: str,
    on_failure: Callable[[], None] | None = None,
) -> RuntimeInfo:
    """Ask the runtime who it is until it answers."""
    attempt = 0
    while True:
        try:
            return await runtime.info()
        except RuntimeFailure as exc:
            if on_failure is not None:
                on_failure()
            attempt += 1
            if give_up and attempt > backoff.retries:
                raise RuntimeUnavailableError(
                    f"{label} unreachable: {exc.failure.message}"
                ) from None
            delay = backoff.delay(min(attempt, 16))
            log.warning(
                f"{label} unreachable: {exc.failure.message}; retrying in {delay:.1f}s",
                extra={"fields": {"event": "daemon_unreachable", "endpoint": runtime.endpoint}},
            )
            await asyncio.sleep(delay)


async def answers(runtime: ImageRuntime, within: float = 5) -> bool:
    """Whether the runtime answers now (a probe, not a wait)."""
    try:
        async with asyncio.timeout(within):
            await runtime.info()
    except (RuntimeFailure, TimeoutError):
        return False
    return True
