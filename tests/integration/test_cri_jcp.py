"""`jcp once` and `jcp run` warming a real containerd's CRI image store: what the kubelet sees.

Presence is checked through CRI ImageStatus (a client of our own), never through jcp's view."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import aiohttp

from devstack.containerd import Containerd
from devstack.images import RegistryClient, make_layer, push_synthetic
from devstack.stack import AUTH_USER, Stack, write_docker_secret
from jcp.runtime.cri import CriRuntime
from tests.support.cri_args import cri_args, present
from tests.support.helpers import entry, publish, wait_for
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]


async def test_once_warms_containerd(
    tmp_path: Path,
    stack: Stack,
    containerd: Containerd,
    cri: CriRuntime,
    open_client: RegistryClient,
    auth_client: RegistryClient,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    public = push_synthetic(open_client, unique("cpub"), "1").reference
    private = push_synthetic(auth_client, unique("cpriv"), "1").reference
    multi = open_client.push_multiarch(
        unique("cmulti"), "1", {a: [make_layer(2048)] for a in ("amd64", "arm64")}
    ).reference
    missing = f"{open_client.host}/{unique('cmiss')}:1"
    denied = push_synthetic(auth_client, unique("cdenied"), "1").reference
    root = tmp_path / "docker"
    host, password = stack.auth_registry.host, stack.auth_registry.password or ""
    write_docker_secret(root, "good", host, AUTH_USER, password)
    write_docker_secret(root, "bad", host, AUTH_USER, "wrong-password")
    cfg = publish(
        tmp_path / "config",
        [
            entry(public),
            entry(private, private=True, config="good"),
            {"ref": "m", "registry": open_client.host, "arch": {"amd64": multi, "arm64": multi}},
            entry(missing),
            entry(denied, private=True, config="bad"),
        ],
    )
    run = jcp("once", [*engine_args(cfg, root), *cri_args(containerd)])
    assert await run.wait_exit() == 1, run.text()
    text = run.text()
    assert "runtime: CRI runtime at unix://" in text
    assert "3 pulled, 0 up to date, 0 skipped, 2 failed" in text
    for ref in (public, private, multi):
        assert await present(cri, ref), ref
    assert re.search(rf"failed pulling {re.escape(missing)} from .*: not_found: ", text)
    assert re.search(rf"failed pulling {re.escape(denied)} from .*: auth: .*401 Unauthorized", text)
    assert password not in text
    assert "wrong-password" not in text
    # Present now: a second sweep is up to date without pulling anything new.
    again = jcp("once", [*engine_args(cfg, root), *cri_args(containerd), "--log-level", "debug"])
    assert await again.wait_exit() == 1
    assert "0 pulled, 3 up to date" in again.text()


async def test_run_reloads_outlasts_a_containerd_restart_and_reports(
    tmp_path: Path,
    containerd: Containerd,
    cri: CriRuntime,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    refs = [
        push_synthetic(open_client, unique("crun"), "1", layer_size=300_000).reference
        for _ in range(6)
    ]
    cfg = publish(tmp_path / "config", [entry(refs[0])], interval="1")
    run = jcp("run", [*engine_args(cfg, docker_root, concurrency=2), *cri_args(containerd)])
    await run.wait_line(f"Pulled {re.escape(refs[0])}", timeout=30)
    # Hot reload: five more images; containerd is killed while they are being pulled.
    publish(cfg, [entry(r) for r in refs], interval="1")
    await run.wait_line(f"Pulling {re.escape(refs[1])}", timeout=10)
    containerd.kill()
    await run.wait_line(r"unreachable|went away", timeout=20)
    containerd.start()

    async def all_present() -> bool:
        return all([await present(cri, ref) for ref in refs])

    await wait_for(all_present, timeout=60, what="every image in containerd")
    assert run.proc.poll() is None
    assert run.http is not None
    async with aiohttp.ClientSession() as s:
        async with s.get(run.http + "/status") as resp:
            status = json.loads(await resp.text())
        async with s.get(run.http + "/metrics") as resp:
            metrics = await resp.text()
    assert status["runtime"]["kind"] == "cri"
    assert status["runtime"]["name"] == "containerd"
    assert status["disk_guard"]["path"].startswith(str(containerd.root))
    assert re.search(r'jcp_runtime_info\{.*kind="cri".*name="containerd"', metrics), metrics


async def test_pin_report_says_containerd_16_does_not_pin(
    tmp_path: Path,
    containerd: Containerd,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    """containerd 1.6 (Debian's) has no pinning: jcp labels the image as it would on 1.7, the
    CRI still reports `pinned` false, and jcp says the runtime ignores it, once, not every
    sweep."""
    ref = push_synthetic(open_client, unique("pin"), "1").reference
    cfg = publish(tmp_path / "config", [entry(ref)], interval="1")
    run = jcp("run", [*engine_args(cfg, docker_root), *cri_args(containerd), "--pin"])
    await run.wait_line(
        r"pinning: 0 of 1 managed images are pinned: containerd 1\.6\.\S+ ignores the "
        r"io\.cri-containerd\.pinned label jcp set \(containerd < 1\.7 has no pinning\)"
    )
    await run.wait_line(r"sweep 3 done", timeout=20)
    assert run.count("pinning: ") == 1
