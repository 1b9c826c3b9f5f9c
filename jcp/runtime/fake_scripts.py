"""The scripts of the in-memory runtime (`fake.py`): how each pull the engine makes will go,
and the record of how it went. Kept apart so that a test reads as its script."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Literal

from jcp.model.credentials import RegistryAuth
from jcp.model.failures import Failure, Reason
from jcp.model.refs import ImageRef

End = Literal["succeed", "fail", "hang", "trickle", "gate"]


def digest_of(text: str) -> str:
    """A stable, valid sha256 digest named after TEXT."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Pull:
    """One scripted pull: EVENTS progress reports of STEP bytes each, then its END.

    succeed: return `Pulled`; fail: raise FAILURE; hang: stay silent until cancelled (or the
    runtime goes down); trickle: report STEP more bytes every INTERVAL until cancelled (busy,
    never done); gate: stay silent until `ScriptedRuntime.release(image)`, then succeed.
    """

    end: End = "succeed"
    events: int = 1
    step: int = 1000
    interval: float = 0.0
    failure: Failure | None = None
    queued: bool = False
    """Every progress report says some layer waits for a download slot."""
    newer: bool = True
    digest: str | None = None
    """The digest the pull reports (and the runtime then holds); None: derived from the ref."""


def succeed(events: int = 1, *, step: int = 1000, digest: str | None = None) -> Pull:
    return Pull("succeed", events, step, digest=digest)


def unchanged(digest: str | None = None) -> Pull:
    """The runtime already had this content: no bytes, `newer` False."""
    return Pull("succeed", 0, 0, newer=False, digest=digest)


def fail(
    reason: Reason, message: str = "", *, events: int = 0, retry_after: float | None = None
) -> Pull:
    failure = Failure(reason, message or f"scripted {reason}", retry_after)
    return Pull("fail", events, failure=failure)


def hang(events: int = 0, *, queued: bool = False) -> Pull:
    return Pull("hang", events, queued=queued)


def trickle(interval: float, *, step: int = 1000) -> Pull:
    return Pull("trickle", 1, step, interval)


def gate(events: int = 1) -> Pull:
    return Pull("gate", events)


@dataclass
class PullCall:
    """What the engine asked of the runtime, and how that pull ended (so far)."""

    image: ImageRef
    auth: RegistryAuth | None  # RegistryAuth's repr shows no secret value
    platform: str | None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    result: str = "running"  # running | done | failed | cancelled | down
    bytes: int = 0

    @property
    def running(self) -> bool:
        return self.result == "running"
