"""jcp's alerts and metrics through a real promtool: `check rules` on the rules the chart and the
kustomize component render, `test rules` unit tests (tests/support/promtool/) that say which
alerts fire and which do not, the same tests failing when an expression is broken, and
`check metrics` on a real `jcp run` scrape."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.images import RegistryClient, push_synthetic
from devstack.stack import Stack
from tests.integration import test_chart
from tests.integration.test_chart import helm_run
from tests.support.helpers import entry, publish
from tests.support.jcp_process import JcpProcess, engine_args
from tests.support.manifests import kind
from tests.support.promql import check_rule_object, exposed, promtool
from tests.support.scrape import get, wait_http

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "k8s" / "components" / "monitoring"
PROMTOOL_TESTS = ROOT / "tests" / "support" / "promtool"
helm = test_chart.helm  # the chart tests' fixture: a real helm (scripts/install-helm.sh)


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
    out = check_rule_object(rendered_rules, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 9 rules found" in out.stdout
    component = yaml.safe_load((COMPONENT / "prometheusrule.yaml").read_text())
    assert check_rule_object(component, tmp_path).returncode == 0


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
    assert check_rule_object({"spec": spec}, tmp_path).returncode == 0  # still a valid rule
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
    # Labelled series appear once something happened; these did in this sweep (the per-image
    # series are test_observability.py's to check).
    for name in (
        "jcp_pull_duration_seconds_bucket",
        "jcp_config_reloads_total",
        "jcp_runtime_info",
    ):
        assert name in scraped, name
