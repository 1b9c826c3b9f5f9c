"""A fetching process SIGKILLed mid-blob, on real containerd 1.6 and 1.7: the next fetch (a
new process's, under a new lease) resumes from the offset containerd holds, and fetches no more
than what was missing plus one range (counted at the registry's side); the dead process's
lease carries its expiry. And containerd's GC, run mid-fetch, takes nothing in flight."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from devstack.images import RegistryClient as Pusher
from devstack.stack import Stack
from jcp.registry.blobs import BlobFetcher
from jcp.runtime.content_store import EXPIRE_LABEL, ContentStore
from tests.support.blob_proxy import BlobProxy
from tests.support.fetch_images import MiB, no_jcp_leases, pushed
from tests.support.helpers import wait_for

pytest_plugins = ("tests.support.fetch_fixtures",)
Proxy = Callable[..., BlobProxy]
Fetcher = Callable[..., BlobFetcher]
CHUNK = 2 * MiB


async def killed_mid_fetch(endpoint: str, image: str, after: int) -> str:
    """Run tests/support/fetch_child.py, SIGKILL it once AFTER bytes arrived; its lease."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.fetch_child", endpoint, image, str(CHUNK),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    lease = ""
    try:
        async with asyncio.timeout(60):
            while line := (await proc.stdout.readline()).decode().strip():
                assert line != "done", "the fetch ended before it was killed"
                if line.startswith("lease "):
                    lease = line.split()[1]
                elif int(line) >= after:
                    break
    finally:
        proc.kill()
        await proc.wait()
    assert lease
    return lease


async def test_a_killed_fetch_resumes_in_the_next_process(
    stack: Stack, open_client: Pusher, store: ContentStore, blob_proxy: Proxy,
    fetcher: Fetcher, unique: Callable[[str], str],
) -> None:  # fmt: skip
    proxy = blob_proxy(stack.open_registry.host, rate=20e6)
    image = await pushed(open_client, unique("killed"), proxy, 24 * MiB)
    dead = await killed_mid_fetch(store.endpoint, str(image.ref), 10 * MiB)
    assert EXPIRE_LABEL in (await store.leases())[dead], "it expires by itself"
    ref = f"jcp-{image.layer.digest}"
    await wait_for(lambda: store.status(ref), what="containerd to hold the dead process's ingest")
    absent = [b.size for b in image.blobs if await store.info(b.digest) is None]
    sent = proxy.bytes_sent
    lease = await store.lease(300)
    try:
        report = await fetcher(streams=2, chunk=CHUNK).fetch(
            image.ref, image.blobs, store, None, lambda _n: None, lease=lease
        )
        # Asked while the lease holds it: once both leases are gone, containerd's GC may
        # take the unreferenced blob at any moment.
        assert await store.info(image.layer.digest) == image.layer.size
    finally:
        await store.drop_lease(lease)
        await store.drop_lease(dead)
    assert report.resumed_bytes >= MiB, report
    missing = sum(absent) - report.resumed_bytes
    assert proxy.bytes_sent - sent == report.bytes_fetched <= missing + CHUNK
    assert await no_jcp_leases(store)


async def test_gc_mid_fetch_takes_nothing_in_flight(
    stack: Stack, open_client: Pusher, store: ContentStore, blob_proxy: Proxy,
    fetcher: Fetcher, unique: Callable[[str], str],
) -> None:  # fmt: skip
    proxy = blob_proxy(stack.open_registry.host, rate=20e6)
    image = await pushed(open_client, unique("gc"), proxy, 16 * MiB)
    lease = await store.lease(300)
    got = [0]
    task = asyncio.create_task(
        fetcher(streams=2, chunk=CHUNK).fetch(
            image.ref, image.blobs, store, None, lambda n: got.__setitem__(0, got[0] + n),
            lease=lease,
        )
    )  # fmt: skip
    try:
        await wait_for(lambda: got[0] >= 6 * MiB, what="the fetch under way")
        assert await store.info(image.blobs[0].digest) is not None, "the config is committed"
        # what deleting an image does: a lease dropped with sync runs containerd's GC now
        await store.drop_lease(await store.lease(60), sync=True)
        assert await store.info(image.blobs[0].digest) is not None, "leased: kept"
        assert (await store.status(f"jcp-{image.layer.digest}") or 0) > 0, "ingest kept"
        report = await task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.drop_lease(lease)
    assert report.blobs_fetched == 2
    assert await store.info(image.layer.digest) == image.layer.size
