"""The paced link (devstack/paced_link.py) paces each connection, and leaves nothing behind.

Its figures are only worth something if one connection really runs at the link's rate and
several really run side by side, and parallel sessions can only share a machine if a link
never outlives its owner, even one killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.ranges import AGENT, blob_url, fetch
from devstack.images import RegistryClient, make_layer
from devstack.link_watchdog import link_exists, netns_exists
from devstack.paced_link import PacedLink
from tests.support.helpers import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a paced link needs root")

SIZE = 40_000_000


@pytest.fixture
def link(tmp_path: Path) -> Iterator[PacedLink]:
    with PacedLink(tmp_path / "link") as paced:
        yield paced


async def test_one_connection_runs_at_the_rate_and_four_ranges_side_by_side(
    link: PacedLink,
) -> None:
    layer = make_layer(SIZE)
    client = RegistryClient(link.host)
    client.push_image("paced/one", "1", [layer])
    client.close()
    url = blob_url(link.url, "paced/one", layer.digest)

    one = await fetch(url, layer.size, 1)
    four = await fetch(url, layer.size, 4)

    expected = layer.size / link.rate
    assert 0.6 <= one / expected <= 1.6, (one, expected)
    assert one / four > 2, (one, four)
    log = link.requests()

    def gets() -> list[object]:
        return [r for r in log.since() if r.blob_get and r.agent == AGENT]

    await wait_for(lambda: len(gets()) == 5, 10, "the registry's log of the 5 blob GETs")
    got = [r for r in log.since() if r.blob_get and r.agent == AGENT]
    assert [r.ranged for r in got].count(True) == 4
    assert sorted(r.written for r in got if r.ranged) == sorted(
        [layer.size // 4 + (1 if i < layer.size % 4 else 0) for i in range(4)]
    )
    assert len({r.remote for r in got}) == 5, "one connection each"
    # Each connection had a class of its own: five classes carried a blob's share or more.
    carried = [n for n in link.class_bytes().values() if n >= layer.size // 4]
    assert len(carried) == 5, link.class_bytes()


def test_stop_leaves_no_namespace_and_no_veth(tmp_path: Path) -> None:
    link = PacedLink(tmp_path / "link").start()
    assert netns_exists(link.netns)
    assert link_exists(link.veth)
    registry = link.registry
    assert registry is not None
    assert registry.proc is not None
    link.stop()
    assert link.gone()
    assert registry.proc.poll() is not None


_OWNER = """
import sys, time
from pathlib import Path
from devstack.paced_link import PacedLink
link = PacedLink(Path(sys.argv[1])).start()
print(link.netns, link.veth, link.registry.proc.pid, flush=True)
time.sleep(600)
"""


async def test_a_sigkilled_owner_leaves_nothing_behind(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path / "link")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert owner.stdout is not None
        netns, veth, pid = owner.stdout.readline().split()
        assert netns_exists(netns)
        assert link_exists(veth)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        if owner.stdout is not None:
            owner.stdout.close()

    def registry_gone() -> bool:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        return False

    started = time.monotonic()
    await wait_for(
        lambda: not netns_exists(netns) and not link_exists(veth) and registry_gone(),
        20,
        "the watchdog to take the namespace, its veth and its registry down",
    )
    assert time.monotonic() - started < 20
