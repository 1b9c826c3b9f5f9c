"""The fleet budget in the manifests: the kustomize component and the chart give jcp a Role on
leases in its own namespace only (no ClusterRole), the token, and `--fleet-parallelism`; off by
default in the chart; the values schema refuses a negative K; every output validates."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from jcp.cli import options
from tests.integration.test_chart import helm, helm_run, template
from tests.integration.test_deploy import render_variant
from tests.support.manifests import container, kind, kubelet_args, validate

__all__ = ["helm"]  # the fixture, shared with the chart tests
LEASE_RULES = [
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "list", "watch", "create", "update", "delete"],
    }
]


def fleet_args(docs: list[dict[str, Any]]) -> argparse.Namespace:
    """The DaemonSet's fleet options, read by jcp's own option parser."""
    parser = argparse.ArgumentParser()
    options.add_fleet_options(parser)
    fleet = [a for a in kubelet_args(container(docs)) if a.startswith("--fleet-")]
    return parser.parse_args(fleet)


def check_lease_access(docs: list[dict[str, Any]], namespace: str) -> None:
    validate(docs)
    role, binding = kind(docs, "Role"), kind(docs, "RoleBinding")
    assert role["rules"] == LEASE_RULES
    assert role["metadata"]["namespace"] == namespace
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    pod = kind(docs, "DaemonSet")["spec"]["template"]["spec"]
    (subject,) = binding["subjects"]
    assert subject == {"kind": "ServiceAccount", "name": pod["serviceAccountName"],
                       "namespace": namespace}  # fmt: skip
    assert pod["automountServiceAccountToken"] is True
    assert kind(docs, "ServiceAccount")["metadata"]["name"] == pod["serviceAccountName"]


def test_the_fleet_component_grants_leases_in_jcps_namespace_only(tmp_path: Path) -> None:
    docs = render_variant("k8s", ("node-labels", "fleet"), tmp_path)
    check_lease_access(docs, "jarvice-system")
    assert [d["kind"] for d in docs].count("ClusterRole") == 1  # node-labels' own, no more
    args = fleet_args(docs)
    assert (args.fleet_parallelism, args.fleet_lease_seconds) == (10, 30)


def test_the_chart_leaves_the_budget_off_by_default(helm: str, tmp_path: Path) -> None:
    docs = template(helm, tmp_path, {})
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
    assert fleet_args(docs).fleet_parallelism == 0


def test_the_chart_with_a_budget_alone_and_with_the_node_lifecycle(
    helm: str, tmp_path: Path
) -> None:
    values = {"fleet": {"parallelism": 4, "leaseSeconds": 20,
                        "exemptRegistries": ["mirror.local:5000"]}}  # fmt: skip
    docs = template(helm, tmp_path, values)
    check_lease_access(docs, "jarvice-system")
    settings = options.fleet_settings_from(fleet_args(docs))
    assert (settings.parallelism, settings.lease_seconds) == (4, 20)
    assert settings.exempt_registries == ("mirror.local:5000",)
    assert not [d for d in docs if d["kind"] == "ClusterRole"]  # no cluster-wide access
    both = template(helm, tmp_path, {**values, "nodeLifecycle": {"enabled": True}})
    check_lease_access(both, "jarvice-system")  # one ServiceAccount for both
    assert kind(both, "ClusterRole")["rules"][0]["resources"] == ["nodes"]


def test_the_values_schema_refuses_a_negative_budget(helm: str, tmp_path: Path) -> None:
    out = helm_run(helm, tmp_path, "template", {"fleet": {"parallelism": -1}})
    assert out.returncode != 0
    assert "/fleet/parallelism" in out.stderr
    out = helm_run(helm, tmp_path, "template", {"fleet": {"paralelism": 3}})
    assert out.returncode != 0, "a typo is refused"
