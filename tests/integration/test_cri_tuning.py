"""containerd 1.6 and 1.7 tell jcp their pull settings through a verbose CRI Status."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.containerd import Containerd
from jcp.runtime.cri import CriRuntime
from tests.support.containerd17 import containerd17_binary


@pytest.fixture
def containerd_17() -> Iterator[Containerd]:
    binary = containerd17_binary()
    root = Path(tempfile.mkdtemp(prefix="jcpt7-", dir="/tmp"))
    c = Containerd(root, binary=binary)
    c.start()
    yield c
    c.stop()
    shutil.rmtree(root, ignore_errors=True)


async def _tuning_of(endpoint: str) -> list[str]:
    runtime = CriRuntime(endpoint)
    try:
        tuning = await runtime.tuning()
    finally:
        await runtime.close()
    assert tuning.max_concurrent_downloads == 3  # containerd's default
    assert tuning.discard_unpacked_layers is False
    assert tuning.ranged_fetch is False  # before 2.1, containerd fetches a layer over one stream
    assert tuning.config_path is not None
    assert tuning.config_path.endswith("certs.d")  # devstack's hosts.toml directory
    return tuning.lines("containerd")


async def test_containerd_16_says_its_download_slots(containerd: Containerd) -> None:
    lines = await _tuning_of(containerd.endpoint)
    assert lines == [
        (
            "containerd downloads at most 3 layers at once for all pulls "
            "(max_concurrent_downloads): pulls beyond that queue inside it"
        )
    ]


async def test_containerd_17_says_its_download_slots(containerd_17: Containerd) -> None:
    assert len(await _tuning_of(containerd_17.endpoint)) == 1
