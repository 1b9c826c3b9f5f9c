"""The disk guard: hold back new pulls while the image disk is nearly full.

Kubelet's image GC deletes unused images once the disk passes its high threshold (85 % used by
default); pulling past that point only makes kubelet delete what jcp just cached. So by default
jcp keeps 15 % free and waits (logging once, and in metrics and /status) until space is back.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_UNITS = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


@dataclass(frozen=True)
class MinFree:
    """A threshold: a fraction of the file system, or a number of bytes."""

    fraction: float | None = None
    bytes: int | None = None

    def required(self, total: int) -> int:
        if self.fraction is not None:
            return int(total * self.fraction)
        return self.bytes or 0

    def __str__(self) -> str:
        if self.fraction is not None:
            return f"{self.fraction * 100:g}%"
        return f"{self.bytes} bytes"


def parse_min_free(text: str) -> MinFree:
    """`15%`, `20GiB`, `500M`, `1073741824`, or `0` (off); raises ValueError."""
    t = text.strip()
    if t.endswith("%"):
        value = float(t[:-1])
        if not 0 <= value < 100:
            raise ValueError(f"percentage must be in [0, 100), got {text!r}")
        return MinFree(fraction=value / 100)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtKMGT]i?)?[bB]?", t)
    if not m:
        raise ValueError(f"expected a percentage or a size like 20GiB, got {text!r}")
    unit = (m.group(2) or "").lower()
    return MinFree(bytes=int(float(m.group(1)) * _UNITS[unit]))


@dataclass(frozen=True)
class DiskReading:
    path: str
    free: int
    total: int
    required: int

    @property
    def low(self) -> bool:
        return self.free < self.required


def read(path: Path, threshold: MinFree) -> DiskReading | None:
    """Free space at PATH, or None when PATH is not visible (the guard is then off)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    return DiskReading(str(path), free, total, threshold.required(total))
