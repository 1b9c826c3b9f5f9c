"""Command line: `jcp validate`, `jcp once`, `jcp run`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jcp import __version__
from jcp.validate import validate


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jcp", description="JARVICE cache puller: keeps a node's image cache warm."
    )
    parser.add_argument("--version", action="version", version=f"jcp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    val = sub.add_parser("validate", help="check a config directory or image file")
    val.add_argument("path", type=Path, help="config directory or image.config file")
    val.add_argument("--arch", help="also list what a node of this architecture pulls")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "validate":
        return validate(args.path, args.arch)
    return 2


if __name__ == "__main__":
    sys.exit(main())
