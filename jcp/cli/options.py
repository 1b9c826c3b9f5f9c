"""The command line's options and their value parsers: every default comes from settings.py."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from jcp.engine import disk
from jcp.model.arch import SUPPORTED, canonical_arch
from jcp.model.config import parse_interval
from jcp.model.selectors import parse_labels
from jcp.settings import (
    DEFAULT_BACKOFF,
    DEFAULT_CONCURRENCY,
    DEFAULT_CONFIG_DIR,
    DEFAULT_DISK_POLL,
    DEFAULT_DOCKER_CONFIG_ROOT,
    DEFAULT_FLEET_LEASE_SECONDS,
    DEFAULT_LEDGER,
    DEFAULT_METRICS_ADDR,
    DEFAULT_MIN_FREE,
    DEFAULT_PULL_TIMEOUT,
    DEFAULT_PURGE_GRACE,
    DEFAULT_RETRIES,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_UNTAINT_DEADLINE,
    FleetSettings,
    MinFree,
    NodeSettings,
)


def positive(text: str) -> float:
    """A duration in seconds (timeouts, backoff, checks): a plain decimal, 1 ms to ~4 months."""
    try:
        return parse_interval(text, "value", minimum=0.001, maximum=10_000_000)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a plain number of seconds from 0.001 to 10000000, got {text!r}"
        ) from None


def interval(text: str) -> float:
    """The interval between sweeps: the same rule as the `interval` file."""
    try:
        return parse_interval(text, "--interval")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """Seconds that may be 0 (jitter, grace): a plain decimal up to ~4 months."""
    try:
        return parse_interval(text, "value", minimum=0, maximum=10_000_000)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a plain number of seconds from 0 to 10000000, got {text!r}"
        ) from None


def _min_free(text: str) -> MinFree:
    try:
        return disk.parse_min_free(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def endpoint(text: str) -> str:
    if not text.startswith(("unix://", "tcp://", "http://", "https://")) or len(text) < 8:
        raise argparse.ArgumentTypeError(
            f"expected unix:///path/to/runtime.sock or tcp://HOST:PORT, got {text!r}"
        )
    return text


def http_addr(text: str) -> str:
    if not text:
        return text
    from jcp.observe.http import parse_addr  # noqa: PLC0415 - only `jcp run` needs the HTTP stack

    try:
        parse_addr(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_http_options(p: argparse.ArgumentParser) -> None:
    """`jcp run`'s HTTP options beyond `--http-addr` (the probes' address)."""
    p.add_argument(
        "--metrics-addr",
        type=http_addr,
        default=DEFAULT_METRICS_ADDR,
        metavar="HOST:PORT",
        help="address of /metrics and /status when they must not be where the probes are (e.g. "
        "127.0.0.1:9090 for a sidecar, or a port a NetworkPolicy guards); default: on "
        "--http-addr with the probes",
    )


def _arch(text: str) -> str:
    arch = canonical_arch(text)
    if arch is None:
        raise argparse.ArgumentTypeError(
            f"unknown architecture {text!r} (known: {', '.join(SUPPORTED)})"
        )
    return arch


def node_labels(text: str) -> dict[str, str]:
    """`--node-labels k=v,...`: this node's labels, instead of reading them from the API."""
    try:
        return parse_labels(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config-dir",
        type=Path,
        default=DEFAULT_CONFIG_DIR,
        help="ConfigMap directory holding image.config and interval (default: %(default)s)",
    )
    p.add_argument(
        "--docker-config-root",
        type=Path,
        default=DEFAULT_DOCKER_CONFIG_ROOT,
        help="directory of mounted docker secrets, <root>/<config>/config.json "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--runtime",
        choices=["auto", "docker", "cri"],
        default="auto",
        help="the image store to warm: auto probes $KUBELET_RUNTIME_ENDPOINT, $DOCKER_HOST, "
        "then containerd, CRI-O, cri-dockerd and Docker sockets in that order "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--runtime-endpoint",
        type=endpoint,
        default=None,
        help="the runtime's socket, e.g. unix:///run/containerd/containerd.sock",
    )
    p.add_argument(
        "--docker-host",
        type=endpoint,
        default=None,
        help="same as --runtime docker --runtime-endpoint URL",
    )
    p.add_argument(
        "--arch", type=_arch, default=None, help="node architecture (default: the runtime's)"
    )
    p.add_argument(
        "--node-labels",
        type=node_labels,
        default=None,
        metavar="K=V,...",
        help="the node's labels, matched by entries' nodeSelector and matchExpressions "
        "(default: read and watched through the API with $NODE_NAME; '' is a node without "
        "labels)",
    )
    p.add_argument(
        "--concurrency",
        type=_count,
        default=DEFAULT_CONCURRENCY,
        help="images pulled at once (default: %(default)s)",
    )
    p.add_argument(
        "--pull-timeout",
        type=positive,
        default=DEFAULT_PULL_TIMEOUT,
        help="seconds one pull attempt may take in all (default: %(default)g)",
    )
    p.add_argument(
        "--stall-timeout",
        type=positive,
        default=DEFAULT_STALL_TIMEOUT,
        help="seconds without any progress before a pull is abandoned and retried "
        "(default: %(default)g)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help="retries of a transient failure within a sweep (default: %(default)s)",
    )
    p.add_argument(
        "--backoff",
        type=positive,
        default=DEFAULT_BACKOFF,
        help="first retry delay in seconds, doubling up to 30 (default: %(default)g)",
    )
    p.add_argument(
        "--rate-limit-pause",
        type=positive,
        default=60.0,
        help="seconds a registry that answered 429 without Retry-After is left alone "
        "(default: %(default)g)",
    )
    p.add_argument(
        "-i",
        "--interval",
        type=interval,
        default=None,
        help="seconds between sweeps; overrides the interval file and $PULL_INTERVAL",
    )
    p.add_argument(
        "--disk-path",
        type=Path,
        default=None,
        help="path on the image disk to watch for free space (default: the "
        "daemon's data root, when visible to jcp)",
    )
    p.add_argument(
        "--min-free",
        type=_min_free,
        default=disk.parse_min_free(DEFAULT_MIN_FREE),
        help="free space to keep on the image disk, e.g. 15%%, 20GiB, 0 for off "
        "(default: 15%%, kubelet's default image GC threshold)",
    )
    p.add_argument(
        "--disk-check-interval",
        type=positive,
        default=DEFAULT_DISK_POLL,
        help="seconds between free-space checks while the disk guard holds pulls "
        "back (default: %(default)g)",
    )
    p.add_argument(
        "--refresh",
        choices=["digest", "pull", "never"],
        default="digest",
        help="how a present tag is refreshed: digest asks the registry for the tag's digest "
        "(one HEAD) and pulls only if it moved; pull asks the runtime to pull every sweep; "
        "never (default: %(default)s)",
    )
    p.add_argument(
        "--inspect",
        choices=["auto", "always", "never"],
        default="auto",
        help="read the manifest of an image before pulling it: a list without this node's "
        "platform fails without a pull, the size feeds the disk guard, the progress total and "
        "the order (largest first); auto skips Docker Hub, whose manifest GETs count against "
        "its pull limit (default: %(default)s)",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a registry jcp asks for digests over plain HTTP (loopback hosts always are); "
        "repeatable",
    )
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")


