"""The node's labels, read and followed through the API stand-in (list, watch, bookmarks, 410
Gone, the API down and back): `devstack/kubeapi.py` says why it is a stand-in; the client is
the real one (kubernetes_asyncio's ApiClient, bearer token)."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from devstack.kubeapi import KubeApiStandIn
from jcp.kube.api import KubeError, NodeApi
from jcp.kube.node_watch import RBAC_RULE, NodeLabels
from tests.support.helpers import wait_for

TOKEN = "s3cr3t-watch-token"
NODE = "gpu-1"
OTHER = "cpu-1"


class Calls:
    """What the callback was given, and when (time.monotonic)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, dict[str, str] | None]] = []
        self.troubles: list[str | None] = []
        self.trouble_when_told: list[str | None] = []
        self.watcher: NodeLabels | None = None

    def __call__(self, labels: Mapping[str, str] | None) -> None:
        self.seen.append((time.monotonic(), None if labels is None else dict(labels)))
        if self.watcher is not None:
            self.trouble_when_told.append(self.watcher.trouble)

    def trouble(self, text: str | None) -> None:
        self.troubles.append(text)

    @property
    def values(self) -> list[dict[str, str] | None]:
        return [v for _, v in self.seen]

    @property
    def last(self) -> dict[str, str] | None:
        return self.seen[-1][1] if self.seen else None

    def has(self, key: str, value: str | None) -> bool:
        last = self.last
        return last is not None and last.get(key) == value


@pytest.fixture
async def kube(caplog: pytest.LogCaptureFixture) -> AsyncIterator[KubeApiStandIn]:
    caplog.set_level(logging.DEBUG)
    api = KubeApiStandIn(TOKEN)
    api.add_node(NODE, {"pool": "gpu"})
    api.add_node(OTHER, {"pool": "cpu"})
    await api.start()
    yield api
    await api.stop()
    assert TOKEN not in caplog.text, "the service account token reached a log line"


Start = Callable[..., tuple[NodeLabels, Calls]]


