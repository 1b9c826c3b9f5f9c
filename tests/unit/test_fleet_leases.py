"""The fleet's pull budget on Leases, through the API stand-in (`devstack/kubeleases.py` says
which API documents each answer) with the real client (kubernetes_asyncio's ApiClient, bearer
token): the cap holds under races, deaths and a lost API; the queue is first come, first
served; trouble is said once and never keeps a node from pulling."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from devstack.kubeapi import KubeApiStandIn
from jcp.kube.api import NodeApi
from jcp.kube.fleet import RBAC_RULE, LeaseSlot
from jcp.kube.fleet_queue import new_lease, wait_name
from jcp.kube.lease_api import LeaseApi
from tests.support.helpers import wait_for

TOKEN = "s3cr3t-fleet-token"
NS = "jcp"
LEASE = 1  # seconds: renewals every 1/3 s, takeover after 1 s of silence


@pytest.fixture
async def kube(caplog: pytest.LogCaptureFixture) -> AsyncIterator[KubeApiStandIn]:
    caplog.set_level(logging.INFO)
    api = KubeApiStandIn(TOKEN)
    await api.start()
    yield api
    await api.stop()
    assert TOKEN not in caplog.text, "the service account token reached a log line"


Make = Callable[..., LeaseSlot]


@pytest.fixture
async def slot(kube: KubeApiStandIn) -> AsyncIterator[Make]:
    made: list[LeaseSlot] = []

    def make(node: str, parallelism: int = 1, **kw: Any) -> LeaseSlot:
        kw.setdefault("api", lambda: LeaseApi.of(NodeApi.connect(kube.url, TOKEN), NS))
        kw.setdefault("lease_seconds", LEASE)
        kw.setdefault("head_poll", 0.05)
        made.append(LeaseSlot(node, parallelism, **kw))
        return made[-1]

    yield make
    for s in made:
        await s.close()


class Holds:
    """Who held a slot when (monotonic), and the most at once."""

    def __init__(self) -> None:
        self.now: set[str] = set()
        self.spans: list[tuple[str, float, float]] = []
        self.peak = 0

    async def run(self, s: LeaseSlot, hold: float) -> None:
        await s.acquire()
        start = time.monotonic()
        self.now.add(s.node)
        self.peak = max(self.peak, len(self.now))
        await asyncio.sleep(hold)
        self.now.discard(s.node)
        self.spans.append((s.node, start, time.monotonic()))
        await s.release()


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and text in r.getMessage() and r.name.startswith("jcp")
    ]


async def test_three_holders_with_one_slot_take_it_strictly_one_after_another(
    kube: KubeApiStandIn, slot: Make
) -> None:
    holds, slots = Holds(), [slot(n) for n in ("node-a", "node-b", "node-c")]
    first = asyncio.create_task(holds.run(slots[0], 0.6))
    await wait_for(lambda: kube.leases.holder(NS, "jcp-fleet-0") == "node-a", 5, "a holds")
    rest = [asyncio.create_task(holds.run(s, 0.3)) for s in slots[1:]]
    await wait_for(lambda: slots[1].waiting() and slots[2].waiting(), 5, "b and c wait")
    assert slots[1].waiting() == "waiting for a fleet slot (1 of 1 taken: nodes node-a)"
    assert "1 node ahead in the queue" in (slots[2].waiting() or "")
    await asyncio.gather(first, *rest)
    spans = sorted(holds.spans, key=lambda s: s[1])
    assert [s[0] for s in spans] == ["node-a", "node-b", "node-c"]
    assert all(a[2] <= b[1] for a, b in itertools.pairwise(spans)), spans
    assert holds.peak == 1
    assert kube.leases.holder(NS, "jcp-fleet-0") is None  # given back
    assert kube.leases.names(NS) == ["jcp-fleet-0"]  # the queue's leases are gone


async def test_simultaneous_takes_never_give_two_holders_of_one_slot(
    kube: KubeApiStandIn, slot: Make
) -> None:
    holds = Holds()
    nodes = [slot(f"node-{i:02}", 3, head_poll=0.01) for i in range(12)]
    await asyncio.gather(*(holds.run(s, 0.15) for s in nodes))
    assert holds.peak <= 3
    assert sorted(s[0] for s in holds.spans) == [s.node for s in nodes]
    for name in ("jcp-fleet-0", "jcp-fleet-1", "jcp-fleet-2"):  # each slot: one span at a time
        lease = kube.leases.get(NS, name)
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == ""


async def test_a_write_between_read_and_update_is_a_conflict_the_loser_backs_off(
    kube: KubeApiStandIn, slot: Make, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = slot("node-a"), slot("node-b")
    await a.acquire()
    await a.release()  # the slot exists, given back

    def intruder(lease: dict[str, Any]) -> None:
        lease["spec"]["holderIdentity"] = "node-x"  # and then node-x never renews (it died)

    kube.leases.before_next_update(lambda: kube.leases.edit(NS, "jcp-fleet-0", intruder))
    started = time.monotonic()
    await b.acquire()  # its first update is answered 409: node-x won; b takes over later
    took = time.monotonic() - started
    conflicts = [c for c in kube.leases.requests("update") if c.status == 409]
    assert len(conflicts) == 1
    assert LEASE <= took < LEASE + 1.5, "taken over once node-x was silent for a lease duration"
    assert kube.leases.holder(NS, "jcp-fleet-0") == "node-b"
    assert any("taken over from node node-x" in r.getMessage() for r in caplog.records)


async def test_a_holder_that_stops_renewing_is_replaced_within_the_lease_duration(
    kube: KubeApiStandIn, slot: Make
) -> None:
    a, b = slot("node-a"), slot("node-b")
    await a.acquire()
    waiter = asyncio.create_task(b.acquire())
    await wait_for(b.waiting, 5, "b to wait")
    assert a._renewer is not None
    a._renewer.cancel()  # SIGKILL: no more renewals, nothing given back
    killed = time.monotonic()
    await asyncio.wait_for(waiter, LEASE + 2)
    assert time.monotonic() - killed < LEASE + 1.0
    assert kube.leases.holder(NS, "jcp-fleet-0") == "node-b"
    lease = kube.leases.get(NS, "jcp-fleet-0")
    assert lease is not None
    assert lease["spec"]["leaseTransitions"] == 1
    a._held = None  # the dead pod gives nothing back


async def test_the_queue_is_first_come_first_served_and_a_dead_waiter_delays_it_one_lease(
    kube: KubeApiStandIn, slot: Make
) -> None:
    holder = slot("node-h")
    await holder.acquire()
    order: list[str] = []

    async def wait_then_hold(s: LeaseSlot) -> None:
        await s.acquire()
        order.append(s.node)
        await asyncio.sleep(0.1)
        await s.release()

    # A waiter that died in the queue (its lease left behind, never renewed), then three more,
    # in an order that is not their names' (creationTimestamp is in whole seconds).
    dead = new_lease(wait_name("node-0-dead"), "wait", "node-0-dead", LEASE)
    raw = LeaseApi.of(NodeApi.connect(kube.url, TOKEN), NS)
    await raw.create(dead)
    await raw.close()
    tasks = []
    for name in ("node-c", "node-a", "node-b"):
        await asyncio.sleep(1.05)
        s = slot(name)
        tasks.append(asyncio.create_task(wait_then_hold(s)))
        await wait_for(s.waiting, 5, f"{name} in the queue")
    await holder.release()
    await asyncio.gather(*tasks)
    assert order == ["node-c", "node-a", "node-b"]
    assert wait_name("node-0-dead") not in kube.leases.names(NS), "a dead waiter is tidied up"


async def test_api_down_at_start_pulls_alone_after_a_bounded_wait_said_once(
    kube: KubeApiStandIn, slot: Make, caplog: pytest.LogCaptureFixture
) -> None:
    await kube.stop()
    s = slot("node-a", trouble_wait=0.5)
    started = time.monotonic()
    task = asyncio.create_task(s.acquire())
    await wait_for(s.waiting, 5, "the wait to show")
    assert "the Kubernetes API" in (s.waiting() or "")
    await task
    assert 0.4 < time.monotonic() - started < 2.0
    assert s.holding is None
    assert s.waiting() is None
    await s.release()
    before = time.monotonic()
    await s.acquire()  # still down: no second bounded wait, no second warning
    assert time.monotonic() - before < 0.5
    assert len(warnings(caplog, "pulls without a fleet slot")) == 1
    await s.release()
    await kube.start()
    await s.acquire()
    assert s.holding == "jcp-fleet-0"
    assert any("answers again" in r.getMessage() for r in caplog.records)


async def test_api_down_mid_hold_ends_the_claim_said_once_and_the_holder_carries_on(
    kube: KubeApiStandIn, slot: Make, caplog: pytest.LogCaptureFixture
) -> None:
    s = slot("node-a")
    await s.acquire()
    await kube.stop()
    await wait_for(lambda: warnings(caplog, "its claim has ended"), LEASE + 3, "the claim to end")
    await asyncio.sleep(LEASE)
    assert len(warnings(caplog, "cannot renew jcp-fleet-0")) == 1
    await kube.start()  # nobody took it over meanwhile: the next renewal still holds it
    await wait_for(
        lambda: any("renewed again" in r.getMessage() for r in caplog.records), 5, "a renewal"
    )
    await s.release()
    assert kube.leases.holder(NS, "jcp-fleet-0") is None


async def test_forbidden_pulls_alone_at_once_naming_the_rbac_rule(
    kube: KubeApiStandIn, slot: Make, caplog: pytest.LogCaptureFixture
) -> None:
    kube.leases.forbid("create", "list", "get", "update")
    s = slot("node-a", trouble_wait=30)
    started = time.monotonic()
    await s.acquire()
    assert time.monotonic() - started < 1.0
    (line,) = warnings(caplog, "is forbidden")
    assert 'cannot create resource "leases" in API group "coordination.k8s.io"' in line
    assert RBAC_RULE in line
