"""Sizes and platforms before pulling, on the real stack: the registry's manifests tell a
missing platform (no runtime call), the size (disk guard, order of the pulls) before the
runtime is asked; requests are counted at the registry, by a recording proxy."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import aiodocker
import pytest

from devstack.images import RegistryClient, make_layer, push_synthetic
from devstack.ratelimit import RateLimitedRegistry
from jcp.model.failures import Reason, RegistryFailure
from jcp.model.refs import parse_reference
from jcp.registry.client import RegistryClient as Client
from tests.support.helpers import entry, publish
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]


def seen(r: RateLimitedRegistry, since: int = 0) -> list[str]:
    return [f"{s.method} {s.path}" for s in r.seen[since:]]


async def test_client_reads_sizes_and_platforms(
    open_client: RegistryClient, unique: Callable[[str], str]
) -> None:
    client = Client()
    try:
        single = push_synthetic(open_client, unique("size"), "1", layers=2, layer_size=300_000)
        found = await client.inspect(parse_reference(single.reference), None, "amd64")
        assert found.digest == single.digest
        assert single.size < found.size < single.size + 2000  # the layers and the config
        assert found.platforms == ()
        layers = {"amd64": [make_layer(1000)], "arm64": [make_layer(200_000)]}
        multi = open_client.push_multiarch(unique("sizem"), "1", layers)
        arm = await client.inspect(parse_reference(multi.reference), None, "arm64")
        assert arm.digest == multi.digest
        arm_layers = layers["arm64"][0].size
        assert arm_layers < arm.size < arm_layers + 2000, "the node's platform only"
        assert arm.platforms == ("linux/amd64", "linux/arm64/v8")
        with pytest.raises(RegistryFailure) as refused:
            await client.inspect(parse_reference(multi.reference), None, "s390x")
        assert refused.value.failure.reason == Reason.PLATFORM
        assert str(refused.value).endswith(
            "is not built for linux/s390x: its manifest list has linux/amd64, linux/arm64/v8"
        )
    finally:
        await client.close()


async def test_missing_platform_fails_without_a_runtime_pull(
    tmp_path: Path,
    open_client: RegistryClient,
    recorder: RateLimitedRegistry,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    repo = unique("noarch")
    open_client.push_multiarch(repo, "1", {"arm64": [make_layer(512)], "s390x": [make_layer(512)]})
    ref = f"{recorder.host}/{repo}:1"
    cfg = publish(tmp_path / "config", [entry(ref)])
    run = jcp("once", engine_args(cfg, docker_root))
    assert await run.wait_exit() == 1, run.text()
    assert re.search(
        rf"failed pulling {re.escape(ref)} from .*: platform: .*is not built for linux/amd64: "
        r"its manifest list has linux/arm64/v8, linux/s390x",
        run.text(),
    ), run.text()
    assert "Pulling " not in run.text()
    # Only jcp's one manifest GET reached the registry: the daemon was never asked to pull.
    assert seen(recorder) == [f"GET /v2/{repo}/manifests/1"]
    with pytest.raises(aiodocker.DockerError):
        await docker.images.inspect(ref)
    # Permanent: `jcp run` would not ask again until the entry changes (same rule as not found).


async def test_largest_pulls_start_first(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    sizes = {"small": 2_000, "big": 600_000, "medium": 150_000}
    refs = {
        name: push_synthetic(open_client, unique(name), "1", layers=1, layer_size=size).reference
        for name, size in sizes.items()
    }
    cfg = publish(tmp_path / "config", [entry(r) for r in refs.values()])
    run = jcp("once", [*engine_args(cfg, docker_root), "--concurrency", "1"])
    assert await run.wait_exit() == 0, run.text()
    started = [
        name
        for line in run.lines()
        for name, ref in refs.items()
        if re.search(rf"Pulling {re.escape(ref)}\b", line)
    ]
    assert started == ["big", "medium", "small"], run.text()


async def test_a_pull_that_would_not_fit_waits_for_room(
    tmp_path: Path,
    small_disk: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    """8 MiB of disk, 1 MiB kept free: a 1 MB image fits (about 3 MB unpacked and stored), a
    3 MB one (about 9 MB) does not, though the guard itself is not active."""
    fits = push_synthetic(open_client, unique("fits"), "1", layers=1, layer_size=1_000_000)
    big = push_synthetic(open_client, unique("toobig"), "1", layers=1, layer_size=3_000_000)
    cfg = publish(tmp_path / "config", [entry(fits.reference), entry(big.reference)])
    args = [*engine_args(cfg, docker_root), "--disk-path", str(small_disk), "--min-free", "1MiB"]
    run = jcp("once", [*args, "--retries", "0"])
    assert await run.wait_exit() == 1, run.text()
    text = run.text()
    assert re.search(
        rf"failed pulling {re.escape(big.reference)} from .*: disk: .* needs about 9\.0 MB on "
        rf"{re.escape(str(small_disk))}, where [\d.]+ MB are free above --min-free 1048576 bytes",
        text,
    ), text
    assert f"Pulled {fits.reference}" in text
    assert f"Pulling {big.reference}" not in text
    assert "disk guard: " not in text, "the guard itself never held pulls back"
    await docker.images.inspect(fits.reference)
