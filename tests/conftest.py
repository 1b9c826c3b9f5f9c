"""One real stack (dockerd, an open and a password-protected registry) for the test session."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiodocker
import pytest

from devstack.images import RegistryClient
from devstack.proxy import ThrottleProxy
from devstack.ratelimit import RateLimitedRegistry
from devstack.services import free_port
from devstack.stack import AUTH_USER, Stack, write_docker_secret
from tests.support.cri_fixtures import containerd, cri  # noqa: F401 - fixtures for the session
from tests.support.jcp_process import JcpProcess


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder, so `-m unit` runs in seconds without any daemon."""
    for item in items:
        layer = Path(str(item.path)).parent.name
        if layer in ("unit", "integration"):
            item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # Short paths: dockerd's unix socket path must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="jcp-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    s = Stack(root)
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def open_client(stack: Stack) -> Iterator[RegistryClient]:
    client = stack.open_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def auth_client(stack: Stack) -> Iterator[RegistryClient]:
    client = stack.auth_client()
    yield client
    client.close()


@pytest.fixture
async def docker(stack: Stack) -> AsyncIterator[aiodocker.Docker]:
    client = aiodocker.Docker(url=stack.dockerd.host)
    yield client
    await client.close()


@pytest.fixture
def docker_root(tmp_path: Path, stack: Stack) -> Path:
    """A docker config root holding secret `jarvice-docker` for the password registry."""
    root = tmp_path / "docker"
    write_docker_secret(
        root,
        "jarvice-docker",
        stack.auth_registry.host,
        AUTH_USER,
        stack.auth_registry.password or "",
    )
    return root


_counter = iter(range(1_000_000))


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Repository names unique in the session, so that tests never see each other's images."""
    return lambda prefix: f"{prefix}-{os.getpid()}-{next(_counter)}"


@pytest.fixture
def jcp(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., JcpProcess]]:
    """Start `jcp <command> <args>` against the session's daemon; killed at teardown if alive."""
    started: list[JcpProcess] = []

    def start(command: str, args: list[str], env: dict[str, str] | None = None) -> JcpProcess:
        log = tmp_path / f"jcp-{len(started)}.log"
        http = None
        if command == "run":
            if "--http-addr" not in args:
                http = f"127.0.0.1:{free_port()}"
                args = [*args, "--http-addr", http]
            if "--start-jitter" not in args:
                args = [*args, "--start-jitter", "0"]
        proc = JcpProcess(command, args, log, {"DOCKER_HOST": stack.dockerd.host, **(env or {})})
        proc.http = f"http://{http}" if http else None
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()


@pytest.fixture
def proxy(stack: Stack) -> Iterator[Callable[..., ThrottleProxy]]:
    """Throttling proxies in front of the open registry; stopped at teardown."""
    made: list[ThrottleProxy] = []

    def make(latency: float = 0.0, rate: float | None = None, upstream: str = "") -> ThrottleProxy:
        p = ThrottleProxy(upstream or stack.open_registry.host, latency=latency, rate=rate).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Every test leaves the session's event loop with no task of its own still running."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    assert not leaked, f"test leaked asyncio tasks: {leaked}"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB file system (tmpfs), so that "disk full" is real, not pretended."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def recorder(stack: Stack) -> Iterator[RateLimitedRegistry]:
    """The open registry behind a proxy that records every request (and never limits)."""
    r = RateLimitedRegistry(stack.open_registry.host).start()
    yield r
    r.stop()
