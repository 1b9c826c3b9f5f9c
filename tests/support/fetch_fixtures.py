"""Fixtures of the blob-fetch tests: each test on real containerd 1.6 (Debian's, the session's)
and 1.7 (Debian trixie's binary, scripts/install-containerd17.sh), a content store client on
it, blob proxies in front of the test registries, and fetchers. A test module takes them
with `pytest_plugins = ("tests.support.fetch_fixtures",)`."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from devstack.containerd import Containerd
from devstack.stack import Stack
from jcp.registry.blobs import BlobFetcher
from jcp.registry.client import RegistryClient
from jcp.runtime.content_store import ContentStore
from tests.support.blob_proxy import BlobProxy
from tests.support.containerd17 import containerd17_binary


@pytest.fixture(scope="module")
def containerd17(stack: Stack) -> Iterator[Containerd]:
    binary = containerd17_binary()
    root = Path(tempfile.mkdtemp(prefix="jcpf7-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    hosts = [stack.open_registry.host, stack.auth_registry.host]
    c = Containerd(root, registries=hosts, binary=binary)
    c.start()
    yield c
    c.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["1.6", "1.7"])
def runtime(request: pytest.FixtureRequest) -> Containerd:
    name = "containerd" if request.param == "1.6" else "containerd17"
    found = request.getfixturevalue(name)
    assert isinstance(found, Containerd)
    return found


@pytest.fixture
async def store(runtime: Containerd) -> AsyncIterator[ContentStore]:
    s = ContentStore(runtime.endpoint)
    yield s
    await s.close()


@pytest.fixture
def blob_proxy() -> Iterator[Callable[..., BlobProxy]]:
    made: list[BlobProxy] = []

    def make(upstream: str, **kw: object) -> BlobProxy:
        p = BlobProxy(upstream, **kw).start()  # type: ignore[arg-type]
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


@pytest.fixture
async def fetcher() -> AsyncIterator[Callable[..., BlobFetcher]]:
    """BlobFetchers on one RegistryClient, closed at teardown."""
    client = RegistryClient()
    made: list[BlobFetcher] = []

    def make(**kw: int) -> BlobFetcher:
        f = BlobFetcher(client, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        await f.close()
    await client.close()
