"""What the bench reads from outside the contenders: processes' CPU, and the Docker daemon's
own count of pulls.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CPU:
    """CPU seconds of a process so far: its own, and its reaped children's (dockerd extracts
    each layer in a re-executed child, `docker-applyLayer`), each with its kernel part."""

    own: float = 0.0
    own_kernel: float = 0.0
    children: float = 0.0
    children_kernel: float = 0.0

    @classmethod
    def of(cls, pid: int | None) -> CPU:
        if pid is None:
            return cls()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime, cutime, cstime = (int(x) / os.sysconf("SC_CLK_TCK") for x in stat[11:15])
        return cls(utime + stime, stime, cutime + cstime, cstime)

    def __sub__(self, other: CPU) -> CPU:
        return CPU(
            self.own - other.own,
            self.own_kernel - other.own_kernel,
            self.children - other.children,
            self.children_kernel - other.children_kernel,
        )

    @property
    def total(self) -> float:
        return self.own + self.children

    @property
    def kernel(self) -> float:
        return self.own_kernel + self.children_kernel


class DockerPulls:
    """Counts the daemon's `pull` events (one per pull call, even for an image that is up to
    date) from a live `docker events` stream. The daemon keeps only its last 256 events for
    `--since/--until` queries, so a 1000-image run must be watched as it happens. A volume
    created by the bench is the barrier: once its event arrives, every earlier one has."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._markers = itertools.count()
        self._proc = subprocess.Popen(
            ["docker", "events", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}}",
             "--filter", "type=image", "--filter", "type=volume",
             "--filter", "event=pull", "--filter", "event=create"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # The stream subscribes some time after the process starts: markers made before that
        # are never reported. Make them until one is, then every later one will be.
        deadline = time.monotonic() + 30
        while self._marker(timeout=0.5) is None:
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError("docker events reported none of the bench's marker volumes")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._cond:
                self._lines.append(line.strip())
                self._cond.notify_all()

    def mark(self) -> int:
        """The number of pull events the daemon reported before now."""
        pulls = self._marker(timeout=30)
        if pulls is None:
            raise RuntimeError("docker events stopped reporting the bench's marker volumes")
        return pulls

    def _marker(self, timeout: float) -> int | None:
        """Create a marker volume and wait for its event: the pulls seen before it, or None."""
        name = f"bench-marker-{os.getpid()}-{next(self._markers)}"
        subprocess.run(
            ["docker", "volume", "create", name], env=self.env, capture_output=True, check=True
        )
        deadline = time.monotonic() + timeout
        pulls = None
        with self._cond:
            while pulls is None and self._proc.poll() is None:
                if f"volume create {name}" in self._lines:
                    at = self._lines.index(f"volume create {name}")
                    pulls = sum(1 for line in self._lines[:at] if line.startswith("image pull "))
                elif not self._cond.wait(deadline - time.monotonic()):
                    break
        subprocess.run(
            ["docker", "volume", "rm", name], env=self.env, capture_output=True, check=False
        )
        return pulls

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)
        self._reader.join(10)
