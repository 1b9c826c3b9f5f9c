"""The disk guard: hold back new pulls while the image disk is nearly full, and do not start a
pull whose known size would not fit.

Kubelet's image GC deletes unused images once the disk passes its high threshold (85 % used by
default); pulling past that point only makes kubelet delete what jcp just cached. So by default
jcp keeps 15 % free and waits (logging once, and in metrics and /status) until space is back.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from jcp.settings import MinFree

log = logging.getLogger(__name__)

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


def human(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


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


class DiskGuard:
    """Whether there is room to start a pull, with a log line at each change of mind."""

    def __init__(self, threshold: MinFree, path: Path | None) -> None:
        self.threshold = threshold
        self.path = path
        self.reading: DiskReading | None = None
        self.active = False
        self.reserved: dict[object, int] = {}
        """Pull in flight -> the bytes it was expected to need when it started."""

    def shortfall(self, need: int) -> str | None:
        """Why a pull of about NEED bytes does not fit now (beside the pulls in flight, which
        reserved theirs), or None when it fits or there is no way to tell."""
        reading = self.reading
        if reading is None or need <= 0:
            return None
        room = reading.free - reading.required - sum(self.reserved.values())
        if need <= room:
            return None
        return (
            f"needs about {human(need)} on {reading.path}, where "
            f"{human(max(0, room))} are free above --min-free {self.threshold}"
            + (" and the pulls in flight" if self.reserved else "")
        )

    def check(self) -> bool:
        """True when there is room to start a pull (or no way to tell)."""
        reading = read(self.path, self.threshold) if self.path is not None else None
        self.reading = reading
        low = reading is not None and reading.low
        if low != self.active:
            self.active = low
            assert reading is not None
            if low:
                log.warning(
                    f"disk guard: {reading.free / 1e9:.2f} GB free on {reading.path}, below "
                    f"--min-free {self.threshold}; new pulls wait until space is back",
                    extra={"fields": {"event": "disk_low", "free": reading.free}},
                )
            else:
                log.info(
                    f"disk guard: {reading.free / 1e9:.2f} GB free on {reading.path}; pulls resume",
                    extra={"fields": {"event": "disk_ok", "free": reading.free}},
                )
        return not low
