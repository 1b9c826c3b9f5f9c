"""The read model: one Snapshot, rebuilt only when the live state changed, never per read.

Every mutation of an image's or a sweep's state bumps the engine's `Revision`; everything else
an observer sees (the config generation, the disk reading, the runtime link, the current sweep)
is compared by identity in an O(1) key. A read with an unchanged key gets the very same
Snapshot object, so readers may cache what they render from it by identity; a Snapshot is
also rebuilt after MAX_AGE, so its `taken` clock (which /healthz measures silence against)
never lags by more than that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from jcp.engine.configs import ConfigSource
from jcp.engine.disk import DiskGuard
from jcp.engine.runtime_link import RuntimeLink
from jcp.engine.state import ConfigView, DiskView, ImageState, Snapshot
from jcp.engine.sweeps import Sweeps
from jcp.runtime.base import FsUsage

MAX_AGE = 1.0
"""Seconds a Snapshot may be served while nothing changes."""


class ReadModel:
    def __init__(self, build: Callable[[], Snapshot], *, max_age: float = MAX_AGE) -> None:
        self._build = build
        self._max_age = max_age
        self._key: tuple[object, ...] | None = None
        self._snap: Snapshot | None = None

    def get(self, key: tuple[object, ...]) -> Snapshot:
        snap = self._snap
        if snap is None or key != self._key or time.monotonic() - snap.taken > self._max_age:
            snap = self._snap = self._build()
            self._key = key
        return snap


def build(
    *,
    source: ConfigSource,
    link: RuntimeLink,
    disk: DiskGuard,
    sweeps: Sweeps,
    states: Iterable[ImageState],
    node_arch: str | None,
    image_fs: FsUsage | None,
    last_progress: float,
    stall_timeout: float,
    choice: str | None,
    fleet_waiting: str | None = None,
    labels: tuple[Mapping[str, str] | None, int, str | None] = (None, 0, None),
) -> Snapshot:
    """The Snapshot of those parts; each image's view is cached by its state until it changes,
    so a rebuild at 1000 images copies 1000 pointers."""
    config = source.config
    reading = disk.reading
    return Snapshot(
        taken=time.monotonic(),
        config=ConfigView(
            generation=source.generation,
            digest=config.digest[:12] if config else None,
            entries=len(config.entries) if config else 0,
            interval=config.interval if config else None,
            last_reload_ok=source.last_error is None,
            last_error=source.last_error,
            config=config,
        ),
        loaded=source.generation > 0 or source.last_error is not None,
        node_arch=node_arch,
        runtime_endpoint=link.runtime.endpoint,
        runtime=link.info,
        runtime_reachable=link.reachable,
        runtime_choice=choice,
        disk=None
        if reading is None
        else DiskView(reading.path, reading.free, reading.total, reading.required, disk.active),
        image_fs=image_fs,
        sweep=sweeps.current.view() if sweeps.current is not None else None,
        last_full_sweep=sweeps.last_full.view() if sweeps.last_full is not None else None,
        last_progress=last_progress,
        stall_timeout=stall_timeout,
        images=tuple(s.view() for s in states),
        fleet_waiting=fleet_waiting,
        node_labels=labels[0],
        labels_waiting=labels[1],
        labels_trouble=labels[2],
    )


def booting(waiting_for: str | None) -> Snapshot:
    """The Snapshot before the engine exists: probes answer from the first second, and
    /readyz says what the agent waits for (a runtime that has not answered yet)."""
    now = time.monotonic()
    return Snapshot(
        taken=now,
        config=ConfigView(0, None, 0, None, last_reload_ok=True, last_error=None),
        loaded=False,
        node_arch=None,
        runtime_endpoint="",
        runtime=None,
        runtime_reachable=False,
        runtime_choice=None,
        disk=None,
        image_fs=None,
        sweep=None,
        last_full_sweep=None,
        last_progress=now,
        stall_timeout=0.0,
        images=(),
        waiting_for=waiting_for or "looking for a container runtime",
    )
