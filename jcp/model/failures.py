"""Why a pull failed, and whether trying again can help: decided in this one place.

Each runtime adapter maps its own errors into these classes; `PERMANENT` decides retry or not.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from jcp.model.errors import JcpError


class Reason(StrEnum):
    """Failure classes, also used as a metric label: a small, fixed set."""

    AUTH = "auth"
    CREDENTIALS = "credentials"
    NOT_FOUND = "not_found"
    PLATFORM = "platform"
    TIMEOUT = "timeout"
    STALL = "stall"
    REGISTRY = "registry_error"
    RATE_LIMITED = "rate_limited"
    DAEMON = "daemon_error"
    DISK = "disk"


PERMANENT = frozenset({Reason.AUTH, Reason.CREDENTIALS, Reason.NOT_FOUND, Reason.PLATFORM})


@dataclass(frozen=True)
class Failure:
    reason: Reason
    message: str
    retry_after: float | None = None
    """Seconds the registry asked us to wait (Retry-After), for RATE_LIMITED."""

    @property
    def transient(self) -> bool:
        return self.reason not in PERMANENT


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with *equal* jitter (half the ceiling fixed, half random), so 500
    nodes do not retry in step and none retries at once."""

    base: float = 1.0
    cap: float = 30.0
    retries: int = 3

    def delay(self, attempt: int) -> float:
        """Delay before retry ATTEMPT (1 = first retry)."""
        ceiling = min(self.cap, self.base * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


class RegistryFailure(JcpError):  # noqa: N818 - it carries a Failure, and says so
    """A registry did not tell what was asked; `unreachable` means it could not be asked at all
    (connection refused, timeout, HEAD refused), so the runtime's own pull must do instead."""

    def __init__(self, failure: Failure, *, unreachable: bool = False) -> None:
        self.failure = failure
        self.unreachable = unreachable
        super().__init__(failure.message)
