"""What is wrong in a config, located precisely, and the interval's rule: shared by the config
parser and the CLI (whose durations follow the same plain-decimal rule)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from jcp.model import jsonsafe
from jcp.model.errors import JcpError

# Below a second a sweep becomes a busy loop; beyond a week nobody means it.
MIN_INTERVAL = 1.0
MAX_INTERVAL = 7 * 24 * 3600.0
# A hostile 1 MiB file could otherwise yield half a million problems (and log lines).
MAX_PROBLEMS = 100
# What float() accepts beyond this (signs, exponents, nan, inf, '_', non-ASCII digits) is refused.
_SECONDS_RE = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_SECONDS_MAX_CHARS = 24

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config, located precisely enough to fix without guessing."""

    file: str
    message: str
    index: int | None = None
    key: str | None = None
    severity: Severity = "error"
    ref: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.index is not None:
            where += f": entry {self.index}"
            if self.ref:
                where += f" ({_safe(self.ref)})"
        if self.key is not None:
            where += f": key '{_safe(self.key)}'"
        return f"{self.severity}: {where}: {self.message}"


def _safe(text: str) -> str:
    """TEXT from a config as it can be shown: short, and no control characters for a terminal."""
    return text if len(text) <= 60 and text.isprintable() else jsonsafe.shown(text, 60)


def _quote(text: str) -> str:
    return repr(text) if len(text) <= 60 and text.isprintable() else jsonsafe.shown(text, 60)


class _Problems(list[Problem]):
    """Keeps the first MAX_PROBLEMS; counts the rest, and says how many were left out."""

    def __init__(self) -> None:
        super().__init__()
        self.errors = 0
        self.more = 0
        self.more_errors = 0
        self.stopped = ""

    def append(self, problem: Problem) -> None:
        self.errors += problem.severity == "error"
        if len(self) < MAX_PROBLEMS:
            super().append(problem)
            return
        self.more += 1
        self.more_errors += problem.severity == "error"

    @property
    def hopeless(self) -> bool:
        """Over the cap, with an error: rejected whatever the rest holds, so checking it is moot
        (and a 1 MiB list of half a million bad entries would cost seconds)."""
        return self.more > 0 and self.errors > 0

    def result(self, file: str) -> list[Problem]:
        if not self.more:
            return list(self)
        summary = Problem(
            file,
            f"{self.more} more problem(s) not shown ({self.more_errors} error(s)){self.stopped}; "
            "fix the ones above first",
            severity="error" if self.more_errors else "warning",
        )
        return [*self, summary]


class IntervalError(JcpError, ValueError):
    """A number of seconds that is not plain or is out of bounds; names where it came from."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class ConfigError(JcpError):
    """A config that must not replace the last good one; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        errors = [p for p in problems if p.severity == "error"]
        super().__init__("\n".join(str(p) for p in errors) or "invalid config")


def parse_interval(
    text: str, source: str, *, minimum: float = MIN_INTERVAL, maximum: float = MAX_INTERVAL
) -> float:
    """Seconds written as a plain ASCII decimal (`300`, `2.5`), from MINIMUM to MAXIMUM.

    float() alone would take `1e-300` (a busy loop), `nan`, `-5`, `1_0` and non-ASCII digits.
    Raises IntervalError (a ValueError) naming SOURCE and the bounds.
    """
    raw = text.strip(" \t\r\n")
    bounds = f"{minimum:g} to {maximum:g} seconds{_days(maximum)}"
    if len(raw) > _SECONDS_MAX_CHARS or not _SECONDS_RE.fullmatch(raw):
        got = "nothing" if not raw else jsonsafe.shown(raw, 20)
        if len(raw) > 20:
            got += f" ({len(raw)} characters)"
        raise IntervalError(
            source,
            f"expected a plain number of seconds such as 300 or 2.5, from {bounds}; got {got}",
        )
    value = float(raw)
    if not minimum <= value <= maximum:
        raise IntervalError(source, f"{raw} seconds is out of range: expected {bounds}")
    return value


def _days(seconds: float) -> str:
    return f" ({seconds / 86400:g} days)" if seconds >= 2 * 86400 else ""