def node_label(text: str) -> str:
    from jcp.kube.keys import label_problem  # noqa: PLC0415 - only `jcp run` needs it

    if problem := label_problem(text):
        raise argparse.ArgumentTypeError(problem)
    return text


def taint_key(text: str) -> str:
    from jcp.kube.keys import key_problem  # noqa: PLC0415 - only `jcp run` needs it

    if problem := key_problem(text):
        raise argparse.ArgumentTypeError(problem)
    return text


def add_node_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("node lifecycle (off by default)")
    g.add_argument(
        "--node-label",
        type=node_label,
        default=None,
        metavar="NAME",
        help="set this node label to true/false as the node's warm state changes (needs "
        "get/patch on nodes; node name from $NODE_NAME)",
    )
    g.add_argument(
        "--untaint",
        type=taint_key,
        default=None,
        metavar="KEY",
        help="remove this NoSchedule taint from the node once every image is present (or "
        "failed permanently), so jobs wait for the warm-up",
    )
    g.add_argument(
        "--untaint-deadline",
        type=positive,
        default=DEFAULT_UNTAINT_DEADLINE,
        help="seconds after start when the taint is removed anyway (default: %(default)g)",
    )
    g.add_argument(
        "--pin",
        action="store_true",
        help="keep the kubelet's image GC from jcp's images: on containerd, label them "
        "io.cri-containerd.pinned (honoured by containerd >= 1.7), unpin those that leave the "
        "config, and report what the runtime says is pinned (CRI ImageStatus)",
    )
    g.add_argument(
        "--purge",
        action="store_true",
        help="remove images jcp pulled once they leave the config (after --purge-grace; "
        "only images in jcp's ledger, never one a container uses)",
    )
    g.add_argument(
        "--purge-dry-run", action="store_true", help="log what --purge would remove, remove nothing"
    )
    g.add_argument(
        "--purge-grace",
        type=non_negative,
        default=DEFAULT_PURGE_GRACE,
        help="seconds an image stays after leaving the config (default: %(default)g)",
    )
    g.add_argument(
        "--kube-api",
        default=None,
        metavar="URL",
        help="the Kubernetes API server, for runs outside a pod (default: the pod's "
        "in-cluster service account)",
    )
    g.add_argument(
        "--kube-token-file",
        type=Path,
        default=None,
        help="bearer token for --kube-api (read at start; never logged)",
    )
    g.add_argument(
        "--ledger",
        type=Path,
        default=DEFAULT_LEDGER,
        help="jcp's record of the images it pulled, on a hostPath (default: %(default)s)",
    )


