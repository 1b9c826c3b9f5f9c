"""Entries with a nodeSelector in the manifests: the kustomize component and the chart give jcp
its node's name and read access to nodes (get, list, watch; patch only with the node
lifecycle), the chart's schema checks the new keys, and the sample config validates."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.kubelet import write_volume
from jcp.cli.main import _build_parser
from jcp.inputs.configdir import load_config
from tests.integration.test_chart import helm, helm_run
from tests.integration.test_deploy import render_variant
from tests.support.manifests import (
    FIELDS,
    NODE_READ_RULES,
    NODE_RULES,
    container,
    kind,
    kubelet_args,
    pod_env,
    validate,
)

__all__ = ["helm"]  # the fixture, shared with the chart tests
IMAGES = [
    {"ref": "base:1", "registry": "q.io"},
    {
        "ref": "cuda:12",
        "registry": "q.io",
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["spot"]}],
        "priority": 10,
    },
]


def check_node_access(docs: list[dict[str, Any]], rules: list[dict[str, Any]]) -> None:
    validate(docs)
    pod = kind(docs, "DaemonSet")["spec"]["template"]["spec"]
    (role,) = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    assert role["kind"] == "ClusterRole"
    assert role["rules"] == rules
    sa = kind(docs, "ServiceAccount")
    binding = kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == sa["metadata"]["name"]
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True
    c = container(docs)
    assert pod_env(c, FIELDS)["NODE_NAME"] == FIELDS["spec.nodeName"]


def test_the_node_labels_component_reads_nodes_and_nothing_else(tmp_path: Path) -> None:
    docs = render_variant("k8s", ("node-labels",), tmp_path)
    check_node_access(docs, NODE_READ_RULES)
    args = _build_parser().parse_args(kubelet_args(container(docs)))
    assert (args.node_label, args.untaint) == (None, None)


@pytest.mark.parametrize("variant", ["k8s/variants/docker", "k8s/variants/cri-o"])
def test_every_variant_offers_the_node_labels_component(variant: str, tmp_path: Path) -> None:
    check_node_access(render_variant(variant, ("node-labels",), tmp_path), NODE_READ_RULES)


def test_the_node_lifecycle_component_also_lists_and_watches(tmp_path: Path) -> None:
    check_node_access(render_variant("k8s", ("node-lifecycle",), tmp_path), NODE_RULES)


def test_the_sample_config_holds_an_entry_for_gpu_nodes(tmp_path: Path) -> None:
    config = load_config(Path(__file__).parents[2] / "k8s" / "base" / "config")
    plain = config.select("amd64", {})
    gpu = config.select("amd64", {"nvidia.com/gpu.present": "true"})
    assert len(gpu.targets) == len(plain.targets) + 1
    assert [s.reason for s in plain.skipped] == [
        "nodeSelector nvidia.com/gpu.present=true does not match"
    ]
    assert gpu.targets[0].priority > 0, "the sample shows a priority too"


def docs_of(out: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_the_chart_gives_read_access_when_an_entry_selects_nodes(helm: str, tmp_path: Path) -> None:
    docs = docs_of(helm_run(helm, tmp_path, "template", {"images": IMAGES}))
    check_node_access(docs, NODE_READ_RULES)
    cm = kind(docs, "ConfigMap")
    write_volume(tmp_path / "cfg", cm["data"])
    config = load_config(tmp_path / "cfg", env={})
    gpu = config.select("amd64", {"nvidia.com/gpu.present": "true", "pool": "a"})
    assert [str(t.image) for t in gpu.targets] == ["q.io/cuda:12", "q.io/base:1"]
    spot = config.select("amd64", {"nvidia.com/gpu.present": "true", "pool": "spot"})
    assert [s.reason for s in spot.skipped] == ["matchExpressions pool notin (spot) does not match"]
    values = {"images": IMAGES, "nodeLifecycle": {"enabled": True}}
    check_node_access(docs_of(helm_run(helm, tmp_path, "template", values)), NODE_RULES)
    lint = helm_run(helm, tmp_path, "lint", {"images": IMAGES})
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"ref": "a", "nodeSelector": {"gpu": 1}}, "at '/images/0/nodeSelector/gpu': got number"),
        ({"ref": "a", "nodeSelector": {"a/b/c": "x"}}, "invalid propertyName 'a/b/c'"),
        ({"ref": "a", "priority": 1.5}, "at '/images/0/priority': got number, want integer"),
        ({"ref": "a", "priority": 2**31}, "/images/0/priority"),
        (
            {"ref": "a", "matchExpressions": [{"key": "g", "operator": "Gt"}]},
            "/images/0/matchExpressions/0/operator",
        ),
    ],
)
def test_the_chart_schema_refuses_bad_selector_values(
    helm: str, tmp_path: Path, entry: dict[str, Any], message: str
) -> None:
    out = helm_run(helm, tmp_path, "template", {"images": [entry]})
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
