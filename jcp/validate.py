"""`jcp validate`: every problem of a config, and what a node would pull, before deploying it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from jcp.configdir import load_config
from jcp.model.arch import canonical_arch
from jcp.model.config import ConfigError

EXIT_OK = 0
EXIT_INVALID = 2


def validate(path: Path, arch: str | None, out: TextIO = sys.stdout) -> int:
    node_arch = None
    if arch is not None:
        node_arch = canonical_arch(arch)
        if node_arch is None:
            print(f"error: --arch {arch!r} is not a known architecture", file=out)
            return EXIT_INVALID
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=out)
        errors = sum(1 for p in exc.problems if p.severity == "error")
        print(f"{path}: invalid: {errors} error(s)", file=out)
        return EXIT_INVALID
    for problem in config.warnings:
        print(problem, file=out)
    print(
        f"{config.source}: ok: {len(config.entries)} entries, "
        f"interval {config.interval:g}s (from {config.interval_source})",
        file=out,
    )
    if node_arch is not None:
        selection = config.select(node_arch)
        print(f"a {node_arch} node pulls {len(selection.targets)} image(s):", file=out)
        for target in selection.targets:
            auth = f" (private, secret '{target.entry.secret}')" if target.entry.private else ""
            print(f"  pull {target.image}{auth}", file=out)
        for entry in selection.skipped:
            print(f"  skip entry {entry.index} ({entry.ref}): no arch.{node_arch}", file=out)
    return EXIT_OK
