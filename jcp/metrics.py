"""Prometheus metrics, fed by the scheduler's observer hooks.

Labels hold image references, outcomes and failure classes only: never a secret name's value,
a username or any credential. The registry is injected so that every test gets fresh counters.
Per-image series follow the config: an image dropped from it loses its series.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from jcp import __version__
from jcp.observer import Observer
from jcp.pull import Outcome

if TYPE_CHECKING:
    from jcp.config import Target
    from jcp.daemon import DaemonInfo
    from jcp.scheduler import Scheduler
    from jcp.sweep import PullResult, Sweep

_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


class Metrics(Observer):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.pulls = Counter(
            "jcp_pulls",
            "Image outcomes per sweep, by image, outcome and failure reason",
            ["image", "outcome", "reason"],
            registry=r,
        )
        self.duration = Histogram(
            "jcp_pull_duration_seconds",
            "Time to pull or check one image (all attempts)",
            ["outcome"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.bytes = Counter("jcp_downloaded_bytes", "Bytes downloaded by pulls", registry=r)
        self.configured = Gauge("jcp_images_configured", "Entries in the config", registry=r)
        self.selected = Gauge(
            "jcp_images_selected", "Images this node's architecture pulls", registry=r
        )
        self.present = Gauge(
            "jcp_images_present", "Selected images cached at their last check", registry=r
        )
        self.cached = Gauge(
            "jcp_image_cached",
            "1 if the image was cached at its last check, else 0",
            ["image"],
            registry=r,
        )
        self.failing = Gauge(
            "jcp_image_failing",
            "1 with the failure reason while an image's last pull failed",
            ["image", "reason"],
            registry=r,
        )
        self.sweep_duration = Histogram(
            "jcp_sweep_duration_seconds",
            "Duration of sweeps",
            ["kind"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.sweep_start = Gauge(
            "jcp_last_sweep_start_timestamp_seconds", "Start of the last full sweep", registry=r
        )
        self.sweep_end = Gauge(
            "jcp_last_sweep_end_timestamp_seconds", "End of the last full sweep", registry=r
        )
        self.sweep_ok = Gauge(
            "jcp_last_successful_sweep_timestamp_seconds",
            "End of the last full sweep in which nothing failed",
            registry=r,
        )
        self.reloads = Counter(
            "jcp_config_reloads", "Config loads, by result", ["result"], registry=r
        )
        self.generation = Gauge("jcp_config_generation", "Config generation in use", registry=r)
        self.config_info = Gauge(
            "jcp_config_info",
            "The config in use (digest: first 12 hex of its hash)",
            ["digest"],
            registry=r,
        )
        self.daemon_up = Gauge(
            "jcp_daemon_reachable", "1 if the Docker daemon answered last time", registry=r
        )
        self.disk_guard = Gauge(
            "jcp_disk_guard_active",
            "1 while pulls are held back for lack of disk space",
            registry=r,
        )
        self.disk_free = Gauge(
            "jcp_disk_free_bytes", "Free bytes on the watched image disk", registry=r
        )
        self.build = Gauge(
            "jcp_build_info",
            "jcp version, Docker API version, node architecture and name",
            ["version", "docker_api_version", "arch", "node"],
            registry=r,
        )
        self._cached_images: set[str] = set()
        self._present: set[str] = set()
        self._failing: dict[str, str] = {}
        self._digest: str | None = None
        self._build_labels: tuple[str, str, str, str] | None = None

    # -- hooks ------------------------------------------------------------------------------

    def config_reloaded(self, *, ok: bool, scheduler: Scheduler) -> None:
        self.reloads.labels("ok" if ok else "rejected").inc()
        config = scheduler.config
        if not ok or config is None:
            return
        self.generation.set(scheduler.generation)
        self.configured.set(len(config.entries))
        if self._digest is not None:
            self.config_info.remove(self._digest)
        self._digest = config.digest[:12]
        self.config_info.labels(self._digest).set(1)
        self.sync_images(scheduler)

    def daemon_seen(self, info: DaemonInfo, *, scheduler: Scheduler) -> None:
        self.daemon_up.set(1)
        labels = (
            __version__,
            info.api_version,
            scheduler.node_arch or info.raw_arch,
            os.environ.get("NODE_NAME", ""),
        )
        if labels != self._build_labels:
            if self._build_labels is not None:
                self.build.remove(*self._build_labels)
            self.build.labels(*labels).set(1)
            self._build_labels = labels

    def daemon_lost(self) -> None:
        self.daemon_up.set(0)

    def disk_checked(self, *, scheduler: Scheduler) -> None:
        self.disk_guard.set(1 if scheduler.disk_guard_active else 0)
        if scheduler.disk_reading is not None:
            self.disk_free.set(scheduler.disk_reading.free)

    def sweep_started(self, sweep: Sweep, *, scheduler: Scheduler) -> None:
        if sweep.kind == "sweep":
            self.sweep_start.set(sweep.started_wall)
        self.sync_images(scheduler)

    def sweep_finished(self, sweep: Sweep, *, scheduler: Scheduler) -> None:
        seconds = (sweep.ended or time.monotonic()) - sweep.started
        self.sweep_duration.labels(sweep.kind).observe(seconds)
        if sweep.kind == "sweep":
            now = time.time()
            self.sweep_end.set(now)
            if not sweep.failed:
                self.sweep_ok.set(now)

    def pull_started(self, target: Target, *, scheduler: Scheduler) -> None:
        return

    def pull_finished(self, result: PullResult, *, scheduler: Scheduler) -> None:
        image = str(result.image)
        reason = str(result.reason) if result.reason else ""
        self.pulls.labels(image, str(result.outcome), reason).inc()
        self.duration.labels(str(result.outcome)).observe(result.duration)
        if result.bytes:
            self.bytes.inc(result.bytes)
        if result.outcome == Outcome.FAILED:
            self._set_failing(image, reason)
        else:
            self._set_failing(image, None)
        if image in self._cached_images:  # O(1): a sweep of n images costs O(n), not O(n^2)
            self._set_cached(image, result.present)

    # -- per-image series -------------------------------------------------------------------

    def _set_failing(self, image: str, reason: str | None) -> None:
        old = self._failing.pop(image, None)
        if old is not None and old != reason:
            self.failing.remove(image, old)
        if reason is not None:
            self.failing.labels(image, reason).set(1)
            self._failing[image] = reason

    def _set_cached(self, image: str, cached: bool) -> None:
        self.cached.labels(image).set(1 if cached else 0)
        if cached:
            self._present.add(image)
        else:
            self._present.discard(image)
        self.present.set(len(self._present))

    def sync_images(self, scheduler: Scheduler) -> None:
        """Make per-image series match the selected images and their last known state.

        O(n): called on config changes, at sweep starts and per scrape, never per pull.
        """
        current = {str(s.target.image): s for s in scheduler.states.values()}
        for gone in self._cached_images - current.keys():
            self.cached.remove(gone)
            self._set_failing(gone, None)
        self._present = {image for image, s in current.items() if s.cached_since is not None}
        for image in current:
            self.cached.labels(image).set(1 if image in self._present else 0)
        self._cached_images = set(current)
        self.selected.set(len(current))
        self.present.set(len(self._present))
