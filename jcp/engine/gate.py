"""Which registries may be asked now: one owner for rate-limit pauses and no-remote fallbacks.

As the kubelet's `throttled_puller.go` wraps its image service, every path to a registry (the
digest HEAD, the manifest GETs of sizing, the runtime's pull) passes this gate: a registry that
answered 429 is left alone as a whole for its Retry-After (else --rate-limit-pause), logged and
counted once per pause; a registry that cannot be asked at all (refused, unreachable, HEAD
refused) is said once and left to the runtime's own pull from then on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from jcp.model.failures import Failure

log = logging.getLogger(__name__)


class RegistryGate:
    def __init__(
        self, default_pause: float, on_paused: Callable[[str, float], None] | None = None
    ) -> None:
        self.default_pause = default_pause
        self._on_paused = on_paused
        self._until: dict[str, float] = {}
        """Registry host -> loop time until which its requests and pulls wait."""
        self.no_remote: dict[str, str] = {}
        """Registry host -> why its digests and manifests cannot be asked."""

    def pause(self, registry: str, failure: Failure) -> None:
        """REGISTRY answered 429: leave it alone for its Retry-After (else the default)."""
        pause = failure.retry_after or self.default_pause
        now = _now()
        if self._until.get(registry, 0) <= now:
            log.warning(
                f"registry {registry} is rate-limiting pulls ({failure.message}); pausing all "
                f"its pulls for {pause:.0f}s",
                extra={"fields": {"event": "rate_limited", "registry": registry, "pause": pause}},
            )
            if self._on_paused is not None:
                self._on_paused(registry, pause)
        self._until[registry] = max(self._until.get(registry, 0), now + pause)

    def wait_left(self, registry: str) -> float:
        """Seconds REGISTRY is still paused for (0: it may be asked now)."""
        until = self._until.get(registry)
        return 0.0 if until is None else max(0.0, until - _now())

    def fall_back(self, registry: str, why: str) -> None:
        """Stop asking REGISTRY (said once): its images go through the runtime's own pull."""
        if registry in self.no_remote:
            return
        self.no_remote[registry] = why
        log.warning(
            f"registry {registry} cannot be asked for digests ({why}); its images are refreshed "
            "through the runtime's own pull",
            extra={"fields": {"event": "remote_fallback", "registry": registry}},
        )

    def askable(self, registry: str) -> bool:
        """Whether jcp itself may send REGISTRY a request now."""
        return registry not in self.no_remote and self.wait_left(registry) == 0


def _now() -> float:
    return asyncio.get_running_loop().time()
