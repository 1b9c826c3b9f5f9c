"""jcp's blob fetch cut off, on a real containerd over the paced link (20 MB/s a connection):
SIGKILLed mid-fetch it resumes from the offset containerd holds; an image removed from the
config mid-fetch leaves no ingest and no lease; a registry that stops sending is a stall."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.containerd import Containerd
from devstack.images import make_layer
from devstack.paced_link import PacedLink
from devstack.proxy import ThrottleProxy
from devstack.stack import Stack
from jcp.runtime.content_store import ContentStore
from tests.support.cri_args import cri_args, push_image
from tests.support.helpers import entry, publish
from tests.support.jcp_process import JcpProcess, engine_args
from tests.support.paced_fixtures import paced_link  # noqa: F401 - the session's link

Start = Callable[..., JcpProcess]
MIB = 1024 * 1024
CHUNK = 4 * MIB


@pytest.fixture
def own_containerd() -> Iterator[Callable[[list[str]], Containerd]]:
    made: list[Containerd] = []

    def make(registries: list[str]) -> Containerd:
        root = Path(tempfile.mkdtemp(prefix="jcpk-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
        c = Containerd(root, registries=registries)
        c.start()
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
        shutil.rmtree(c.root, ignore_errors=True)


def _ctr(c: Containerd, *args: str) -> str:
    cmd = ["ctr", "--address", str(c.socket), "-n", "k8s.io", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


async def _until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not {what} within {timeout}s")
        await asyncio.sleep(0.05)


def _ingesting(c: Containerd) -> bool:
    """An ingest of jcp's holds some bytes (`ctr content active`: REF SIZE AGE)."""
    rows = [line.split() for line in _ctr(c, "content", "active").splitlines()[1:]]
    return any(row[0].startswith("jcp-") and row[1] not in {"0", "0B"} for row in rows)


async def _offset(c: Containerd, ref: str) -> int:
    """How far containerd holds the ingest REF (0: none), asked through its content API."""
    store = ContentStore(c.endpoint)
    try:
        return await store.status(ref) or 0
    finally:
        await store.close()


def _args(c: Containerd, cfg: Path, tmp: Path, *more: str) -> list[str]:
    return [
        *engine_args(cfg, tmp / "docker"),
        *cri_args(c),
        "--registry-config-path",
        str(c.root / "certs.d"),
        "--fetch",
        "on",  # no probe of the link's pace first: the registry counts only the fetch's bytes
        *more,
    ]


async def test_a_sigkilled_fetch_resumes_where_containerd_holds_it(
    tmp_path: Path,
    paced_link: PacedLink,  # noqa: F811
    own_containerd: Callable[[list[str]], Containerd],
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    layer = make_layer(40 * MIB)
    pushed = push_image(paced_link.host, unique("resume"), [layer])
    c = own_containerd([paced_link.host])
    cfg = publish(tmp_path / "config", [entry(pushed.reference)])
    # One stream: 40 MiB takes about 2 s, long enough to be cut off in the middle.
    args = _args(c, cfg, tmp_path, "--fetch-streams", "1")
    first = jcp("once", args)
    ref = f"jcp-{layer.digest}"
    deadline = asyncio.get_running_loop().time() + 30
    while await _offset(c, ref) < 8 * MIB:  # well into the blob
        assert asyncio.get_running_loop().time() < deadline, first.text()
        await asyncio.sleep(0.05)
    first.signal(signal.SIGKILL)
    await first.wait_exit()
    held = await _offset(c, f"jcp-{layer.digest}")
    log = paced_link.requests()
    log.mark()
    again = jcp("once", args)
    assert await again.wait_exit() == 0, again.text()
    moved = sum(r.written for r in log.settled(paced_link.host) if r.digest == layer.digest)
    print(f"held {held} of {layer.size} after SIGKILL; fetched {moved} after the restart")
    assert 0 < held < layer.size
    assert moved <= layer.size - held + CHUNK
    # The second run dropped its lease; the SIGKILLed one's expires by itself.
    leases = [line for line in _ctr(c, "leases", "ls").splitlines() if "jcp-fetch-" in line]
    assert len(leases) == 1, leases
    assert "containerd.io/gc.expire=" in leases[0]


async def test_an_image_removed_mid_fetch_leaves_no_ingest_and_no_lease(
    tmp_path: Path,
    paced_link: PacedLink,  # noqa: F811
    own_containerd: Callable[[list[str]], Containerd],
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    pushed = push_image(paced_link.host, unique("gone"), [make_layer(80 * MIB)])
    c = own_containerd([paced_link.host])
    cfg = publish(tmp_path / "config", [entry(pushed.reference)])
    run = jcp("run", [*_args(c, cfg, tmp_path, "--fetch-streams", "1"), "--http-addr", ""])
    await _until(lambda: _ingesting(c), "ingesting")
    publish(tmp_path / "config", [])
    await run.wait_line(r"Cancelled pulling .*gone")
    await _until(lambda: "jcp-" not in _ctr(c, "content", "active"), "without ingest")
    await _until(lambda: "jcp-fetch-" not in _ctr(c, "leases", "ls"), "without lease")
    run.signal(signal.SIGTERM)
    assert await run.wait_exit() == 0


async def test_a_registry_that_stops_sending_mid_fetch_is_a_stall_on_containerd(
    tmp_path: Path,
    stack: Stack,
    own_containerd: Callable[[list[str]], Containerd],
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    """Before jcp fetched, a CRI pull had no progress to watch: a pull that stopped moving
    waited for the 2 h pull timeout. Now the fetch's bytes are the progress."""
    proxy = ThrottleProxy(stack.open_registry.host, rate=4e6).start()
    try:
        pushed = push_image(proxy.host, unique("stall"), [make_layer(16 * MIB)])
        c = own_containerd([proxy.host])
        cfg = publish(tmp_path / "config", [entry(pushed.reference)])
        run = jcp("once", [*_args(c, cfg, tmp_path, "--stall-timeout", "2", "--retries", "0")])
        await _until(lambda: proxy.sent_down > 2 * MIB, "fetching")
        proxy.pause()
        assert await run.wait_exit(timeout=60) == 1, run.text()
        assert "stall: no progress for 2s; pull abandoned" in run.text()
    finally:
        proxy.resume()
        proxy.stop()
