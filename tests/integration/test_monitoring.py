"""Monitoring as an operator deploys it: the chart's and the kustomize component's Prometheus
Operator objects rendered by a real helm and kubectl and validated against the operator's CRD
schemas (v0.93.0, vendored). promtool's checks are in test_alerts.py."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from tests.integration import test_chart
from tests.integration.test_chart import helm_run
from tests.support.crd_schema import file_hash, is_custom, validate_custom, vendored_hashes
from tests.support.manifests import container, kind, validate
from tests.support.promql import check_rule_object, exposed

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "charts" / "jcp" / "files"
COMPONENT = ROOT / "k8s" / "components" / "monitoring"
PROMTOOL_TESTS = ROOT / "tests" / "support" / "promtool"
JOB = "jarvice-cache-pull"  # what the alerts' up{job=...} expects
helm = test_chart.helm  # the chart tests' fixture: a real helm (scripts/install-helm.sh)
ALL_ON = {
    "labels": {"release": "kube-prometheus-stack"},
    "podMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "dashboard": {"enabled": True},
}


def render(helm: str, tmp_path: Path, monitoring: dict[str, Any]) -> list[dict[str, Any]]:
    out = helm_run(helm, tmp_path, "template", {"monitoring": monitoring})
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    check_all(docs)
    return docs


def check_all(docs: list[dict[str, Any]]) -> None:
    """Kubernetes' own kinds by kubernetes-validate, the operator's by their CRD schemas."""
    validate([d for d in docs if not is_custom(d)])
    for doc in docs:
        if is_custom(doc):
            validate_custom(doc)


def kustomize_with_component(tmp_path: Path) -> list[dict[str, Any]]:
    """k8s/ (containerd) with components/monitoring added, as a user would."""
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is needed to render k8s/ (it ships kustomize)")
    shutil.copytree(ROOT / "k8s", tmp_path / "k8s")
    kust = tmp_path / "k8s" / "kustomization.yaml"
    text = kust.read_text()
    assert "\n  - components/containerd\n" in text
    line = "\n  - components/containerd\n"
    kust.write_text(text.replace(line, line + "  - components/monitoring\n"))
    out = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path / "k8s")], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    check_all(docs)
    return docs


def scrape_target(docs: list[dict[str, Any]]) -> None:
    """The monitor finds jcp's pods, on the port named in the pod, with job and node labels."""
    ds = kind(docs, "DaemonSet")
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in container(docs)["ports"]}
    (monitor,) = [d for d in docs if d["kind"] in ("PodMonitor", "ServiceMonitor")]
    spec = monitor["spec"]
    if monitor["kind"] == "PodMonitor":
        assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
        (endpoint,) = spec["podMetricsEndpoints"]
        assert pod_labels[spec["jobLabel"]] == JOB
    else:
        service = kind(docs, "Service")
        assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["publishNotReadyAddresses"] is True  # cold nodes are not ready
        (svc_port,) = service["spec"]["ports"]
        assert svc_port["targetPort"] in ports
        (endpoint,) = spec["endpoints"]
        assert service["metadata"]["labels"][spec["jobLabel"]] == JOB
    assert endpoint["port"] in ports
    assert endpoint["path"] == "/metrics"
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_node_name"],
        "targetLabel": "node",
        "action": "replace",
    } in endpoint["relabelings"]


def test_monitoring_is_off_by_default(helm: str, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {})
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "DaemonSet"]


@pytest.mark.parametrize("monitor", ["podMonitor", "serviceMonitor"])
def test_lint_with_monitoring(helm: str, tmp_path: Path, monitor: str) -> None:
    values = {**ALL_ON, "podMonitor": {"enabled": False}, monitor: {"enabled": True}}
    out = helm_run(helm, tmp_path, "lint", {"monitoring": values})
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_vendored_crds_are_the_published_ones() -> None:
    hashes = vendored_hashes()
    assert len(hashes) == 3
    for name, digest in hashes.items():
        assert file_hash(name) == digest, name


