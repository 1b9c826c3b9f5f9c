"""The stand-in's `labelSelector` and `fieldSelector` query parameters, as the API reads them.

- "Labels and Selectors" (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/):
  a selector is requirements joined by `,` (a logical AND); equality-based `key=value`,
  `key==value`, `key!=value` (true also when the label is absent); set-based `key in (a,b)`,
  `key notin (a,b)` (true also when absent), `key` (exists) and `!key` (does not exist).
- "Field Selectors" (https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/):
  `metadata.name` is supported for every kind, with `=`, `==` and `!=`; a field the kind does
  not support answers 400 (`field label not supported: ...`); requirements join with `,`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from devstack.kubepatch import Fail

Match = Callable[[Mapping[str, Any]], bool]
_SET = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*(?:(in|notin)\s*\(([^()]*)\))?\s*$")
_EQUALITY = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")


def _split(text: str) -> list[str]:
    """Requirements split at the commas outside parentheses (`k in (a,b),j` is two)."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels = obj.get("metadata", {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def _requirement(text: str) -> Match:
    if m := _EQUALITY.match(text):
        key, op, value = m.groups()
        if op == "!=":
            return lambda o: _labels(o).get(key) != value
        return lambda o: _labels(o).get(key) == value
    if m := _SET.match(text):
        negated, key, op, listed = m.groups()
        if op is None:
            if negated:
                return lambda o: key not in _labels(o)
            return lambda o: key in _labels(o)
        if not negated:
            values = {v.strip() for v in listed.split(",")}
            if op == "in":
                return lambda o: _labels(o).get(key) in values
            return lambda o: _labels(o).get(key) not in values
    raise Fail(400, "BadRequest", f"unable to parse requirement: {text.strip()!r}")


def label_selector(text: str | None) -> Match:
    """A predicate on an object's labels; 400 BadRequest for what the grammar does not take."""
    requirements = [_requirement(part) for part in _split(text or "")]
    return lambda obj: all(r(obj) for r in requirements)


def field_selector(text: str | None) -> Match:
    """A predicate on an object's fields: `metadata.name` only, as for every kind."""
    requirements: list[Match] = []
    for part in _split(text or ""):
        m = re.match(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if m is None:
            raise Fail(400, "BadRequest", f"invalid selector: {part.strip()!r}")
        field, op, value = m.groups()
        if field != "metadata.name":
            raise Fail(400, "BadRequest", f"field label not supported: {field}")
        requirements.append(_name_is(value, negated=op == "!="))
    return lambda obj: all(r(obj) for r in requirements)


def _name_is(name: str, *, negated: bool) -> Match:
    return lambda obj: (obj.get("metadata", {}).get("name") == name) != negated
