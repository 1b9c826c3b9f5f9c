"""Which nodes an entry is for: a pod-style `nodeSelector` and nodeAffinity-style
`matchExpressions`, and the label syntax both are checked against.

The meaning is the API's, so that an operator reads an entry as they read a pod: every
`nodeSelector` pair must equal the node's label ("Assigning Pods to Nodes", nodeSelector), and
every expression must hold (one `nodeSelectorTerm`'s `matchExpressions`, ANDed) with the
operators `In`, `NotIn`, `Exists`, `DoesNotExist`; `NotIn` and `DoesNotExist` hold on a node
without the label, as they do for the scheduler. Not taken: `Gt`/`Lt` (integer comparisons of
label values, rare in node pools) and several terms ORed (two entries for the same image say
that more plainly).

The key syntax is from the API's "Labels and Selectors" page: an optional DNS-subdomain prefix
(at most 253 characters) and `/`, then a name of at most 63 characters of alphanumerics, `-`,
`_` and `.` that begins and ends with an alphanumeric; a value is empty or such a name.
`jcp.kube.keys` checks its label, annotation and taint keys with the same function.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from jcp.model.problems import _quote

_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
OPERATORS: tuple[Operator, ...] = get_args(Operator)
_EXPRESSION_KEYS = frozenset({"key", "operator", "values"})
Labels = Mapping[str, str]


def key_problem(key: str) -> str | None:
    """Why KEY is not a valid label/annotation/taint key, or None if it is."""
    if key.count("/") > 1:
        return f"{_quote(key)} has more than one '/'"
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return f"{_quote(key)} has an empty prefix before '/'"
    if prefix and (len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix)):
        return (
            f"prefix {_quote(prefix)} of {_quote(key)} is not a DNS subdomain "
            "(lower case, at most 253)"
        )
    if not name or len(name) > 63 or not _NAME.fullmatch(name):
        return (
            f"name {_quote(name)} of {_quote(key)} must be 1-63 characters of letters, digits, "
            "'-', '_' and '.', beginning and ending with a letter or digit"
        )
    return None


def value_problem(value: str) -> str | None:
    """Why VALUE is not a valid label value, or None if it is (empty is valid)."""
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        return (
            f"{_quote(value)}{_length(value)} is not a label value: at most 63 characters of "
            "letters, digits, '-', '_' and '.', beginning and ending with a letter or digit "
            "(or empty)"
        )
    return None


def _length(text: str) -> str:
    return f" ({len(text)} characters)" if len(text) > 60 else ""


@dataclass(frozen=True)
class Requirement:
    """One of `matchExpressions`: KEY OPERATOR VALUES."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def holds(self, labels: Labels) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        inside = self.key in labels and labels[self.key] in self.values
        return inside if self.operator == "In" else not inside

    def __str__(self) -> str:
        """The API's set-based selector syntax: `gpu in (a100,h100)`, `gpu`, `!gpu`."""
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        return f"{self.key} {self.operator.lower()} ({','.join(self.values)})"


@dataclass(frozen=True)
class NodeSelector:
    """The nodes an entry is for: every pair in LABELS equal, every expression holding."""

    labels: tuple[tuple[str, str], ...] = ()
    expressions: tuple[Requirement, ...] = ()

    def mismatch(self, labels: Labels) -> str | None:
        """Why a node with LABELS is not selected (`nodeSelector gpu=nvidia does not match`);
        None when it is."""
        pairs = [f"{k}={v}" for k, v in self.labels if labels.get(k) != v]
        if pairs:
            return f"nodeSelector {','.join(pairs)} does not match"
        failing = [str(r) for r in self.expressions if not r.holds(labels)]
        if failing:
            return f"matchExpressions {', '.join(failing)} does not match"
        return None

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.labels] + [str(r) for r in self.expressions]
        return ",".join(parts)


Report = Callable[[str, str], None]
"""(key, message): one problem of the entry being parsed."""


