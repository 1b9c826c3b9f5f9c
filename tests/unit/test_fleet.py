"""`jcp fleet`'s reading of one node's warm-state annotation: whether the node misses an image,
and when the annotation cannot say (never a guess)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from jcp.cli.fleet import NodeState, read_node, summary
from jcp.kube.warm_state import WarmState

ANNOTATION = "jcp.nimbix.net/warm-state"
X = "registry.example.com/solver:2.1"


def node(annotation: str | None) -> NodeState:
    meta: dict[str, object] = {"name": "n"}
    if annotation is not None:
        meta["annotations"] = {ANNOTATION: annotation}
    return read_node({"metadata": meta}, ANNOTATION)


def with_missing(state: WarmState, missing: list[str], count: int | None = None) -> str:
    """The annotation as a jcp that names its missing images would write it."""
    doc = json.loads(state.annotation())
    doc["missing"] = missing
    doc["missingCount"] = len(missing) if count is None else count
    return json.dumps(doc)


def older(state: WarmState) -> str:
    """The annotation as an older jcp wrote it: without the missing images."""
    doc = json.loads(state.annotation())
    doc.pop("missing", None)
    doc.pop("missingCount", None)
    return json.dumps(doc)


@dataclass(frozen=True)
class Case:
    name: str
    annotation: str | None
    lacks: bool | None


MANY = tuple(f"r.io/i{i}:1" for i in range(25))
CASES = [
    Case("warm, X present or not selected", WarmState(1, 3, 3).annotation(), lacks=False),
    Case("warm, X failed permanently", WarmState(1, 3, 2, (X,)).annotation(), lacks=True),
    Case("warm, failures past the listed 20", WarmState(1, 30, 5, MANY).annotation(), lacks=None),
    Case("cold, missing images not named", older(WarmState(1, 3, 1)), lacks=None),
    Case("cold, X named missing", with_missing(WarmState(1, 3, 1), [X, "r.io/b:1"]), lacks=True),
    Case("cold, others named", with_missing(WarmState(1, 3, 1), ["r.io/a:1"]), lacks=False),
    Case("cold, list cut short", with_missing(WarmState(1, 9, 1), ["r.io/a:1"], 8), lacks=None),
    Case("no annotation", None, lacks=None),
    Case("not JSON", "{", lacks=None),
    Case("JSON of another shape", '{"warm": "yes"}', lacks=None),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_whether_a_node_misses_an_image(case: Case) -> None:
    assert node(case.annotation).lacks(X) is case.lacks


def test_short_names_are_read_as_jcp_writes_them() -> None:
    n = node(WarmState(1, 2, 1, ("ubuntu",)).annotation())
    assert n.failed == ("docker.io/library/ubuntu:latest",)
    assert n.lacks("docker.io/library/ubuntu:latest") is True


def test_an_unreadable_annotation_is_said() -> None:
    n = node("{")
    assert n.annotated
    assert n.problem is not None
    assert ANNOTATION in n.problem
    assert summary([n]) == "1 node: 0 warm, 0 not warm, 1 without a warm state"
