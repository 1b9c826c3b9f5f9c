"""glibc's malloc told to keep large buffers for reuse: the blob fetch's memory is recycled,
not handed back to the kernel and faulted in again for every megabyte.

Why: the fetch allocates and frees buffers of 256 KiB to 1 MiB (a registry read, a gRPC
message) many times a second. glibc's defaults serve them with mmap or grow and trim the heap
around them, so each megabyte costs 256 fresh zeroed pages; measured (`python -m bench.fetch`,
one 200 MiB blob into containerd 1.6): jcp's CPU per GB fetched 6.2-6.4 s with the defaults,
4.3-4.9 s with these, the same peak RSS (Content.Write alone, in a scratch harness not kept:
3.0-3.9 s against 1.5-2.0; `python -m bench.transport --malloc default` shows the same). At
most `_TRIM` bytes stay free at the heap's top; allocations over `_MMAP` still use mmap.
Set once at start, before jcp allocates much; nothing on a libc without `mallopt` (musl), and
nothing when the environment tunes malloc itself (MALLOC_*_ or GLIBC_TUNABLES).
"""

from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP = 4 * 1024 * 1024
_TRIM = 32 * 1024 * 1024
_OWN = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def tune() -> bool:
    """Whether malloc was tuned (False: not glibc, or the environment tunes it)."""
    if any(name in os.environ for name in _OWN):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: libc's, no lookup
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM))
