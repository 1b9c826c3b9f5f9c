"""An in-memory `ImageRuntime` whose every answer a test scripts.

Allowed by the quality bar's one exception because it is not a stand-in for Docker or
containerd: it *is* the seam (`jcp/runtime/base.py`) the engine is written against. The engine's
unit tests need faults no real runtime produces on demand and on time (a pull that goes silent
after exactly one progress event, a layer queued behind download slots, a 429 on the third
pull, the runtime vanishing while a given pull is in flight), and they need to see every call
the engine made ("no pull call at all"; "that pull was cancelled, 40 ms after the reload").
It is an adapter like the real ones, and `tests/integration/test_runtime_contract.py` holds it
to the same protocol promises as Docker and containerd, so that what the unit tests prove of
the engine holds on a node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

from jcp.model.credentials import RegistryAuth
from jcp.model.failures import Failure, Reason
from jcp.model.refs import ImageRef, InvalidReferenceError, parse_reference
from jcp.runtime.base import (
    FsUsage,
    ImageStatus,
    ProgressCallback,
    Pulled,
    PullProgress,
    RuntimeFailure,
    RuntimeInfo,
)
from jcp.runtime.fake_scripts import (  # fmt: skip
    Pull,
    PullCall,
    digest_of,
    fail,
    gate,
    hang,
    succeed,
    trickle,
    unchanged,
)

__all__ = ["Pull", "PullCall", "ScriptedRuntime", "digest_of", "fail", "gate", "hang",
           "succeed", "trickle", "unchanged"]  # fmt: skip


class ScriptedRuntime:
    """The `ImageRuntime` protocol over a dict of images and per-image pull scripts.

    An image without a script (or whose script is used up) pulls successfully with one
    progress event; the last script of an image is *not* repeated. A successful pull makes the
    runtime hold the image (tag and digest), as a real one would. With REPORTS_PROGRESS False
    (like the CRI) pulls call no progress callback, though they still count their bytes.
    """

    def __init__(
        self,
        *,
        reports_progress: bool = True,
        supports_platform: bool = True,
        arch: str | None = "amd64",
    ) -> None:
        self.reports_progress = reports_progress
        self.supports_platform = supports_platform
        self.arch = arch
        self.images: dict[str, ImageStatus] = {}
        self.scripts: dict[ImageRef, list[Pull]] = {}
        self.pulls: list[PullCall] = []
        self.calls: list[tuple[str, str]] = []
        """(method, argument) of every call, in order; `down` calls included."""
        self.down = False
        self._wakes: dict[int, asyncio.Future[None]] = {}  # id(PullCall) -> its wake-up
        self._changed = asyncio.Event()

    # -- scripting --------------------------------------------------------------------------

    def script(self, image: str | ImageRef, *pulls: Pull) -> ImageRef:
        """The next pulls of IMAGE, in order; returns IMAGE normalised."""
        ref = image if isinstance(image, ImageRef) else parse_reference(image)
        self.scripts.setdefault(ref, []).extend(pulls)
        return ref

    def hold(self, *names: str, image_id: str | None = None, size: int = 0) -> ImageStatus:
        """Hold one image known by NAMES, written as the runtime writes them (Docker's
        `ubuntu:22.04`, `ubuntu@sha256:...`; the CRI's fully qualified names)."""
        tags = tuple(n for n in names if "@" not in n)
        digests = tuple(n for n in names if "@" in n)
        status = ImageStatus(image_id or digest_of("|".join(names)), tags, digests, size)
        self.images[status.id] = status
        return status

    def forget(self, image: str | ImageRef) -> None:
        """Drop every image IMAGE names (the kubelet's GC, a person's `docker rmi`)."""
        ref = image if isinstance(image, ImageRef) else parse_reference(image)
        for status in list(self.images.values()):
            if ref in _refs(status):
                del self.images[status.id]

    def go_down(self) -> None:
        """The runtime vanishes: calls raise DAEMON, and so do the pulls in flight."""
        self.down = True
        for wake in self._wakes.values():
            if not wake.done():
                wake.set_exception(RuntimeFailure(_down()))
        self._notify()

    def come_up(self) -> None:
        self.down = False
        self._notify()

    def release(self, image: str | ImageRef) -> int:
        """Let IMAGE's gated pulls in flight finish; returns how many were released."""
        ref = image if isinstance(image, ImageRef) else parse_reference(image)
        released = 0
        for call in self.pulls:
            wake = self._wakes.get(id(call))
            if call.image == ref and wake is not None and not wake.done():
                wake.set_result(None)
                released += 1
        return released

    # -- what happened ----------------------------------------------------------------------

    def pulls_of(self, image: str | ImageRef) -> list[PullCall]:
        ref = image if isinstance(image, ImageRef) else parse_reference(image)
        return [p for p in self.pulls if p.image == ref]

    def running(self, image: str | ImageRef) -> bool:
        return any(p.running for p in self.pulls_of(image))

    def holds(self, image: str | ImageRef) -> bool:
        ref = image if isinstance(image, ImageRef) else parse_reference(image)
        return any(ref in _refs(s) for s in self.images.values())

    async def until(
        self,
        predicate: Callable[[], bool],
        what: str,
        timeout: float = 5.0,  # noqa: ASYNC109 - a test helper: the deadline is its argument
    ) -> None:
        """Wait, without polling, until PREDICATE holds after some call or script change."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _call(self, method: str, arg: object = "") -> None:
        self.calls.append((method, str(arg)))
        self._notify()
        if self.down:
            raise RuntimeFailure(_down())

    # -- the protocol -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return "scripted://runtime"

    async def info(self) -> RuntimeInfo:
        self._call("info")
        return RuntimeInfo(
            kind="scripted",
            name="scripted",
            endpoint=self.endpoint,
            version="1.0",
            api_version="1",
            arch=self.arch,
            raw_arch=self.arch or "pdp11",
            reports_progress=self.reports_progress,
            supports_platform=self.supports_platform,
        )

    async def image_status(self, image: ImageRef) -> ImageStatus | None:
        self._call("image_status", image)
        return next((s for s in self.images.values() if image in _refs(s)), None)

    async def list_images(self) -> list[ImageStatus]:
        self._call("list_images")
        return list(self.images.values())

    async def pull(
        self,
        image: ImageRef,
        *,
        auth: RegistryAuth | None,
        platform: str | None,
        on_progress: ProgressCallback | None,
    ) -> Pulled:
        call = PullCall(image, auth, platform)
        self.pulls.append(call)
        try:
            self._call("pull", image)
        except RuntimeFailure:
            self._end(call, "down")
            raise
        queue = self.scripts.get(image, [])
        pull = queue.pop(0) if queue else Pull()
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wakes[id(call)] = wake

        def report() -> None:
            call.bytes += pull.step
            if on_progress is not None and self.reports_progress:
                total = max(call.bytes, pull.events * pull.step)
                on_progress(PullProgress(call.bytes, total, queued=pull.queued))
            self._notify()

        try:
            await _play(pull, wake, report)
        except asyncio.CancelledError:
            self._end(call, "cancelled")
            raise
        except RuntimeFailure as exc:
            self._end(call, "down" if exc.down else "failed")
            raise
        finally:
            self._wakes.pop(id(call), None)
        digest = pull.digest or digest_of(str(image))
        self._untag(image)
        self.hold(*_names(image, digest), image_id=digest_of(digest), size=call.bytes)
        self._end(call, "done")
        return Pulled(newer=pull.newer, digest=digest, bytes=call.bytes)

    async def remove(self, image: ImageRef) -> None:
        self._call("remove", image)
        self.forget(image)

    async def images_in_use(self) -> set[str]:
        self._call("images_in_use")
        return set()

    async def fs_usage(self) -> FsUsage | None:
        self._call("fs_usage")
        return None

    async def close(self) -> None:
        self.calls.append(("close", ""))

    def _untag(self, image: ImageRef) -> None:
        """A pulled tag moves to the new content, as in a real runtime."""
        if image.tag is None:
            return
        for status in list(self.images.values()):
            tags = tuple(t for t in status.repo_tags if _parse(t) != image)
            if tags != status.repo_tags:
                self.images[status.id] = replace(status, repo_tags=tags)

    def _end(self, call: PullCall, result: str) -> None:
        call.result = result
        call.ended = time.monotonic()
        self._notify()


async def _play(pull: Pull, wake: asyncio.Future[None], report: Callable[[], None]) -> None:
    for _ in range(pull.events):
        await asyncio.sleep(pull.interval)
        report()
    if pull.end == "fail":
        assert pull.failure is not None
        raise RuntimeFailure(pull.failure)
    if pull.end in ("hang", "gate"):
        await wake
    while pull.end == "trickle":
        await asyncio.wait({wake}, timeout=pull.interval)
        if wake.done():
            wake.result()  # raises if the runtime went down
        report()


def _down() -> Failure:
    return Failure(Reason.DAEMON, "scripted runtime is down")


def _names(image: ImageRef, digest: str) -> list[str]:
    names = [f"{image.name}@{digest}"]
    if image.tag is not None:
        names.append(f"{image.name}:{image.tag}")
    return names


def _parse(name: str) -> ImageRef | None:
    try:
        return parse_reference(name)
    except InvalidReferenceError:
        return None


def _refs(status: ImageStatus) -> set[ImageRef]:
    refs = (_parse(n) for n in (*status.repo_tags, *status.repo_digests))
    return {r for r in refs if r is not None}