class SelectorParser:
    """Reads `nodeSelector` and `matchExpressions` of one entry, reporting every problem with
    its key (`nodeSelector.gpu`, `matchExpressions[0].values[1]`) through ERROR and WARN;
    DESCRIBE shows a JSON value as the rest of the parser does (`number 5`)."""

    def __init__(self, error: Report, warn: Report, describe: Callable[[object], str]) -> None:
        self.error, self.warn, self.describe = error, warn, describe
        self.ok = True

    def fail(self, key: str, message: str) -> None:
        self.error(key, message)
        self.ok = False

    def parse(self, obj: Mapping[str, object]) -> NodeSelector | None:
        """The entry's selector, None without one; `ok` is False if it was invalid."""
        if "nodeSelector" not in obj and "matchExpressions" not in obj:
            return None
        labels = self._labels(obj.get("nodeSelector", {}))
        expressions = self._expressions(obj.get("matchExpressions", []))
        return NodeSelector(labels, expressions) if self.ok else None

    def _labels(self, value: object) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, dict):
            self.fail(
                "nodeSelector", f"expected an object of label -> value, got {self.describe(value)}"
            )
            return ()
        pairs: list[tuple[str, str]] = []
        for name, wanted in value.items():
            key = f"nodeSelector.{name}"
            if problem := key_problem(name):
                self.fail(key, f"not a label key: {problem}")
            elif not isinstance(wanted, str):
                self.fail(key, f"expected a label value string, got {self.describe(wanted)}")
            elif problem := value_problem(wanted):
                self.fail(key, problem)
            else:
                pairs.append((name, wanted))
        return tuple(sorted(pairs))

    def _expressions(self, value: object) -> tuple[Requirement, ...]:
        if not isinstance(value, list):
            self.fail(
                "matchExpressions",
                f"expected a list of {{key, operator, values}} objects, got {self.describe(value)}",
            )
            return ()
        found = (self._expression(f"matchExpressions[{i}]", e) for i, e in enumerate(value))
        return tuple(r for r in found if r is not None)

    def _expression(self, where: str, value: object) -> Requirement | None:
        if not isinstance(value, dict):
            self.fail(
                where, f"expected an object with key and operator, got {self.describe(value)}"
            )
            return None
        for extra in sorted(set(value) - _EXPRESSION_KEYS):
            self.warn(f"{where}.{extra}", "unknown key (known: key, operator, values); ignored")
        key, operator = value.get("key"), value.get("operator")
        ok = True
        if not isinstance(key, str):
            got = "missing" if "key" not in value else f"got {self.describe(key)}"
            self.fail(f"{where}.key", f"expected a label key string, {got}")
            ok = False
        elif problem := key_problem(key):
            self.fail(f"{where}.key", f"not a label key: {problem}")
            ok = False
        if operator not in OPERATORS:
            got = "missing" if "operator" not in value else f"got {self.describe(operator)}"
            self.fail(f"{where}.operator", f"expected one of {', '.join(OPERATORS)}; {got}")
            return None
        values = self._values(f"{where}.values", value, operator)
        if not ok or values is None:
            return None
        assert isinstance(key, str)
        return Requirement(key, operator, values)

    def _values(
        self, where: str, expression: Mapping[str, object], operator: Operator
    ) -> tuple[str, ...] | None:
        raw = expression.get("values", [])
        if operator in ("Exists", "DoesNotExist"):
            if raw != []:
                self.fail(
                    where, f"must be absent or empty for {operator}, got {self.describe(raw)}"
                )
                return None
            return ()
        if not isinstance(raw, list) or not raw:
            got = "nothing" if "values" not in expression else self.describe(raw)
            self.fail(where, f"expected a non-empty list of label values for {operator}, got {got}")
            return None
        values: list[str] = []
        for i, item in enumerate(raw):
            if not isinstance(item, str):
                self.fail(
                    f"{where}[{i}]", f"expected a label value string, got {self.describe(item)}"
                )
            elif problem := value_problem(item):
                self.fail(f"{where}[{i}]", problem)
            else:
                values.append(item)
        return tuple(values) if len(values) == len(raw) else None


def parse_labels(text: str) -> dict[str, str]:
    """`k=v,k2=v2` (as `kubectl label` and `--node-labels` take them) into a label map; empty
    text is a node without labels. Raises ValueError naming the pair that is wrong."""
    labels: dict[str, str] = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        key, eq, value = pair.partition("=")
        if not eq:
            raise ValueError(f"{_quote(pair)} is not KEY=VALUE")
        if problem := key_problem(key):
            raise ValueError(f"not a label key: {problem}")
        if problem := value_problem(value):
            raise ValueError(problem)
        if key in labels:
            raise ValueError(f"label {_quote(key)} is given twice")
        labels[key] = value
    return labels
