"""What a pull came to: outcomes and per-image results, the data behind logs, /status, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from jcp.model.failures import Reason
from jcp.model.refs import ImageRef


class Outcome(StrEnum):
    PULLED = "pulled"
    UP_TO_DATE = "up_to_date"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """The image left the config (or changed reference) while its pull was in flight."""


@dataclass(frozen=True)
class PullResult:
    """The outcome of one image in one sweep, after retries."""

    image: ImageRef
    registry: str
    outcome: Outcome
    duration: float
    attempts: int = 1
    bytes: int = 0
    digest: str | None = None
    reason: Reason | None = None
    message: str | None = None
    permanent: bool = False
    present: bool = False
    """Whether the image is in the runtime after this result (a failed refresh may leave it)."""
