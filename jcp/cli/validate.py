"""`jcp validate`: every problem of a config, and what a node would pull, before deploying it.

With `--arch` (and `--node-labels k=v,...`), what such a node pulls, in pull order (priority
first), and every entry it skips with the reason: another architecture, a `nodeSelector` or
`matchExpressions` its labels do not match, or labels not given.

Any content gives exit 0 or 2 with the problems, never a traceback: the readers raise only
ConfigError, and a bug in them is still reported as a rejected config (as `jcp run` does).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from jcp.inputs.configdir import load_config
from jcp.model.arch import canonical_arch
from jcp.model.config import ConfigError, Problem, Selection
from jcp.model.jsonsafe import shown
from jcp.model.selectors import parse_labels

EXIT_OK = 0
EXIT_INVALID = 2


def _say(out: TextIO, text: str) -> None:
    # A path from argv may hold undecodable bytes (surrogate escapes): print them escaped.
    print(text.encode("utf-8", "backslashreplace").decode("utf-8"), file=out)


def validate(
    path: Path,
    arch: str | None,
    out: TextIO = sys.stdout,
    *,
    node_labels: str | Mapping[str, str] | None = None,
) -> int:
    """Check PATH; with ARCH, list what such a node (with NODE_LABELS, `k=v,...` or a map)
    pulls and skips. 0 valid (warnings allowed), 2 invalid or a bad flag."""
    node_arch = None
    if arch is not None:
        node_arch = canonical_arch(arch)
        if node_arch is None:
            _say(out, f"error: --arch {arch!r} is not a known architecture")
            return EXIT_INVALID
    labels = None
    if node_labels is not None:
        if node_arch is None:
            _say(out, "error: --node-labels needs --arch (what a node pulls depends on both)")
            return EXIT_INVALID
        try:
            labels = parse_labels(node_labels) if isinstance(node_labels, str) else node_labels
        except ValueError as exc:
            _say(out, f"error: --node-labels: {exc}")
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
        _selection(config.select(node_arch, labels), out)
    return EXIT_OK


def _selection(selection: Selection, out: TextIO) -> None:
    node = f"a {selection.arch} node"
    if selection.labels is not None:
        listed = ",".join(f"{k}={v}" for k, v in sorted(selection.labels.items()))
        node += f" labelled {listed}" if listed else " without labels"
    _say(out, f"{node} pulls {len(selection.targets)} image(s):")
    for target in selection.targets:
        notes = [f"priority {target.priority}"] if target.priority else []
        if target.entry.private:
            notes.append(f"private, secret '{target.entry.secret}'")
        _say(out, f"  pull {target.image}" + (f" ({'; '.join(notes)})" if notes else ""))
    for skip in selection.skipped:
        ref = skip.ref if len(skip.ref) <= 60 and skip.ref.isprintable() else shown(skip.ref)
        why = skip.reason
        if skip.labels_unknown and skip.entry.selector is not None:
            why += f" (it selects {skip.entry.selector}; give --node-labels)"
        _say(out, f"  skip entry {skip.index} ({ref}): {why}")


def _invalid(path: Path, problems: tuple[Problem, ...], out: TextIO) -> int:
    for problem in problems:
        _say(out, str(problem))
    errors = sum(1 for p in problems if p.severity == "error")
    _say(out, f"{path}: invalid: {errors} error(s)")
    return EXIT_INVALID
