"""Validate custom resources against the vendored prometheus-operator CRDs' openAPIV3Schema.

kubernetes-validate knows only Kubernetes' own kinds; a ServiceMonitor or PrometheusRule is
checked here the way the API server checks it: the CRD's structural schema, read as JSON
Schema. Two differences from a plain reading, both what `kubectl apply --validate=strict`
does: an unknown field is an error (the server would silently prune it, and a misspelt
`relabelings` would then scrape without the node label), and `nullable: true` admits null.
RE2's inline flags move to the front of a pattern, where Python's re wants them.
The CRDs carry no CEL rules (`x-kubernetes-validations`) for these kinds in v0.93.0.
"""

from __future__ import annotations

import copy
import hashlib
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml

CRDS = Path(__file__).resolve().parent / "crds" / "prometheus-operator-v0.93.0"
KINDS = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PodMonitor": "monitoring.coreos.com_podmonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def vendored_hashes() -> dict[str, str]:
    """The sha256 of each vendored file as the README's table states it."""
    table = (CRDS / "README.md").read_text()
    return dict(re.findall(r"^\| (\S+\.yaml) \| ([0-9a-f]{64}) \|$", table, re.MULTILINE))


def file_hash(name: str) -> str:
    return hashlib.sha256((CRDS / name).read_bytes()).hexdigest()


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    pattern = out.get("pattern")
    if isinstance(pattern, str) and "(?i)" in pattern[1:]:
        # Go's RE2 takes a flag anywhere (`^(?i)(abort|warn)?$`); Python only at the start.
        out["pattern"] = "(?i)" + pattern.replace("(?i)", "")
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@cache
def _crd(kind: str) -> tuple[str, str, dict[str, Any]]:
    doc = yaml.safe_load((CRDS / KINDS[kind]).read_text())
    spec = doc["spec"]
    assert spec["names"]["kind"] == kind
    (version,) = [v for v in spec["versions"] if v["name"] == "v1"]
    schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    return spec["group"], version["name"], schema


def validate_custom(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError (or AssertionError) when DOC is not a valid object."""
    group, version, schema = _crd(doc["kind"])
    assert doc["apiVersion"] == f"{group}/{version}", doc["apiVersion"]
    meta = doc.get("metadata") or {}
    name = meta.get("name", "")
    assert len(name) <= 253, name
    assert _NAME.fullmatch(name), f"metadata.name {name!r} is not a DNS subdomain"
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        assert all(isinstance(v, str) for v in values.values()), f"metadata.{field}: {values}"
    jsonschema.validate(doc, schema, cls=jsonschema.Draft7Validator)


def is_custom(doc: dict[str, Any]) -> bool:
    return doc.get("kind") in KINDS
