"""containerd 1.7 for the tests: Debian trixie's binary, fetched and checked once by
scripts/install-containerd17.sh; a test skips (saying why) where it cannot be fetched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def containerd17_binary() -> str:
    """The path of the containerd 1.7 binary, or the test is skipped."""
    got = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-containerd17.sh")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if got.returncode != 0:
        pytest.skip(f"no containerd 1.7 binary could be fetched: {got.stderr.strip()[-300:]}")
    return got.stdout.strip()
