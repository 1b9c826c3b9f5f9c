"""Everything an operator can set, typed, with each default defined here once.

The CLI builds a `Settings` from its flags (its help texts read the defaults from here); the
composition root (`app.py`) hands the parts to the engine, the runtime and the HTTP server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jcp.model.failures import Backoff

DEFAULT_CONFIG_DIR = Path("/etc/config")
DEFAULT_DOCKER_CONFIG_ROOT = Path("/root/.docker")
DEFAULT_CONCURRENCY = 8
DEFAULT_PULL_TIMEOUT = 7200.0
DEFAULT_STALL_TIMEOUT = 120.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 1.0
DEFAULT_MIN_FREE = "15%"
DEFAULT_DISK_POLL = 10.0
DEFAULT_HTTP_ADDR = ":8080"
DEFAULT_START_JITTER = 10.0
DEFAULT_LEDGER = Path("/var/lib/jcp/ledger.json")
DEFAULT_UNTAINT_DEADLINE = 3600.0
DEFAULT_PURGE_GRACE = 3600.0


@dataclass(frozen=True)
class MinFree:
    """A disk threshold: a fraction of the file system, or a number of bytes."""

    fraction: float | None = None
    bytes: int | None = None

    def required(self, total: int) -> int:
        if self.fraction is not None:
            return int(total * self.fraction)
        return self.bytes or 0

    def __str__(self) -> str:
        if self.fraction is not None:
            return f"{self.fraction * 100:g}%"
        return f"{self.bytes} bytes"


@dataclass(frozen=True)
class Settings:
    """What the engine needs; one instance for the life of the process."""

    config_dir: Path = DEFAULT_CONFIG_DIR
    docker_config_root: Path = DEFAULT_DOCKER_CONFIG_ROOT
    runtime: str = "auto"
    """`auto`, `docker` or `cri`."""
    runtime_endpoint: str | None = None
    """unix:///path or tcp://host:port; None: probe (auto) or the runtime's usual socket."""
    arch: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    pull_timeout: float = DEFAULT_PULL_TIMEOUT
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    backoff: Backoff = field(default_factory=Backoff)
    interval_flag: float | None = None
    poll: float = 5.0
    """Seconds between re-reads of the config when no inotify event came (a safety net)."""
    disk_path: Path | None = None
    """Where the image disk is visible to jcp; None: the runtime's image root, if visible."""
    min_free: MinFree = field(default_factory=lambda: MinFree(fraction=0.15))
    disk_poll: float = DEFAULT_DISK_POLL
    outlast_runtime: bool = True
    """A pull cut off because the runtime went away waits for it and goes again, without
    spending an attempt (`jcp run`); `jcp once` counts it as a failure instead."""
    refresh: str = "digest"
    """How a present tag is refreshed: `digest` (one HEAD; pull only if the tag moved), `pull`
    (ask the runtime every sweep), `never`."""
    inspect: str = "auto"
    """Which images to pull are first inspected at their registry (size, platforms): `auto`
    (all but Docker Hub's, whose manifest GETs count as pulls), `always`, `never`."""
    insecure_registries: tuple[str, ...] = ()
    """Registry hosts asked over plain HTTP (loopback hosts always are)."""
    rate_limit_pause: float = 60.0
    """Seconds a registry that answered 429 is left alone when it sent no Retry-After."""


@dataclass(frozen=True)
class NodeSettings:
    """What `jcp run` does to its node beyond pulling: all off by default."""

    node_name: str | None = None
    """From the downward API (env NODE_NAME)."""
    label: str | None = None
    """Node label set to true/false as the node's warm state changes."""
    untaint: str | None = None
    """A NoSchedule taint key removed once the node is warm (or at the deadline)."""
    untaint_deadline: float = DEFAULT_UNTAINT_DEADLINE
    purge: bool = False
    purge_dry_run: bool = False
    purge_grace: float = DEFAULT_PURGE_GRACE
    ledger: Path = DEFAULT_LEDGER
    pin: bool = False
    """Pin jcp's images on containerd and report what the runtime says is pinned."""
    kube_api: str | None = None
    """An explicit API server URL (out-of-cluster runs); None: the pod's in-cluster config."""
    kube_token_file: Path | None = None

    @property
    def uses_api(self) -> bool:
        return self.label is not None or self.untaint is not None
