"""The command line's options (`once` and `run` alike): every default comes from settings.py.

The value parsers live in `values.py`, `jcp run`'s own options in `run_options.py`; both are
re-exported here, so that callers name one module."""

from __future__ import annotations

import argparse
from pathlib import Path

from jcp.cli.fetch_options import add_fetch_options, fetch_settings_from
from jcp.cli.run_options import (
    add_fleet_options,
    add_http_options,
    add_node_options,
    fleet_settings_from,
    node_settings_from,
)
from jcp.cli.values import (
    arch,
    count,
    http_addr,
    interval,
    min_free,
    node_labels,
    non_negative,
    positive,
)
from jcp.cli.values import endpoint as endpoint  # noqa: PLC0414 - re-exported for callers
from jcp.engine import disk
from jcp.settings import (
    DEFAULT_BACKOFF,
    DEFAULT_CONCURRENCY,
    DEFAULT_CONFIG_DIR,
    DEFAULT_DISK_POLL,
    DEFAULT_DOCKER_CONFIG_ROOT,
    DEFAULT_MIN_FREE,
    DEFAULT_PULL_TIMEOUT,
    DEFAULT_RETRIES,
    DEFAULT_STALL_TIMEOUT,
)

__all__ = [
    "add_engine_options", "add_fetch_options", "add_fleet_options", "add_http_options",
    "add_node_options", "endpoint", "fetch_settings_from", "fleet_settings_from", "http_addr",
    "node_settings_from", "non_negative",
]  # fmt: skip


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
        "--arch", type=arch, default=None, help="node architecture (default: the runtime's)"
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
        type=count,
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
        type=min_free,
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
    p.add_argument(
        "--registry-config-path",
        type=Path,
        default=None,
        metavar="DIR",
        help="containerd's registry config_path (e.g. /etc/containerd/certs.d, mounted from the "
        "node): jcp's digest HEADs and manifest GETs go to the mirrors of each registry's "
        "<DIR>/<host>/hosts.toml (or _default) in order, and fall back as containerd does "
        "(default: every registry is asked itself)",
    )
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    add_fetch_options(p)
