"""`jcp once` on containerd 1.6 and 1.7 with its blob fetch, over the paced link (every
connection at 20 MB/s): what an operator sees in the registry's access log, the runtime's
image store, jcp's log and its byte counts. The registry's log names who fetched each blob
(User-Agent) and whether it was a ranged answer (206)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.containerd import Containerd
from devstack.images import RegistryClient as ImagesClient
from devstack.images import make_layer, push_synthetic
from devstack.paced_link import PacedLink
from devstack.ratelimit import RateLimitedRegistry
from devstack.stack import Stack
from jcp.runtime.cri import CriRuntime
from tests.support.blob_proxy import BlobProxy
from tests.support.containerd17 import containerd17_binary
from tests.support.cri_args import cri_args, present, push_image
from tests.support.helpers import entry, publish
from tests.support.jcp_process import JcpProcess, engine_args
from tests.support.paced_fixtures import paced_link  # noqa: F401 - the session's link
from tests.support.scrape import get, samples, value, wait_http

Start = Callable[..., JcpProcess]
MIB = 1024 * 1024


def _binary(version: str) -> str:
    if version == "1.6":
        return "containerd"
    return containerd17_binary()


def fetch_args(c: Containerd) -> list[str]:
    """As deployed: jcp reads containerd's own hosts.toml (which sends the paced registry over
    plain HTTP), mounted from the node."""
    return [*cri_args(c), "--registry-config-path", str(c.root / "certs.d")]


@pytest.fixture(params=["1.6", "1.7"])
def paced_containerd(request: pytest.FixtureRequest, paced_link: PacedLink) -> Iterator[Containerd]:  # noqa: F811
    root = Path(tempfile.mkdtemp(prefix="jcpf-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    c = Containerd(root, registries=[paced_link.host], binary=_binary(request.param))
    c.start()
    yield c
    c.stop()
    shutil.rmtree(root, ignore_errors=True)


async def test_jcp_fetches_the_blobs_with_ranges_and_containerd_only_unpacks(
    tmp_path: Path,
    paced_link: PacedLink,  # noqa: F811
    paced_containerd: Containerd,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    layers = [make_layer(24 * MIB), make_layer(3 * MIB)]
    pushed = push_image(paced_link.host, unique("big"), layers)
    blob_bytes = sum(layer.size for layer in layers)
    cfg = publish(tmp_path / "config", [entry(pushed.reference)])
    log = paced_link.requests()
    log.mark()
    args = [*engine_args(cfg, tmp_path / "docker"), *fetch_args(paced_containerd)]
    run = jcp("once", args)
    assert await run.wait_exit() == 0, run.text()
    text = run.text()
    assert "blob fetch: on (" in text
    assert "fast link" not in text  # auto asked the link's pace: 20 MB/s a connection
    assert "downloads at most 3 layers at once" in text  # containerd's own setting, said
    cri = CriRuntime(paced_containerd.endpoint)
    try:
        assert await present(cri, pushed.reference)
    finally:
        await cri.close()
    blobs = [r for r in log.settled(paced_link.host) if r.blob_get]
    assert blobs, "no blob GET reached the registry"
    assert {r.product for r in blobs} == {"jcp"}, [(r.agent, r.uri) for r in blobs]
    big = [r for r in blobs if r.digest == layers[0].digest]
    assert len(big) >= 4, "the 24 MiB layer was not fetched in ranges"
    assert all(r.ranged for r in big)
    # The summary's bytes are what jcp fetched (the layers and the config), not a guess; the
    # registry also served auto's one probe of the link's pace (4 MiB, not kept).
    fetched = sum(r.written for r in blobs)
    probe = 4 * MIB
    assert blob_bytes + probe <= fetched < blob_bytes + probe + 64 * 1024
    fetched -= probe
    assert f"({fetched / 1e6:.1f} MB downloaded)" in text
    phases = re.search(r"Fetched \S+: ([\d.]+) MB in [\d.]+s \((\d+) ranges\), then the runtime "
                       r"unpacked it in [\d.]+s", text)  # fmt: skip
    assert phases, text
    assert float(phases[1]) == round(fetched / 1e6, 1)
    assert int(phases[2]) >= len(big)


async def test_content_already_held_is_neither_fetched_nor_counted(
    tmp_path: Path,
    paced_link: PacedLink,  # noqa: F811
    paced_containerd: Containerd,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    """The image record is removed, its blobs stay in containerd's store (as when a tag is
    removed while another keeps the content): pulling it again fetches nothing, and says so."""
    pushed = push_image(paced_link.host, unique("held"), [make_layer(4 * MIB)])
    cfg = publish(tmp_path / "config", [entry(pushed.reference)])
    args = [*engine_args(cfg, tmp_path / "docker"), *fetch_args(paced_containerd)]
    assert await jcp("once", args).wait_exit() == 0
    ctr = ["ctr", "--address", str(paced_containerd.socket), "-n", "k8s.io"]
    # A lease of our own keeps the content while the image record goes (GC would take it).
    subprocess.run([*ctr, "leases", "create", "--id", "keep"], check=True, capture_output=True)
    subprocess.run([*ctr, "images", "rm", pushed.reference], check=True, capture_output=True)
    log = paced_link.requests()
    log.mark()
    run = jcp("once", args)
    assert await run.wait_exit() == 0, run.text()
    assert "1 pulled" in run.text()
    assert "(0.0 MB downloaded)" in run.text()
    assert not [r for r in log.settled(paced_link.host) if r.blob_get]


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_a_socket_without_the_content_api_is_the_runtimes_own_pull_said_once(
    tmp_path: Path,
    stack: Stack,
    open_client: ImagesClient,
    jcp: Start,
    unique: Callable[[str], str],
    mode: str,
) -> None:
    """What jcp meets on CRI-O (the CRI, no containerd API), made for real: a containerd whose
    content service is not served on its socket (the CRI plugin uses it in-process)."""
    root = Path(tempfile.mkdtemp(prefix="jcpn-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    c = Containerd(
        root, registries=[stack.open_registry.host], disabled=("io.containerd.grpc.v1.content",)
    )
    c.start()
    try:
        refs = [push_synthetic(open_client, unique("nocontent"), "1").reference for _ in "ab"]
        cfg = publish(tmp_path / "config", [entry(r) for r in refs])
        args = [*engine_args(cfg, tmp_path / "docker"), *fetch_args(c), "--fetch", mode]
        run = jcp("once", [*args, "--log-format", "json"])
        assert await run.wait_exit() == 0, run.text()
        assert "2 pulled" in run.text()
        said = [json.loads(line) for line in run.lines() if "blob fetch: off" in line]
        assert len(said) == 1, said
        assert "has no containerd content API (CRI-O or cri-dockerd?)" in said[0]["msg"]
        assert said[0]["level"] == ("warning" if mode == "on" else "info")
        cri = CriRuntime(c.endpoint)
        try:
            for ref in refs:
                assert await present(cri, ref)
        finally:
            await cri.close()
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_run_shows_the_fetch_in_metrics_and_status(
    tmp_path: Path,
    paced_link: PacedLink,  # noqa: F811
    paced_containerd: Containerd,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    layers = [make_layer(6 * MIB)]
    pushed = push_image(paced_link.host, unique("seen"), layers)
    cfg = publish(tmp_path / "config", [entry(pushed.reference)])
    run = jcp("run", [*engine_args(cfg, tmp_path / "docker"), *fetch_args(paced_containerd)])
    base = await wait_http(run)
    await run.wait_line(r"sweep 1 done .* 1 pulled")
    _, text = await get(base + "/metrics")
    got = samples(text)
    assert value(got, "jcp_fetch_enabled") == 1
    fetched = value(got, "jcp_fetch_bytes_total", kind="fetched")
    assert fetched is not None
    assert fetched >= layers[0].size
    assert value(got, "jcp_downloaded_bytes_total") == fetched
    assert (value(got, "jcp_fetch_ranges_total") or 0) >= 2
    assert value(got, "jcp_fetch_images_total") == 1
    _, body = await get(base + "/status")
    fetch = json.loads(body)["fetch"]
    assert fetch["mode"] == "on"
    assert fetch["bytesFetched"] == fetched
    assert fetch["fallbacks"] == []
    run.signal()
    assert await run.wait_exit() == 0


async def test_auto_leaves_a_registry_whose_connections_are_fast_to_the_runtime(
    tmp_path: Path,
    stack: Stack,
    containerd: Containerd,
    open_client: ImagesClient,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    """On loopback one connection is fast: jcp's fetch would only cost CPU (BENCHMARKS.md),
    so auto asks one connection's pace once and leaves that registry's pulls to containerd."""
    refs = [
        open_client.push_image(unique("fast"), "1", [make_layer(20 * MIB)]).reference for _ in "ab"
    ]
    cfg = publish(tmp_path / "config", [entry(r) for r in refs])
    run = jcp("once", [*engine_args(cfg, tmp_path / "docker"), *cri_args(containerd)])
    assert await run.wait_exit() == 0, run.text()
    said = [line for line in run.lines() if "fast link" in line]
    assert len(said) == 1, run.text()
    assert "the link does not pace connections" in said[0]
    assert "2 pulled" in run.text()
    cri = CriRuntime(containerd.endpoint)
    try:
        for ref in refs:
            assert await present(cri, ref)
    finally:
        await cri.close()


async def test_a_registry_that_meters_pulls_is_left_to_the_runtime_said_once(
    tmp_path: Path,
    stack: Stack,
    open_client: ImagesClient,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    """A registry whose answers carry RateLimit headers counts manifest GETs against a pull
    limit (Docker Hub does): jcp's fetch would read each manifest once more, so the runtime
    pulls alone. The registry is the real one behind a proxy that adds Hub's headers."""
    metered = RateLimitedRegistry(stack.open_registry.host, allow=1000).start()
    root = Path(tempfile.mkdtemp(prefix="jcpm-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    c = Containerd(root, registries=[metered.host])
    c.start()
    try:
        names = [unique("metered") for _ in "ab"]
        for name in names:
            open_client.push_image(name, "1", [make_layer(1024 * 1024)])
        refs = [f"{metered.host}/{name}:1" for name in names]
        cfg = publish(tmp_path / "config", [entry(r) for r in refs])
        run = jcp("once", [*engine_args(cfg, tmp_path / "docker"), *fetch_args(c)])
        assert await run.wait_exit() == 0, run.text()
        said = [line for line in run.lines() if "metered registry" in line]
        assert len(said) == 1, run.text()
        assert "2 pulled" in run.text()
        blob_gets = [s for s in metered.seen if "/blobs/" in s.path and s.method == "GET"]
        assert blob_gets
        assert all(s.agent.startswith("containerd") for s in blob_gets), blob_gets
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)
        metered.stop()


async def test_a_registry_that_ignores_range_gets_one_stream_per_blob_said_once(
    tmp_path: Path,
    stack: Stack,
    open_client: ImagesClient,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    proxy = BlobProxy(stack.open_registry.host, strip_range=True).start()
    root = Path(tempfile.mkdtemp(prefix="jcpr-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    c = Containerd(root, registries=[proxy.host])
    c.start()
    try:
        names = [unique("norange") for _ in "ab"]
        for name in names:
            open_client.push_image(name, "1", [make_layer(9 * MIB)])
        refs = [f"{proxy.host}/{name}:1" for name in names]
        cfg = publish(tmp_path / "config", [entry(r) for r in refs])
        args = [*engine_args(cfg, tmp_path / "docker"), *fetch_args(c), "--fetch", "on"]
        run = jcp("once", args)
        assert await run.wait_exit() == 0, run.text()
        said = [line for line in run.lines() if "no Range support" in line]
        assert len(said) == 1, run.text()
        assert "2 pulled" in run.text()
        gets = proxy.blob_gets()
        assert {g.agent.split("/")[0] for g in gets} == {"jcp"}, gets
        cri = CriRuntime(c.endpoint)
        try:
            for ref in refs:
                assert await present(cri, ref)
        finally:
            await cri.close()
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)
        proxy.stop()