@pytest.fixture
async def follow(kube: KubeApiStandIn) -> AsyncIterator[Start]:
    running: list[tuple[NodeLabels, asyncio.Task[None]]] = []

    def start(node: str | None = NODE, **kw: Any) -> tuple[NodeLabels, Calls]:
        kw.setdefault("api", lambda: NodeApi.connect(kube.url, TOKEN))
        kw.setdefault("backoff", 0.05)
        kw.setdefault("max_backoff", 0.2)
        watcher, calls = NodeLabels(node, **kw), Calls()
        calls.watcher = watcher
        running.append((watcher, asyncio.create_task(watcher.run(calls, calls.trouble))))
        return watcher, calls

    yield start
    for watcher, task in running:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await watcher.close()


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    """Lines at INFO and above (what an operator sees) that hold TEXT."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.INFO and text in r.getMessage() and r.name.startswith("jcp")
    ]


async def test_labels_are_read_at_start_and_a_relabel_arrives_within_a_second(
    kube: KubeApiStandIn, follow: Start, caplog: pytest.LogCaptureFixture
) -> None:
    watcher, calls = follow()
    await wait_for(lambda: calls.seen, 5, "the first labels")
    assert calls.values == [{"kubernetes.io/hostname": NODE, "pool": "gpu"}]
    await wait_for(lambda: kube.watching() == 1, 5, "the watch")
    latencies = []
    for i in range(20):
        before = time.monotonic()
        kube.relabel(NODE, {"gpu": f"nvidia-{i}"})
        want = f"nvidia-{i}"
        await wait_for(lambda: calls.has("gpu", want), 5, "the relabel")  # noqa: B023
        latencies.append(calls.seen[-1][0] - before)
    kube.relabel(NODE, {"gpu": None})
    await wait_for(lambda: calls.has("gpu", None), 5, "the label removed")
    kube.relabel(OTHER, {"gpu": "amd"})  # another node's change: not this watch's business
    await asyncio.sleep(0.2)
    assert len(calls.seen) == 22
    print(
        f"\nlabel change to callback: median {statistics.median(latencies) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} relabels"
    )
    assert max(latencies) < 1.0
    assert watcher.labels == {"kubernetes.io/hostname": NODE, "pool": "gpu"}
    assert watcher.trouble is None
    assert (len(kube.requests("list")), len(kube.requests("watch"))) == (1, 1), "no polling"
    assert logged(caplog, "node labels: node gpu-1 changed: +gpu=nvidia-0")
    assert logged(caplog, "node labels: node gpu-1 changed: gpu=nvidia-0->nvidia-1")
    assert logged(caplog, "node labels: node gpu-1 changed: -gpu")


async def test_a_bookmark_lets_the_watch_resume_without_a_relist(
    kube: KubeApiStandIn, follow: Start
) -> None:
    _, calls = follow()
    await wait_for(lambda: kube.watching() == 1, 5, "the watch")
    kube.relabel(OTHER, {"x": "1"})  # the store's version moves; this node's watch sees nothing
    kube.bookmark()  # ... except this: its resourceVersion is now the store's
    await asyncio.sleep(0.2)
    kube.expire()  # history up to now forgotten, watches ended
    await wait_for(lambda: len(kube.requests("watch")) == 2, 5, "the watch resumed")
    kube.relabel(NODE, {"gpu": "nvidia"})
    await wait_for(lambda: calls.has("gpu", "nvidia"), 5, "the relabel")
    assert len(kube.requests("list")) == 1, "resumed from the bookmark's version: no relist"
    assert [s.status for s in kube.requests("watch")] == [200, 200]


@pytest.mark.parametrize("how", ["event", "status"])
async def test_410_gone_makes_the_client_list_again(
    kube: KubeApiStandIn, follow: Start, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    _, calls = follow()
    await wait_for(lambda: kube.watching() == 1, 5, "the watch")
    kube.relabel(OTHER, {"x": "1"})
    kube.expire(how)  # type: ignore[arg-type]
    kube.relabel(NODE, {"gpu": "nvidia"})  # while the client is between watches
    await wait_for(lambda: calls.has("gpu", "nvidia"), 5, "the labels after the relist")
    assert len(kube.requests("list")) == 2
    assert logged(caplog, "too old resource version")
    assert logged(caplog, f"listing node {NODE} again")
    expected = [200, 200, 200] if how == "event" else [200, 410, 200]
    await wait_for(lambda: len(kube.requests("watch")) == 3, 5, "the new watch")
    assert [s.status for s in kube.requests("watch")] == expected
    kube.relabel(NODE, {"gpu": "amd"})
    await wait_for(lambda: calls.has("gpu", "amd"), 5, "the watch after the relist")


async def test_api_down_at_start_is_said_once_then_the_labels_arrive_when_it_is_back(
    kube: KubeApiStandIn, follow: Start, caplog: pytest.LogCaptureFixture
) -> None:
    await kube.stop()
    watcher, calls = follow()
    await wait_for(lambda: calls.seen, 5, "labels unknown")
    await asyncio.sleep(0.6)  # several retries at 0.05-0.2 s
    assert calls.values == [None]
    assert watcher.labels is None
    said = logged(caplog, "cannot reach the Kubernetes API")
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert "entries with a nodeSelector or matchExpressions are not pulled" in said[0]
    said_trouble = watcher.trouble
    assert (said_trouble or "").startswith("node labels unknown: cannot reach")
    await kube.start()
    await wait_for(lambda: calls.last is not None, 5, "the labels once the API is back")
    assert calls.values == [None, {"kubernetes.io/hostname": NODE, "pool": "gpu"}]
    assert watcher.trouble is None
    # /readyz and /status can show the trouble: current when the labels are told, and told.
    assert calls.trouble_when_told[0] == calls.troubles[0] == said_trouble
    assert calls.trouble_when_told[1] is None
    assert calls.troubles == [said_trouble, None]
    assert logged(caplog, "the Kubernetes API answers again for node gpu-1")


async def test_a_lost_api_keeps_the_labels_as_last_read_and_catches_up(
    kube: KubeApiStandIn, follow: Start, caplog: pytest.LogCaptureFixture
) -> None:
    watcher, calls = follow()
    await wait_for(lambda: kube.watching() == 1, 5, "the watch")
    await kube.stop()
    await wait_for(lambda: watcher.trouble is not None, 5, "the loss noticed")
    assert calls.troubles == [watcher.trouble]
    assert not (watcher.trouble or "").startswith("node labels unknown")
    kube.relabel(NODE, {"gpu": "nvidia"})  # changed while jcp cannot see it
    await asyncio.sleep(0.4)
    assert None not in calls.values, "a flapping API must not flap the selection"
    assert "following the labels as last read" in logged(caplog, "node labels: cannot reach")[0]
    await kube.start()
    await wait_for(lambda: calls.has("gpu", "nvidia"), 5, "the change made while away")
    assert watcher.trouble is None
    assert len(kube.requests("list")) == 1, "resumed from the last version, which is held"


async def test_each_watch_ends_at_its_timeout_and_resumes(
    kube: KubeApiStandIn, follow: Start
) -> None:
    _, calls = follow(watch_seconds=1)
    await wait_for(lambda: len(kube.requests("watch")) >= 3, 10, "three watches")
    kube.relabel(NODE, {"gpu": "nvidia"})
    await wait_for(lambda: calls.has("gpu", "nvidia"), 5, "the relabel")
    assert len(kube.requests("list")) == 1
    assert all(s.status == 200 for s in kube.requests("watch"))


async def test_forbidden_names_the_rbac_rule_once(
    kube: KubeApiStandIn, follow: Start, caplog: pytest.LogCaptureFixture
) -> None:
    kube.forbid("list", "watch")
    _, calls = follow()
    await wait_for(lambda: len(kube.requests("list")) >= 3, 5, "retries")
    assert calls.values == [None]
    (said,) = logged(caplog, "the API refused jcp")
    assert RBAC_RULE in said
    assert 'cannot list resource "nodes"' in said
    kube.forbid()
    await wait_for(lambda: calls.last is not None, 5, "labels once allowed")


async def test_a_wrong_node_name_says_so(
    kube: KubeApiStandIn, follow: Start, caplog: pytest.LogCaptureFixture
) -> None:
    watcher, calls = follow("nowhere")
    await wait_for(lambda: watcher.trouble, 5, "the trouble")
    assert watcher.trouble == (
        "node labels unknown: list nodes: node nowhere not found: NODE_NAME must be the pod's "
        "spec.nodeName"
    )
    assert calls.values == [None]


async def test_a_deleted_node_has_unknown_labels(kube: KubeApiStandIn, follow: Start) -> None:
    _, calls = follow()
    await wait_for(lambda: kube.watching() == 1, 5, "the watch")
    kube.remove_node(NODE)
    await wait_for(lambda: calls.seen[-1][1] is None, 5, "labels unknown")
    assert calls.troubles == [f"node labels unknown: node {NODE} was deleted"]
    kube.add_node(NODE, {"pool": "again"})
    await wait_for(lambda: calls.has("pool", "again"), 5, "the node back")
    assert calls.troubles[-1] is None


async def test_static_labels_and_no_node_name_need_no_api(
    kube: KubeApiStandIn, follow: Start
) -> None:
    watcher, calls = follow(None, static={"gpu": "nvidia"})
    unnamed, unknown = follow(None)
    await wait_for(lambda: calls.seen and unknown.seen, 5, "the callbacks")
    await asyncio.sleep(0.1)
    assert calls.values == [{"gpu": "nvidia"}]
    assert watcher.labels == {"gpu": "nvidia"}
    assert unknown.values == [None]
    assert (unnamed.trouble or "").startswith("node labels unknown: NODE_NAME is not set")
    assert kube.seen == []


async def test_the_stand_in_lists_nodes_as_the_api_does(kube: KubeApiStandIn) -> None:
    """The NodeList shape `jcp fleet` relies on too: the store's resourceVersion, items
    without kind, labelSelector and fieldSelector."""
    api = NodeApi.connect(kube.url, TOKEN)
    try:
        every = await api.list_nodes()
        assert (every["kind"], every["apiVersion"]) == ("NodeList", "v1")
        assert every["metadata"]["resourceVersion"] == kube.resource_version
        assert [n["metadata"]["name"] for n in every["items"]] == [OTHER, NODE]
        assert "kind" not in every["items"][0]
        gpu = await api.list_nodes(label_selector="pool in (gpu,tpu),!spot")
        assert [n["metadata"]["name"] for n in gpu["items"]] == [NODE]
        named = await api.list_nodes(field_selector=f"metadata.name={OTHER}")
        assert [n["metadata"]["name"] for n in named["items"]] == [OTHER]
        with pytest.raises(KubeError, match=r"^list nodes: 400 Bad Request: field label not"):
            await api.list_nodes(field_selector="spec.x=1")
    finally:
        await api.close()