def add_fleet_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fleet pull budget (off by default)")
    g.add_argument(
        "--fleet-parallelism",
        type=_count_or_zero,
        default=0,
        metavar="K",
        help="at most K nodes of the cluster pull from upstream at once (Leases jcp-fleet-0.."
        "K-1; needs get/list/create/update/delete on leases in jcp's namespace); 0: no budget",
    )
    g.add_argument(
        "--fleet-namespace",
        default=None,
        metavar="NS",
        help="namespace of the fleet's Leases (default: the pod's own)",
    )
    g.add_argument(
        "--fleet-lease-seconds",
        type=_count,
        default=DEFAULT_FLEET_LEASE_SECONDS,
        metavar="SECONDS",
        help="a node that dies holding a slot frees it after this long (default: %(default)s)",
    )
    g.add_argument(
        "--fleet-exempt-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="pulls from this registry need no slot (a mirror in the cluster); repeatable",
    )


def _count_or_zero(text: str) -> int:
    return 0 if text.strip() == "0" else _count(text)


def fleet_settings_from(args: argparse.Namespace) -> FleetSettings:
    return FleetSettings(
        parallelism=args.fleet_parallelism,
        namespace=args.fleet_namespace or None,
        lease_seconds=args.fleet_lease_seconds,
        exempt_registries=tuple(args.fleet_exempt_registry),
    )


def node_settings_from(args: argparse.Namespace) -> NodeSettings:
    return NodeSettings(
        node_name=os.environ.get("NODE_NAME") or None,
        label=args.node_label or None,
        untaint=args.untaint or None,
        untaint_deadline=args.untaint_deadline,
        purge=args.purge or args.purge_dry_run,
        purge_dry_run=args.purge_dry_run,
        purge_grace=args.purge_grace,
        ledger=args.ledger,
        pin=args.pin,
        kube_api=args.kube_api or None,
        kube_token_file=args.kube_token_file,
    )
