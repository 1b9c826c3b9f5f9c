"""Cut-off fetches on real containerd 1.6 and 1.7: a fetch stopped mid-blob resumes from the
offset containerd holds (counted at the registry side), a cancelled fetch leaves no ingest and
no lease, a lease left by a crash expires by itself, and a socket without containerd's
content API says so (the caller then leaves the bytes to the runtime); a reset connection is
resumed within its range, and a registry that keeps cutting fails with the ingest kept."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.containerd import Containerd
from devstack.images import RegistryClient as Pusher
from devstack.stack import Stack
from jcp.registry.blobs import BlobFetcher, FetchError, FetchReport
from jcp.runtime.content_store import EXPIRE_LABEL, ContentStore
from tests.support.blob_proxy import BlobProxy
from tests.support.fetch_images import Image, MiB, no_jcp_leases, pushed
from tests.support.helpers import wait_for

pytest_plugins = ("tests.support.fetch_fixtures",)
Proxy = Callable[..., BlobProxy]
Fetcher = Callable[..., BlobFetcher]
CHUNK = 2 * MiB


async def cut_off(f: BlobFetcher, image: Image, store: ContentStore, lease: str, **kw: bool) -> int:
    """Start a fetch of IMAGE and cancel it once 10 MiB have arrived; returns bytes received."""
    got = [0]
    cut = asyncio.Event()

    def count(n: int) -> None:
        got[0] += n
        if got[0] >= 10 * MiB:
            cut.set()

    task = asyncio.create_task(
        f.fetch(image.ref, image.blobs, store, None, count, lease=lease, **kw)
    )
    waiter = asyncio.create_task(cut.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    assert not task.done(), "the fetch ended before it was cut off"
    task.cancel()
    waiter.cancel()
    await asyncio.gather(task, waiter, return_exceptions=True)
    return got[0]


async def test_a_cut_off_fetch_resumes_where_containerd_is(
    stack: Stack, open_client: Pusher, store: ContentStore, blob_proxy: Proxy,
    fetcher: Fetcher, unique: Callable[[str], str],
) -> None:  # fmt: skip
    proxy = blob_proxy(stack.open_registry.host)
    image = await pushed(open_client, unique("resume"), proxy, 24 * MiB)
    ref = f"jcp-{image.layer.digest}"
    lease = await store.lease(300)
    try:
        first = await cut_off(
            fetcher(streams=2, chunk=CHUNK), image, store, lease, keep_on_cancel=True
        )
        assert first < image.layer.size
        held = await store.status(ref)
        assert held is not None, "the ingest is kept for the next fetch"
        assert 0 < held < image.layer.size
        absent = [b.size for b in image.blobs if await store.info(b.digest) is None]
        sent = proxy.bytes_sent
        report: FetchReport = await fetcher(streams=2, chunk=CHUNK).fetch(
            image.ref, image.blobs, store, None, lambda _n: None, lease=lease
        )
    finally:
        await store.drop_lease(lease)
    # containerd's own offset, from the writer's STAT: Status may lag a just-cut stream
    assert report.resumed_bytes >= held
    missing = sum(absent) - report.resumed_bytes
    assert proxy.bytes_sent - sent == report.bytes_fetched, "counted at the registry's side"
    assert report.bytes_fetched <= missing + CHUNK
    assert await store.info(image.layer.digest) == image.layer.size, "containerd verified it"
    assert await store.status(ref) is None


async def test_a_cancelled_fetch_leaves_no_ingest_and_no_lease(
    stack: Stack, open_client: Pusher, store: ContentStore, blob_proxy: Proxy,
    fetcher: Fetcher, unique: Callable[[str], str],
) -> None:  # fmt: skip
    proxy = blob_proxy(stack.open_registry.host)
    image = await pushed(open_client, unique("cancel"), proxy, 24 * MiB)
    lease = await store.lease(300)
    try:
        await cut_off(fetcher(streams=2, chunk=CHUNK), image, store, lease)
    finally:
        await store.drop_lease(lease)
    assert await store.status(f"jcp-{image.layer.digest}") is None
    assert await store.info(image.layer.digest) is None
    assert await no_jcp_leases(store)


async def test_a_lease_left_by_a_crash_expires_by_itself(store: ContentStore) -> None:
    """A jcp killed mid-fetch never drops its lease: containerd's GC does, once the
    `containerd.io/gc.expire` label says so, and takes the content it held."""
    blob = os.urandom(64 * 1024)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    crashed = ContentStore(store.endpoint)
    lease = await crashed.lease(ttl=1)
    writer = await crashed.writer(f"jcp-{digest}", digest, len(blob), lease)
    await writer.write(blob)
    await writer.commit()
    await crashed.close()  # and nothing more: the process is gone
    labels = (await store.leases())[lease]
    expire = datetime.fromisoformat(labels[EXPIRE_LABEL])
    assert 0 < (expire - datetime.now(UTC)).total_seconds() <= 1.5
    assert await store.info(digest) == len(blob)

    async def collected() -> bool:
        # Any sync lease deletion runs containerd's GC at once (else it runs on its schedule).
        await store.drop_lease(await store.lease(60), sync=True)
        return lease not in await store.leases() and await store.info(digest) is None

    await wait_for(collected, timeout=15, what="containerd to drop the expired lease")


async def available(endpoint: str) -> str | None:
    store = ContentStore(endpoint)
    try:
        return await store.available()
    finally:
        await store.close()


async def test_a_socket_without_the_content_api_says_so(
    stack: Stack, tmp_path: Path, containerd: Containerd
) -> None:
    assert await available(containerd.endpoint) is None
    gone = await available(f"unix://{tmp_path}/none.sock")
    assert gone is not None
    assert "does not answer" in gone
    root = Path(tempfile.mkdtemp(prefix="jcpfn-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    bare = Containerd(
        root, registries=[stack.open_registry.host], disabled=("io.containerd.grpc.v1.content",)
    )
    bare.start()
    try:
        reason = await available(bare.endpoint)
    finally:
        bare.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert reason is not None
    assert "has no containerd content API" in reason


async def test_a_reset_connection_resumes_within_its_range(
    stack: Stack, open_client: Pusher, store: ContentStore, blob_proxy: Proxy,
    fetcher: Fetcher, unique: Callable[[str], str],
) -> None:  # fmt: skip
    proxy = blob_proxy(stack.open_registry.host, reset_after=MiB + 7, resets=3)
    image = await pushed(open_client, unique("reset"), proxy, 8 * MiB)
    lease = await store.lease(300)
    try:
        report = await fetcher(streams=4, chunk=CHUNK).fetch(
            image.ref, image.blobs, store, None, lambda _n: None, lease=lease
        )
    finally:
        await store.drop_lease(lease)
    assert proxy.resets == 0, "three answers were cut"
    ranges = 1 + math.ceil(image.layer.size / CHUNK)  # the config, the layer's ranges
    assert report.ranges == ranges + 3, "and three retries"
    assert report.bytes_fetched == sum(b.size for b in image.blobs), "no byte asked twice"
    assert await store.info(image.layer.digest) == image.layer.size


async def test_a_registry_that_keeps_cutting_fails_and_keeps_the_ingest(
    stack: Stack, open_client: Pusher, store: ContentStore, blob_proxy: Proxy,
    fetcher: Fetcher, unique: Callable[[str], str],
) -> None:  # fmt: skip
    proxy = blob_proxy(stack.open_registry.host, reset_after=MiB, resets=1000)
    image = await pushed(open_client, unique("cutting"), proxy, 8 * MiB)
    lease = await store.lease(300)
    f = fetcher(streams=1, chunk=4 * MiB, retries=2)
    try:
        with pytest.raises(FetchError) as failed:
            await f.fetch(image.ref, image.blobs, store, None, lambda _n: None, lease=lease)
        assert not failed.value.corrupt
        assert "3 attempts failed" in str(failed.value)
        held = await store.status(f"jcp-{image.layer.digest}")
        assert held is not None, "kept: the next attempt resumes it"
        assert held >= MiB
        assert await store.info(image.layer.digest) is None
    finally:
        await store.drop_lease(lease, sync=True)
    assert await store.status(f"jcp-{image.layer.digest}") is None, "gone with its lease"
    assert (f.window.held, f.window.used) == (0, 0), "the window was given back"
