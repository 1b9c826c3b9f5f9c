"""One pull of one image through the Docker Engine API, as one attempt.

An attempt never raises for a pull problem: it returns an `Attempt` with the failure classified,
so that a bad image can never cancel its siblings in the task group. Closing the stream (on
cancel, stall or timeout) makes the daemon abandon the pull.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aiodocker

from jcp.credentials import RegistryAuth
from jcp.failures import Failure, PullTimeoutError, StallError, classify
from jcp.refs import ImageRef


class Outcome(StrEnum):
    PULLED = "pulled"
    UP_TO_DATE = "up_to_date"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class Progress:
    """Live byte counts of one pull, summed over its layers, for displays and /status."""

    layers: dict[str, tuple[int, int]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)

    @property
    def queued(self) -> bool:
        """Some layer waits for one of the daemon's download slots (3 for all pulls, by default)."""
        return any(s in ("Waiting", "Pulling fs layer") for s in self.status.values())

    @property
    def current(self) -> int:
        return sum(c for c, _ in self.layers.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self.layers.values())

    def update(self, event: dict[str, Any]) -> None:
        layer = event.get("id")
        status = str(event.get("status", ""))
        if not isinstance(layer, str):
            return
        detail = event.get("progressDetail") or {}
        self.status[layer] = status
        if status == "Downloading":
            current, total = int(detail.get("current", 0)), int(detail.get("total", 0))
            self.layers[layer] = (current, max(total, current))
        elif status in ("Download complete", "Verifying Checksum"):
            _, total = self.layers.get(layer, (0, 0))
            self.layers[layer] = (total, total)


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    duration: float
    bytes: int = 0
    digest: str | None = None
    failure: Failure | None = None


async def present(docker: aiodocker.Docker, image: ImageRef) -> bool:
    try:
        await docker.images.inspect(str(image))
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return False
        raise
    return True


async def _stream(
    docker: aiodocker.Docker,
    *,
    image: ImageRef,
    platform: str,
    auth: RegistryAuth | None,
    stall_timeout: float,
    progress: Progress,
    on_event: Callable[[], None] | None,
    activity: Callable[[], float] | None,
) -> tuple[bool, str | None]:
    """Follow the pull stream; returns (downloaded newer image, digest).

    A pull is stalled when its stream has been silent for `stall_timeout`, unless its layers
    are queued behind the daemon's download slots while the daemon makes progress elsewhere
    (ACTIVITY: monotonic time of the last event of any pull): a 10 GB image downloading next
    to it must not get it abandoned.
    """
    from_image = image.name if image.digest is None else str(image)
    tag = image.tag if image.digest is None else None
    stream = docker.images.pull(
        from_image,
        tag=tag,
        platform=platform,
        auth=auth.header_payload() if auth else None,
        stream=True,
    )
    last = time.monotonic()
    newer, digest = False, None

    async def consume() -> None:
        nonlocal last, newer, digest
        async for event in stream:
            last = time.monotonic()
            progress.update(event)
            status = str(event.get("status", ""))
            if status.startswith("Digest: "):
                digest = status.removeprefix("Digest: ").strip()
            elif status.startswith("Status: Downloaded newer image"):
                newer = True
            if on_event is not None:
                on_event()

    task = asyncio.create_task(consume())
    try:
        while True:
            await asyncio.wait({task}, timeout=min(1.0, stall_timeout / 4))
            if task.done():
                task.result()
                return newer, digest
            now = time.monotonic()
            if now - last <= stall_timeout:
                continue
            elsewhere = activity() if activity is not None else last
            if progress.queued and now - elsewhere <= stall_timeout:
                continue
            raise StallError(f"no progress for {stall_timeout:g}s; pull abandoned")
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def pull_once(
    docker: aiodocker.Docker,
    image: ImageRef,
    *,
    platform: str,
    auth: RegistryAuth | None,
    pull_timeout: float,
    stall_timeout: float,
    progress: Progress | None = None,
    on_event: Callable[[], None] | None = None,
    activity: Callable[[], float] | None = None,
) -> Attempt:
    """One attempt at IMAGE; a digest-pinned image already present is not pulled at all."""
    started = time.monotonic()
    progress = progress if progress is not None else Progress()
    try:
        if image.pinned and await present(docker, image):
            return Attempt(Outcome.UP_TO_DATE, time.monotonic() - started, digest=image.digest)
        try:
            async with asyncio.timeout(pull_timeout):
                newer, digest = await _stream(
                    docker,
                    image=image,
                    platform=platform,
                    auth=auth,
                    stall_timeout=stall_timeout,
                    progress=progress,
                    on_event=on_event,
                    activity=activity,
                )
        except TimeoutError:
            raise PullTimeoutError(f"pull took longer than {pull_timeout:g}s") from None
    except Exception as exc:
        return Attempt(
            Outcome.FAILED, time.monotonic() - started, progress.current, failure=classify(exc)
        )
    outcome = Outcome.PULLED if newer else Outcome.UP_TO_DATE
    return Attempt(outcome, time.monotonic() - started, progress.current, digest)
