"""`jcp run` as a DaemonSet runs it: live config edits the way kubelet makes them, secret
rotation, and a daemon that goes away and comes back."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import aiodocker

from devstack.images import RegistryClient, push_synthetic
from devstack.kubelet import write_volume
from devstack.proxy import ThrottleProxy
from devstack.stack import AUTH_USER, Stack
from tests.support.helpers import entry, image_config, image_present, publish, wait_for
from tests.support.jcp_process import JcpProcess, engine_args
from tests.support.secrets import secret_json

Start = Callable[..., JcpProcess]


async def test_data_swap_adds_and_removes_images(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    a, b, c = (push_synthetic(open_client, unique(n), "1").reference for n in "abc")
    cfg = publish(tmp_path / "config", [entry(a), entry(b)])
    run = jcp("run", [*engine_args(cfg, docker_root), "--log-level", "debug"])
    await run.wait_line(r"sweep 1 done.*2 pulled")
    await docker.images.delete(b, force=True)
    loop = asyncio.get_running_loop()
    swapped = loop.time()
    publish(cfg, [entry(a), entry(c)], interval="1")
    await run.wait_line(f"Pulling {re.escape(c)}", timeout=10)
    assert loop.time() - swapped < 5
    await wait_for(lambda: image_present(docker, c), what=f"{c} present")
    await run.wait_line(r"config generation 2 loaded: 2 images .*; \+1 -1, interval 300s -> 1s")
    await run.wait_line(r"sweep 3 done", timeout=20)  # sweep 2 was the reload sweep
    assert run.count(f"Pulling {re.escape(b)}") == 1
    assert not await image_present(docker, b)
    assert run.count(f"(Pulling|Up to date:) {re.escape(a)}") >= 2


async def test_invalid_edit_keeps_last_good_config(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    a = push_synthetic(open_client, unique("a"), "1").reference
    b = push_synthetic(open_client, unique("b"), "1").reference
    cfg = publish(tmp_path / "config", [entry(a)], interval="1")
    run = jcp("run", engine_args(cfg, docker_root))
    await run.wait_line(r"sweep 1 done.*1 pulled")
    write_volume(cfg, {"image.config": '[{"ref": "x",', "interval": "1"})
    await run.wait_line(r"config rejected \(keeping the last good config\)")
    await run.wait_line(r"invalid JSON at line 1")
    await docker.images.delete(a, force=True)
    await run.wait_line(r"Pulled " + re.escape(a), count=2, timeout=20)  # old config still sweeps
    write_volume(cfg, {"image.config": image_config([entry(a), {"ref": 5}]), "interval": "1"})
    await run.wait_line(r"entry 1: key 'ref': expected a string", timeout=10)
    publish(cfg, [entry(a), entry(b)], interval="1")
    await run.wait_line(f"Pulled {re.escape(b)}", timeout=10)
    assert run.proc.poll() is None


async def test_interval_changes_live(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    a = push_synthetic(open_client, unique("a"), "1").reference
    cfg = publish(tmp_path / "config", [entry(a)], interval="3600")
    run = jcp("run", engine_args(cfg, docker_root))
    await run.wait_line(r"sweep 1 done")
    publish(cfg, [entry(a)], interval="1")
    await run.wait_line(r"interval 3600s -> 1s")
    await run.wait_line(r"sweep 3 done", timeout=10)


async def test_secret_rotated_while_running(
    tmp_path: Path,
    stack: Stack,
    auth_client: RegistryClient,
    docker: aiodocker.Docker,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    ref = push_synthetic(auth_client, unique("rot"), "1").reference
    host = stack.auth_registry.host
    root = tmp_path / "docker"
    write_volume(root / "rot", {".dockerconfigjson": secret_json(host, AUTH_USER, "old-pass")})
    cfg = publish(tmp_path / "config", [entry(ref, private=True, config="rot")], interval="1")
    run = jcp("run", engine_args(cfg, root))
    await run.wait_line(r"failed pulling .*: auth: ")
    await run.wait_line(r"permanent: not retried until the config or the secret changes")
    pulls_before = run.count(r"Pulling ")
    write_volume(
        root / "rot",
        {".dockerconfigjson": secret_json(host, AUTH_USER, stack.auth_registry.password or "")},
    )
    await run.wait_line(f"Pulled {re.escape(ref)}", timeout=15)
    assert pulls_before == 1
    assert await image_present(docker, ref)
    assert (stack.auth_registry.password or "x") not in run.text()
    assert "old-pass" not in run.text()


async def test_new_image_jumps_the_queue_mid_sweep(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    slow = proxy(rate=2 << 20)
    slow_refs = []
    for _ in range(4):
        repo = unique("slow")
        push_synthetic(open_client, repo, "1", layers=1, layer_size=3 << 20)
        slow_refs.append(f"{slow.host}/{repo}:1")
    fast = push_synthetic(open_client, unique("fast"), "1").reference
    cfg = publish(tmp_path / "config", [entry(r) for r in slow_refs])
    run = jcp("run", engine_args(cfg, docker_root, concurrency=1))
    await run.wait_line(f"Pulling {re.escape(slow_refs[0])}")
    publish(cfg, [entry(r) for r in slow_refs] + [entry(fast)])
    await run.wait_line(f"Pulled {re.escape(fast)}", timeout=30)
    order = [m.group(1) for line in run.lines() if (m := re.search(r"Pulling (\S+)", line))]
    assert order[:2] == [slow_refs[0], fast], order
    await run.wait_line(r"sweep 1 done.*5 pulled", timeout=60)


async def test_daemon_stopped_and_restarted(
    tmp_path: Path,
    stack: Stack,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    a = push_synthetic(open_client, unique("a"), "1").reference
    cfg = publish(tmp_path / "config", [entry(a)], interval="1")
    run = jcp("run", [*engine_args(cfg, docker_root), "--retries", "1"])
    await run.wait_line(r"sweep 1 done.*1 pulled")
    stack.dockerd.stop()
    try:
        await run.wait_line(r"Docker daemon at .* unreachable", timeout=30)
        assert run.proc.poll() is None
    finally:
        stack.dockerd.start()
    done = run.count(r"sweep \d+ done")
    await run.wait_line(r"sweep \d+ done.*1 up to date", count=done + 1, timeout=60)
    assert run.proc.poll() is None
    assert await image_present(docker, a)
    # Pulls cut off by the outage waited for the daemon instead of failing.
    assert "failed pulling" not in run.text()


async def test_daemon_down_at_start(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    a = push_synthetic(open_client, unique("a"), "1").reference
    cfg = publish(tmp_path / "config", [entry(a)])
    sock = tmp_path / "later.sock"
    run = jcp("run", engine_args(cfg, docker_root), env={"DOCKER_HOST": f"unix://{sock}"})
    await run.wait_line(r"unreachable.*retrying in", count=2, timeout=30)
    assert run.proc.poll() is None
    run.signal()
    assert await run.wait_exit(timeout=10) == 0
