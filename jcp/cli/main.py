"""Command line: `jcp validate`, `jcp once`, `jcp run`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from pathlib import Path

from jcp import __version__
from jcp.cli import fleet, logs, malloc, options
from jcp.cli.validate import validate
from jcp.model.failures import Backoff
from jcp.settings import DEFAULT_HTTP_ADDR, DEFAULT_START_JITTER, Settings


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jcp", description="JARVICE cache puller: keeps a node's image cache warm."
    )
    parser.add_argument("--version", action="version", version=f"jcp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    val = sub.add_parser("validate", help="check a config directory or image file")
    val.add_argument("path", type=Path, help="config directory or image.config file")
    val.add_argument("--arch", help="also list what a node of this architecture pulls")
    val.add_argument(
        "--node-labels",
        metavar="K=V,...",
        help="with --arch: the node's labels, for entries with a nodeSelector or matchExpressions",
    )
    run = sub.add_parser("run", help="keep the images pulled: sweep, sleep, reload on change")
    options.add_engine_options(run)
    run.add_argument(
        "--http-addr",
        type=options.http_addr,
        default=DEFAULT_HTTP_ADDR,
        help="address of /healthz /readyz /metrics /status; '' turns it off (default: %(default)s)",
    )
    run.add_argument(
        "--start-jitter",
        type=options.non_negative,
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
    options.add_node_options(run)
    options.add_http_options(run)
    options.add_fleet_options(run)
    once = sub.add_parser(
        "once", help="one sweep, then exit: 0 all cached, 1 something failed, 2 bad config"
    )
    options.add_engine_options(once)
    once.add_argument(
        "--progress",
        choices=["auto", "always", "never"],
        default="auto",
        help="live progress display (default: in a terminal, unless --log-format json)",
    )
    fleet.add_parser(sub)
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
        inspect=args.inspect,
        rate_limit_pause=args.rate_limit_pause,
        insecure_registries=tuple(args.insecure_registry),
        registry_config_path=args.registry_config_path,
        node_labels=args.node_labels,
        fetch=options.fetch_settings_from(args),
    )


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "validate":
        return validate(args.path, args.arch, node_labels=args.node_labels)
    if args.command == "fleet":
        return fleet.run(args)
    from jcp.app import run as app  # noqa: PLC0415 - keeps `jcp validate` free of the async stack

    malloc.tune()
    once = args.command == "once"
    if args.docker_host is None and os.environ.get("DOCKER_HOST"):
        try:
            options.endpoint(os.environ["DOCKER_HOST"])
        except argparse.ArgumentTypeError as exc:
            print(f"jcp {args.command}: error: $DOCKER_HOST: {exc}", file=sys.stderr)
            return 2
    settings = dataclasses.replace(settings_from(args), outlast_runtime=not once)
    display = None
    if once:
        from jcp.observe.progress import wants_display  # noqa: PLC0415

        display = wants_display(args.progress, args.log_format)
    if display is not None:
        logs.setup(args.log_format, args.log_level, stream=display.log_stream())
    else:
        logs.setup(args.log_format, args.log_level)
    run_options = None
    if not once:
        run_options = app.RunOptions(
            http_addr=args.http_addr or None,
            metrics_addr=args.metrics_addr or None,
            fleet=options.fleet_settings_from(args),
            start_jitter=args.start_jitter,
            host_root=args.host_root,
            node=options.node_settings_from(args),
        )
    return asyncio.run(app.main(settings, once=once, display=display, options=run_options))


if __name__ == "__main__":
    sys.exit(main())
