"""Sizes and platforms of the images a sweep is about to pull, asked of the registry first.

Why ask before the runtime pulls:
- a manifest list without the node's platform is a permanent failure that the runtime would
  report only after a round trip, in its own words; jcp says "not built for linux/arm64" and
  makes no runtime call;
- the compressed size tells the disk guard whether a pull fits, and gives CRI pulls (which
  report no progress) a total;
- a sweep starts its largest pulls first (longest processing time first), so the biggest image
  does not start last and set the end of a cold warm-up.

Only images to pull are inspected (absent, or their tag moved): a steady sweep stays at one
HEAD per image. Docker Hub counts manifest GETs against its pull rate limit, so `--inspect auto`
(the default) leaves Hub images alone, and any registry that says it meters pulls (RateLimit
headers on its answers; the first image of each registry is asked alone to find out); `always`
and `never` are the other choices. A registry that cannot be asked, or answered 429, is left to
the runtime's own pull.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Mapping

from jcp.engine.credentials import Credentials
from jcp.engine.gate import RegistryGate
from jcp.engine.plan import Observed
from jcp.engine.remote import Remote, RemoteError
from jcp.model.config import Target, TargetKey
from jcp.model.credentials import RegistryAuth
from jcp.model.failures import Failure, Reason
from jcp.model.manifests import RemoteImage
from jcp.model.refs import DOCKER_HUB
from jcp.settings import Inspect

log = logging.getLogger(__name__)

PRESIZE_BUDGET = 10.0
"""Seconds a sweep may spend sizing before it starts pulling; what is not known by then is
inspected by its puller (and queued as if it were the largest)."""

Found = RemoteImage | Failure | None
"""What inspection tells: the image's size, a permanent failure (platform), or nothing."""


class Sizing:
    def __init__(
        self, remote: Remote | None, mode: Inspect, gate: RegistryGate, creds: Credentials
    ) -> None:
        self.remote = remote
        self.mode = mode
        self.gate = gate
        self.creds = creds
        self.known: dict[TargetKey, RemoteImage | Failure] = {}
        """This sweep's answers, by target (a tag may move between sweeps)."""

    def asks(self, target: Target) -> bool:
        remote, registry = self.remote, target.registry
        if remote is None or self.mode == Inspect.NEVER or not self.gate.askable(registry):
            return False
        # A registry that meters pulls counts manifest GETs: do not double them (auto).
        return self.mode == Inspect.ALWAYS or not (
            registry == DOCKER_HUB or remote.metered(registry)
        )

    async def inspect(self, target: Target, auth: RegistryAuth | None, arch: str) -> Found:
        found = self.known.get(target.key)
        if found is not None or self.remote is None or not self.asks(target):
            return found
        try:
            image = await self.remote.inspect(target.image, auth, arch)
        except RemoteError as exc:
            if exc.unreachable:
                self.gate.fall_back(target.registry, exc.failure.message)
                return None
            if exc.failure.reason == Reason.PLATFORM:
                self.known[target.key] = exc.failure
                return exc.failure
            if exc.failure.reason == Reason.RATE_LIMITED:
                self.gate.pause(target.registry, exc.failure)
            # Not found, auth, a manifest jcp cannot read: the runtime's pull says it best.
            log.debug(f"{target.image}: not inspected ({exc.failure.message})")
            return None
        self.known[target.key] = image
        return image

    async def ordered(
        self,
        targets: list[Target],
        observed: Observed | None,
        arch: str | None,
        *,
        skip: Collection[TargetKey],
    ) -> list[Target]:
        """TARGETS in the order a sweep should take them: the images to pull first, largest
        first (sized at their registries), then the present ones. A cold warm-up ends when its
        longest pull does. SKIP: failed permanently (not asked again until they change)."""
        self.known.clear()
        if observed is None or arch is None:
            return targets
        absent = [t for t in targets if not observed.holds(t.image) and t.key not in skip]
        if not absent:
            return targets

        await self.presize(absent, arch)
        first = largest_first(absent, self.known)
        keys = {t.key for t in first}
        return first + [t for t in targets if t.key not in keys]

    async def presize(self, targets: Iterable[Target], arch: str) -> None:
        """Inspect TARGETS together (the remote bounds requests per registry), for at most
        PRESIZE_BUDGET seconds."""
        self.known.clear()

        async def one(target: Target) -> None:
            try:
                auth = (await self.creds.of(target))[0]
            except Exception:
                return
            await self.inspect(target, auth, arch)

        by_registry: dict[str, list[Target]] = {}
        for target in targets:
            by_registry.setdefault(target.registry, []).append(target)

        async def registry(some: list[Target]) -> None:
            # One first, alone: if its answer says the registry meters pulls (RateLimit
            # headers) or refuses, the rest are not asked (`asks` says no).
            asked = [t for t in some if self.asks(t)]
            if not asked:
                return
            first, *rest = asked
            await one(first)
            await asyncio.gather(*(one(t) for t in rest if self.asks(t)))

        tasks = [asyncio.create_task(registry(some)) for some in by_registry.values()]
        _, late = await asyncio.wait(tasks, timeout=PRESIZE_BUDGET)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def largest_first(targets: list[Target], known: Mapping[TargetKey, object]) -> list[Target]:
    """TARGETS by priority (the site's order: higher first), then by size, largest first;
    within a priority those of unknown size first of all (one of them may be the largest),
    each group in config order. When the disk cannot hold everything, what waits is the
    lowest priority."""

    def order(t: Target) -> tuple[int, float]:
        found = known.get(t.key)
        return t.priority, float(found.size) if isinstance(found, RemoteImage) else float("inf")

    return sorted(targets, key=order, reverse=True)
