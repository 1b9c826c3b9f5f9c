"""Building the read model from the engine's live state: the one place that reads it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from jcp.engine.state import ConfigView, DiskView, Snapshot, image_view

if TYPE_CHECKING:
    from jcp.engine.scheduler import Scheduler


def build(s: Scheduler) -> Snapshot:
    config = s.source.config
    reading = s.disk.reading
    return Snapshot(
        taken=time.monotonic(),
        config=ConfigView(
            generation=s.source.generation,
            digest=config.digest[:12] if config else None,
            entries=len(config.entries) if config else 0,
            interval=config.interval if config else None,
            last_reload_ok=s.source.last_error is None,
            last_error=s.source.last_error,
        ),
        loaded=s.source.generation > 0 or s.source.last_error is not None,
        node_arch=s.node_arch,
        runtime_endpoint=s.runtime.endpoint,
        runtime=s.info,
        runtime_reachable=s.reachable,
        runtime_choice=s.choice,
        disk=None
        if reading is None
        else DiskView(reading.path, reading.free, reading.total, reading.required, s.disk.active),
        image_fs=s.image_fs,
        sweep=s.sweep.view() if s.sweep is not None else None,
        last_full_sweep=s.last_full_sweep.view() if s.last_full_sweep is not None else None,
        last_progress=s.last_progress,
        stall_timeout=s.settings.stall_timeout,
        images=tuple(image_view(st) for st in s.states.values()),
    )
