"""The command line's value parsers: each turns one flag's text into a typed value or an
argparse error that names what was expected."""

from __future__ import annotations

import argparse

from jcp.engine import disk
from jcp.model.arch import SUPPORTED, canonical_arch
from jcp.model.config import parse_interval
from jcp.model.selectors import parse_labels
from jcp.settings import (
    MinFree,
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


def count(text: str) -> int:
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


def min_free(text: str) -> MinFree:
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


def arch(text: str) -> str:
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


def count_or_zero(text: str) -> int:
    return 0 if text.strip() == "0" else count(text)
