"""The CRI adapter against a real containerd: pulls, credentials, manifest lists, and the error
texts containerd really returns, each mapped to its failure class."""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Callable

import pytest

from devstack.containerd import Containerd
from devstack.images import RegistryClient, make_layer, push_synthetic
from devstack.proxy import ThrottleProxy
from devstack.ratelimit import RateLimitedRegistry
from devstack.stack import AUTH_USER, Stack
from jcp.model.arch import canonical_arch
from jcp.model.credentials import RegistryAuth
from jcp.model.failures import Reason
from jcp.model.refs import parse_reference
from jcp.runtime.base import RuntimeFailure
from jcp.runtime.cri import CriRuntime
from tests.support.helpers import wait_for


async def failure_of(cri: CriRuntime, ref: str, auth: RegistryAuth | None = None) -> RuntimeFailure:
    with pytest.raises(RuntimeFailure) as caught:
        await cri.pull(parse_reference(ref), auth=auth, platform=None, on_progress=None)
    print(f"{ref}: {caught.value.failure.reason}: {caught.value.failure.message}")
    return caught.value


async def test_info_list_and_fs_usage(cri: CriRuntime, containerd: Containerd) -> None:
    info = await cri.info()
    assert (info.kind, info.name, info.reports_progress) == ("cri", "containerd", False)
    assert info.version.startswith("1.")
    assert info.arch == canonical_arch(platform.machine())  # the node's, not the registry's
    usage = await cri.fs_usage()
    assert usage is not None
    assert usage.mountpoint is not None
    assert str(containerd.root) in usage.mountpoint
    assert isinstance(await cri.list_images(), list)


async def test_public_pull_status_and_remove(
    cri: CriRuntime, open_client: RegistryClient, unique: Callable[[str], str]
) -> None:
    pushed = push_synthetic(open_client, unique("cri"), "1", layers=2, layer_size=100_000)
    image = parse_reference(pushed.reference)
    assert await cri.image_status(image) is None
    pulled = await cri.pull(image, auth=None, platform="linux/amd64", on_progress=None)
    assert pulled.newer
    assert pulled.digest == pushed.digest
    assert pulled.bytes >= 200_000
    status = await cri.image_status(image)
    assert status is not None
    assert pushed.reference in status.repo_tags
    assert f"{image.name}@{pushed.digest}" in status.repo_digests
    assert status in await cri.list_images()
    again = await cri.pull(image, auth=None, platform=None, on_progress=None)
    assert not again.newer
    assert again.bytes == 0
    await cri.remove(image)
    assert await cri.image_status(image) is None
    assert all(pushed.reference not in i.repo_tags for i in await cri.list_images())
    await cri.remove(image)  # absent is fine


async def test_private_pull_with_and_without_credentials(
    cri: CriRuntime, stack: Stack, auth_client: RegistryClient, unique: Callable[[str], str]
) -> None:
    pushed = push_synthetic(auth_client, unique("cripriv"), "1")
    host = stack.auth_registry.host
    password = stack.auth_registry.password or ""
    none = await failure_of(cri, pushed.reference)
    assert none.failure.reason == Reason.AUTH
    wrong = await failure_of(cri, pushed.reference, RegistryAuth(host, AUTH_USER, "wrong"))
    assert wrong.failure.reason == Reason.AUTH
    assert "wrong" not in wrong.failure.message
    good = RegistryAuth(host, AUTH_USER, password)
    pulled = await cri.pull(
        parse_reference(pushed.reference), auth=good, platform=None, on_progress=None
    )
    assert pulled.newer
    assert await cri.image_status(parse_reference(pushed.reference)) is not None


async def test_missing_image_and_missing_platform(
    cri: CriRuntime, open_client: RegistryClient, unique: Callable[[str], str]
) -> None:
    missing = await failure_of(cri, f"{open_client.host}/{unique('nope')}:1")
    assert missing.failure.reason == Reason.NOT_FOUND
    repo = unique("t")
    push_synthetic(open_client, repo, "1")
    tag = await failure_of(cri, f"{open_client.host}/{repo}:2")  # the repository, not the tag
    assert tag.failure.reason == Reason.NOT_FOUND
    arm = open_client.push_multiarch(unique("armlist"), "1", {"arm64": [make_layer(1024)]})
    platform = await failure_of(cri, arm.reference)
    assert platform.failure.reason == Reason.PLATFORM


