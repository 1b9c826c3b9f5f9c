"""A real containerd for the test session, sending the session's loopback registries over HTTP."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devstack.containerd import Containerd
from devstack.stack import Stack
from jcp.runtime.cri import CriRuntime


@pytest.fixture(scope="session")
def containerd(stack: Stack) -> Iterator[Containerd]:
    # Short paths: the unix socket path must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="jcpc-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    c = Containerd(root, registries=[stack.open_registry.host, stack.auth_registry.host])
    c.start()
    yield c
    c.stop()
    shutil.rmtree(root, ignore_errors=True)  # its images: unpacked snapshots of every pull


@pytest.fixture
async def cri(containerd: Containerd) -> AsyncIterator[CriRuntime]:
    """jcp's CRI runtime on the test containerd (one channel, as jcp holds it)."""
    runtime = CriRuntime(containerd.endpoint)
    yield runtime
    await runtime.close()
