"""`jcp once` against the real daemon and registries: what gets cached, lines, exit codes."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Callable
from pathlib import Path

import aiodocker
import pytest

from devstack.images import RegistryClient, make_layer, push_synthetic
from devstack.proxy import ThrottleProxy
from devstack.stack import AUTH_USER, Stack, write_docker_secret
from tests.support.helpers import entry, image_config, image_present, push_via
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]


def config_dir(tmp_path: Path, entries: list[dict[str, object]], interval: str = "300") -> Path:
    d = tmp_path / "config"
    d.mkdir(exist_ok=True)
    (d / "image.config").write_text(image_config(entries))
    (d / "interval").write_text(interval)
    return d


def max_in_flight(lines: list[str]) -> int:
    """Highest number of pulls between their `Pulling` and their final line, from the log."""
    active: set[str] = set()
    peak = 0
    for line in lines:
        if m := re.search(r"Pulling (\S+) from", line):
            active.add(m.group(1))
            peak = max(peak, len(active))
        elif m := re.search(r"(?:Pulled|Up to date:|failed pulling) (\S+) from", line):
            active.discard(m.group(1))
    return peak


async def test_concurrent_warm_up(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    base = make_layer(256 * 1024, seed=101)
    refs = [
        push_synthetic(
            open_client, unique("warm"), "1", layers=2, layer_size=128 * 1024, base=base
        ).reference
        for _ in range(16)
    ]
    run = jcp(
        "once",
        engine_args(config_dir(tmp_path, [entry(r) for r in refs]), docker_root, concurrency=4),
    )
    assert await run.wait_exit() == 0, run.text()
    for ref in refs:
        assert await image_present(docker, ref)
    assert max_in_flight(run.lines()) == 4
    assert "sweep 1 done" in run.text()
    assert "16 pulled, 0 up to date, 0 skipped, 0 failed" in run.text()
    again = jcp("once", engine_args(tmp_path / "config", docker_root))
    assert await again.wait_exit() == 0
    assert "0 pulled, 16 up to date" in again.text()


async def test_public_private_and_per_entry_secrets(
    tmp_path: Path,
    stack: Stack,
    open_client: RegistryClient,
    auth_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    public = push_synthetic(open_client, unique("pub"), "1").reference
    private_a = push_synthetic(auth_client, unique("priv-a"), "1").reference
    private_b = push_synthetic(auth_client, unique("priv-b"), "1").reference
    # Public entry on the password registry: credentials must not leak onto it (original bug 4).
    public_on_auth = push_synthetic(auth_client, unique("not-public"), "1").reference
    write_docker_secret(
        docker_root,
        "second",
        stack.auth_registry.host,
        AUTH_USER,
        stack.auth_registry.password or "",
    )
    entries = [
        entry(public),
        entry(private_a, private=True),  # default secret jarvice-docker
        entry(private_b, private=True, config="second"),
        entry(public_on_auth),
    ]
    run = jcp("once", engine_args(config_dir(tmp_path, entries), docker_root))
    assert await run.wait_exit() == 1
    for ref in (public, private_a, private_b):
        assert await image_present(docker, ref), run.text()
    assert not await image_present(docker, public_on_auth)
    assert re.search(
        rf"ERROR: failed pulling {re.escape(public_on_auth)} from \S+: auth:", run.text()
    )
    assert (stack.auth_registry.password or "-") not in run.text()


async def test_multi_arch_and_skipped_arch(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    multi = open_client.push_multiarch(
        unique("multi"), "1", {a: [make_layer(2048)] for a in ("amd64", "arm64", "ppc64le")}
    ).reference
    arm_only = push_synthetic(open_client, unique("armonly"), "1", arch="arm64").reference
    host = multi.split("/")[0]
    entries: list[dict[str, object]] = [
        {"ref": "multi", "registry": host, "arch": {"amd64": multi, "arm64": multi}},
        {"ref": "arm-only", "registry": host, "arch": {"arm64": arm_only}},
    ]
    run = jcp("once", engine_args(config_dir(tmp_path, entries), docker_root))
    assert await run.wait_exit() == 0, run.text()
    assert (await docker.images.inspect(multi))["Architecture"] == "amd64"
    assert not await image_present(docker, arm_only)
    assert "1 pulled, 0 up to date, 1 skipped, 0 failed" in run.text()
    # An arm64 node gets the arm64 image of the same manifest list, and the arm-only image.
    await docker.images.delete(multi, force=True)
    arm = jcp("once", engine_args(tmp_path / "config", docker_root, extra=["--arch", "aarch64"]))
    assert await arm.wait_exit() == 0, arm.text()
    assert (await docker.images.inspect(multi))["Architecture"] == "arm64"
    assert (await docker.images.inspect(arm_only))["Architecture"] == "arm64"


async def test_missing_image_fails_without_retry(
    tmp_path: Path,
    stack: Stack,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
    open_client: RegistryClient,
) -> None:
    good = push_synthetic(open_client, unique("good"), "1").reference
    missing = f"{stack.open_registry.host}/{unique('absent')}:1"
    run = jcp("once", engine_args(config_dir(tmp_path, [entry(missing), entry(good)]), docker_root))
    assert await run.wait_exit() == 1
    text = run.text()
    assert re.search(rf"ERROR: failed pulling {re.escape(missing)} from \S+: not_found: ", text)
    assert "retrying" not in text
    assert "1 pulled, 0 up to date, 0 skipped, 1 failed" in text


async def test_wrong_credentials(
    tmp_path: Path,
    stack: Stack,
    auth_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    ref = push_synthetic(auth_client, unique("priv"), "1").reference
    write_docker_secret(docker_root, "wrong", stack.auth_registry.host, AUTH_USER, "Wr0ngPassw0rd")
    entries = [
        entry(ref, private=True, config="wrong"),
        entry(f"{ref}-other", private=True, config="not-mounted"),
    ]
    entries[1]["ref"] = ref.replace(":1", ":2")
    run = jcp("once", engine_args(config_dir(tmp_path, entries), docker_root))
    assert await run.wait_exit() == 1
    text = run.text()
    assert re.search(rf"failed pulling {re.escape(ref)} from \S+: auth: ", text)
    assert "credentials: secret 'not-mounted' for registry" in text
    assert "secret not mounted" in text
    assert "Wr0ngPassw0rd" not in text
    assert "retrying" not in text


async def test_exit_codes_bad_config_and_no_daemon(
    tmp_path: Path,
    docker_root: Path,
    jcp: Start,
    open_client: RegistryClient,
    unique: Callable[[str], str],
) -> None:
    d = config_dir(tmp_path, [])
    (d / "image.config").write_text('[{"ref": 1}]')
    bad = jcp("once", engine_args(d, docker_root))
    assert await bad.wait_exit() == 2
    assert "entry 0: key 'ref': expected a string, got number 1" in bad.text()
    ref = push_synthetic(open_client, unique("x"), "1").reference
    (d / "image.config").write_text(json.dumps([entry(ref)]))
    nodaemon = jcp(
        "once",
        [*engine_args(d, docker_root), "--retries", "1"],
        env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"},
    )
    assert await nodaemon.wait_exit() == 1
    assert f"ERROR: Docker daemon at unix://{tmp_path}/no.sock unreachable" in nodaemon.text()


async def test_stall_is_retried_then_fails(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    slow = proxy(rate=256 * 1024)
    ref = push_via(open_client, slow, unique("stall"), 4 << 20)
    run = jcp(
        "once",
        [
            *engine_args(config_dir(tmp_path, [entry(ref)]), docker_root),
            "--stall-timeout",
            "1",
            "--retries",
            "1",
        ],
    )
    await run.wait_line(f"Pulling {ref}")
    slow.pause()
    assert await run.wait_exit(timeout=60) == 1
    text = run.text()
    assert "retrying" in text
    assert re.search(r"failed pulling .*: stall: no progress for 1s", text)
    assert not await image_present(docker, ref)


async def test_queued_behind_daemon_download_slots_is_not_a_stall(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    """The daemon downloads 3 layers at a time for all pulls: the others wait silently, and
    must not be abandoned as stalled while the daemon is busy with the first three."""
    slow = proxy(rate=3 << 20)
    refs = []
    for _ in range(5):
        repo = unique("queued")
        push_synthetic(open_client, repo, "1", layers=1, layer_size=4 << 20)
        refs.append(f"{slow.host}/{repo}:1")
    d = config_dir(tmp_path, [entry(r) for r in refs])
    run = jcp("once", [*engine_args(d, docker_root, concurrency=5), "--stall-timeout", "2",
                       "--retries", "0"])  # fmt: skip
    assert await run.wait_exit(timeout=90) == 0, run.text()
    assert "stall" not in run.text()
    assert "5 pulled, 0 up to date, 0 skipped, 0 failed" in run.text()
    for ref in refs:
        assert await image_present(docker, ref)


async def test_pull_timeout(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    slow = proxy(rate=512 * 1024)
    ref = push_via(open_client, slow, unique("slow"), 8 << 20)
    run = jcp(
        "once",
        [
            *engine_args(config_dir(tmp_path, [entry(ref)]), docker_root),
            "--pull-timeout",
            "1",
            "--retries",
            "0",
        ],
    )
    assert await run.wait_exit(timeout=60) == 1
    assert re.search(r"failed pulling .*: timeout: pull took longer than 1s", run.text())


async def test_digest_pinned_present_is_not_pulled_again(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    gate = proxy()
    repo = unique("pinned")
    pushed = push_synthetic(open_client, repo, "1")
    ref = f"{gate.host}/{repo}@{pushed.digest}"
    d = config_dir(tmp_path, [entry(ref)])
    first = jcp("once", engine_args(d, docker_root))
    assert await first.wait_exit() == 0, first.text()
    assert f"Pulled {ref}" in first.text()
    requests = gate.requests
    gate.pause()  # the registry would hang now: a second pull could not finish
    second = jcp(
        "once", [*engine_args(d, docker_root), "--stall-timeout", "2", "--log-level", "debug"]
    )
    assert await second.wait_exit() == 0, second.text()
    assert f"Up to date: {ref}" in second.text()
    assert gate.requests == requests


async def test_progress_display(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    slow = proxy(rate=2 << 20)
    ref = push_via(open_client, slow, unique("shown"), 3 << 20)
    run = jcp(
        "once",
        [*engine_args(config_dir(tmp_path, [entry(ref)]), docker_root), "--progress", "always"],
    )
    assert await run.wait_exit() == 0
    text = run.text()
    assert re.search(rf"↓ {re.escape(ref)} +\d+\.\d MB +\d+%", text), text
    assert re.search(r"\[#*-+\] 0/1 images", text)
    assert "\x1b[" in text  # the block is redrawn in place
    assert f"Pulled {ref}" in text  # log lines still appear, above the block


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_during_pulls(
    sig: int,
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    slow = proxy(rate=256 * 1024)
    refs = []
    for _ in range(2):
        repo = unique("big")
        push_synthetic(open_client, repo, "1", layers=1, layer_size=16 << 20)
        refs.append(f"{slow.host}/{repo}:1")
    run = jcp("run", engine_args(config_dir(tmp_path, [entry(r) for r in refs]), docker_root))
    await run.wait_line("Pulling", count=2)
    run.signal(sig)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await run.wait_exit(timeout=10) == 0
    assert loop.time() - t0 < 5
    assert "stop signal received" in run.text()
    for ref in refs:
        assert not await image_present(docker, ref)
