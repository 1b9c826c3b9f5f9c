"""The paced link for tests: a registry whose every connection runs at 20 MB/s.

`from tests.support.paced_fixtures import paced_link` in a test module (or the conftest) gives
the session one link (devstack/paced_link.py), started on first use and gone at the end; a
containerd reaches it over plain HTTP after `containerd.add_registry(paced_link.host)`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.paced_link import PacedLink


@pytest.fixture(scope="session")
def paced_link() -> Iterator[PacedLink]:
    if os.geteuid() != 0:
        pytest.skip("a paced link needs root (network namespaces, tc, iptables)")
    root = Path(tempfile.mkdtemp(prefix="jcpl-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    with PacedLink(root) as link:
        yield link
    shutil.rmtree(root, ignore_errors=True)
