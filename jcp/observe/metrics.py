"""Prometheus metrics: counters from engine events, gauges from the snapshot at each scrape.

Labels hold image references, outcomes, failure classes and registry hosts only: never a secret
name's value, a username or any credential. Per-image series follow the config: an image dropped
from it loses all its series, so cardinality stays at a few series per configured image
(`jcp_image_cached`, at most one `jcp_image_failing`, and one `jcp_pulls_total` per outcome and
reason it has had). No `_created` series. The registry is injected so every test gets fresh
counters.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from jcp.engine.events import Events
from jcp.engine.state import Snapshot, SweepView
from jcp.model.results import Outcome, PullResult
from jcp.observe import metrics_sync
from jcp.observe.fetch_metrics import FetchMetrics
from jcp.observe.ledger_metrics import LedgerHealth, LedgerMetrics
from jcp.runtime.base import RuntimeInfo

_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


class Metrics(Events):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.pulls = Counter(
            "jcp_pulls",
            "Image outcomes per sweep, by image, outcome and failure reason",
            ["image", "outcome", "reason"],
            registry=r,
        )
        self.cancelled = Counter(
            "jcp_pulls_cancelled", "Pulls cancelled because their image left the config", registry=r
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
        self.reload_ok = Gauge(
            "jcp_config_last_reload_success",
            "1 if the last config change was applied, 0 if it was rejected (the last good "
            "config stays in force)",
            registry=r,
        )
        self.generation = Gauge("jcp_config_generation", "Config generation in use", registry=r)
        self.config_info = Gauge(
            "jcp_config_info",
            "The config in use (digest: first 12 hex of its hash)",
            ["digest"],
            registry=r,
        )
        self.runtime_up = Gauge(
            "jcp_daemon_reachable", "1 if the container runtime answered last time", registry=r
        )
        self.runtime_info = Gauge(
            "jcp_runtime_info",
            "The container runtime jcp pulls into",
            ["kind", "name", "version", "endpoint"],
            registry=r,
        )
        self.rate_limits = Counter(
            "jcp_registry_rate_limited",
            "Times a registry answered 'too many requests' and its pulls were paused",
            ["registry"],
            registry=r,
        )
        self.evictions = Counter(
            "jcp_images_evicted",
            "Images jcp had cached and later found gone from the runtime (image GC churn)",
            registry=r,
        )
        self.tags_moved = Counter(
            "jcp_tags_moved",
            "Present images whose tag the registry moved to another digest (then pulled)",
            registry=r,
        )
        self.registry_requests = Counter(
            "jcp_registry_requests",
            "Requests jcp made to registries itself (digests, manifests, tokens)",
            ["registry", "kind", "result"],
            registry=r,
        )
        self.registry_limit = Gauge(
            "jcp_registry_ratelimit_limit",
            "A registry's pull rate limit, as its last answer to jcp said (Docker Hub's "
            "ratelimit-limit header)",
            ["registry"],
            registry=r,
        )
        self.registry_remaining = Gauge(
            "jcp_registry_ratelimit_remaining",
            "What remains of a registry's pull rate limit, as its last answer to jcp said",
            ["registry"],
            registry=r,
        )
        self.disk_guard = Gauge(
            "jcp_disk_guard_active",
            "1 while pulls are held back for lack of disk space",
            registry=r,
        )
        self.disk_free = Gauge(
            "jcp_disk_free_bytes", "Free bytes on the watched image disk", registry=r
        )
        self.pinned_images = Gauge(
            "jcp_images_pinned",
            "Managed images the runtime reports as pinned (--pin; CRI ImageStatus)",
            registry=r,
        )
        self.image_fs_used = Gauge(
            "jcp_image_fs_used_bytes",
            "Bytes the runtime's image file system uses, as the runtime reports it (CRI)",
            registry=r,
        )
        self.image_fs_inodes = Gauge(
            "jcp_image_fs_inodes_used",
            "Inodes the runtime's image file system uses, as the runtime reports it (CRI)",
            registry=r,
        )
        self.build = Gauge(
            "jcp_build_info",
            "jcp version, runtime API version, node architecture and name",
            ["version", "docker_api_version", "arch", "node"],
            registry=r,
        )
        self.fleet_waiting = Gauge(
            "jcp_fleet_waiting",
            "1 while this node waits for a fleet pull slot (--fleet-parallelism), else 0",
            registry=r,
        )
        self.labels_waiting = Gauge(
            "jcp_images_waiting_for_labels",
            "Entries with a nodeSelector not pulled because this node's labels are unknown",
            registry=r,
        )
        self.ledger = LedgerMetrics(r)
        self.fetch = FetchMetrics(r)
        self.pull_series: dict[str, set[tuple[str, str]]] = {}
        self.cached_images: set[str] = set()
        self.failing_reasons: dict[str, str] = {}
        self._labels: dict[str, tuple[str, ...]] = {}

    # -- events -----------------------------------------------------------------------------

    def config_loaded(self, *, ok: bool) -> None:
        self.reloads.labels("ok" if ok else "rejected").inc()
        self.reload_ok.set(1 if ok else 0)

    def runtime_seen(self, info: RuntimeInfo) -> None:
        self.runtime_up.set(1)
        self.set_once(
            self.runtime_info, "runtime", (info.kind, info.name, info.version, info.endpoint)
        )

    def runtime_lost(self) -> None:
        self.runtime_up.set(0)

    def sweep_started(self, sweep: SweepView) -> None:
        if sweep.kind == "sweep":
            self.sweep_start.set(sweep.started_wall)

    def sweep_finished(self, sweep: SweepView) -> None:
        seconds = (sweep.ended or sweep.started) - sweep.started
        self.sweep_duration.labels(sweep.kind).observe(seconds)
        if sweep.kind == "sweep":
            now = sweep.started_wall + seconds
            self.sweep_end.set(now)
            if not sweep.failed:
                self.sweep_ok.set(now)

    def pull_finished(self, result: PullResult) -> None:
        if result.bytes:
            self.bytes.inc(result.bytes)
        if result.outcome == Outcome.CANCELLED:
            self.cancelled.inc()
            return
        image = str(result.image)
        label = str(result.reason) if result.reason else ""
        self.pulls.labels(image, str(result.outcome), label).inc()
        self.pull_series.setdefault(image, set()).add((str(result.outcome), label))
        self.duration.labels(str(result.outcome)).observe(result.duration)

    def rate_limited(self, registry: str, pause: float) -> None:
        self.rate_limits.labels(registry).inc()

    def evicted(self, image: str) -> None:
        self.evictions.inc()

    def tag_moved(self, image: str) -> None:
        self.tags_moved.inc()

    def registry_request(self, registry: str, kind: str, result: str) -> None:
        self.registry_requests.labels(registry, kind, result).inc()

    def pinned(self, pinned: int, managed: int) -> None:
        self.pinned_images.set(pinned)

    def registry_limits(self, registry: str, limit: int | None, remaining: int | None) -> None:
        if limit is not None:
            self.registry_limit.labels(registry).set(limit)
        if remaining is not None:
            self.registry_remaining.labels(registry).set(remaining)

    # -- a scrape ---------------------------------------------------------------------------

    def set_once(self, gauge: Gauge, key: str, labels: tuple[str, ...]) -> None:
        old = self._labels.get(key)
        if old == labels:
            return
        if old is not None:
            gauge.remove(*old)
        gauge.labels(*labels).set(1)
        self._labels[key] = labels

    def watch_ledger(self, ledger: LedgerHealth) -> None:
        self.ledger.watch(ledger)

    def status_extra(self) -> dict[str, object]:
        """Sections of /status that are not in the snapshot (the purge ledger's health)."""
        return {**self.ledger.status(), **self.fetch.status()}

    def render(self, snap: Snapshot) -> tuple[bytes, str]:
        self.sync(snap)
        self.ledger.sync()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def sync(self, snap: Snapshot) -> None:
        """Gauges from the snapshot (`metrics_sync.py`)."""
        metrics_sync.sync(self, snap)
