"""Command line: `jcp validate`, `jcp once`, `jcp run`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from pathlib import Path

from jcp import __version__, logs
from jcp.engine import disk
from jcp.model.arch import SUPPORTED, canonical_arch
from jcp.model.config import parse_interval
from jcp.model.failures import Backoff
from jcp.settings import (
    DEFAULT_BACKOFF,
    DEFAULT_CONCURRENCY,
    DEFAULT_CONFIG_DIR,
    DEFAULT_DISK_POLL,
    DEFAULT_DOCKER_CONFIG_ROOT,
    DEFAULT_HTTP_ADDR,
    DEFAULT_LEDGER,
    DEFAULT_MIN_FREE,
    DEFAULT_PULL_TIMEOUT,
    DEFAULT_PURGE_GRACE,
    DEFAULT_RETRIES,
    DEFAULT_STALL_TIMEOUT,
    DEFAULT_START_JITTER,
    DEFAULT_UNTAINT_DEADLINE,
    MinFree,
    NodeSettings,
    Settings,
)
from jcp.validate import validate


def _positive(text: str) -> float:
    try:
        return parse_interval(text, "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _min_free(text: str) -> MinFree:
    try:
        return disk.parse_min_free(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _endpoint(text: str) -> str:
    if not text.startswith(("unix://", "tcp://", "http://", "https://")) or len(text) < 8:
        raise argparse.ArgumentTypeError(
            f"expected unix:///path/to/runtime.sock or tcp://HOST:PORT, got {text!r}"
        )
    return text


def _http_addr(text: str) -> str:
    if not text:
        return text
    from jcp.http import parse_addr  # noqa: PLC0415 - only `jcp run` needs the HTTP stack

    try:
        parse_addr(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _arch(text: str) -> str:
    arch = canonical_arch(text)
    if arch is None:
        raise argparse.ArgumentTypeError(
            f"unknown architecture {text!r} (known: {', '.join(SUPPORTED)})"
        )
    return arch


def _add_engine_options(p: argparse.ArgumentParser) -> None:
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
        type=_endpoint,
        default=None,
        help="the runtime's socket, e.g. unix:///run/containerd/containerd.sock",
    )
    p.add_argument(
        "--docker-host",
        type=_endpoint,
        default=None,
        help="same as --runtime docker --runtime-endpoint URL",
    )
    p.add_argument(
        "--arch", type=_arch, default=None, help="node architecture (default: the runtime's)"
    )
    p.add_argument(
        "--concurrency",
        type=_count,
        default=DEFAULT_CONCURRENCY,
        help="images pulled at once (default: %(default)s)",
    )
    p.add_argument(
        "--pull-timeout",
        type=_positive,
        default=DEFAULT_PULL_TIMEOUT,
        help="seconds one pull attempt may take in all (default: %(default)g)",
    )
    p.add_argument(
        "--stall-timeout",
        type=_positive,
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
        type=_positive,
        default=DEFAULT_BACKOFF,
        help="first retry delay in seconds, doubling up to 30 (default: %(default)g)",
    )
    p.add_argument(
        "-i",
        "--interval",
        type=_positive,
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
        type=_positive,
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
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")


def _add_node_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("node lifecycle (off by default)")
    g.add_argument(
        "--node-label",
        default=None,
        metavar="NAME",
        help="set this node label to true/false as the node's warm state changes (needs "
        "get/patch on nodes; node name from $NODE_NAME)",
    )
    g.add_argument(
        "--untaint",
        default=None,
        metavar="KEY",
        help="remove this NoSchedule taint from the node once every image is present (or "
        "failed permanently), so jobs wait for the warm-up",
    )
    g.add_argument(
        "--untaint-deadline",
        type=_positive,
        default=DEFAULT_UNTAINT_DEADLINE,
        help="seconds after start when the taint is removed anyway (default: %(default)g)",
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
        type=_non_negative,
        default=DEFAULT_PURGE_GRACE,
        help="seconds an image stays after leaving the config (default: %(default)g)",
    )
    g.add_argument(
        "--ledger",
        type=Path,
        default=DEFAULT_LEDGER,
        help="jcp's record of the images it pulled, on a hostPath (default: %(default)s)",
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
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jcp", description="JARVICE cache puller: keeps a node's image cache warm."
    )
    parser.add_argument("--version", action="version", version=f"jcp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    val = sub.add_parser("validate", help="check a config directory or image file")
    val.add_argument("path", type=Path, help="config directory or image.config file")
    val.add_argument("--arch", help="also list what a node of this architecture pulls")
    run = sub.add_parser("run", help="keep the images pulled: sweep, sleep, reload on change")
    _add_engine_options(run)
    run.add_argument(
        "--http-addr",
        type=_http_addr,
        default=DEFAULT_HTTP_ADDR,
        help="address of /healthz /readyz /metrics /status; '' turns it off (default: %(default)s)",
    )
    run.add_argument(
        "--start-jitter",
        type=_non_negative,
        default=DEFAULT_START_JITTER,
        help="random delay of up to this many seconds before the first sweep, so "
        "that nodes restarting together do not hit the registry at once "
        "(default: %(default)g)",
    )
    run.add_argument(
        "--host-root",
        type=Path,
        default=None,
        help="where the host's /run is mounted (e.g. /host), to warn when jcp pulls into "
        "Docker while the kubelet uses containerd or CRI-O",
    )
    _add_node_options(run)
    once = sub.add_parser(
        "once", help="one sweep, then exit: 0 all cached, 1 something failed, 2 bad config"
    )
    _add_engine_options(once)
    once.add_argument(
        "--progress",
        choices=["auto", "always", "never"],
        default="auto",
        help="live progress display (default: in a terminal, unless --log-format json)",
    )
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    runtime, endpoint = args.runtime, args.runtime_endpoint
    if args.docker_host is not None:
        runtime, endpoint = "docker", args.docker_host
    return Settings(
        config_dir=args.config_dir,
        docker_config_root=args.docker_config_root,
        runtime=runtime,
        runtime_endpoint=endpoint,
        arch=args.arch,
        concurrency=args.concurrency,
        pull_timeout=args.pull_timeout,
        stall_timeout=args.stall_timeout,
        backoff=Backoff(
            base=args.backoff, cap=max(30.0, args.backoff), retries=max(0, args.retries)
        ),
        interval_flag=args.interval,
        disk_path=args.disk_path,
        min_free=args.min_free,
        disk_poll=args.disk_check_interval,
        refresh=args.refresh,
    )


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "validate":
        return validate(args.path, args.arch)
    from jcp import app  # noqa: PLC0415 - keeps `jcp validate` free of the async stack

    once = args.command == "once"
    if args.docker_host is None and os.environ.get("DOCKER_HOST"):
        try:
            _endpoint(os.environ["DOCKER_HOST"])
        except argparse.ArgumentTypeError as exc:
            print(f"jcp {args.command}: error: $DOCKER_HOST: {exc}", file=sys.stderr)
            return 2
    settings = dataclasses.replace(settings_from(args), outlast_runtime=not once)
    display = None
    if once:
        from jcp.progress import wants_display  # noqa: PLC0415

        display = wants_display(args.progress, args.log_format)
    if display is not None:
        logs.setup(args.log_format, args.log_level, stream=display.log_stream())
    else:
        logs.setup(args.log_format, args.log_level)
    options = None
    if not once:
        options = app.RunOptions(
            http_addr=args.http_addr or None,
            start_jitter=args.start_jitter,
            host_root=args.host_root,
            node=node_settings_from(args),
        )
    return asyncio.run(app.main(settings, once=once, display=display, options=options))


if __name__ == "__main__":
    sys.exit(main())
