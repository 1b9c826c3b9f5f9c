"""Entries for some nodes only: `nodeSelector`, `matchExpressions` and `priority` in image.config,
their errors (file, entry, key, what was expected) and what a node with given labels selects."""
# ruff: noqa: E501
# E501: the tables hold one case a row.

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

from jcp.model.config import (
    LABELS_UNKNOWN,
    Config,
    ConfigError,
    ConfigFiles,
    build_config,
)
from jcp.model.selectors import NodeSelector, Requirement, parse_labels

FILE = "cfg/image.config"


def config(entries: list[object]) -> Config:
    return build_config(ConfigFiles(FILE, json.dumps(entries), None, None), env={})


def errors(entries: list[object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config(entries)
    return [str(p) for p in info.value.problems if p.severity == "error"]


@dataclass(frozen=True)
class Bad:
    name: str
    entry: dict[str, object]
    expected: str
    """The whole error line as `jcp validate` prints it."""


BAD = [
    Bad("selector not an object", {"ref": "a", "nodeSelector": ["gpu"]},
        "entry 0 (a): key 'nodeSelector': expected an object of label -> value, got list [\"gpu\"]"),
    Bad("selector null", {"ref": "a", "nodeSelector": None},
        "key 'nodeSelector': expected an object of label -> value, got null"),
    Bad("label value a number", {"ref": "a", "nodeSelector": {"gpu": 1}},
        "entry 0 (a): key 'nodeSelector.gpu': expected a label value string, got number 1"),
    Bad("label value a bool", {"ref": "a", "nodeSelector": {"gpu": True}},
        "key 'nodeSelector.gpu': expected a label value string, got boolean true"),
    Bad("label value too long", {"ref": "a", "nodeSelector": {"gpu": "x" * 64}},
        "key 'nodeSelector.gpu': \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\" "
        "(64 characters) is not a label value: at most 63 characters"),
    Bad("label value with a space", {"ref": "a", "nodeSelector": {"gpu": "a 100"}},
        "key 'nodeSelector.gpu': 'a 100' is not a label value"),
    Bad("label key with two slashes", {"ref": "a", "nodeSelector": {"a/b/c": "x"}},
        "key 'nodeSelector.a/b/c': not a label key: 'a/b/c' has more than one '/'"),
    Bad("label key upper-case prefix", {"ref": "a", "nodeSelector": {"Nvidia.com/gpu": "x"}},
        "key 'nodeSelector.Nvidia.com/gpu': not a label key: prefix 'Nvidia.com' of "
        "'Nvidia.com/gpu' is not a DNS subdomain"),
    Bad("label key empty", {"ref": "a", "nodeSelector": {"": "x"}},
        "key 'nodeSelector.': not a label key: name '' of '' must be 1-63 characters"),
    Bad("expressions not a list", {"ref": "a", "matchExpressions": {"key": "gpu"}},
        "key 'matchExpressions': expected a list of {key, operator, values} objects, got object"),
    Bad("expression not an object", {"ref": "a", "matchExpressions": ["gpu"]},
        "key 'matchExpressions[0]': expected an object with key and operator, got string \"gpu\""),
    Bad("expression without key", {"ref": "a", "matchExpressions": [{"operator": "Exists"}]},
        "key 'matchExpressions[0].key': expected a label key string, missing"),
    Bad("expression key invalid", {"ref": "a", "matchExpressions": [{"key": "-x", "operator": "Exists"}]},
        "key 'matchExpressions[0].key': not a label key: name '-x' of '-x' must be"),
    Bad("operator unknown", {"ref": "a", "matchExpressions": [{"key": "gpu", "operator": "Gt", "values": ["1"]}]},
        "key 'matchExpressions[0].operator': expected one of In, NotIn, Exists, DoesNotExist; "
        'got string "Gt"'),
    Bad("operator lower case", {"ref": "a", "matchExpressions": [{"key": "gpu", "operator": "in", "values": ["a"]}]},
        "key 'matchExpressions[0].operator': expected one of In, NotIn, Exists, DoesNotExist"),
    Bad("In without values", {"ref": "a", "matchExpressions": [{"key": "gpu", "operator": "In"}]},
        "key 'matchExpressions[0].values': expected a non-empty list of label values for In, "
        "got nothing"),
    Bad("NotIn with empty values", {"ref": "a", "matchExpressions": [{"key": "gpu", "operator": "NotIn", "values": []}]},
        "key 'matchExpressions[0].values': expected a non-empty list of label values for NotIn, "
        "got list []"),
    Bad("In with a number", {"ref": "a", "matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a", 5]}]},
        "key 'matchExpressions[0].values[1]': expected a label value string, got number 5"),
    Bad("Exists with values", {"ref": "a", "matchExpressions": [{"key": "gpu", "operator": "Exists", "values": ["a"]}]},
        "key 'matchExpressions[0].values': must be absent or empty for Exists, got list [\"a\"]"),
    Bad("priority a bool", {"ref": "a", "priority": True},
        "entry 0 (a): key 'priority': expected a whole number, got boolean true"),
    Bad("priority a float", {"ref": "a", "priority": 1.5},
        "key 'priority': expected a whole number, got number 1.5"),
    Bad("priority a whole float", {"ref": "a", "priority": 10.0},
        "key 'priority': expected a whole number, got number 10.0"),
    Bad("priority a string", {"ref": "a", "priority": "high"},
        "key 'priority': expected a whole number, got string \"high\""),
    Bad("priority too high", {"ref": "a", "priority": 2**31},
        "key 'priority': 2147483648 is out of range: expected -2147483648 to 2147483647"),
    Bad("priority too low", {"ref": "a", "priority": -(2**31) - 1},
        "key 'priority': -2147483649 is out of range"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_bad_values_are_errors_naming_file_entry_and_key(case: Bad) -> None:
    (line,) = errors([case.entry])
    assert line.startswith(f"error: {FILE}: entry 0"), line
    assert case.expected in line, line


def test_every_problem_of_an_entry_is_reported_at_once() -> None:
    lines = errors(
        [
            {"ref": "ok", "nodeSelector": {"gpu": "nvidia"}, "priority": 5},
            {
                "ref": "b",
                "nodeSelector": {"gpu": 1, "Bad Key": "x"},
                "matchExpressions": [{"key": "k", "operator": "Nope"}],
                "priority": 0.5,
            },
        ]
    )
    keys = sorted(line.split("key '")[1].split("'")[0] for line in lines)
    assert keys == [
        "matchExpressions[0].operator",
        "nodeSelector.Bad Key",
        "nodeSelector.gpu",
        "priority",
    ]
    assert all(": entry 1 (b): " in line for line in lines)


def test_unknown_key_in_an_expression_is_a_warning() -> None:
    cfg = config([{"ref": "a", "matchExpressions": [{"key": "g", "operator": "Exists", "x": 1}]}])
    (w,) = cfg.warnings
    assert str(w) == (
        f"warning: {FILE}: entry 0 (a): key 'matchExpressions[0].x': unknown key "
        "(known: key, operator, values); ignored"
    )


def test_good_values_parse_into_the_entry() -> None:
    cfg = config(
        [
            {
                "ref": "cuda:12",
                "nodeSelector": {"nvidia.com/gpu.present": "true", "pool": ""},
                "matchExpressions": [
                    {"key": "gpu", "operator": "In", "values": ["a100", "h100"]},
                    {"key": "spot", "operator": "DoesNotExist"},
                    {"key": "zone", "operator": "NotIn", "values": ["z9"]},
                    {"key": "ib", "operator": "Exists", "values": []},
                ],
                "priority": -3,
            },
            {"ref": "plain"},
        ]
    )
    assert not cfg.warnings
    cuda, plain = cfg.entries
    assert cuda.priority == -3
    assert cuda.selector == NodeSelector(
        (("nvidia.com/gpu.present", "true"), ("pool", "")),
        (
            Requirement("gpu", "In", ("a100", "h100")),
            Requirement("spot", "DoesNotExist"),
            Requirement("zone", "NotIn", ("z9",)),
            Requirement("ib", "Exists"),
        ),
    )
    assert str(cuda.selector) == (
        "nvidia.com/gpu.present=true,pool=,gpu in (a100,h100),!spot,zone notin (z9),ib"
    )
    assert (plain.selector, plain.priority) == (None, 0)
    assert cfg.uses_node_labels
    assert not config([{"ref": "a"}]).uses_node_labels


# --- selection ------------------------------------------------------------------------------

ENTRIES: list[object] = [
    {"ref": "base"},
    {"ref": "cuda12", "nodeSelector": {"gpu": "nvidia"}, "priority": 10},
    {"ref": "rocm", "nodeSelector": {"gpu": "amd"}},
    {"ref": "big", "matchExpressions": [{"key": "mem", "operator": "In", "values": ["1t", "2t"]}]},
    {"ref": "cpu-only", "matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]},
    {"ref": "x86", "arch": {"amd64": "x86:1"}, "priority": 100},
    {"ref": "late", "priority": -1},
]


@dataclass(frozen=True)
class Node:
    name: str
    arch: str
    labels: dict[str, str] | None
    pulls: list[str]
    """Image names in pull order (priority first, then config order)."""
    skips: dict[int, str]
    """Entry index -> reason."""


def short(image: object) -> str:
    return str(image).removeprefix("docker.io/library/").removesuffix(":latest")


NODES = [
    Node("nvidia node", "amd64", {"gpu": "nvidia"}, ["x86:1", "cuda12", "base", "late"],
         {2: "nodeSelector gpu=amd does not match",
          3: "matchExpressions mem in (1t,2t) does not match",
          4: "matchExpressions !gpu does not match"}),
    Node("cpu node with memory", "amd64", {"mem": "2t"}, ["x86:1", "base", "big", "cpu-only", "late"],
         {1: "nodeSelector gpu=nvidia does not match", 2: "nodeSelector gpu=amd does not match"}),
    Node("arm amd-gpu node", "arm64", {"gpu": "amd", "mem": "1t"}, ["base", "rocm", "big", "late"],
         {1: "nodeSelector gpu=nvidia does not match", 4: "matchExpressions !gpu does not match",
          5: "no arch.arm64"}),
    Node("labels unknown", "amd64", None, ["x86:1", "base", "late"],
         {1: LABELS_UNKNOWN, 2: LABELS_UNKNOWN, 3: LABELS_UNKNOWN, 4: LABELS_UNKNOWN}),
    Node("arch first, then labels", "ppc64le", None, ["base", "late"],
         {1: LABELS_UNKNOWN, 2: LABELS_UNKNOWN, 3: LABELS_UNKNOWN, 4: LABELS_UNKNOWN,
          5: "no arch.ppc64le"}),
]  # fmt: skip


@pytest.mark.parametrize("node", NODES, ids=[n.name for n in NODES])
def test_a_node_pulls_what_its_labels_select_highest_priority_first(node: Node) -> None:
    selection = config(ENTRIES).select(node.arch, node.labels)
    assert [short(t.image) for t in selection.targets] == node.pulls
    assert {s.index: s.reason for s in selection.skipped} == node.skips
    assert [s.index for s in selection.skipped] == sorted(node.skips)
    assert selection.labels == node.labels
    unknown = [s.index for s in selection.waiting_for_labels]
    assert unknown == [i for i, r in node.skips.items() if r == LABELS_UNKNOWN]


def test_select_without_labels_keeps_todays_meaning_for_entries_without_selectors() -> None:
    cfg = config([{"ref": "a"}, {"ref": "b", "arch": {"arm64": "b:1"}}])
    selection = cfg.select("amd64")
    assert [short(t.image) for t in selection.targets] == ["a"]
    ((skip),) = selection.skipped
    assert (skip.index, skip.ref, skip.reason) == (1, "b", "no arch.amd64")


def test_target_carries_its_priority() -> None:
    targets = config(ENTRIES).select("amd64", {"gpu": "nvidia"}).targets
    assert [t.priority for t in targets] == [100, 10, 0, -1]


def test_an_image_several_entries_select_is_pulled_once_at_the_highest_priority() -> None:
    cfg = config(
        [
            {"ref": "tool", "nodeSelector": {"pool": "a"}, "priority": 1},
            {"ref": "tool", "nodeSelector": {"pool": "b"}, "priority": 7},
            {"ref": "tool", "priority": 3},
        ]
    )
    assert not cfg.warnings, "other selectors are other nodes: no duplicate warning"
    (target,) = cfg.select("amd64", {"pool": "b"}).targets
    assert (target.entry.index, target.priority) == (1, 7)
    (target,) = cfg.select("amd64", {"pool": "a"}).targets
    assert (target.entry.index, target.priority) == (2, 3)
    same = config(
        [{"ref": "t", "nodeSelector": {"p": "a"}}, {"ref": "t", "nodeSelector": {"p": "a"}}]
    )
    assert [w.message for w in same.warnings] == [
        "duplicate: entries 0, 1 all pull docker.io/library/t:latest; pulled once"
    ]


def test_empty_selector_matches_every_node_with_known_labels() -> None:
    cfg = config([{"ref": "a", "nodeSelector": {}}])
    assert [short(t.image) for t in cfg.select("amd64", {}).targets] == ["a"]
    assert [s.reason for s in cfg.select("amd64", None).skipped] == [LABELS_UNKNOWN]


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("gpu=nvidia,pool=a", {"gpu": "nvidia", "pool": "a"}),
        (" nvidia.com/gpu.present=true , empty= ", {"nvidia.com/gpu.present": "true", "empty": ""}),
        ("", {}),
    ],
)
def test_node_labels_flag_parses_key_value_pairs(text: str, labels: dict[str, str]) -> None:
    assert parse_labels(text) == labels


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpu", "'gpu' is not KEY=VALUE"),
        ("a/b/c=1", "not a label key: 'a/b/c' has more than one '/'"),
        ("gpu=a b", "'a b' is not a label value"),
        ("gpu=1,gpu=2", "label 'gpu' is given twice"),
    ],
)
def test_node_labels_flag_says_which_pair_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_labels(text)
