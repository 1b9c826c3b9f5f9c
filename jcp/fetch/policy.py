"""When jcp fetches blobs itself, and when it leaves a pull to the runtime: decided once per
runtime (its content API, its own settings, `--fetch`) and once per registry (its pace), each
fallback said once and counted (the fetch's runtime wrapper, runtime.py, asks here).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from jcp.model.credentials import RegistryAuth
from jcp.model.fetch import FetchCounts
from jcp.model.manifests import Blob
from jcp.model.refs import ImageRef
from jcp.registry.blob_probe import one_connection_rate
from jcp.registry.client import RegistryClient
from jcp.runtime.base import RuntimeInfo
from jcp.runtime.content_store import ContentStore
from jcp.runtime.cri_config import RuntimeTuning
from jcp.settings import FetchMode, FetchSettings

log = logging.getLogger(__name__)

PROBED_SIZE = 16 * 1024 * 1024
"""An image whose largest blob is this big is worth asking its registry's pace for."""
FAST_CONNECTION = 60e6
"""Bytes a second one connection must beat for `--fetch auto` to leave a registry to the
runtime: containerd's three download slots then get 180 MB/s, beyond what jcp's fetch
reaches on two cores (BENCHMARKS.md)."""


class Policy:
    def __init__(
        self, settings: FetchSettings, counts: FetchCounts, remote: RegistryClient
    ) -> None:
        self.settings = settings
        self.counts = counts
        self.remote = remote
        self.askable: Callable[[str], bool] = lambda _registry: True
        """Whether jcp may send a registry a request now (the engine's gate: not when it fell
        back to the runtime's own refresh, nor while it is paused for a rate limit)."""
        self._unranged: set[str] = set()
        self._judged: dict[str, asyncio.Future[bool]] = {}
        """Registry -> whether jcp fetches from it (`paced`), once its pace is known."""

    async def decide(self, info: RuntimeInfo, tuning: RuntimeTuning, store: ContentStore) -> bool:
        """Whether jcp fetches on this runtime; what its settings mean is said once."""
        runtime = f"{info.name} {info.version}".strip()
        lines = tuning.lines(runtime)
        if tuning.config_path and self.remote.hosts is None:
            lines.append(
                f"{runtime} reads registry host config (hosts.toml) from {tuning.config_path}: "
                "mount it and pass --registry-config-path so that jcp asks the mirrors it asks"
            )
        for line in lines:
            log.info(line, extra={"fields": {"event": "runtime_tuning"}})
        why = None
        if self.settings.mode == FetchMode.OFF:
            why = "--fetch off"
        elif tuning.ranged_fetch:
            why = f"{runtime} fetches layer ranges itself"
        else:
            why = await store.available()
        if why is None:
            self.counts.mode = "on"
            log.info(
                f"blob fetch: on ({self.settings.streams} connections, "
                f"{self.settings.chunk // (1024 * 1024)} MiB ranges, {self.settings.images} "
                "images at once); the runtime unpacks",
                extra={"fields": {"event": "fetch_mode", "mode": "on"}},
            )
            return True
        self.counts.mode = f"off ({why})"
        if why != "--fetch off":
            self.counts.fell_back(info.endpoint, why)
        level = logging.WARNING if self.settings.mode == FetchMode.ON else logging.INFO
        log.log(
            level,
            f"blob fetch: off ({why}); the runtime fetches every pull itself",
            extra={"fields": {"event": "fetch_mode", "mode": "off"}},
        )
        return False

    async def paced(
        self, image: ImageRef, auth: RegistryAuth | None, blobs: Sequence[Blob]
    ) -> bool:
        """With `--fetch auto`, whether IMAGE's registry is worth fetching from: asked once
        per registry (blob_probe.py says why), on its first image with a big blob."""
        registry = image.registry
        if self.settings.mode != FetchMode.AUTO:
            return True
        judging = self._judged.get(registry)
        if judging is None:
            largest = max(blobs, key=lambda b: b.size)
            if largest.size < PROBED_SIZE:
                return True
            # One probe per registry; the images that come meanwhile wait for its verdict.
            judging = asyncio.ensure_future(self._probe(image, largest, auth))
            self._judged[registry] = judging
        return await asyncio.shield(judging)

    async def _probe(self, image: ImageRef, largest: Blob, auth: RegistryAuth | None) -> bool:
        registry = image.registry
        rate = await one_connection_rate(self.remote, image, largest, auth)
        if rate is None or rate < FAST_CONNECTION:
            return True
        self.fall_back(
            registry,
            "fast link",
            f"one connection moved {rate / 1e6:.0f} MB/s (the link does not pace connections):"
            " the runtime's own fetch is as fast and costs less CPU (--fetch on fetches anyway)",
        )
        return False

    def fall_back(self, where: str, reason: str, detail: str) -> None:
        if self.counts.fell_back(where, reason):
            log.warning(
                f"{where}: blob fetch falls back to the runtime's own pull ({reason}): {detail}",
                extra={"fields": {"event": "fetch_fallback", "where": where, "reason": reason}},
            )

    def unranged(self, registry: str) -> None:
        """REGISTRY answered a ranged GET with the whole blob: said once."""
        if registry in self._unranged:
            return
        self._unranged.add(registry)
        log.warning(
            f"{registry} answers a ranged GET with the whole blob (no Range support): "
            "jcp fetches its blobs over one stream each",
            extra={"fields": {"event": "fetch_no_ranges", "registry": registry}},
        )
