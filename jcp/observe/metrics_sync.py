"""Metrics from the Snapshot at each scrape: gauges set, and the per-image series of images no
longer selected removed, so that cardinality follows the config."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from jcp import __version__
from jcp.engine.state import Snapshot
from jcp.model.results import Outcome

if TYPE_CHECKING:
    from jcp.observe.metrics import Metrics


def sync(m: Metrics, snap: Snapshot) -> None:
    if snap.config.generation:
        m.generation.set(snap.config.generation)
        m.configured.set(snap.config.entries)
        m.set_once(m.config_info, "config", (snap.config.digest or "",))
    if snap.runtime is not None:
        arch = snap.node_arch or snap.runtime.raw_arch
        node = os.environ.get("NODE_NAME", "")
        m.set_once(m.build, "build", (__version__, snap.runtime.api_version, arch, node))
    m.disk_guard.set(1 if snap.disk_guard_active else 0)
    if snap.disk is not None:
        m.disk_free.set(snap.disk.free)
    fs = snap.image_fs
    if fs is not None and fs.used_bytes is not None:
        m.image_fs_used.set(fs.used_bytes)
    if fs is not None and fs.inodes_used is not None:
        m.image_fs_inodes.set(fs.inodes_used)
    current = {str(v.image): v for v in snap.images}
    for gone in m.cached_images - current.keys():
        m.cached.remove(gone)
    for gone in set(m.pull_series) - current.keys():
        for outcome, why in m.pull_series.pop(gone):
            m.pulls.remove(gone, outcome, why)
    for image in set(m.failing_reasons) - current.keys():
        m.failing.remove(image, m.failing_reasons.pop(image))
    present = 0
    for image, view in current.items():
        cached = view.cached_since is not None
        present += cached
        m.cached.labels(image).set(1 if cached else 0)
        last = view.last
        failed = last is not None and last.outcome == Outcome.FAILED
        reason: str | None = str(last.reason) if failed and last is not None else None
        old = m.failing_reasons.get(image)
        if old is not None and old != reason:
            m.failing.remove(image, old)
            del m.failing_reasons[image]
        if reason is not None:
            m.failing.labels(image, reason).set(1)
            m.failing_reasons[image] = reason
    m.cached_images = set(current)
    m.selected.set(len(current))
    m.present.set(present)
    m.fleet_waiting.set(1 if snap.fleet_waiting is not None else 0)
    m.labels_waiting.set(snap.labels_waiting)
