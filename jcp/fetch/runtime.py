"""The CRI runtime with jcp's fetch in front of its pull: blobs first, then PullImage unpacks.

Why: containerd fetches each layer over one connection, behind one node-wide semaphore of
`max_concurrent_downloads` (3) shared by every pull; over links that pace each connection (CDNs,
object stores) a big layer arrives at one connection's rate. jcp fetches the blobs the content
store lacks with several range requests at once (`jcp.registry.blobs`), under a lease, and then
asks for PullImage as before: containerd treats a digest it holds as fetched, names and records
the image, and unpacks. The engine sees an `ImageRuntime` like any other, now with byte
progress (so stall detection works on containerd too) and honest byte counts: what jcp fetched,
not the image's size when the store already held it.

Never worse than the runtime's own pull: no content API on the socket (CRI-O, cri-dockerd),
a containerd that fetches ranges itself (2.1+ configured so), `--fetch off`: the pull is the
runtime's, said once at start. A registry whose manifest cannot be read or whose blobs fail
to fetch: that pull is the runtime's, said once per registry and reason, counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from jcp.engine.events import Events
from jcp.fetch.policy import Policy
from jcp.model.credentials import RegistryAuth
from jcp.model.failures import RegistryFailure
from jcp.model.fetch import FetchCounts
from jcp.model.manifests import Blob
from jcp.model.refs import DOCKER_HUB, ImageRef
from jcp.model.results import Outcome, PullResult
from jcp.registry.blobs import BlobFetcher, FetchError
from jcp.registry.client import RegistryClient
from jcp.runtime.base import (
    FsUsage,
    ImageStatus,
    ProgressCallback,
    Pulled,
    PullProgress,
    RuntimeInfo,
)
from jcp.runtime.content_store import ContentError, ContentStore
from jcp.runtime.cri import CriRuntime
from jcp.settings import FetchSettings

log = logging.getLogger(__name__)

HEARTBEAT = 5.0
"""Seconds between progress reports while the runtime unpacks (it reports none): unpacking is
local work, bounded by the pull timeout, not a stall."""


class FetchingRuntime:
    def __init__(
        self,
        inner: CriRuntime,
        remote: RegistryClient,
        settings: FetchSettings,
        counts: FetchCounts,
    ) -> None:
        self.inner = inner
        self.remote = remote
        self.settings = settings
        self.counts = counts
        self.store = ContentStore(inner.endpoint)
        self.fetcher = BlobFetcher(remote, streams=settings.streams, chunk=settings.chunk)
        self._slots = asyncio.Semaphore(settings.images)
        self._enabled: bool | None = None
        self._held: dict[str, tuple[str, list[str]]] = {}
        """Image -> the lease and ingest refs of its cut-off fetch (resumed, or forgotten)."""
        self._cleanups: set[asyncio.Task[None]] = set()
        self.policy = Policy(settings, counts, remote)
        self._arch: str | None = None

    @property
    def endpoint(self) -> str:
        return self.inner.endpoint

    async def info(self) -> RuntimeInfo:
        info = await self.inner.info()
        if self._enabled is None:
            tuning = await self.inner.tuning()
            self._enabled = await self.policy.decide(info, tuning, self.store)
            self._arch = info.arch
        return replace(info, reports_progress=self._enabled) if self._enabled else info

    async def pull(
        self,
        image: ImageRef,
        *,
        auth: RegistryAuth | None,
        platform: str | None,
        on_progress: ProgressCallback | None,
    ) -> Pulled:
        if not self._enabled or self._arch is None:
            return await self.inner.pull(image, auth=auth, platform=platform, on_progress=None)
        blobs = await self._missing(image, auth)
        if blobs is None:  # fell back (said and counted): the runtime fetched, its count
            return await self._unpack(image, auth, on_progress, 0)
        if not blobs:  # the store holds every blob: nothing was downloaded
            return replace(await self._unpack(image, auth, on_progress, 0), bytes=0)
        total = sum(b.size for b in blobs)
        key = str(image)
        # A cut-off attempt's lease holds its ingests (containerd deletes an ingest with the
        # lease that holds it): the next attempt fetches under the same one, and resumes them.
        earlier = self._held.pop(key, None)
        try:
            lease = earlier[0] if earlier else await self.store.lease(self.settings.lease_ttl)
        except ContentError as exc:  # containerd gone, or refusing: its own pull says which
            self.policy.fall_back(self.endpoint, "content store", str(exc))
            return await self._unpack(image, auth, on_progress, 0)
        try:
            started = time.monotonic()
            fetched, ranges = await self._fetch(image, blobs, auth, lease, on_progress)
            unpacking = time.monotonic()
            pulled = await self._unpack(image, auth, on_progress, total)
            if fetched:
                times = (unpacking - started, time.monotonic() - unpacking)
                _said_phases(image, fetched, ranges, *times)
        except asyncio.CancelledError:
            # Cut off (a stall, the timeout, jcp stopping, the image removed): the ingests and
            # the lease stay for the next attempt to resume, and the lease expires by itself;
            # an image that left the config is forgotten (`forget`) instead.
            self._held[key] = (lease, [f"jcp-{b.digest}" for b in blobs])
            raise
        except BaseException:
            await self._drop(lease)
            raise
        await self._drop(lease)
        return replace(pulled, bytes=fetched if pulled.newer else 0)

    async def _drop(self, lease: str) -> None:
        with contextlib.suppress(ContentError):
            await asyncio.shield(self.store.drop_lease(lease))

    def forget(self, image: ImageRef) -> None:
        """IMAGE left the config while its blobs were fetched: abort its ingests and drop its
        lease, so that nothing of it stays in the content store."""
        held = self._held.pop(str(image), None)
        if held is None:
            return
        task = asyncio.create_task(self._abort(*held))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _abort(self, lease: str, refs: list[str]) -> None:
        for ref in refs:
            with contextlib.suppress(ContentError):
                await self.store.abort(ref)
        await self._drop(lease)

    async def _unpack(
        self,
        image: ImageRef,
        auth: RegistryAuth | None,
        on_progress: ProgressCallback | None,
        total: int,
    ) -> Pulled:
        """The runtime's PullImage: it unpacks what jcp fetched, and fetches what is missing."""
        async with self._heartbeat(on_progress, total):
            return await self.inner.pull(image, auth=auth, platform=None, on_progress=None)

    async def _missing(self, image: ImageRef, auth: RegistryAuth | None) -> list[Blob] | None:
        """The blobs IMAGE needs that the content store lacks; None: the runtime's own pull."""
        assert self._arch is not None
        if not self.policy.askable(image.registry):
            return None  # the engine said why (its gate): the runtime's own pull, unseen here
        if image.registry == DOCKER_HUB or self.remote.metered(image.registry):
            why = "the registry counts manifest GETs against a pull limit"
            self.policy.fall_back(image.registry, "metered registry", why)
            return None
        try:
            found = await self.remote.inspect(image, auth, self._arch)
        except RegistryFailure as exc:
            self.policy.fall_back(image.registry, "manifest not readable", exc.failure.message)
            return None
        if not found.blobs:
            self.policy.fall_back(image.registry, "no blob list", "the manifest names no blobs")
            return None
        if not await self.policy.paced(image, auth, found.blobs):
            return None
        missing = []
        try:
            for blob in found.blobs:
                if await self.store.info(blob.digest) is None:
                    missing.append(blob)
                else:
                    self.counts.bytes_present += blob.size
        except ContentError as exc:
            self.policy.fall_back(self.endpoint, "content store", str(exc))
            return None
        return missing

    async def _fetch(
        self,
        image: ImageRef,
        blobs: Sequence[Blob],
        auth: RegistryAuth | None,
        lease: str,
        on_progress: ProgressCallback | None,
    ) -> tuple[int, int]:
        """Fetch BLOBS under LEASE; the bytes jcp fetched and its range requests (0, 0 when it
        fell back: the runtime then fetches what is still missing itself)."""
        done, total = 0, sum(b.size for b in blobs)

        def moved(n: int) -> None:
            nonlocal done
            done += n
            if on_progress is not None:
                on_progress(PullProgress(done, total))

        async with self._slots:
            try:
                report = await self.fetcher.fetch(
                    image, blobs, self.store, auth, on_bytes=moved, lease=lease, keep_on_cancel=True
                )
            except (FetchError, ContentError, RegistryFailure) as exc:
                self.policy.fall_back(image.registry, type(exc).__name__, str(exc))
                return done, 0
        c = self.counts
        c.bytes_fetched += report.bytes_fetched
        c.bytes_resumed += report.resumed_bytes
        c.ranges += report.ranges
        c.images += 1
        if not report.range_supported:
            self.policy.unranged(image.registry)
        return report.bytes_fetched, report.ranges

    @contextlib.asynccontextmanager
    async def _heartbeat(
        self, on_progress: ProgressCallback | None, total: int
    ) -> AsyncIterator[None]:
        """Progress at TOTAL every HEARTBEAT seconds while the runtime works unseen."""

        async def beat() -> None:
            while True:
                if on_progress is not None:
                    on_progress(PullProgress(total, total))
                await asyncio.sleep(HEARTBEAT)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def image_status(self, image: ImageRef) -> ImageStatus | None:
        return await self.inner.image_status(image)

    async def list_images(self) -> list[ImageStatus]:
        return await self.inner.list_images()

    async def remove(self, image: ImageRef) -> None:
        await self.inner.remove(image)

    async def images_in_use(self) -> set[str]:
        return await self.inner.images_in_use()

    async def fs_usage(self) -> FsUsage | None:
        return await self.inner.fs_usage()

    def janitor(self) -> Events:
        """The engine's events, for `forget`: a pull cancelled because its image left the
        config (jcp stopping cancels nothing through the engine: those ingests are kept)."""
        return _Janitor(self)

    async def close(self) -> None:
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)
        await self.fetcher.close()
        await self.store.close()
        await self.inner.close()


class _Janitor(Events):
    def __init__(self, runtime: FetchingRuntime) -> None:
        self.runtime = runtime

    def pull_finished(self, result: PullResult) -> None:
        if result.outcome == Outcome.CANCELLED:
            self.runtime.forget(result.image)


def _said_phases(
    image: ImageRef, fetched: int, ranges: int, fetching: float, unpacking: float
) -> None:
    """Where an image's pull time went: what tells a slow link (the fetch) from a busy node
    (the unpack), and what bench/big_images.py reads."""
    log.info(
        f"Fetched {image}: {fetched / 1e6:.1f} MB in {fetching:.1f}s ({ranges} ranges), "
        f"then the runtime unpacked it in {unpacking:.1f}s",
        extra={
            "fields": {
                "event": "fetch_done",
                "image": str(image),
                "bytes": fetched,
                "ranges": ranges,
                "fetch_seconds": round(fetching, 3),
                "unpack_seconds": round(unpacking, 3),
            }
        },
    )
