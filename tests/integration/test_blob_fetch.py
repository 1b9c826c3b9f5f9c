"""jcp's blob fetch into a real containerd (1.6 and 1.7) from a real registry, through a real
proxy that records what the registry side saw: after the fetch the runtime's pull makes no
blob GET; a flipped byte commits nothing; a registry that ignores Range gets one stream; a
redirect to another host carries no credentials; the reorder window holds what it says; a
hosts.toml mirror gets every blob GET."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.containerd import Containerd
from devstack.images import RegistryClient as Pusher
from devstack.stack import AUTH_USER, Stack
from jcp.model.credentials import RegistryAuth
from jcp.registry.blobs import USER_AGENT, BlobFetcher, FetchError
from jcp.registry.client import RegistryClient
from jcp.registry.hosts import HostsConfig
from jcp.runtime.content_store import ContentStore
from jcp.runtime.cri import CriRuntime
from tests.support.blob_proxy import OTHER_HOST, BlobProxy
from tests.support.fetch_images import MiB, no_jcp_leases, pushed
from tests.support.helpers import wait_for

pytest_plugins = ("tests.support.fetch_fixtures",)
Proxy = Callable[..., BlobProxy]
Fetcher = Callable[..., BlobFetcher]


async def test_after_the_fetch_the_runtime_pulls_no_blob(
    stack: Stack, open_client: Pusher, runtime: Containerd, store: ContentStore,
    blob_proxy: Proxy, fetcher: Fetcher, unique: Callable[[str], str],
) -> None:  # fmt: skip
    proxy = blob_proxy(stack.open_registry.host)
    runtime.add_registry(proxy.host)
    image = await pushed(open_client, unique("fetch"), proxy, 20 * MiB)
    f = fetcher(streams=4, chunk=4 * MiB)
    lease = await store.lease(300)
    counted: list[int] = []
    report = await f.fetch(image.ref, image.blobs, store, None, counted.append, lease=lease)
    total = sum(b.size for b in image.blobs)
    assert (report.blobs_fetched, report.blobs_present) == (2, 0)
    assert report.bytes_fetched == sum(counted) == total == proxy.bytes_sent
    assert report.ranges == sum(math.ceil(b.size / (4 * MiB)) for b in image.blobs)
    assert report.range_supported
    assert f.range_support[proxy.host]
    assert 0 < f.window.peak <= f.bound
    for blob in image.blobs:
        assert await store.info(blob.digest) == blob.size
    fetched = proxy.blob_gets()
    assert {(s.agent, s.status) for s in fetched} == {(USER_AGENT, 206)}
    assert all(s.range.startswith("bytes=") for s in fetched)

    mark = len(proxy.seen)
    cri = CriRuntime(runtime.endpoint)
    try:
        await cri.pull(image.ref, auth=None, platform=None, on_progress=None)
        assert await cri.image_status(image.ref) is not None
    finally:
        await cri.close()
    assert proxy.seen[mark:], "the runtime asked the registry for the manifest"
    assert proxy.blob_gets(mark) == [], "the runtime fetched a blob jcp had written"
    await store.drop_lease(lease)
    assert await no_jcp_leases(store)


async def test_a_flipped_byte_commits_nothing(
    stack: Stack, open_client: Pusher, store: ContentStore, blob_proxy: Proxy,
    fetcher: Fetcher, unique: Callable[[str], str],
) -> None:  # fmt: skip
    proxy = blob_proxy(stack.open_registry.host, flip_at=5 * MiB + 3)
    image = await pushed(open_client, unique("flip"), proxy, 12 * MiB)
    lease = await store.lease(300)
    try:
        with pytest.raises(FetchError) as failed:
            await fetcher(chunk=4 * MiB).fetch(
                image.ref, image.blobs, store, None, lambda _n: None, lease=lease
            )
    finally:
        await store.drop_lease(lease)
    assert failed.value.digest == image.layer.digest
    assert image.layer.digest in str(failed.value)
    assert proxy.host in str(failed.value)
    assert failed.value.corrupt
    assert "the bytes received are not" in str(failed.value)
    assert "unexpected commit digest" in str(failed.value), "containerd's own words"
    assert await store.info(image.layer.digest) is None
    assert await store.status(f"jcp-{image.layer.digest}") is None, "the ingest was aborted"
    assert await no_jcp_leases(store)


async def test_a_registry_that_ignores_range_gets_one_stream(
    stack: Stack, open_client: Pusher, store: ContentStore, blob_proxy: Proxy,
    fetcher: Fetcher, unique: Callable[[str], str],
) -> None:  # fmt: skip
    proxy = blob_proxy(stack.open_registry.host, strip_range=True)
    image = await pushed(open_client, unique("norange"), proxy, 12 * MiB)
    f = fetcher(chunk=2 * MiB)
    lease = await store.lease(300)
    try:
        report = await f.fetch(image.ref, image.blobs, store, None, lambda _n: None, lease=lease)
    finally:
        await store.drop_lease(lease)
    assert not report.range_supported
    assert f.range_support[proxy.host] is False
    assert report.ranges == 2 == len(proxy.blob_gets()), "one GET per blob"
    assert report.bytes_fetched == sum(b.size for b in image.blobs)
    assert await store.info(image.layer.digest) == image.layer.size


async def test_a_redirect_to_another_host_carries_no_credentials(
    stack: Stack, auth_client: Pusher, containerd: Containerd, blob_proxy: Proxy,
    fetcher: Fetcher, unique: Callable[[str], str],
) -> None:  # fmt: skip
    password = stack.auth_registry.password or ""
    proxy = blob_proxy(stack.auth_registry.host, redirect=True, upstream_auth=(AUTH_USER, password))
    auth = RegistryAuth(proxy.host, AUTH_USER, password)
    image = await pushed(auth_client, unique("redirect"), proxy, 6 * MiB, auth)
    store = ContentStore(containerd.endpoint)
    lease = await store.lease(300)
    try:
        report = await fetcher(chunk=2 * MiB).fetch(
            image.ref, image.blobs, store, auth, lambda _n: None, lease=lease
        )
        assert report.blobs_fetched == 2
        assert await store.info(image.layer.digest) == image.layer.size
    finally:
        await store.drop_lease(lease)
        await store.close()
    gets = proxy.blob_gets()
    storage = [s for s in gets if s.host.startswith(OTHER_HOST)]
    registry = [s for s in gets if not s.host.startswith(OTHER_HOST)]
    assert storage
    assert not [s for s in storage if s.authorized], "credentials went to another host"
    assert {s.status for s in storage} == {206}
    assert {(s.authorized, s.status) for s in registry} <= {(True, 307), (False, 401)}
    assert (True, 307) in {(s.authorized, s.status) for s in registry}
    assert all(password not in str(s) for s in gets)


async def test_the_reorder_window_bounds_what_is_held(
    stack: Stack, open_client: Pusher, containerd: Containerd, blob_proxy: Proxy,
    fetcher: Fetcher, unique: Callable[[str], str],
) -> None:  # fmt: skip
    """The first range of every blob held back: later ranges finish first and fill the
    window, then wait; what is held never exceeds `bound`."""
    proxy = blob_proxy(stack.open_registry.host, hold_head=True)
    image = await pushed(open_client, unique("window"), proxy, 16 * MiB)
    f = fetcher(streams=4, chunk=1 * MiB)
    assert f.window.limit == 4 * MiB
    f.range_support[proxy.host] = True  # known: no probe, whose answer the proxy would hold
    store = ContentStore(containerd.endpoint)
    lease = await store.lease(300)
    task = asyncio.create_task(
        f.fetch(image.ref, image.blobs, store, None, lambda _n: None, lease=lease)
    )
    try:
        await wait_for(lambda: f.window.held == f.window.limit, what="a full window")
        # two held first ranges (config, layer), the four ranges that filled the window
        assert (proxy.held, len(proxy.blob_gets())) == (2, 4), proxy.blob_gets()
        assert f.window.peak <= f.bound
        proxy.release()
        report = await task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.drop_lease(lease)
        await store.close()
    assert report.blobs_fetched == 2
    assert f.window.peak <= f.bound
    assert f.window.held == 0
    assert f.window.used == 0


async def test_a_hosts_toml_mirror_serves_every_blob(
    stack: Stack, open_client: Pusher, containerd: Containerd, blob_proxy: Proxy,
    unique: Callable[[str], str], tmp_path: Path,
) -> None:  # fmt: skip
    """containerd's hosts.toml names a mirror for the registry: jcp's blob GETs go there, as
    the runtime's would, and the registry itself sees none."""
    origin = blob_proxy(stack.open_registry.host)
    mirror = blob_proxy(stack.open_registry.host)
    certs = tmp_path / "certs.d"
    (certs / origin.host).mkdir(parents=True)
    (certs / origin.host / "hosts.toml").write_text(
        f'server = "http://{origin.host}"\n[host."http://{mirror.host}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    image = await pushed(open_client, unique("mirror"), origin, 4 * MiB)
    client = RegistryClient(hosts=HostsConfig(certs))
    f = BlobFetcher(client, chunk=MiB)
    store = ContentStore(containerd.endpoint)
    lease = await store.lease(300)
    mark = len(origin.seen)
    try:
        report = await f.fetch(image.ref, image.blobs, store, None, lambda _n: None, lease=lease)
    finally:
        await store.drop_lease(lease)
        await store.close()
        await f.close()
        await client.close()
    assert report.blobs_fetched == 2
    assert origin.blob_gets(mark) == [], "the registry itself was asked"
    assert len(mirror.blob_gets()) == report.ranges
    assert f.range_support == {mirror.host: True}
