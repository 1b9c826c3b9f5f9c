"""Reaching the runtime: wait for it at start and after an outage, and notice it is back at once.

A node agent must outlive a runtime restart, so `jcp run` waits forever (give_up=False) and
probes every second while it waits: a runtime that answers again is noticed within a second and
said in one line that names the pulls it resumes, instead of jcp sleeping out a 30 s backoff.
Failures are logged on the backoff's schedule, not at every probe. `jcp once` gives up after the
backoff's retries and reports it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from jcp.model.errors import JcpError
from jcp.model.failures import Backoff
from jcp.model.refs import ImageRef
from jcp.runtime.base import ImageRuntime, RuntimeFailure, RuntimeInfo

log = logging.getLogger(__name__)

PROBE_EVERY = 1.0
"""Seconds between probes of a runtime that is down (`jcp run`)."""

SETTLE = 1.0
"""A daemon that is shutting down still answers /version for a moment while it fails pulls
("grpc: the client connection is closing"): a failed pull probes only after this long."""


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
    probe_every: float = PROBE_EVERY,
) -> RuntimeInfo:
    """Ask the runtime who it is until it answers."""
    loop = asyncio.get_running_loop()
    attempt = 0
    say_at = loop.time()
    while True:
        try:
            return await runtime.info()
        except RuntimeFailure as exc:
            if on_failure is not None:
                on_failure()
            now = loop.time()
            if give_up or now >= say_at:
                attempt += 1
                if give_up and attempt > backoff.retries:
                    raise RuntimeUnavailableError(
                        f"{label} unreachable: {exc.failure.message}"
                    ) from None
                delay = backoff.delay(min(attempt, 16))
                wait = delay if give_up else min(delay, probe_every)
                log.warning(
                    f"{label} unreachable: {exc.failure.message}; retrying in {wait:.1f}s",
                    extra={"fields": {"event": "daemon_unreachable", "endpoint": runtime.endpoint}},
                )
                say_at = now + delay
            await asyncio.sleep(backoff.delay(attempt) if give_up else probe_every)


async def answers(runtime: ImageRuntime, within: float = 5) -> bool:
    """Whether the runtime answers now (a probe, not a wait)."""
    try:
        async with asyncio.timeout(within):
            await runtime.info()
    except (RuntimeFailure, TimeoutError):
        return False
    return True


class RuntimeLink:
    """The engine's one view of whether the runtime is there: who it is, whether it answers,
    and the outages pulls wait out together (one probes and waits, the others follow)."""

    def __init__(
        self,
        runtime: ImageRuntime,
        backoff: Backoff,
        *,
        label: str,
        on_down: Callable[[], None],
        on_seen: Callable[[RuntimeInfo], None],
    ) -> None:
        self.runtime = runtime
        self.backoff = backoff
        self.label = label
        """How logs name the runtime: `Docker daemon at unix:///...`, `containerd at ...`."""
        self.info: RuntimeInfo | None = None
        self.reachable = False
        self._on_down = on_down
        self._on_seen = on_seen
        self._lock = asyncio.Lock()
        self._outages = 0
        self._waiting: set[ImageRef] = set()
        self._down_since: float | None = None

    async def connect(self, *, give_up: bool) -> RuntimeInfo:
        info = await wait_for_runtime(
            self.runtime, self.backoff, give_up=give_up, label=self.label, on_failure=self.down
        )
        if self.info is None:
            log.info(
                f"{self.label}: {info.name} version {info.version}, API {info.api_version}, "
                f"architecture {info.raw_arch}"
            )
        self.info = info
        self.reachable = True
        if self._down_since is not None:
            self._say_back(asyncio.get_running_loop().time() - self._down_since)
            self._down_since = None
        self._on_seen(info)
        return info

    def down(self) -> None:
        if self._down_since is None and self.info is not None:  # lost, not yet found
            self._down_since = asyncio.get_running_loop().time()
        self.reachable = False
        self._on_down()

    async def outlast(self, image: ImageRef) -> bool:
        """A pull of IMAGE failed as a runtime error: if the runtime really is gone, wait for
        it (True: pull again, no attempt spent). A probe decides, so that an error merely
        classified as a runtime error can never loop."""
        self._waiting.add(image)
        try:
            outages = self._outages
            await asyncio.sleep(SETTLE)
            async with self._lock:
                if self._outages != outages:  # another pull waited this outage out
                    return True
                if await answers(self.runtime):
                    return False
                log.warning(
                    f"{self.label} went away while pulling {image}; waiting for it, then "
                    "pulling again"
                )
                self.down()
                await self.connect(give_up=False)
                self._outages += 1
            return True
        finally:
            self._waiting.discard(image)

    def _say_back(self, seconds: float) -> None:
        names = sorted(str(i) for i in self._waiting)
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        log.info(
            f"{self.label} is back after {seconds:.1f}s; resuming {len(names)} "
            f"pull{'s' if len(names) != 1 else ''}: {shown}",
            extra={"fields": {"event": "runtime_back", "after": seconds, "resumed": names}},
        )
