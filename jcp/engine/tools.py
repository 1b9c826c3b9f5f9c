"""What a puller is handed, and what it hands back: the engine's ports and steps as data.

`Tools` is frozen for the life of the engine (the runtime, the registry, the disk, the gate, the
retry policy, the credentials); a `Job` is one image's attempt with what the scheduler knew
when it handed it out; `Live` is the one narrow way back into the engine while a pull runs
(progress for /status and stall detection). A puller ends with a `Step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from jcp.engine.credentials import Credentials
from jcp.engine.disk import DiskGuard
from jcp.engine.events import Events
from jcp.engine.fleet import FleetHold, NoBudget
from jcp.engine.gate import RegistryGate
from jcp.engine.intake import Item
from jcp.engine.job import JobLimits
from jcp.engine.plan import Observed
from jcp.engine.remote import Remote
from jcp.engine.retry import RetryPolicy
from jcp.engine.runtime_link import RuntimeLink
from jcp.engine.sizing import Sizing
from jcp.model.failures import Failure
from jcp.model.results import PullResult
from jcp.runtime.base import ImageRuntime, PullProgress, RuntimeInfo
from jcp.settings import Refresh, Settings


@dataclass(frozen=True)
class Tools:
    runtime: ImageRuntime
    link: RuntimeLink
    remote: Remote | None
    """Where tags' digests are asked; None: every present tag goes to the runtime."""
    sizing: Sizing
    disk: DiskGuard
    gate: RegistryGate
    retry: RetryPolicy
    creds: Credentials
    events: Events
    refresh: Refresh
    limits: JobLimits
    outlast_runtime: bool
    """A pull cut off because the runtime went away waits for it (`jcp run`)."""
    fleet: FleetHold
    """The node's claim on the fleet's pull budget, held while any pull from upstream runs."""


class Live(Protocol):
    """A running pull's way back into the engine's live state."""

    def pulling(self, progress: PullProgress | None) -> None:
        """The runtime was asked to pull (PROGRESS: a known total, for runtimes without any)."""
        ...

    def progressed(self, progress: PullProgress) -> None: ...

    def waiting(self) -> None:
        """The pull stopped with the runtime: the image waits for it, pending."""
        ...

    def wanted(self) -> bool:
        """Whether the image is still in the config."""
        ...

    def activity(self) -> float:
        """Monotonic time of the last progress of any pull (a queued layer is not stalled)."""
        ...


@dataclass(frozen=True)
class Job:
    item: Item
    observed: Observed | None
    """The runtime's images as read at the sweep's start."""
    arch: str
    info: RuntimeInfo | None
    known: tuple[str, PullResult] | None
    """The permanent failure on record for this target, with the fingerprint it was for."""
    live: Live


@dataclass(frozen=True)
class Done:
    """The image's outcome in this sweep is final."""

    result: PullResult
    fingerprint: str
    """Of the entry and its secret: a permanent failure is remembered under it."""
    repeat: bool = False
    """A permanent failure on record, reported again without trying."""


@dataclass(frozen=True)
class Retry:
    """A transient failure with attempts left: the same image again after DELAY seconds."""

    result: PullResult
    failure: Failure
    delay: float


@dataclass(frozen=True)
class Again:
    """The runtime went away and is back: the same attempt again, at once."""


Step = Done | Retry | Again


def assemble(
    settings: Settings,
    runtime: ImageRuntime,
    link: RuntimeLink,
    remote: Remote | None,
    events: Events,
    *,
    fleet: FleetHold | None = None,
) -> Tools:
    """The one set of tools every puller of an engine shares."""
    gate = RegistryGate(settings.rate_limit_pause, events.rate_limited)
    creds = Credentials(settings.docker_config_root)
    return Tools(
        runtime=runtime,
        link=link,
        remote=remote,
        sizing=Sizing(remote, settings.inspect, gate, creds),
        disk=DiskGuard(settings.min_free, settings.disk_path),
        gate=gate,
        retry=RetryPolicy(settings.backoff, gate),
        creds=creds,
        events=events,
        refresh=settings.refresh,
        limits=JobLimits(settings.pull_timeout, settings.stall_timeout),
        outlast_runtime=settings.outlast_runtime,
        fleet=fleet or FleetHold(NoBudget()),
    )
