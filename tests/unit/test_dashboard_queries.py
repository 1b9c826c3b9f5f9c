"""Every query of the Grafana dashboard (charts/jcp/files/dashboard.json) and every alert
expression parses in Prometheus (promtool) and uses only metrics and labels jcp exposes: a
renamed metric breaks this test, not an operator's dashboard months later."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.promql import (
    PROMETHEUS_SERIES,
    check_with_promtool,
    dashboard_queries,
    exposed,
    load_dashboard,
    problems,
)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "jcp" / "files" / "dashboard.json"
ALERTS = ROOT / "charts" / "jcp" / "files" / "alerts.yaml"
KNOWN = {**exposed(), **PROMETHEUS_SERIES}


def alert_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    doc = load_dashboard(DASHBOARD)
    exprs = " ".join(q.expr for q in dashboard_queries(doc))
    for metric in (
        "jcp_images_present",  # warm nodes over time, images cached
        "jcp_image_failing",  # failing by reason
        "jcp_pull_duration_seconds_bucket",
        "jcp_downloaded_bytes_total",
        "jcp_registry_requests_total",
        "jcp_registry_rate_limited_total",
        "jcp_disk_guard_active",
    ):
        assert metric in exprs, metric
    titles = [p["title"] for p in doc["panels"]]
    assert "Warm nodes over time" in titles
    assert len(titles) == len(set(titles))
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for p in doc["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["description"], p["title"]


def test_every_dashboard_query_parses_in_prometheus(tmp_path: Path) -> None:
    queries = dashboard_queries(load_dashboard(DASHBOARD))
    assert len(queries) > 20
    out = check_with_promtool([q.expr for q in queries], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(queries)} rules found" in out.stdout


def test_every_dashboard_query_uses_only_what_jcp_exposes() -> None:
    bad = {
        q.where: found
        for q in dashboard_queries(load_dashboard(DASHBOARD))
        if (found := problems(q.expr, KNOWN))
    }
    assert not bad


def test_every_alert_uses_only_what_jcp_exposes() -> None:
    bad = {name: found for name, expr in alert_exprs() if (found := problems(expr, KNOWN))}
    assert not bad


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("sum(rate(jcp_pulls_totl[5m]))", "unknown metric jcp_pulls_totl"),
        ('jcp_image_cached{imgae="x"}', "jcp_image_cached has no label 'imgae'"),
        ("jcp_image_failing_total", "unknown metric jcp_image_failing_total"),
        ('{__name__=~"jcp_.*"}', "a selector without a metric name"),
        ('histogram_quantile(0.9, rate(jcp_pull_duration_seconds{node=~"$node"}[5m]))',
         "unknown metric jcp_pull_duration_seconds"),
    ],
    ids=["typo", "label", "gauge-as-counter", "no-name", "histogram-without-bucket"],
)  # fmt: skip
def test_the_check_catches_an_unknown_metric_or_label(expr: str, problem: str) -> None:
    found = problems(expr, KNOWN)
    assert any(problem in f for f in found), found


def test_promtool_refuses_a_broken_query(tmp_path: Path) -> None:
    out = check_with_promtool(["sum by (reason (jcp_image_failing)"], tmp_path)
    assert out.returncode != 0
    assert "parse error" in out.stdout + out.stderr
