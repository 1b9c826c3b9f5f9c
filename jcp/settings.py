"""Everything an operator can set, typed, with each default defined here once.

The CLI builds a `Settings` from its flags (its help texts read the defaults from here); the
composition root (`app/run.py`) hands the parts to the engine, the runtime and the HTTP server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
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
DEFAULT_METRICS_ADDR = ""
"""`--metrics-addr`: "" serves /status and /metrics on the probes' address (`--http-addr`)."""
DEFAULT_START_JITTER = 10.0
DEFAULT_LEDGER = Path("/var/lib/jcp/ledger.json")
DEFAULT_UNTAINT_DEADLINE = 3600.0
DEFAULT_PURGE_GRACE = 3600.0
DEFAULT_FLEET_LEASE_SECONDS = 30
"""`--fleet-lease-seconds`: a dead slot holder blocks its slot this long at most; renewals every
third of it (kubelet's node Lease: 40 s, renewed every 10 s)."""


class RuntimeChoice(StrEnum):
    """`--runtime`: which kind of runtime jcp warms."""

    AUTO = "auto"
    """Probe: the kubelet's endpoint, $DOCKER_HOST, then the usual sockets."""
    DOCKER = "docker"
    CRI = "cri"


class Refresh(StrEnum):
    """`--refresh`: how a present tag is refreshed."""

    DIGEST = "digest"
    """Compare the registry's digest with the runtime's; pull only when the tag moved."""
    PULL = "pull"
    """Ask the runtime to pull every sweep (the runtime checks the registry itself)."""
    NEVER = "never"
    """A present tag is never refreshed."""


class Inspect(StrEnum):
    """`--inspect`: which images to pull are first read at their registry (size, platforms)."""

    AUTO = "auto"
    """Every registry but Docker Hub (its manifest GETs count as pulls)."""
    ALWAYS = "always"
    NEVER = "never"


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


class FetchMode(StrEnum):
    """`--fetch`: whether jcp fetches image blobs into containerd's content store itself."""

    AUTO = "auto"
    """On containerd with its content API, unless it fetches ranges itself (2.1+, configured)."""
    ON = "on"
    """As auto, and said as a warning when it cannot be (the runtime's own pull then)."""
    OFF = "off"


@dataclass(frozen=True)
class FetchSettings:
    """jcp's own blob fetch (`jcp/fetch/`): streams and chunk chosen by measurement
    (BENCHMARKS.md, "Big images at the link's speed")."""

    mode: FetchMode = FetchMode.AUTO
    streams: int = 8
    """Connections of the fetch at once, all images together (ranges and blobs alike)."""
    chunk: int = 4 * 1024 * 1024
    """Bytes per range request; a blob this size or smaller is one request."""
    images: int = 2
    """Images whose blobs are fetched at once; the others unpack meanwhile (pipelined)."""
    lease_ttl: float = 3600.0
    """Seconds a fetch's lease outlives a crashed jcp before containerd's GC may take it."""


@dataclass(frozen=True)
class Settings:
    """What the engine needs; one instance for the life of the process."""

    config_dir: Path = DEFAULT_CONFIG_DIR
    docker_config_root: Path = DEFAULT_DOCKER_CONFIG_ROOT
    runtime: RuntimeChoice = RuntimeChoice.AUTO
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
    refresh: Refresh = Refresh.DIGEST
    inspect: Inspect = Inspect.AUTO
    insecure_registries: tuple[str, ...] = ()
    """Registry hosts asked over plain HTTP (loopback hosts always are)."""
    registry_config_path: Path | None = None
    """`--registry-config-path`: containerd's `config_path` (its hosts.toml directories, as
    mounted from the node), so that jcp's registry requests take the runtime's mirrors; None:
    every registry is asked itself."""
    rate_limit_pause: float = 60.0
    """Seconds a registry that answered 429 is left alone when it sent no Retry-After."""
    node_labels: Mapping[str, str] | None = None
    """`--node-labels`: the node's labels, given; None: read and watched through the API
    (`jcp run` with $NODE_NAME), else unknown (entries with a selector are not pulled)."""
    fetch: FetchSettings = field(default_factory=FetchSettings)


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


@dataclass(frozen=True)
class FleetSettings:
    """`jcp run`'s share of the fleet's pull budget (`jcp/kube/fleet.py`): off by default."""

    parallelism: int = 0
    """`--fleet-parallelism`: at most this many nodes pull from upstream at once; 0: no budget."""
    namespace: str | None = None
    """Where the slots' Leases live; None: the pod's own namespace (its service account's)."""
    lease_seconds: int = DEFAULT_FLEET_LEASE_SECONDS
    exempt_registries: tuple[str, ...] = ()
    """Registry hosts whose pulls need no slot (a mirror in the cluster serves them)."""

    @property
    def enabled(self) -> bool:
        return self.parallelism > 0


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on `jcp run`'s HTTP server: what any client may cost the one event loop that
    also runs the pulls (`jcp/observe/http_limits.py` says why each exists)."""

    max_connections: int = 100
    """Open connections per listener; one more is answered 503 and closed unread."""
    idle_timeout: float = 5.0
    """Seconds a connection may sit idle, or take to send a request's headers."""
    data_rate: float = 20.0
    """/status and /metrics answers a second, all clients together; more wait their turn."""
    data_waiting: int = 80
    """/status and /metrics requests waiting at once; beyond, 503 (the probes keep the rest)."""
    render_share: float = 0.1
    """Share of the time rendering /status and /metrics may take: a body is served again for
    20 times what it cost to render (1 ms: 20 ms; 25 ms at 1000 images: 0.5 s)."""
    probe_age: float = 0.0
    """Seconds the snapshot under /healthz and /readyz is reused: 0, since the engine's read
    model is O(1) to read and rebuilt only when its state changed."""
