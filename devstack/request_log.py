"""What a registry answered, read from its own JSON log (`log: {level: info, formatter: json}`).

The tests' claims ("after jcp's fetch containerd makes no blob GET", "bytes fetched after a
restart ≤ what was missing plus one chunk") are about what the registry saw, not what a
client believes it asked. docker-registry 2.8 writes one `response completed` line per
request when it has answered, with the method, URI, User-Agent, client address (with its
port: one connection each), status and bytes written. It does not log request headers: a
ranged GET shows as status 206 and the bytes it wrote (Go's ServeContent answers 206 only
to a satisfiable Range), which is what the claims need.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

_MARKER = "/v2/request-log-marker/manifests/"
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([\d.]+)(ns|us|µs|ms|s|m|h)")


def go_duration(text: str) -> float:
    """Seconds in a Go duration string ("1m2.5s", "206.7ms", "629µs")."""
    return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))


@dataclass(frozen=True)
class Request:
    method: str
    uri: str
    status: int
    agent: str
    written: int
    """Body bytes the registry sent."""
    remote: str
    """The client's address:port (one connection)."""
    seconds: float

    @property
    def ranged(self) -> bool:
        return self.status == 206

    @property
    def blob_get(self) -> bool:
        return self.method == "GET" and "/blobs/sha256:" in self.uri

    @property
    def digest(self) -> str:
        return self.uri.rsplit("/", 1)[-1].split("?", 1)[0]

    @property
    def product(self) -> str:
        """The User-Agent's first product name ("containerd", "jcp", "Python")."""
        return self.agent.split("/", 1)[0] or "-"


def parse(text: str) -> list[Request]:
    """The answered requests in TEXT (other lines, e.g. start-up messages, are skipped)."""
    out = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not str(entry.get("msg", "")).startswith("response completed"):
            continue
        out.append(
            Request(
                method=entry.get("http.request.method", ""),
                uri=entry.get("http.request.uri", ""),
                status=int(entry.get("http.response.status", 0)),
                agent=entry.get("http.request.useragent", ""),
                written=int(entry.get("http.response.written", 0)),
                remote=entry.get("http.request.remoteaddr", ""),
                seconds=go_duration(entry.get("http.response.duration", "")),
            )
        )
    return out


class RequestLog:
    """A registry's log, read from a mark: `mark()` now, `since()` what was answered after."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def mark(self) -> None:
        self._offset = self._size()

    def since(self) -> list[Request]:
        """Requests answered since the mark (a request still being answered is not there yet:
        poll for the one you wait for)."""
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        # Only whole lines: the registry may be writing the last one.
        data = data[: data.rfind(b"\n") + 1]
        return parse(data.decode(errors="replace"))

    def settled(self, host: str, timeout: float = 10) -> list[Request]:
        """Requests answered since the mark, once every request answered before this call is
        in the log: a marker request is sent and its line waited for (each line is written
        as its request ends, so the ones before it are there). The marker is left out."""
        marker = f"{_MARKER}{os.getpid()}-{time.monotonic_ns()}"
        conn = http.client.HTTPConnection(host, timeout=5)
        try:
            conn.request("HEAD", marker)
            conn.getresponse().read()
        finally:
            conn.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.since()
            if any(r.uri == marker for r in got):
                return [r for r in got if not r.uri.startswith(_MARKER)]
            time.sleep(0.01)
        raise TimeoutError(f"the registry's log has no line for {marker} after {timeout}s")
