"""Where a Docker pull's time goes: downloading vs extracting, from the daemon's own progress.

`docker pull` without a terminal prints each layer's status changes as lines ("Pulling fs layer",
"Download complete", "Pull complete"). Time-stamping them as they arrive gives,
for a set of pulls started together, when the last byte was downloaded and when the last
layer was extracted: the extraction tail is the daemon's unpacking, which no client
concurrency can shorten once downloads are done.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from typing import Any

_STATUS = re.compile(r"^(?P<layer>[0-9a-f]{12}): (?P<status>[A-Za-z ]+)")


def _follow(
    proc: subprocess.Popen[str], t0: float, seen: list[tuple[float, str, str]], lock: threading.Lock
) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        m = _STATUS.match(line.strip())
        if m is not None:
            with lock:
                seen.append((time.perf_counter() - t0, m.group("layer"), m.group("status")))


def pull_phases(refs: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Pull REFS at once (one `docker pull` each) and time the phases across all layers."""
    seen: list[tuple[float, str, str]] = []
    lock = threading.Lock()
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["docker", "pull", r], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        for r in refs
    ]  # fmt: skip
    threads = [threading.Thread(target=_follow, args=(p, t0, seen, lock)) for p in procs]
    for t in threads:
        t.start()
    for p, t in zip(procs, threads, strict=True):
        if p.wait() != 0:
            raise RuntimeError(f"docker pull exited {p.returncode}")
        t.join()
    total = time.perf_counter() - t0

    def last(status: str) -> float | None:
        times = [t for t, _, s in seen if s.startswith(status)]
        return round(max(times), 3) if times else None

    # Without a terminal the CLI drops progress messages ("Downloading", "Extracting"):
    # the status changes that remain still bound the phases.
    return {
        "images": len(refs),
        "total_seconds": round(total, 3),
        "last_download_complete": last("Download complete"),
        "last_pull_complete": last("Pull complete"),
    }
