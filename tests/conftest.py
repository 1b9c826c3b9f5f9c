"""One real stack (dockerd, an open and a password-protected registry) for the test session."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiodocker
import pytest

from jcp.devstack.images import RegistryClient
from jcp.devstack.stack import AUTH_USER, Stack, write_docker_secret


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


async def wait_for(predicate: Callable[[], object], timeout: float = 20, what: str = "") -> None:
    """Poll PREDICATE (sync or async) until true; fail with WHAT after TIMEOUT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.05)


async def image_present(docker: aiodocker.Docker, ref: str) -> bool:
    try:
        await docker.images.inspect(ref)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return False
        raise
    return True
