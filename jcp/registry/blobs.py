"""jcp's own blob fetch: an image's config and layers from the registry into the runtime's
content store, so that the runtime's pull finds them there and only unpacks.

Why: the runtimes fetch each layer over one connection, and links pace connections (CDNs,
object stores): several Range requests at once per large blob, and several blobs at once, go
at the link's speed. The runtime's store is a `ContentSink` (containerd's content store
satisfies it structurally; this layer knows no runtime).

Memory: bytes read from the registry and not yet written into the sink are held in a reorder
window (ranges finish out of order, the sink takes them in order). A range that is not the one
being written reserves its length in the window before it is asked for, and waits while the
window is full; the range being written (the head) streams through a small buffer. So the
bytes held never exceed `window + streams * (HEAD_BUFFER + PIECE)` (`BlobFetcher.bound`,
asserted in the tests), whatever the number of blobs and their sizes: 8 x 4 MiB + 8 x 2.25
MiB = 50 MiB with the defaults (measured: +46 MiB of RSS for a 200 MiB blob).

Verification: the sink hashes the bytes as they are written and its commit refuses a digest
or size that does not match (containerd's content writer does, resumed ingests included: it
hashes the prefix it holds); a refusal aborts the ingest, commits nothing and is `FetchError`
with `corrupt`. jcp does not hash them a second time: sha256 cost 0.67 s of jcp's CPU per GB
here, a tenth of its fetch, to learn what the commit says anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from urllib.parse import urljoin, urlsplit

import aiohttp

from jcp import __version__
from jcp.model.credentials import RegistryAuth
from jcp.model.errors import JcpError
from jcp.model.failures import RegistryFailure
from jcp.model.manifests import Blob
from jcp.model.refs import ImageRef
from jcp.registry.blob_model import BlobWriter, ContentSink, FetchError, FetchReport, Job
from jcp.registry.blob_ranges import HEAD_BUFFER, PIECE, Range, Window, plan
from jcp.registry.client import RegistryClient
from jcp.registry.endpoint import HostsError

STREAMS = 8
CHUNK = 4 * 1024 * 1024
"""Measured (bench/fetch.py, /tmp/jcp-work/fetch-readme.md): on loopback streams and chunk
barely move the rate (jcp's CPU sets it), but the RSS grows with the window (8 x 16 MiB:
+162 MiB, past the pod's 192 Mi limit; 8 x 4 MiB: +46 MiB); on connections paced to 5 MB/s,
8 x 4 MiB fetch a 64 MiB blob at 34.5 MB/s against 5.0 over one stream."""
MIN_RANGE = 1024 * 1024
"""A blob of fewer than `streams` chunks is cut into `streams` ranges, none under this."""
RETRIES = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_HOPS = 5
USER_AGENT = f"jcp/{__version__}"
"""What the registry's access log shows for jcp's blob GETs (the runtime's are its own)."""
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
__all__ = ["BlobFetcher", "BlobWriter", "ContentSink", "FetchError", "FetchReport"]


class _RetryError(Exception):
    """A transient failure of one request: retried from the byte it stopped at."""


class BlobFetcher:
    """Fetches blobs through CLIENT's auth (and base URL: its mirrors) over its own pool of
    `streams` connections (kept apart from the client's, so a long transfer never holds a
    connection a manifest HEAD waits for)."""

    def __init__(
        self,
        client: RegistryClient,
        *,
        streams: int = STREAMS,
        chunk: int = CHUNK,
        window: int | None = None,
        retries: int = RETRIES,
    ) -> None:
        self.client = client
        self.streams = streams
        self.chunk = max(chunk, PIECE)
        self.window = Window(max(window or streams * self.chunk, self.chunk))
        self.retries = retries
        self.range_support: dict[str, bool] = {}
        """Per registry, once known: does it answer a ranged GET with 206?"""
        self._probes: dict[str, asyncio.Event] = {}
        self._connections = asyncio.Semaphore(streams)
        self._blobs = asyncio.Semaphore(streams)
        self._session: aiohttp.ClientSession | None = None

    @property
    def bound(self) -> int:
        """The most bytes held for the sink at any time (the module's docstring says why)."""
        return self.window.limit + self.streams * (HEAD_BUFFER + PIECE)

    async def fetch(
        self,
        image: ImageRef,
        blobs: Sequence[Blob],
        sink: ContentSink,
        auth: RegistryAuth | None,
        on_bytes: Callable[[int], None],
        *,
        lease: str,
        keep_on_cancel: bool = False,
    ) -> FetchReport:
        """Every blob of BLOBS the sink lacks, committed under LEASE (the caller's: it must
        hold the blobs until the runtime's image record does). Raises FetchError; a
        cancelled fetch aborts its ingests, unless KEEP_ON_CANCEL (jcp stopping, an attempt
        cut off: the next fetch resumes them)."""
        report = FetchReport()
        started = time.monotonic()
        endpoint = self.client.blob_endpoint(image)
        try:
            tls = endpoint.ssl_context()
        except HostsError as exc:
            raise FetchError(f"{image}: {exc}", registry=image.registry, digest="") from None
        try:  # what the manifest requests learnt: no 401 first for every blob
            headers = await self.client.pull_headers(image, auth)
        except RegistryFailure as exc:
            raise FetchError(f"{image}: {exc}", registry=image.registry, digest="") from None
        jobs = [
            Job(image, b, self.client.blob_url(image, b.digest), auth, report, on_bytes, tls)
            for b in blobs
        ]
        for job in jobs:
            job.headers = dict(headers)
        tasks = [asyncio.create_task(self._one(j, sink, lease, keep_on_cancel)) for j in jobs]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            report.seconds = time.monotonic() - started
            report.range_supported = self.range_support.get(endpoint.host, True)
        return report

    async def _one(self, job: Job, sink: ContentSink, lease: str, keep: bool) -> None:
        blob = job.blob
        if not blob.digest.startswith("sha256:"):
            raise job.fail("only sha256 digests are verified here")
        async with self._blobs:
            try:
                if await sink.info(blob.digest) is not None:
                    job.report.blobs_present += 1
                    return
                writer = await sink.writer(f"jcp-{blob.digest}", blob.digest, blob.size, lease)
            except JcpError as exc:
                if getattr(exc, "code", None) == "ALREADY_EXISTS":  # committed meanwhile
                    job.report.blobs_present += 1
                    return
                raise job.fail(f"the runtime's content store: {exc}") from None
            try:
                await self._write(job, writer)
            except asyncio.CancelledError:
                await (writer.close() if keep else writer.abort())
                raise
            except FetchError as exc:
                await (writer.abort() if exc.corrupt else writer.close())
                raise
            except BaseException:
                await writer.abort()
                raise
            job.report.blobs_fetched += 1

    async def _write(self, job: Job, writer: BlobWriter) -> None:
        blob, start = job.blob, writer.offset
        job.report.resumed_bytes += start
        known = self.range_support.get(job.host)
        step = max(MIN_RANGE, min(self.chunk, -(-(blob.size - start) // self.streams)))
        ranges = plan(start, blob.size, step if known is not False else blob.size)
        probe = known is None and len(ranges) > 1 and job.host not in self._probes
        if probe:
            self._probes[job.host] = asyncio.Event()
        tasks = [
            asyncio.create_task(self._range(job, r, first=i == 0, probing=probe and i == 0))
            for i, r in enumerate(ranges)
        ]
        try:
            await self.window.drain(ranges, writer, lambda: job.error)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.window.forget(ranges)
        try:
            await writer.commit()
        except JcpError as exc:
            if getattr(exc, "code", None) == "FAILED_PRECONDITION":  # the digest: see above
                message = f"the bytes received are not {blob.size} bytes of that digest ({exc})"
                raise job.fail(message, corrupt=True) from None
            raise job.fail(f"the runtime refused it: {exc}") from None

    async def _range(self, job: Job, r: Range, *, first: bool, probing: bool) -> None:
        host = job.host
        try:
            probe = self._probes.get(host)
            if not first and probe is not None:
                await probe.wait()  # the first ranged GET tells whether ranges work
                if self.range_support.get(host) is False:
                    r.end = r.start  # the blob's first range takes it all, in one stream
                    await self.window.wake()
                    return
            await self.window.reserve(r)
            failures = 0
            while not r.complete:
                try:
                    async with self._connections:
                        await self._get(job, r, first=first, probing=probing)
                except (_RetryError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                    failures += 1
                    if failures > self.retries:
                        raise job.fail(f"{failures} attempts failed, the last: {exc}") from None
                    await asyncio.sleep(min(2.0, 0.1 * 2**failures))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            job.error = job.error or exc
            await self.window.wake()
        finally:
            if probing:
                self._probes[host].set()

    async def _get(self, job: Job, r: Range, *, first: bool, probing: bool) -> None:
        """One GET of what R still lacks, following redirects itself: credentials go to the
        registry's host only, never to the host a redirect names (object storage)."""
        url = job.url
        headers = {**job.headers, "Range": f"bytes={r.pos}-{r.end - 1}", "User-Agent": USER_AGENT}
        for _ in range(_MAX_HOPS):
            session = self._pool()
            tls = job.tls if job.tls is not None and _origin(url) == _origin(job.url) else True
            async with session.get(url, headers=headers, allow_redirects=False, ssl=tls) as resp:
                if resp.status in _REDIRECTS and "Location" in resp.headers:
                    target = urljoin(url, resp.headers["Location"])
                    if _origin(target) != _origin(url):  # nothing of the registry's goes there
                        headers = {k: headers[k] for k in ("Range", "User-Agent")}
                    url = target
                    continue
                if resp.status == 401 and url == job.url:
                    await self._authorize(job, resp.headers.get("WWW-Authenticate"))
                    raise _RetryError("401: authorizing again")
                await self._body(job, r, resp, first=first, probing=probing)
                return
        raise job.fail(f"more than {_MAX_HOPS} redirects")

    async def _authorize(self, job: Job, challenge: str | None) -> None:
        if job.challenged is not None:  # authorized once on a 401 already: refused
            raise job.fail("the registry refused the credentials (401)")
        try:
            job.headers = await self.client.pull_headers(job.image, job.auth, challenge)
        except RegistryFailure as exc:
            raise job.fail(str(exc)) from None
        job.challenged = challenge or ""

    async def _body(
        self, job: Job, r: Range, resp: aiohttp.ClientResponse, *, first: bool, probing: bool
    ) -> None:
        host, size = job.host, job.blob.size
        partial = r.pos > 0 or r.end < size
        skip = 0
        if resp.status == 206:
            if partial:
                self.range_support[host] = True
            if not resp.headers.get("Content-Range", "").startswith(f"bytes {r.pos}-"):
                raise job.fail(f"answered {resp.headers.get('Content-Range')} to a Range")
        elif resp.status == 200:
            if partial:  # Range ignored: this answer is the whole blob, one stream for it
                self.range_support[host] = False
                if not first:  # more than a range's room: the next fetch uses one stream
                    raise job.fail("the registry ignored Range in the middle of the blob")
                skip = r.pos
                r.end = size
        elif resp.status in (429, 408) or resp.status >= 500:
            raise _RetryError(f"{resp.status} from {host}")
        else:
            raise job.fail(f"{resp.status} from {urlsplit(str(resp.url)).netloc}")
        job.report.ranges += 1
        if probing:
            self._probes[host].set()
        async for received in resp.content.iter_chunked(PIECE):
            job.report.bytes_fetched += len(received)
            job.on_bytes(len(received))
            cut = min(skip, len(received))
            skip -= cut
            piece = received[cut : cut + r.end - r.pos]
            if piece:
                await self.window.put(r, piece)
            if r.complete:
                return
        if not r.complete:
            raise _RetryError(f"the answer ended at byte {r.pos} of {r.end}")

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0)  # the semaphore bounds connections
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=_TIMEOUT, auto_decompress=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc
