"""`jcp validate`: every problem of a config, and what a node would pull, before deploying it.

Any content gives exit 0 or 2 with the problems, never a traceback: the readers raise only
ConfigError, and a bug in them is still reported as a rejected config (as `jcp run` does).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from jcp.inputs.configdir import load_config
from jcp.model.arch import canonical_arch
from jcp.model.config import ConfigError, Problem
from jcp.model.jsonsafe import shown

EXIT_OK = 0
EXIT_INVALID = 2


def _say(out: TextIO, text: str) -> None:
    # A path from argv may hold undecodable bytes (surrogate escapes): print them escaped.
    print(text.encode("utf-8", "backslashreplace").decode("utf-8"), file=out)


def validate(path: Path, arch: str | None, out: TextIO = sys.stdout) -> int:
    node_arch = None
    if arch is not None:
        node_arch = canonical_arch(arch)
        if node_arch is None:
            _say(out, f"error: --arch {arch!r} is not a known architecture")
            return EXIT_INVALID
    try:
        config = load_config(path)
    except ConfigError as exc:
        return _invalid(path, exc.problems, out)
    except Exception as exc:
        problem = Problem(str(path), f"cannot be parsed (BUG in jcp: {type(exc).__name__})")
        return _invalid(path, (problem,), out)
    for problem in config.warnings:
        _say(out, str(problem))
    _say(
        out,
        f"{config.source}: ok: {len(config.entries)} entries, "
        f"interval {config.interval:g}s (from {config.interval_source})",
    )
    if node_arch is not None:
        selection = config.select(node_arch)
        _say(out, f"a {node_arch} node pulls {len(selection.targets)} image(s):")
        for target in selection.targets:
            auth = f" (private, secret '{target.entry.secret}')" if target.entry.private else ""
            _say(out, f"  pull {target.image}{auth}")
        for entry in selection.skipped:
            ref = (
                entry.ref if len(entry.ref) <= 60 and entry.ref.isprintable() else shown(entry.ref)
            )
            _say(out, f"  skip entry {entry.index} ({ref}): no arch.{node_arch}")
    return EXIT_OK


def _invalid(path: Path, problems: tuple[Problem, ...], out: TextIO) -> int:
    for problem in problems:
        _say(out, str(problem))
    errors = sum(1 for p in problems if p.severity == "error")
    _say(out, f"{path}: invalid: {errors} error(s)")
    return EXIT_INVALID
