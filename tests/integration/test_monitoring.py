"""Monitoring as an operator deploys it: the chart's and the kustomize component's Prometheus
Operator objects rendered by a real helm and kubectl, validated against the operator's CRD
schemas (v0.93.0, vendored), the alerts checked and unit-tested by a real promtool (and shown
to fail when an expression is broken), and a real `jcp run` scrape through `promtool check
metrics`."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from devstack.images import RegistryClient, push_synthetic
from devstack.stack import Stack
from tests.integration import test_chart
from tests.integration.test_chart import helm_run
from tests.support.crd_schema import file_hash, is_custom, validate_custom, vendored_hashes
from tests.support.helpers import entry, publish
from tests.support.jcp_process import JcpProcess, engine_args
from tests.support.manifests import container, kind, validate
from tests.support.promql import exposed, promtool
from tests.support.scrape import get, wait_http

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
    assert promtool_check(rule, tmp_path).returncode == 0


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


# -- promtool ---------------------------------------------------------------------------------


def promtool_check(rule: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "rendered.rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )


def unit_test(
    rule_spec: dict[str, Any], test_file: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` with TEST_FILE (tests/support/promtool/) on RULE_SPEC."""
    work = tmp_path / f"promtool-{test_file}"
    work.mkdir(exist_ok=True)
    (work / "rules.yaml").write_text(yaml.safe_dump(rule_spec))
    shutil.copy(PROMTOOL_TESTS / test_file, work / test_file)
    return subprocess.run(
        [promtool(), "test", "rules", test_file],
        capture_output=True,
        text=True,
        check=False,
        cwd=work,
    )


def without_annotations(spec: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    for group in out["groups"]:
        for r in group["rules"]:
            r.pop("annotations", None)
    return out


@pytest.fixture(scope="module")
def rendered_rules(helm: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("rules")
    out = helm_run(helm, tmp, "template", {"monitoring": {"prometheusRule": {"enabled": True}}})
    assert out.returncode == 0, out.stderr
    return kind([d for d in yaml.safe_load_all(out.stdout) if d], "PrometheusRule")


def test_promtool_checks_the_rendered_rules(rendered_rules: dict[str, Any], tmp_path: Path) -> None:
    out = promtool_check(rendered_rules, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 9 rules found" in out.stdout
    component = yaml.safe_load((COMPONENT / "prometheusrule.yaml").read_text())
    assert promtool_check(component, tmp_path).returncode == 0


def test_promtool_unit_tests_pass(rendered_rules: dict[str, Any], tmp_path: Path) -> None:
    out = unit_test(without_annotations(rendered_rules["spec"]), "alerts_test.yaml", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
    out = unit_test(rendered_rules["spec"], "annotations_test.yaml", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


BREAKS = {
    # The permanent failures no longer count as warm: node-c (2 of 3, one failing for auth) fires.
    "JcpNodeNotWarm": ("expr", "jcp_images_selected - jcp_images_present > 0"),
    # Per node instead of per image: two alerts for one bad secret.
    "JcpImageCredentialsFailing": ("expr", 'jcp_image_failing{reason=~"auth|credentials"} == 1'),
    # No `for:`: a config fixed within three minutes pages anyway.
    "JcpConfigRejected": ("for", "0m"),
    # Any job's target: someone else's exporter being down is jcp's alert.
    "JcpDown": ("expr", "up == 0"),
}


@pytest.mark.parametrize("alert", list(BREAKS))
def test_a_broken_alert_fails_the_unit_tests(
    rendered_rules: dict[str, Any], tmp_path: Path, alert: str
) -> None:
    spec = without_annotations(rendered_rules["spec"])
    field, value = BREAKS[alert]
    (rule,) = [r for r in spec["groups"][0]["rules"] if r.get("alert") == alert]
    rule[field] = value
    assert promtool_check({"spec": spec}, tmp_path).returncode == 0  # still a valid rule
    out = unit_test(spec, "alerts_test.yaml", tmp_path)
    assert out.returncode != 0, f"promtool passed with {alert} broken:\n{out.stdout}"
    assert f"alertname: {alert}" in out.stdout + out.stderr


async def test_promtool_checks_a_real_scrape_of_jcp_run(
    tmp_path: Path,
    stack: Stack,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Callable[..., JcpProcess],
    unique: Callable[[str], str],
) -> None:
    """Names, help, units and `_total` on counters, as promtool lints an exposition; and the
    names the dashboard and alerts are checked against (jcp/observe/metrics.py's declarations)
    are the names a real scrape has."""
    good = push_synthetic(open_client, unique("lint"), "1", layers=1, layer_size=20_000).reference
    missing = f"{stack.open_registry.host}/{unique('missing')}:1"
    cfg = publish(tmp_path / "config", [entry(good), entry(missing)])
    run = jcp("run", engine_args(cfg, docker_root))
    base = await wait_http(run)
    await run.wait_line(r"sweep 1 done.*1 pulled.*1 failed")
    status, text = await get(base + "/metrics")
    assert status == 200
    out = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, f"promtool check metrics:\n{out.stdout}{out.stderr}"
    scraped = {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    declared = set(exposed())
    assert scraped <= declared, scraped - declared
    # Labelled series appear once something happened; these did in this sweep.
    for name in (
        "jcp_pull_duration_seconds_bucket",
        "jcp_config_reloads_total",
        "jcp_runtime_info",
    ):
        assert name in scraped, name
