"""jcp's blob fetch in /metrics and /status: read from its counts at each scrape.

The fetch counts where it happens (`jcp.model.fetch.FetchCounts`); the composition root hands
the same object here, so a scrape costs a handful of samples whatever the image count.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from jcp.model.fetch import FetchCounts


class FetchMetrics(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.counts: FetchCounts | None = None
        """None until a runtime is chosen (Docker: never; it has no content API)."""
        registry.register(self)

    def watch(self, counts: FetchCounts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        c = self.counts
        if c is None:
            return
        yield GaugeMetricFamily(
            "jcp_fetch_enabled",
            "1 when jcp fetches image blobs into the runtime's content store itself",
            value=1 if c.mode == "on" else 0,
        )
        moved = CounterMetricFamily(
            "jcp_fetch_bytes",
            "Blob bytes of images to pull: fetched by jcp, already present, or kept from a "
            "cut-off ingest (resumed)",
            labels=["kind"],
        )
        for kind, value in (
            ("fetched", c.bytes_fetched),
            ("present", c.bytes_present),
            ("resumed", c.bytes_resumed),
        ):
            moved.add_metric([kind], value)
        yield moved
        yield CounterMetricFamily(
            "jcp_fetch_ranges", "Range requests of jcp's blob fetch", value=c.ranges
        )
        yield CounterMetricFamily(
            "jcp_fetch_images",
            "Images whose blobs jcp fetched before the runtime unpacked",
            value=c.images,
        )
        fallbacks = CounterMetricFamily(
            "jcp_fetch_fallbacks",
            "Pulls left to the runtime's own fetch, by registry or runtime and reason",
            labels=["where", "reason"],
        )
        for (where, reason), n in sorted(c.fallbacks.items()):
            fallbacks.add_metric([where, reason], n)
        yield fallbacks

    def status(self) -> dict[str, object]:
        return {} if self.counts is None else {"fetch": self.counts.document()}
