"""`jcp run`'s options beyond the engine's: the HTTP surface, the node lifecycle and the fleet
budget, and the settings built from them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from jcp.cli.values import (
    count,
    count_or_zero,
    http_addr,
    node_label,
    non_negative,
    positive,
    taint_key,
)
from jcp.settings import (
    DEFAULT_FLEET_LEASE_SECONDS,
    DEFAULT_LEDGER,
    DEFAULT_METRICS_ADDR,
    DEFAULT_PURGE_GRACE,
    DEFAULT_UNTAINT_DEADLINE,
    FleetSettings,
    NodeSettings,
)


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
        type=count_or_zero,
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
        type=count,
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
