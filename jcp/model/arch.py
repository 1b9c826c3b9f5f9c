"""Node architectures: the names configs use, and the kernel's and daemon's names for them.

The original mapped only `x86_64`, so arm64 nodes silently pulled nothing; every name a kernel
or daemon reports for a supported architecture maps here.
"""

from __future__ import annotations

SUPPORTED = ("amd64", "arm64", "ppc64le", "s390x")

_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "arm64v8": "arm64",
    "ppc64le": "ppc64le",
    "ppc64el": "ppc64le",
    "s390x": "s390x",
}


def canonical_arch(name: str) -> str | None:
    """The config name for a kernel, daemon or config architecture name; None if unknown."""
    return _ALIASES.get(name.strip().lower())
