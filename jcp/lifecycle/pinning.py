"""`--pin`: keep the kubelet's image GC away from the images jcp manages, and say whether it
worked.

After each full sweep: pin the managed images the runtime does not report as pinned (through
containerd's own API, `jcp.runtime.pins`: the CRI has no call for it), unpin the ones jcp
pinned that left the config, then read the pins back through the runtime (the `pinned` that
CRI ListImages and ImageStatus report) and say, once per change, how many of the managed
images are pinned and, when none is, why: Docker has no pins, containerd < 1.7 ignores the
label, CRI-O has no containerd API. Nothing here changes what the engine pulls; a failure is
logged once and pinning waits for the next sweep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from jcp.engine.events import Events
from jcp.engine.state import Snapshot, SweepView
from jcp.model.refs import ImageRef
from jcp.runtime.base import ImageRuntime, ImageStatus, RuntimeFailure

log = logging.getLogger(__name__)

PIN_LABEL = "io.cri-containerd.pinned"


class PinSetter(Protocol):
    async def apply(self, names: Iterable[str], *, pinned: bool) -> int: ...

    async def ours(self) -> set[str]: ...


def _refs(image: ImageStatus) -> set[ImageRef]:
    return set(image.refs())


def _names(image: ImageStatus) -> list[str]:
    return [*image.repo_tags, *image.repo_digests, image.id]


class Pinning(Events):
    def __init__(
        self,
        runtime: ImageRuntime,
        snapshot: Callable[[], Snapshot],
        setter: PinSetter | None,
        on_counts: Callable[[int, int], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.snapshot = snapshot
        self.setter = setter
        self.on_counts = on_counts
        self._sweeps = asyncio.Event()
        self._said: tuple[int, int, str] | None = None
        self._failed: str | None = None
        self._labelled = False
        """The pin labels were on at an earlier pass: a runtime still reporting none pinned
        ignores them (not merely has not read them yet: containerd 1.7 reads them from the
        image update event, asynchronously to the Update call)."""

    def sweep_finished(self, sweep: SweepView) -> None:
        if sweep.kind == "sweep":
            self._sweeps.set()

    async def run(self) -> None:
        while True:
            await self._sweeps.wait()
            self._sweeps.clear()
            await self.once()

    async def once(self) -> None:
        wanted = {v.image for v in self.snapshot().images}
        try:
            images = await self.runtime.list_images()
        except RuntimeFailure:
            return
        settled = self._labelled
        tried = await self._apply(images, wanted)
        self._labelled = settled or tried
        if tried:
            try:
                images = await self.runtime.list_images()  # read the pins back
            except RuntimeFailure:
                return
        managed = [i for i in images if _refs(i) & wanted]
        pinned = sum(1 for i in managed if i.pinned)
        if tried and not settled and pinned < len(managed):
            return  # containerd reads a new label from its image event, maybe not yet: next sweep
        self._report(pinned, len(wanted), settled)

    async def _apply(self, images: list[ImageStatus], wanted: set[ImageRef]) -> bool:
        """Pin what is managed and not pinned, unpin what jcp pinned and no longer manages;
        True if the label is on them, set now or by an earlier run (so that the read-back can
        tell whether the runtime honours it, after a restart too)."""
        if self.setter is None:
            return False
        to_pin = [i for i in images if _refs(i) & wanted and not i.pinned]
        try:
            ours = await self.setter.ours()
            dropped = [i for i in images if not _refs(i) & wanted and set(_names(i)) & ours]
            for image in dropped:
                await self.setter.apply(_names(image), pinned=False)
                log.info(f"unpinned {', '.join(image.repo_tags) or image.id}: no longer listed")
            labelled = 0
            for image in to_pin:
                labelled += await self.setter.apply(_names(image), pinned=True)
        except Exception as exc:  # pinning must never stop the agent
            message = str(exc)
            if message != self._failed:
                self._failed = message
                log.warning(f"pinning: {message}")
            return False
        self._failed = None
        return labelled > 0

    def _report(self, pinned: int, wanted: int, settled: bool) -> None:
        if self.on_counts is not None:
            self.on_counts(pinned, wanted)
        snap = self.snapshot()
        runtime = snap.runtime
        why = ""
        if wanted and not pinned:
            if runtime is not None and runtime.kind == "docker":
                why = ": Docker has no pins, so the kubelet's image GC may remove them"
            elif settled:
                version = f" {runtime.version}" if runtime is not None else ""
                name = runtime.name if runtime is not None else "the runtime"
                why = (
                    f": {name}{version} ignores the {PIN_LABEL} label jcp set (containerd < 1.7"
                    " has no pinning), so the kubelet's image GC may remove them; jcp pulls "
                    "them again"
                )
            elif self.setter is None or self._failed:
                why = ": this runtime does not pin them; the kubelet's image GC may remove them"
        said = (pinned, wanted, why)
        if said != self._said:
            self._said = said
            log.info(
                f"pinning: {pinned} of {wanted} managed images are pinned{why}",
                extra={"fields": {"event": "pinning", "pinned": pinned, "managed": wanted}},
            )