async def test_manifest_list_resolves_to_the_node(
    cri: CriRuntime, open_client: RegistryClient, unique: Callable[[str], str]
) -> None:
    multi = open_client.push_multiarch(
        unique("crimulti"), "1", {a: [make_layer(2048)] for a in ("amd64", "arm64")}
    )
    pulled = await cri.pull(
        parse_reference(multi.reference), auth=None, platform=None, on_progress=None
    )
    assert pulled.newer
    assert pulled.digest == multi.digest
    # Pinned by the list's digest: the same image, already there.
    name = multi.reference.rsplit(":", 1)[0]
    pinned = parse_reference(f"{name}@{multi.digest}")
    again = await cri.pull(pinned, auth=None, platform=None, on_progress=None)
    assert (again.newer, again.digest) == (False, multi.digest)
    assert await cri.image_status(pinned) is not None


async def test_runtime_down_then_back(
    containerd: Containerd, open_client: RegistryClient, unique: Callable[[str], str]
) -> None:
    ref = push_synthetic(open_client, unique("down"), "1").reference
    containerd.kill()
    runtime = CriRuntime(containerd.endpoint)
    try:
        with pytest.raises(RuntimeFailure) as caught:
            await runtime.info()
        print(f"down: {caught.value.failure.message}")
        assert caught.value.down
        down = await failure_of(runtime, ref)
        assert down.down
    finally:
        containerd.start()
        await runtime.close()
    back = CriRuntime(containerd.endpoint)
    try:
        assert (await back.info()).name == "containerd"
        assert (
            await back.pull(parse_reference(ref), auth=None, platform=None, on_progress=None)
        ).newer
    finally:
        await back.close()


async def test_killed_mid_pull_is_down_then_the_same_runtime_recovers(
    containerd: Containerd,
    cri: CriRuntime,
    open_client: RegistryClient,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    repo = unique("midpull")
    push_synthetic(open_client, repo, "1", layers=1, layer_size=4 << 20)
    slow = proxy(rate=256 * 1024)  # 16 s for the layer: it is in flight when containerd dies
    containerd.add_registry(slow.host)
    pulling = asyncio.ensure_future(
        cri.pull(
            parse_reference(f"{slow.host}/{repo}:1"), auth=None, platform=None, on_progress=None
        )
    )
    try:
        await wait_for(lambda: any(containerd.ingest_dir.glob("*")), what="a partial download")
        containerd.kill()
        with pytest.raises(RuntimeFailure) as caught:
            await pulling
    finally:
        pulling.cancel()
        if containerd.proc is None:
            containerd.start()
    print(f"killed mid-pull: {caught.value.failure.reason}: {caught.value.failure.message}")
    assert caught.value.down
    # The same runtime (one channel for jcp's life) sees the restarted containerd within seconds.
    await wait_for(lambda: answers(cri), timeout=10, what="containerd back on the same channel")
    image = parse_reference(f"{open_client.host}/{repo}:1")
    assert (await cri.pull(image, auth=None, platform=None, on_progress=None)).newer
    assert await cri.image_status(image) is not None


async def answers(cri: CriRuntime) -> bool:
    try:
        await cri.info()
    except RuntimeFailure:
        return False
    return True


async def test_registry_trouble_is_transient(
    containerd: Containerd,
    cri: CriRuntime,
    open_client: RegistryClient,
    unique: Callable[[str], str],
) -> None:
    repo = unique("limited")
    push_synthetic(open_client, repo, "1")
    hub = RateLimitedRegistry(open_client.host, allow=0, retry_after=7).start()
    try:
        containerd.add_registry(hub.host)
        limited = await failure_of(cri, f"{hub.host}/{repo}:1")
    finally:
        hub.stop()
    assert limited.failure.reason == Reason.RATE_LIMITED
    assert hub.limited()
    gone = await failure_of(cri, f"{hub.host}/{repo}:1")  # nothing listens there any more
    assert gone.failure.reason == Reason.REGISTRY
    assert gone.failure.transient
    assert not gone.down  # the registry is down, not the runtime


async def test_cancelling_a_pull_makes_containerd_abandon_it(
    containerd: Containerd,
    cri: CriRuntime,
    open_client: RegistryClient,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    repo = unique("cancel")
    push_synthetic(open_client, repo, "1", layers=1, layer_size=4 << 20)
    slow = proxy(rate=256 * 1024)
    containerd.add_registry(slow.host)
    image = parse_reference(f"{slow.host}/{repo}:1")
    before = set(containerd.ingest_dir.glob("*"))  # other tests' leftovers, if any
    pulling = asyncio.ensure_future(cri.pull(image, auth=None, platform=None, on_progress=None))
    await wait_for(lambda: set(containerd.ingest_dir.glob("*")) - before, what="a download")
    ours = set(containerd.ingest_dir.glob("*")) - before
    pulling.cancel()  # what the engine's per-pull timeout does
    with pytest.raises(asyncio.CancelledError):
        await pulling
    # containerd drops the partial download once the call is gone, and never finishes the image.
    await wait_for(lambda: not any(p.exists() for p in ours), what="the download dropped")
    assert await cri.image_status(image) is None
