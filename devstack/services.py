"""A real dockerd and real registries on loopback, each in a directory of its own.

Used by the test session, the benchmark and `scripts/dev-stack.sh`: the same processes a node
has (Debian's `dockerd` and `docker-registry`), started without touching the machine's own
Docker (own socket, data root and exec root; no bridge, no iptables).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class StackError(Exception):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(
    check: object, what: str, log: Path, timeout: float, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise StackError(f"{what} exited with {proc.returncode}:\n{tail}")
        if callable(check) and check():
            return
        time.sleep(0.05)
    raise StackError(f"{what} did not come up in {timeout:.0f}s (log: {log})")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def unix_get(path: str, url: str, timeout: float = 5) -> tuple[int, bytes]:
    conn = _UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", url)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@dataclass
class Dockerd:
    """A dockerd whose whole state lives under ROOT; stop() and start() keep its images."""

    root: Path
    storage_driver: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    def ping(self) -> bool:
        try:
            return unix_get(str(self.socket), "/_ping", timeout=2)[0] == 200
        except OSError:
            return False

    def _command(self, driver: str) -> list[str]:
        return [
            "dockerd",
            f"--host={self.host}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'docker.pid'}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            f"--storage-driver={driver}",
            *self.extra_args,
        ]

    def start(self, timeout: float = 60) -> None:
        if shutil.which("dockerd") is None:
            raise StackError("dockerd not found: apt-get install docker.io")
        self.root.mkdir(parents=True, exist_ok=True)
        drivers = [self.storage_driver] if self.storage_driver else ["overlay2", "vfs"]
        last: StackError | None = None
        for driver in drivers:
            log = self.root / "dockerd.log"
            with log.open("ab") as out:
                self.proc = subprocess.Popen(
                    self._command(driver),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                _wait(self.ping, "dockerd", log, timeout, self.proc)
            except StackError as exc:
                last = exc
                _stop(self.proc)
                continue
            self.storage_driver = driver
            return
        raise last or StackError("dockerd did not start")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, 30)
            self.proc = None


@dataclass
class Registry:
    """A `docker-registry` on 127.0.0.1:PORT; with USER set it asks for htpasswd basic auth."""

    root: Path
    port: int = 0
    user: str | None = None
    password: str | None = None
    auth_config: str | None = None
    """An `auth:` section of its own (e.g. token auth), instead of htpasswd for USER."""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> str:
        auth = ""
        if self.user is not None:
            htpasswd = self.root / "htpasswd"
            result = subprocess.run(
                ["htpasswd", "-niB", self.user],
                input=(self.password or "").encode(),
                capture_output=True,
                check=True,
            )
            htpasswd.write_bytes(result.stdout)
            auth = f"auth:\n  htpasswd:\n    realm: jcp-test\n    path: {htpasswd}\n"
        if self.auth_config is not None:
            auth = self.auth_config
        return (
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: jcp-test-stack\n" + auth
        )

    def alive(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            conn.close()
        except OSError:
            return False
        return status in (200, 401)

    def start(self, timeout: float = 30) -> None:
        if shutil.which("docker-registry") is None:
            raise StackError("docker-registry not found: apt-get install docker-registry")
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        config = self.root / "config.yml"
        config.write_text(self._config())
        log = self.root / "registry.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(self.alive, f"registry on {self.host}", log, timeout, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


def kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
