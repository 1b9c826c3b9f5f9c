"""PromQL checks shared by the dashboard and alert tests: which metrics and labels an expression
uses (promql-parser's AST), whether Prometheus itself parses it (`promtool check rules` on a
rule file of one recording rule per expression), and what jcp exposes (its declarations in
jcp/observe/metrics.py, which the scrape test holds equal to a real /metrics).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from jcp.observe.metrics import Metrics

TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "container", "node", "le"})
"""Labels Prometheus adds to every scraped series (the chart's monitors add `node`), and `le`."""
PROMETHEUS_SERIES = {"up": frozenset(TARGET_LABELS)}
"""Series Prometheus writes itself for each target."""
# Grafana's variables, replaced by a value of the same kind before parsing.
_GRAFANA_DURATIONS = re.compile(
    r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}"
)
_GRAFANA_VARS = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: scripts/install-deps.sh installs Debian's prometheus")
    return path


def exposed() -> dict[str, frozenset[str]]:
    """Every series name jcp's Metrics declares, with its labels (counters as `_total`,
    histograms as `_bucket`, `_sum`, `_count`; no `_created`)."""
    metrics = Metrics(CollectorRegistry())
    names: dict[str, frozenset[str]] = {}
    for value in vars(metrics).values():
        labels = frozenset(getattr(value, "_labelnames", ()))
        if isinstance(value, Counter):
            names[value._name + "_total"] = labels
        elif isinstance(value, Histogram):
            for suffix in ("_bucket", "_sum", "_count"):
                names[value._name + suffix] = labels | {"le"} if suffix == "_bucket" else labels
        elif isinstance(value, Gauge):
            names[value._name] = labels
    return names


def grafana_to_promql(expr: str) -> str:
    """A dashboard query as Prometheus gets it: `$__rate_interval` a duration, `$node` a regex."""
    return _GRAFANA_VARS.sub(".*", _GRAFANA_DURATIONS.sub("5m", expr))


@dataclass(frozen=True)
class Query:
    where: str
    expr: str


def dashboard_queries(doc: dict[str, Any]) -> list[Query]:
    """Every PromQL expression of a dashboard: panel targets (rows' nested panels too) and
    query variables (`label_values(METRIC, LABEL)` is checked as METRIC)."""
    found: list[Query] = []

    def panels(items: list[dict[str, Any]]) -> None:
        for p in items:
            title = p.get("title")
            found.extend(
                Query(f"panel {title!r} {t['refId']}", t["expr"]) for t in p.get("targets", [])
            )
            panels(p.get("panels", []))

    panels(doc.get("panels", []))
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)", query.strip())
        assert m, f"variable {var['name']}: not label_values(METRIC, LABEL): {query!r}"
        found.append(Query(f"variable {var['name']}", m.group(1)))
        found.append(Query(f"variable {var['name']} label", f"{{{m.group(2)}!=''}}"))
    return found


def problems(expr: str, known: dict[str, frozenset[str]]) -> list[str]:
    """What in EXPR names a metric or a label jcp does not expose (empty when all is known)."""
    out: list[str] = []
    tree = promql_parser.parse(grafana_to_promql(expr))

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = [m.name for m in node.matchers.matchers]
            if node.name is None:
                if set(matchers) - TARGET_LABELS:
                    out.append(f"a selector without a metric name: {node}")
                return True
            labels = known.get(node.name)
            if labels is None:
                out.append(f"unknown metric {node.name}")
                return True
            out.extend(
                f"{node.name} has no label {name!r}"
                for name in matchers
                if name not in labels | TARGET_LABELS
            )
        return True

    promql_parser.walk(tree, visit)
    return out


def check_with_promtool(exprs: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on one recording rule per expression: Prometheus's own parser."""
    rules = [
        {"record": f"jcp:check_{i}", "expr": grafana_to_promql(e)} for i, e in enumerate(exprs)
    ]
    path = tmp / "queries.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    return subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )


def load_dashboard(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    assert isinstance(doc, dict)
    return doc


def check_rule_object(rule: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on a PrometheusRule's spec (its `groups`)."""
    path = tmp_path / "rendered.rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
