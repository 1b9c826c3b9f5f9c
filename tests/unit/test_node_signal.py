"""The node's warm label, annotation and startup taint, against the API stand-in.

`devstack/kubeapi.py` says why it is a stand-in; the client is the real one
(kubernetes_asyncio's ApiClient, bearer token, the three patch content types).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from devstack.kubeapi import KubeApiStandIn
from jcp.kube.api import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, KubeError, NodeApi
from jcp.kube.node_signal import NodeSignal, WarmState

TOKEN = "s3cr3t-service-account-token"
NODE = "worker-1"
LABEL = "jcp.example.com/warm"
STATE = "jcp.example.com/warm-state"
KEY = "jcp.example.com/cold"
STARTUP_TAINT = {"key": KEY, "effect": "NoSchedule"}
OTHER_TAINT = {
    "key": "node.kubernetes.io/unreachable",
    "effect": "NoExecute",
    "timeAdded": "2024-05-01T10:00:00Z",
}
COLD = WarmState(generation=1, selected=3, present=1, missing=("r/a:1", "r/b:1"))
PARTIAL = WarmState(generation=1, selected=3, present=2, missing=("r/b:1",))
WARM = WarmState(generation=1, selected=3, present=2, failed_permanent=("r/gone:1",))


@pytest.fixture
async def kube(caplog: pytest.LogCaptureFixture) -> AsyncIterator[KubeApiStandIn]:
    caplog.set_level(logging.DEBUG)
    api = KubeApiStandIn(TOKEN)
    await api.start()
    yield api
    await api.stop()
    assert TOKEN not in caplog.text, "the service account token reached a log line"


@pytest.fixture
async def signal(kube: KubeApiStandIn) -> AsyncIterator[Callable[..., NodeSignal]]:
    made: list[NodeSignal] = []

    def make(**kw: Any) -> NodeSignal:
        kw.setdefault("label", None)
        kw.setdefault("untaint_key", None)
        kw.setdefault("untaint_deadline", 3600.0)
        kw.setdefault("api", lambda: NodeApi.connect(kube.url, TOKEN))
        kw.setdefault("backoff", 0.01)
        s = NodeSignal(kw.pop("node_name", NODE), **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        await s.close()


def labels(kube: KubeApiStandIn) -> dict[str, str]:
    return dict(kube.node(NODE)["metadata"].get("labels", {}))


def taints(kube: KubeApiStandIn) -> list[dict[str, Any]]:
    return list(kube.node(NODE)["spec"].get("taints", []))


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_label_and_annotation_follow_the_warm_state_and_are_written_only_on_change(
    kube: KubeApiStandIn, signal: Callable[..., NodeSignal]
) -> None:
    kube.add_node(NODE)
    s = signal(label=LABEL)
    for _ in range(3):
        await s.publish(COLD)
    assert labels(kube)[LABEL] == "false"
    assert len(kube.patches()) == 1
    for _ in range(3):
        await s.publish(WARM)
    node = kube.node(NODE)["metadata"]
    assert node["labels"][LABEL] == "true"
    assert node["labels"]["kubernetes.io/hostname"] == NODE, "other labels are kept"
    assert json.loads(node["annotations"][STATE]) == {
        "generation": 1,
        "warm": True,
        "selected": 3,
        "present": 2,
        "failed": ["r/gone:1"],
        "failedCount": 1,
        "missing": [],  # what `jcp fleet --image` reads for a node that is not warm
        "missingCount": 0,
    }
    assert len(kube.patches()) == 2
    await s.publish(WarmState(generation=2, selected=3, present=2, failed_permanent=("r/gone:1",)))
    assert json.loads(kube.node(NODE)["metadata"]["annotations"][STATE])["generation"] == 2
    await s.publish(COLD)
    assert labels(kube)[LABEL] == "false"
    assert len(kube.patches()) == 4
    assert all(p.content_type == STRATEGIC_MERGE_PATCH for p in kube.patches())


async def test_startup_taint_is_removed_once_warm_and_never_touched_again(
    kube: KubeApiStandIn, signal: Callable[..., NodeSignal], caplog: pytest.LogCaptureFixture
) -> None:
    same_key_other_effect = {"key": KEY, "effect": "PreferNoSchedule"}
    kube.add_node(NODE, taints=[OTHER_TAINT, STARTUP_TAINT, same_key_other_effect])
    s = signal(untaint_key=KEY)
    await s.publish(COLD)
    await s.publish(PARTIAL)
    assert kube.seen == [], "nothing to do until warm"
    await s.publish(WARM)
    assert taints(kube) == [OTHER_TAINT, same_key_other_effect]
    assert s.untainted
    assert f"removed taint {KEY}:NoSchedule, the node is warm" in caplog.text
    assert "r/gone:1" in caplog.text, "the log names what failed permanently"
    requests = len(kube.seen)
    kube.edit(NODE, lambda n: n["spec"]["taints"].append(STARTUP_TAINT))  # an operator re-adds
    await s.publish(COLD)
    await s.publish(WARM)
    assert len(kube.seen) == requests, "a removed taint is never touched again"
    assert STARTUP_TAINT in taints(kube)


async def test_deadline_removes_the_taint_and_says_what_was_missing(
    kube: KubeApiStandIn, signal: Callable[..., NodeSignal], caplog: pytest.LogCaptureFixture
) -> None:
    kube.add_node(NODE, taints=[STARTUP_TAINT])
    now = [100.0]
    s = signal(untaint_key=KEY, untaint_deadline=60.0, clock=lambda: now[0])
    await s.publish(COLD)
    now[0] = 159.0
    assert s.untaint_due_in() == 1.0
    await s.publish(COLD)
    assert taints(kube) == [STARTUP_TAINT]
    now[0] = 160.0
    assert s.untaint_due_in() == 0.0
    await s.publish(COLD)
    assert taints(kube) == []
    assert s.untaint_due_in() is None
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "at the deadline (60s) although the node is not warm" in warning.getMessage()
    assert "missing: r/a:1, r/b:1" in warning.getMessage()


async def test_taint_already_gone_is_not_an_error(
    kube: KubeApiStandIn, signal: Callable[..., NodeSignal], caplog: pytest.LogCaptureFixture
) -> None:
    kube.add_node(NODE, taints=[OTHER_TAINT])
    s = signal(untaint_key=KEY)
    await s.publish(WARM)
    assert s.untainted
    assert kube.patches() == []
    assert "is not there; nothing to remove" in caplog.text
    assert errors(caplog) == []


async def test_conflicts_are_retried_and_a_concurrent_taint_is_kept(
    kube: KubeApiStandIn, signal: Callable[..., NodeSignal]
) -> None:
    kube.add_node(NODE, taints=[STARTUP_TAINT])
    kube.conflict_next(2)
    await signal(label=LABEL).publish(WARM)
    assert [p.status for p in kube.patches()] == [409, 409, 200]
    assert labels(kube)[LABEL] == "true"
    # Another writer puts a taint first in the list between jcp's GET and its PATCH: the index
    # jcp read is stale, its `test` fails (422), it reads the node again and removes only its own.
    added = {"key": "example.com/maintenance", "effect": "NoSchedule"}
    kube.before_next_patch(lambda: kube.edit(NODE, lambda n: n["spec"]["taints"].insert(0, added)))
    await signal(untaint_key=KEY).publish(WARM)
    assert taints(kube) == [added]
    assert [p.status for p in kube.patches() if p.content_type == JSON_PATCH] == [422, 200]


async def test_taint_removal_that_succeeds_on_the_last_attempt_counts(
    kube: KubeApiStandIn, signal: Callable[..., NodeSignal], caplog: pytest.LogCaptureFixture
) -> None:
    kube.add_node(NODE, taints=[STARTUP_TAINT])
    kube.conflict_next(2)
    s = signal(untaint_key=KEY, attempts=3)
    await s.publish(WARM)
    assert [p.status for p in kube.patches()] == [409, 409, 200]
    assert taints(kube) == []
    assert s.untainted
    assert errors(caplog) == []


async def test_conflicts_that_never_end_give_up_for_this_publish_only(
    kube: KubeApiStandIn, signal: Callable[..., NodeSignal], caplog: pytest.LogCaptureFixture
) -> None:
    kube.add_node(NODE)
    s = signal(label=LABEL, attempts=3)
    kube.conflict_next(100)
    await s.publish(WARM)
    assert [p.status for p in kube.patches()] == [409, 409, 409]
    assert LABEL not in labels(kube)
    assert len(errors(caplog)) == 1
    kube.conflict_next(0)
    await s.publish(WARM)
    assert labels(kube)[LABEL] == "true"
    assert "works again" in caplog.text


async def test_forbidden_is_logged_once_naming_the_rbac_rule_and_publishing_goes_on(
    kube: KubeApiStandIn, signal: Callable[..., NodeSignal], caplog: pytest.LogCaptureFixture
) -> None:
    kube.add_node(NODE, taints=[STARTUP_TAINT])
    kube.forbid("patch")
    s = signal(label=LABEL, untaint_key=KEY)
    for state in (COLD, PARTIAL, WARM, WARM):
        await s.publish(state)
    assert [p.status for p in kube.patches()] == [403] * 4, "every publish tries again"
    (error,) = errors(caplog)
    assert 'cannot patch resource "nodes"' in error
    assert 'resources: ["nodes"], verbs: ["get", "patch"]' in error
    assert s.trouble == error.removeprefix("node signal: ")
    kube.forbid()
    await s.publish(WARM)
    assert labels(kube)[LABEL] == "true"
    assert taints(kube) == []
    assert s.trouble is None
    assert "the Kubernetes API works again" in caplog.text


async def test_api_down_then_back(
    kube: KubeApiStandIn, signal: Callable[..., NodeSignal], caplog: pytest.LogCaptureFixture
) -> None:
    kube.add_node(NODE, taints=[STARTUP_TAINT])
    s = signal(label=LABEL, untaint_key=KEY)
    await s.publish(COLD)
    await kube.stop()
    await s.publish(WARM)
    await s.publish(WARM)
    (error,) = errors(caplog)
    assert f"cannot reach the Kubernetes API at {kube.url}" in error
    await kube.start()
    await s.publish(WARM)
    assert labels(kube)[LABEL] == "true"
    assert taints(kube) == []


async def test_wrong_token_says_so_without_showing_it(
    kube: KubeApiStandIn, signal: Callable[..., NodeSignal], caplog: pytest.LogCaptureFixture
) -> None:
    kube.add_node(NODE)
    s = signal(label=LABEL, api=lambda: NodeApi.connect(kube.url, TOKEN + "-old"))
    await s.publish(WARM)
    await s.publish(COLD)
    (error,) = errors(caplog)
    assert "401" in error
    assert "service account token" in error
    assert TOKEN not in error


async def test_outside_a_pod_it_logs_once_and_keeps_trying(
    signal: Callable[..., NodeSignal],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    s = signal(label=LABEL, api=NodeApi.in_cluster)
    await s.publish(COLD)
    await s.publish(WARM)
    (error,) = errors(caplog)
    assert "no in-cluster Kubernetes config" in error


async def test_unknown_node_and_missing_node_name(
    kube: KubeApiStandIn, signal: Callable[..., NodeSignal], caplog: pytest.LogCaptureFixture
) -> None:
    await signal(label=LABEL).publish(WARM)
    await signal(label=LABEL, node_name=None).publish(WARM)
    assert len(kube.seen) == 1
    not_found, no_name = errors(caplog)
    assert f"node {NODE} not found" in not_found
    assert "NODE_NAME must be the pod's spec.nodeName" in not_found
    assert "NODE_NAME is not set" in no_name


def test_a_label_the_api_would_refuse_is_refused_at_startup() -> None:
    with pytest.raises(ValueError, match="node label"):
        NodeSignal(NODE, label="Jcp.Example.com/warm", untaint_key=None, untaint_deadline=1)
    with pytest.raises(ValueError, match="node label"):
        NodeSignal(NODE, label="x/" + "w" * 60, untaint_key=None, untaint_deadline=1)


async def test_stand_in_speaks_the_documented_patch_types(kube: KubeApiStandIn) -> None:
    kube.add_node(NODE, labels={"a": "1", "b": "2"}, taints=[OTHER_TAINT])
    api = NodeApi.connect(kube.url, TOKEN)
    try:
        rv = (await api.get(NODE))["metadata"]["resourceVersion"]
        merged = await api.patch(NODE, {"metadata": {"labels": {"a": None, "c": "3"}}}, MERGE_PATCH)
        assert {"b", "c"} <= merged["metadata"]["labels"].keys()
        assert "a" not in merged["metadata"]["labels"]
        assert merged["metadata"]["resourceVersion"] != rv
        same = await api.patch(NODE, {"metadata": {"labels": {"c": "3"}}}, STRATEGIC_MERGE_PATCH)
        assert same["metadata"]["resourceVersion"] == merged["metadata"]["resourceVersion"]
        with pytest.raises(KubeError) as stale:
            await api.patch(NODE, {"metadata": {"resourceVersion": rv}}, MERGE_PATCH)
        assert stale.value.status == 409
        assert "the object has been modified" in str(stale.value)
        with pytest.raises(KubeError) as bad:
            await api.patch(NODE, {"metadata": {"labels": {"c": "no spaces"}}}, MERGE_PATCH)
        assert bad.value.status == 422
        added = await api.patch(
            NODE, [{"op": "add", "path": "/spec/taints/-", "value": STARTUP_TAINT}], JSON_PATCH
        )
        assert added["spec"]["taints"] == [OTHER_TAINT, STARTUP_TAINT]
        test = {"op": "test", "path": "/spec/taints/0", "value": STARTUP_TAINT}
        with pytest.raises(KubeError) as failed:
            await api.patch(NODE, [test], JSON_PATCH)
        assert failed.value.status == 422
    finally:
        await api.close()
