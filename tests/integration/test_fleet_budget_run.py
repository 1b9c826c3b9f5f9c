"""`jcp run --fleet-parallelism 1`, three agents (three processes, three node names) against
the API stand-in's Leases, on the real dockerd and registry through a throttling proxy: they
pull strictly one after another; an agent SIGKILLed while it holds the slot is replaced within
the lease duration; the API down mid-pull leaves the holder pulling, said once. Times are the
log's own millisecond timestamps."""

from __future__ import annotations

import itertools
import json
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

import pytest

from devstack.images import RegistryClient
from devstack.kubeapi import KubeApiStandIn
from devstack.proxy import ThrottleProxy
from tests.support.helpers import entry, publish, push_via
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]
TOKEN = "fleet-token-do-not-log"
LEASE = 2


@pytest.fixture
async def kube() -> AsyncIterator[KubeApiStandIn]:
    api = KubeApiStandIn(TOKEN)
    await api.start()
    yield api
    await api.stop()


def agent(jcp: Start, kube: KubeApiStandIn, tmp: Path, docker_root: Path, node: str,
          image: str) -> JcpProcess:  # fmt: skip
    token = tmp / "token"
    token.write_text(TOKEN)
    cfg = publish(tmp / f"config-{node}", [entry(image)])
    args = [
        *engine_args(cfg, docker_root), "--kube-api", kube.url, "--kube-token-file", str(token),
        "--log-format", "json", "--fleet-parallelism", "1", "--fleet-namespace", "jcp",
        "--fleet-lease-seconds", str(LEASE),
    ]  # fmt: skip
    return jcp("run", args, env={"NODE_NAME": node})


def at(line: str) -> float:
    return datetime.fromisoformat(json.loads(line)["ts"]).timestamp()


async def test_three_agents_with_one_slot_pull_strictly_one_after_another(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    kube: KubeApiStandIn,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    slow = proxy(rate=4 << 20)
    nodes = ("node-a", "node-b", "node-c")
    images = [push_via(open_client, slow, unique(f"fleet-{n}"), 4 << 20) for n in nodes]
    runs = [
        agent(jcp, kube, tmp_path, docker_root, n, i) for n, i in zip(nodes, images, strict=True)
    ]
    spans = []
    for node, image, run in zip(nodes, images, runs, strict=True):
        held = await run.wait_line(f"fleet: node {node} holds jcp-fleet-0", timeout=90)
        pulled = await run.wait_line(f"Pulled {re.escape(image)}", timeout=90)
        spans.append((at(held), at(pulled), node))
    spans.sort()
    print("\n" + "\n".join(f"{n}: slot at {a - spans[0][0]:.2f}s, pulled at {b - spans[0][0]:.2f}s"
                           for a, b, n in spans))  # fmt: skip
    for (_, done, _), (next_held, _, _) in itertools.pairwise(spans):
        assert done <= next_held, f"two agents pulled at once: {spans}"
    for run in runs:
        assert TOKEN not in run.text()


async def test_an_agent_killed_holding_the_slot_is_replaced_within_the_lease(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    kube: KubeApiStandIn,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    slow = proxy(rate=1 << 20)
    big = push_via(open_client, slow, unique("fleet-big"), 32 << 20)  # 32 s: a pull in flight
    other = push_via(open_client, slow, unique("fleet-small"), 1 << 20)
    a = agent(jcp, kube, tmp_path, docker_root, "node-a", big)
    await a.wait_line("fleet: node node-a holds jcp-fleet-0", timeout=60)
    b = agent(jcp, kube, tmp_path, docker_root, "node-b", other)
    await b.wait_line("waiting for a fleet slot .1 of 1 taken: nodes node-a", timeout=60)
    a.signal(signal.SIGKILL)
    killed = time.time()
    took = at(await b.wait_line("fleet: node node-b holds jcp-fleet-0", timeout=LEASE + 10))
    line = await b.wait_line("taken over from node node-a")
    print(f"\nSIGKILL to takeover: {took - killed:.2f}s (lease {LEASE}s)")
    assert took - killed < LEASE + 2.0
    assert "silent for" in line
    await b.wait_line(f"Pulled {re.escape(other)}", timeout=60)


async def test_the_api_down_mid_pull_leaves_the_holder_pulling_said_once(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    kube: KubeApiStandIn,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    slow = proxy(rate=1 << 20)
    image = push_via(open_client, slow, unique("fleet-mid"), 8 << 20)
    a = agent(jcp, kube, tmp_path, docker_root, "node-a", image)
    await a.wait_line("fleet: node node-a holds jcp-fleet-0", timeout=60)
    await kube.stop()
    await a.wait_line(f"Pulled {re.escape(image)}", timeout=60)
    assert a.count("cannot renew jcp-fleet-0") == 1
    assert a.count("its claim has ended") == 1
    await kube.start()
