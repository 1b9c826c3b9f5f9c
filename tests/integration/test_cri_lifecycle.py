"""The disk guard, eviction and purge on a real containerd: what the Docker tests show, through
the CRI the kubelet uses. Pulls by hand and removals are CRI calls of our own (as the kubelet or
crictl make them), not jcp's; presence is what CRI ImageStatus says."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from devstack.containerd import Containerd
from devstack.images import RegistryClient, push_synthetic
from jcp.runtime.cri import CriRuntime
from jcp.runtime.cri_api import api_pb2 as pb
from tests.support.cri_args import cri_args, present
from tests.support.cri_fixtures import (
    own_containerd_fixture,  # noqa: F401 - the fixture
    push_pause,
    remove_pod,
    run_pod,
    stubs,
)
from tests.support.helpers import entry, publish, wait_for
from tests.support.jcp_process import JcpProcess, engine_args
from tests.support.scrape import get, samples, value, wait_http

Start = Callable[..., JcpProcess]
MiB = 1 << 20


def pull_by_hand(endpoint: str, ref: str) -> None:
    with stubs(endpoint) as (images, _):
        images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=60)


def image_id(endpoint: str, ref: str) -> str:
    """The id ImageStatus gives REF ("" when containerd has no such image)."""
    with stubs(endpoint) as (images, _):
        request = pb.ImageStatusRequest(image=pb.ImageSpec(image=ref))
        return str(images.ImageStatus(request, timeout=10).image.id)


def remove_by_id(endpoint: str, ref: str) -> None:
    """What the kubelet's image GC does: RemoveImage by the image's id (all its names go)."""
    spec = pb.ImageSpec(image=image_id(endpoint, ref))
    with stubs(endpoint) as (images, _):
        images.RemoveImage(pb.RemoveImageRequest(image=spec), timeout=10)


def image_fs(endpoint: str) -> Any:
    with stubs(endpoint) as (images, _):
        return images.ImageFsInfo(pb.ImageFsInfoRequest(), timeout=10).image_filesystems[0]


@contextlib.asynccontextmanager
async def own_cri(c: Containerd) -> AsyncIterator[CriRuntime]:
    runtime = CriRuntime(c.endpoint)
    try:
        yield runtime
    finally:
        await runtime.close()


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


async def test_disk_guard_watches_the_image_fs_containerd_reports(
    tmp_path: Path,
    own_containerd: Callable[..., Containerd],
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    """No --disk-path: the guard reads the file system ImageFsInfo names. containerd's root is a
    40 MiB tmpfs that an image pulled by hand fills; the kubelet's GC removing it frees it."""
    c = own_containerd("40m")
    big = push_synthetic(open_client, unique("big"), "1", layers=1, layer_size=12 * MiB).reference
    small = push_synthetic(open_client, unique("small"), "1").reference
    pull_by_hand(c.endpoint, big)  # content (12 MiB) + unpacked snapshot (12 MiB)
    min_free = 20 * MiB
    assert free_bytes(c.root) < min_free, "the big image should leave less than --min-free"
    cfg = publish(tmp_path / "config", [entry(small)])
    args = [*cri_args(c), "--min-free", "20MiB", "--disk-check-interval", "0.2"]
    run = jcp("run", [*engine_args(cfg, docker_root), *args])
    base = await wait_http(run)
    await run.wait_line(r"disk guard: .* below --min-free 20971520 bytes; new pulls wait")
    fs = image_fs(c.endpoint)
    doc = json.loads((await get(base + "/status"))[1])
    guard = doc["disk_guard"]
    assert guard["path"] == fs.fs_id.mountpoint
    assert guard["path"].startswith(str(c.root))
    assert guard["active"] is True
    assert guard["free_bytes"] < min_free
    assert value(samples((await get(base + "/metrics"))[1]), "jcp_disk_guard_active") == 1
    assert run.count("Pulling ") == 0
    async with own_cri(c) as cri:
        assert not await present(cri, small)

    # containerd sums its snapshots' usage every 10 s (stats_collect_period): poll for it.
    await wait_for(
        lambda: image_fs(c.endpoint).used_bytes.value >= 12 * MiB,
        timeout=25,
        what="ImageFsInfo used_bytes counting the big image",
    )
    assert image_fs(c.endpoint).inodes_used.value > 0
    remove_by_id(c.endpoint, big)
    await run.wait_line("disk guard: .* pulls resume", timeout=20)
    await run.wait_line(f"Pulled {re.escape(small)}", timeout=20)
    assert value(samples((await get(base + "/metrics"))[1]), "jcp_disk_guard_active") == 0


