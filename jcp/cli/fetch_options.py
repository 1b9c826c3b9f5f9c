"""`--fetch` and its knobs (`once` and `run` alike): jcp's own blob fetch into containerd."""

from __future__ import annotations

import argparse

from jcp.cli.values import count, positive
from jcp.settings import FetchMode, FetchSettings

_MIB = 1024 * 1024


def mib(text: str) -> int:
    """A size in MiB (a whole number of at least 1), in bytes."""
    return count(text) * _MIB


def add_fetch_options(p: argparse.ArgumentParser) -> None:
    d = FetchSettings()
    g = p.add_argument_group("blob fetch (containerd)")
    g.add_argument(
        "--fetch",
        type=FetchMode,
        choices=list(FetchMode),
        default=d.mode,
        help="fetch image blobs into containerd's content store with ranged requests, then let "
        "its PullImage unpack: auto (containerd with its content API, unless it fetches "
        "ranges itself), on (as auto, warning when it cannot), off (default: %(default)s)",
    )
    g.add_argument(
        "--fetch-streams",
        type=count,
        default=d.streams,
        help="connections of the fetch at once, all images together (default: %(default)s)",
    )
    g.add_argument(
        "--fetch-chunk-mib",
        dest="fetch_chunk",
        type=mib,
        default=d.chunk,
        metavar="MIB",
        help=f"MiB per range request (default: {d.chunk // _MIB})",
    )
    g.add_argument(
        "--fetch-images",
        type=count,
        default=d.images,
        help="images whose blobs are fetched at once while others unpack (default: %(default)s)",
    )
    g.add_argument(
        "--fetch-lease-seconds",
        type=positive,
        default=d.lease_ttl,
        help="how long a fetch's containerd lease lives, at least the pull timeout: what a crashed "
        "jcp leaves held expires then (default: %(default)g)",
    )


def fetch_settings_from(args: argparse.Namespace) -> FetchSettings:
    return FetchSettings(
        mode=args.fetch,
        streams=args.fetch_streams,
        chunk=args.fetch_chunk,
        images=args.fetch_images,
        lease_ttl=args.fetch_lease_seconds,
    )
