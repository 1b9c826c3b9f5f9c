"""A registry's endpoints tried in order, as containerd's resolver and fetcher try them
(`core/remotes/docker/resolver.go` Resolve, `fetcher.go` Fetch): the next one after a transport
error or any status >= 400 (1.6, 1.7 and 2.x alike); when all fail, the most telling failure is
the one raised, as containerd 2.x's `firstErrPriority` picks it (another status over not found
over unreachable; 1.6 and 1.7 report the first failure that is not a 404, which differs only in
the message when endpoints fail differently).

Shared by the manifest requests of `client.py` and the blob fetches, so that both say the same
once: an endpoint that fails is logged when it starts failing, and when it answers again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from jcp.model.failures import Failure, Reason, RegistryFailure
from jcp.registry.endpoint import Endpoint

log = logging.getLogger(__name__)
T = TypeVar("T")


def rank(exc: RegistryFailure) -> int:
    """containerd's priority of a failure: 1 unreachable, 2 not found, 3 any other status."""
    if exc.unreachable:
        return 1
    return 2 if exc.failure.reason == Reason.NOT_FOUND else 3


class Fallback:
    def __init__(self) -> None:
        self._failing: set[tuple[str, str]] = set()

    async def first(
        self,
        registry: str,
        endpoints: Sequence[Endpoint],
        attempt: Callable[[Endpoint], Awaitable[T]],
        needs: str,
    ) -> T:
        """ATTEMPT at each of REGISTRY's ENDPOINTS in turn until one succeeds; raises the
        RegistryFailure that ranks highest (first among equals). NEEDS names the capability
        asked, for the error when no endpoint has it."""
        if not endpoints:
            raise RegistryFailure(
                Failure(Reason.REGISTRY, f"{registry}: no endpoint in hosts.toml may {needs}"),
                unreachable=True,
            )
        worst: RegistryFailure | None = None
        for i, endpoint in enumerate(endpoints):
            try:
                found = await attempt(endpoint)
            except RegistryFailure as exc:
                if len(endpoints) == 1:
                    raise
                if worst is None or rank(exc) > rank(worst):
                    worst = exc
                self._failed(registry, endpoint, exc, last=i == len(endpoints) - 1)
                continue
            self._answered(registry, endpoint)
            return found
        assert worst is not None
        raise worst

    def _failed(
        self, registry: str, endpoint: Endpoint, exc: RegistryFailure, *, last: bool
    ) -> None:
        key = (registry, endpoint.root)
        if key in self._failing:
            return
        self._failing.add(key)
        then = "no endpoint left" if last else "trying the next endpoint of its hosts.toml"
        log.warning(
            f"{registry}: {endpoint.root} failed ({exc.failure.message}); {then}",
            extra={"fields": {"event": "registry_fallback", "registry": registry}},
        )

    def _answered(self, registry: str, endpoint: Endpoint) -> None:
        key = (registry, endpoint.root)
        if key in self._failing:
            self._failing.discard(key)
            log.info(f"{registry}: {endpoint.root} answers again")
