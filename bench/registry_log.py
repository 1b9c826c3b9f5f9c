"""Registry requests counted where they land: the registry's own access log.

jcp's counters could only say what jcp believes it asked; the issue's claim ("one HEAD per
image, no manifest GET, no runtime pull") is about what the registry saw. Debian's
`docker-registry` writes one Apache combined-log line per request once it has answered, so
the bench runs its open registry with the access log on and reads the lines a run added.
"""

from __future__ import annotations

import http.client
import itertools
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from devstack.services import Registry

KINDS = ("ping", "token", "head_manifest", "get_manifest", "blob", "other")
"""Request kinds, in table order: `GET /v2/`, a token endpoint, manifest HEAD/GET, blob reads."""

_LINE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) \S+ '
    r'"[^"]*" "(?P<agent>[^"]*)"'
)
_MARKER = "/v2/bench-marker/manifests/"


def kind(method: str, path: str) -> str:
    path = path.split("?", 1)[0]
    if path in ("/v2/", "/v2"):
        return "ping"
    if "/token" in path or path.startswith("/auth"):
        return "token"
    if "/manifests/" in path:
        return {"HEAD": "head_manifest", "GET": "get_manifest"}.get(method, "other")
    if "/blobs/" in path and method in ("GET", "HEAD"):
        return "blob"
    return "other"


@dataclass
class LoggedRegistry(Registry):
    """The devstack registry with its access log on (the devstack turns it off for tests)."""

    def _config(self) -> str:
        return super()._config().replace("  accesslog:\n    disabled: true\n", "")

    @property
    def log(self) -> Path:
        return self.root / "registry.log"


class RequestCounter:
    """Counts the requests a registry logged between `mark()` calls."""

    def __init__(self, registry: LoggedRegistry) -> None:
        self.registry = registry
        self._offset = 0
        self._markers = itertools.count()

    def _barrier(self, timeout: float = 10) -> int:
        """Send a marker request and read the log up to its line: every request answered
        before it was sent is logged by then (each line is written as its request ends)."""
        marker = f"{_MARKER}{next(self._markers)}-{time.monotonic_ns()}"
        conn = http.client.HTTPConnection("127.0.0.1", self.registry.port, timeout=5)
        try:
            conn.request("HEAD", marker)
            conn.getresponse().read()
        finally:
            conn.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.registry.log.read_bytes()
            at = data.find(marker.encode(), self._offset)
            if at >= 0:
                return data.index(b"\n", at) + 1
            time.sleep(0.005)
        raise RuntimeError(f"registry access log has no line for {marker}")

    def mark(self) -> None:
        self._offset = self._barrier()

    def take(self) -> tuple[Counter[str], Counter[str]]:
        """Requests since the last mark by kind, and by the user agent's product name (markers
        and the registry's own error lines excluded)."""
        end = self._barrier()
        data = self.registry.log.read_bytes()[self._offset : end].decode(errors="replace")
        self._offset = end
        counts: Counter[str] = Counter(dict.fromkeys(KINDS, 0))
        agents: Counter[str] = Counter()
        for line in data.splitlines():
            m = _LINE.search(line)
            if m is None or _MARKER in m.group("path"):
                continue
            counts[kind(m.group("method"), m.group("path"))] += 1
            agents[m.group("agent").split("/", 1)[0] or "-"] += 1
        return counts, agents