@pytest.mark.parametrize("monitor", ["podMonitor", "serviceMonitor"])
def test_monitor_rule_and_dashboard_validate(helm: str, tmp_path: Path, monitor: str) -> None:
    values = copy.deepcopy(ALL_ON)
    del values["podMonitor"]
    values[monitor] = {"enabled": True, "interval": "1m", "scrapeTimeout": "20s"}
    docs = render(helm, tmp_path, values)
    kinds = sorted(d["kind"] for d in docs)
    extra = ["PodMonitor"] if monitor == "podMonitor" else ["Service", "ServiceMonitor"]
    assert kinds == sorted(["ConfigMap", "ConfigMap", "DaemonSet", "PrometheusRule", *extra])
    scrape_target(docs)
    (m,) = [d for d in docs if d["kind"].endswith("Monitor")]
    (endpoint,) = m["spec"].get("podMetricsEndpoints") or m["spec"]["endpoints"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("1m", "20s")
    for doc in docs:
        if doc["kind"] in ("PodMonitor", "ServiceMonitor", "PrometheusRule"):
            assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
            assert doc["metadata"]["namespace"] == "jarvice-system"
    rule = kind(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((FILES / "alerts.yaml").read_text())
    dashboard = next(d for d in docs if d["metadata"]["name"].endswith("-dashboard"))
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["jcp.json"] == (FILES / "dashboard.json").read_text().rstrip("\n")


def test_every_alert_is_a_runbook(helm: str, tmp_path: Path) -> None:
    """Each alert: a summary, a description naming a jcp metric (or `up`) and a command to
    run next, a severity, and a `for:` long enough not to page on a blip."""
    rule = kind(render(helm, tmp_path, {"prometheusRule": {"enabled": True}}), "PrometheusRule")
    (group,) = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert {
        "JcpNodeNotWarm", "JcpImageCredentialsFailing", "JcpDiskGuardHolding",
        "JcpConfigRejected", "JcpRegistryRateLimited", "JcpDown", "JcpAbsent",
    } <= set(alerts)  # fmt: skip
    metrics = set(exposed()) | {"up"}
    minutes = {"m": 1, "h": 60}
    for name, r in alerts.items():
        text = r["annotations"]["description"]
        assert r["annotations"]["summary"], name
        assert {w for w in re.findall(r"[a-z_]+", text) if w in metrics}, name
        assert re.search(r"`(kubectl|jcp) [^`]+`", text), name
        assert r["labels"]["severity"] in ("warning", "critical", "info"), name
        m = re.fullmatch(r"(\d+)([mh])", r["for"])
        assert m, (name, r["for"])
        assert 5 <= int(m.group(1)) * minutes[m.group(2)] <= 60, name
    assert alerts["JcpNodeNotWarm"]["for"] == "1h"


def test_rule_labels_are_added_to_every_alert(helm: str, tmp_path: Path) -> None:
    values = {
        "prometheusRule": {"enabled": True, "ruleLabels": {"team": "hpc", "severity": "page"}}
    }
    rule = kind(render(helm, tmp_path, values), "PrometheusRule")
    plain = yaml.safe_load((FILES / "alerts.yaml").read_text())
    for got, want in zip(
        rule["spec"]["groups"][0]["rules"], plain["groups"][0]["rules"], strict=True
    ):
        assert got["labels"] == {"team": "hpc", "severity": "page"}
        assert {k: v for k, v in got.items() if k != "labels"} == {
            k: v for k, v in want.items() if k != "labels"
        }
    assert check_rule_object(rule, tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": True}}, "not both"),
        ({"podMonitor": {"enabled": True, "interval": "30 seconds"}}, "interval"),
        ({"prometheusRule": {"enabled": True, "rulelabels": {}}}, "rulelabels"),
        ({"dashboard": {"enabled": True, "labels": {"grafana_dashboard": 1}}}, "grafana_dashboard"),
    ],
    ids=["both-monitors", "duration", "typo", "label-not-string"],
)
def test_bad_monitoring_values_are_refused(
    helm: str, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    out = helm_run(helm, tmp_path, "template", {"monitoring": values})
    assert out.returncode != 0
    assert message in out.stderr


def test_the_crd_schema_catches_a_misspelt_field(helm: str, tmp_path: Path) -> None:
    """Strict, as `kubectl apply --validate=strict`: the server would prune the typo silently."""
    docs = render(helm, tmp_path, {"podMonitor": {"enabled": True}})
    monitor = copy.deepcopy(kind(docs, "PodMonitor"))
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    endpoint["relabellings"] = endpoint.pop("relabelings")
    with pytest.raises(jsonschema.ValidationError, match="relabellings"):
        validate_custom(monitor)
    monitor = copy.deepcopy(kind(docs, "PodMonitor"))
    monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "rename"
    with pytest.raises(jsonschema.ValidationError, match="rename"):
        validate_custom(monitor)


def test_the_kustomize_component_is_the_charts(helm: str, tmp_path: Path) -> None:
    docs = kustomize_with_component(tmp_path / "k")
    scrape_target(docs)
    for doc in docs:
        assert doc["metadata"]["namespace"] == "jarvice-system", doc["kind"]
    chart = render(helm, tmp_path, ALL_ON)
    assert kind(docs, "PrometheusRule")["spec"] == kind(chart, "PrometheusRule")["spec"]
    ours, theirs = kind(docs, "PodMonitor")["spec"], kind(chart, "PodMonitor")["spec"]
    del theirs["selector"]["matchLabels"]["app.kubernetes.io/instance"]  # Helm's release only
    assert ours == theirs
    dashboard = next(d for d in docs if d["metadata"]["name"] == "jarvice-cache-pull-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["jcp.json"] == (FILES / "dashboard.json").read_text()
    assert (COMPONENT / "dashboard.json").read_bytes() == (FILES / "dashboard.json").read_bytes()