async def test_eviction_by_cri_remove_image_is_logged_counted_and_repulled(
    tmp_path: Path,
    containerd: Containerd,
    cri: CriRuntime,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    a = push_synthetic(open_client, unique("cev"), "1").reference
    cfg = publish(tmp_path / "config", [entry(a)], interval="1")
    run = jcp("run", [*engine_args(cfg, docker_root), *cri_args(containerd)])
    await run.wait_line(f"Pulled {re.escape(a)}")
    await run.wait_line(r"sweep 2 done", timeout=20)
    remove_by_id(containerd.endpoint, a)
    assert not await present(cri, a)
    await run.wait_line(rf"evicted: {re.escape(a)} was cached for \d+s", timeout=20)
    await run.wait_line(f"Pulled {re.escape(a)}", count=2, timeout=20)
    assert await present(cri, a)
    base = await wait_http(run)
    metrics = (await get(base + "/metrics"))[1]
    assert re.search(r"^jcp_images_evicted_total 1\.0$", metrics, re.MULTILINE), metrics
    # /status and the metrics carry what ImageFsInfo says of the image file system.
    fs = image_fs(containerd.endpoint)
    shown = json.loads((await get(base + "/status"))[1])["image_fs"]
    assert shown["mountpoint"] == fs.fs_id.mountpoint
    assert isinstance(shown["used_bytes"], int)
    assert isinstance(shown["inodes_used"], int)
    assert re.search(r"^jcp_image_fs_used_bytes \d", metrics, re.MULTILINE), metrics


def purge_args(cfg: Path, docker_root: Path, c: Containerd, ledger: Path, *extra: str) -> list[str]:
    ledger.parent.mkdir(exist_ok=True)
    return [
        *engine_args(cfg, docker_root), *cri_args(c),
        "--purge-grace", "0", "--ledger", str(ledger), *extra,
    ]  # fmt: skip


def owned(ledger: Path) -> dict[str, Any]:
    return dict(json.loads(ledger.read_text()).get("images", {})) if ledger.exists() else {}


async def test_purge_on_containerd_removes_only_what_jcp_pulled(
    tmp_path: Path,
    containerd: Containerd,
    cri: CriRuntime,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    repo = unique("cpurge")
    ours = push_synthetic(open_client, repo, "1").reference
    by_hand = push_synthetic(open_client, repo, "2").reference
    kept = push_synthetic(open_client, unique("ckept"), "1").reference
    pin_repo = unique("cpin")
    pinned = f"{open_client.host}/{pin_repo}@{push_synthetic(open_client, pin_repo, '1').digest}"
    pull_by_hand(containerd.endpoint, by_hand)  # same repository, pulled by a person
    ledger = tmp_path / "jcp" / "ledger.json"
    listed = [entry(ours), entry(kept), entry(by_hand), entry(pinned)]
    cfg = publish(tmp_path / "config", listed, interval="1")
    args = purge_args(cfg, docker_root, containerd, ledger, "--purge")
    run = jcp("run", args)
    await run.wait_line(r"sweep 1 done")
    await wait_for(lambda: {ours, pinned} <= owned(ledger).keys(), what="pulls in the ledger")
    assert by_hand not in owned(ledger)
    for ref in (ours, pinned):  # the id jcp recorded is the one containerd gives the image
        assert owned(ledger)[ref]["id"] == image_id(containerd.endpoint, ref)
    run.signal()
    assert await run.wait_exit() == 0
    # The ledger survives a restart: the new process purges what the old one pulled.
    publish(cfg, [entry(kept)], interval="1")
    again = jcp("run", args)
    await again.wait_line(rf"purged {re.escape(ours)}", timeout=30)
    await again.wait_line(rf"purged {re.escape(pinned)}", timeout=30)
    assert not await present(cri, ours)
    assert not await present(cri, pinned), "a digest-only name: containerd lists no tag for it"
    assert await present(cri, by_hand), "an image jcp did not pull stays"
    assert await present(cri, kept)
    assert not owned(ledger).keys() & {ours, pinned}


async def test_purge_on_containerd_dry_run_and_torn_ledger_remove_nothing(
    tmp_path: Path,
    containerd: Containerd,
    cri: CriRuntime,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    a = push_synthetic(open_client, unique("cdry"), "1").reference
    ledger = tmp_path / "jcp" / "ledger.json"
    cfg = publish(tmp_path / "config", [entry(a)], interval="1")
    run = jcp("run", purge_args(cfg, docker_root, containerd, ledger, "--purge-dry-run"))
    await run.wait_line(f"Pulled {re.escape(a)}")
    publish(cfg, [], interval="1")
    await run.wait_line(rf"purge \(dry run\): would remove {re.escape(a)}", timeout=20)
    assert await present(cri, a)
    run.signal()
    assert await run.wait_exit() == 0
    ledger.write_bytes(ledger.read_bytes()[:-7])  # a torn write
    torn = jcp("run", purge_args(cfg, docker_root, containerd, ledger, "--purge"))
    await torn.wait_line(r"purge ledger .*: unusable", timeout=20)
    await torn.wait_line(r"purge: nothing removed: the ledger is unusable", timeout=20)
    await torn.wait_line(r"sweep 2 done", timeout=20)
    assert await present(cri, a)


async def test_purge_keeps_an_image_a_container_uses(
    tmp_path: Path,
    own_containerd: Callable[..., Containerd],
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    """containerd's RemoveImage removes an image that a container uses (1.6.20 answers OK), so
    jcp's look at ListContainers (whose image_ref is the image id) is all that keeps it."""
    c = own_containerd("64m", sandbox_image=push_pause(open_client, tmp_path))
    used, unused = (
        push_synthetic(open_client, unique(n), "1").reference for n in ("cuse", "cfree")
    )
    ledger = tmp_path / "jcp" / "ledger.json"
    cfg = publish(tmp_path / "config", [entry(used), entry(unused)], interval="1")
    run = jcp("run", purge_args(cfg, docker_root, c, ledger, "--purge", "--log-level", "debug"))
    await run.wait_line(r"sweep 1 done")
    await wait_for(lambda: {used, unused} <= owned(ledger).keys(), what="both pulls recorded")
    sandbox = run_pod(c.endpoint, used)
    with stubs(c.endpoint) as (_, runtime):
        listed = runtime.ListContainers(pb.ListContainersRequest(), timeout=10).containers
    assert [x.image_ref for x in listed] == [image_id(c.endpoint, used)]
    async with own_cri(c) as cri:
        try:
            publish(cfg, [], interval="1")
            await run.wait_line(rf"purged {re.escape(unused)}", timeout=20)
            await run.wait_line(rf"purge: keep {re.escape(used)}: a container uses it", timeout=20)
            assert await present(cri, used)
        finally:
            remove_pod(c.endpoint, sandbox)
        await run.wait_line(rf"purged {re.escape(used)}", timeout=20)
        assert not await present(cri, used)
