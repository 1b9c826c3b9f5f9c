"""The stand-in's PATCH and validation: RFC 6902 JSON patch, RFC 7386 merge patch, and the
checks the API server makes before storing a Node (split from `kubeapi.py`, whose docstring
cites the documentation for each behaviour).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

_QNAME = re.compile(
    r"(([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_EFFECTS = frozenset({"NoSchedule", "PreferNoSchedule", "NoExecute"})


class Fail(Exception):  # noqa: N818 - an HTTP answer, not a bug
    """An answer other than 200: the code, the Status reason and its message."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def conflict(name: str) -> Fail:
    return Fail(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on nodes "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
    )


def merge(target: object, patch: object, *, strategic: bool) -> object:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if strategic and str(key).startswith("$"):
            raise Fail(400, "BadRequest", f"the stand-in does not implement {key} directives")
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value, strategic=strategic)
    return result


def json_patch(doc: dict[str, Any], ops: object) -> object:
    if not isinstance(ops, list):
        raise Fail(400, "BadRequest", "a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise Fail(400, "BadRequest", f"malformed operation {op!r}")
        kind, path, value = op.get("op"), op["path"], op.get("value")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        if not path.startswith("/") or not parts:
            raise Fail(422, "Invalid", f"jsonpatch {kind} operation: cannot apply to {path!r}")
        parent: object = doc
        for part in parts[:-1]:
            parent = _child(parent, part, path)
        last = parts[-1]
        if kind == "test":
            if _child(parent, last, path) != value:
                raise Fail(422, "Invalid", f"testing value {path} failed")
        elif kind in ("remove", "replace"):
            _child(parent, last, path)
            key: int | str = int(last) if isinstance(parent, list) else last
            assert isinstance(parent, (list, dict))  # _child found KEY in it
            if kind == "remove":
                del parent[key]  # type: ignore[arg-type]
            else:
                parent[key] = value  # type: ignore[index]
        elif kind == "add":
            _add(parent, last, value, path)
        else:
            raise Fail(400, "BadRequest", f"the stand-in does not implement op {kind!r}")
    return doc


def _add(parent: object, last: str, value: object, path: str) -> None:
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list) and (last == "-" or last.isdigit()):
        at = len(parent) if last == "-" else int(last)
        if at > len(parent):
            raise Fail(422, "Invalid", f"jsonpatch add operation: index out of range: {path}")
        parent.insert(at, value)
    else:
        raise Fail(422, "Invalid", f"jsonpatch add operation: doc is missing path: {path}")


def _child(parent: object, part: str, path: str) -> object:
    if isinstance(parent, dict) and part in parent:
        return parent[part]
    if isinstance(parent, list) and part.isdigit() and int(part) < len(parent):
        return parent[int(part)]
    raise Fail(422, "Invalid", f"jsonpatch: doc is missing path: {path}")


def validate(name: str, node: dict[str, Any]) -> None:
    meta = node["metadata"]
    problems: list[str] = []
    if meta.get("name") != name:
        problems.append("metadata.name: Invalid value: field is immutable")
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    for field, values in (("labels", labels), ("annotations", annotations)):
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            problems.append(f"metadata.{field}: Invalid value: must map strings to strings")
            continue
        problems += [
            f"metadata.{field}: Invalid value: {k!r}: not a qualified name"
            for k in values
            if len(k) > 317 or not _QNAME.fullmatch(k)
        ]
    if isinstance(labels, dict):
        problems += [
            f"metadata.labels: Invalid value: {v!r}: must be at most 63 characters of "
            "alphanumerics, '-', '_' or '.', beginning and ending with an alphanumeric"
            for v in labels.values()
            if isinstance(v, str) and (len(v) > 63 or not _LABEL_VALUE.fullmatch(v))
        ]
    if isinstance(annotations, dict) and len(json.dumps(annotations)) > 256 * 1024:
        problems.append("metadata.annotations: Too long: must have at most 262144 bytes")
    taints = (node.get("spec") or {}).get("taints") or []
    pairs: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints if isinstance(taints, list) else [None]):
        key = taint.get("key") if isinstance(taint, dict) else None
        effect = taint.get("effect") if isinstance(taint, dict) else None
        if not isinstance(key, str) or not _QNAME.fullmatch(key) or effect not in _EFFECTS:
            problems.append(f"spec.taints[{i}]: Invalid value: needs a key and a valid effect")
        elif (key, effect) in pairs:
            problems.append(f"spec.taints[{i}]: Duplicate value: {key}:{effect}")
        else:
            pairs.add((key, effect))
    if problems:
        raise Fail(422, "Invalid", f'Node "{name}" is invalid: ' + "; ".join(problems))


PATCH_TYPES = frozenset(
    {
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    }
)


def parse_patch(content_type: str, raw: bytes) -> object:
    """The patch document, or 415 for a content type the API does not take, 400 for bad JSON."""
    if content_type not in PATCH_TYPES:
        accepted = ", ".join(sorted(PATCH_TYPES))
        raise Fail(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types "
            f"include: {accepted}",
        )
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Fail(400, "BadRequest", f"error decoding patch: {exc}") from None


def apply_patch(current: dict[str, Any], content_type: str, patch: object) -> dict[str, Any]:
    """CURRENT with PATCH applied and validated; a stale resourceVersion in it is 409."""
    name = current["metadata"]["name"]
    if content_type == "application/json-patch+json":
        patched = json_patch(current, patch)
    else:
        if not isinstance(patch, dict):
            raise Fail(400, "BadRequest", "a merge patch must be a JSON object")
        patched = merge(current, patch, strategic=content_type.startswith("application/s"))
    if not isinstance(patched, dict):
        raise Fail(422, "Invalid", "the patch replaced the whole object")
    meta = patched.get("metadata")
    if not isinstance(meta, dict):
        raise Fail(422, "Invalid", "metadata: Required value")
    stored = current["metadata"]["resourceVersion"]
    if meta.get("resourceVersion") not in (None, "", stored):  # "" or absent: unconditional
        raise conflict(name)
    meta["resourceVersion"] = stored
    validate(name, patched)
    return patched


def status(fail: Fail, name: str | None) -> dict[str, Any]:
    """The `Status` object the API answers a failure with."""
    details = {"kind": "nodes", **({"name": name} if name is not None else {})}
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": fail.message,
        "reason": fail.reason,
        "details": details,
        "code": fail.code,
    }
