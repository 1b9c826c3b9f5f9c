"""jcp tunes glibc's malloc for the fetch's buffers, unless the environment does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jcp.cli import malloc


def _tune(env: dict[str, str]) -> str:
    code = "from jcp.cli import malloc; print(malloc.tune())"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_glibc_takes_the_thresholds() -> None:
    assert _tune({}) == "True"  # this machine's libc is glibc: mallopt accepted both


@pytest.mark.parametrize("name", malloc._OWN)
def test_an_environment_that_tunes_malloc_is_left_alone(name: str) -> None:
    assert _tune({name: "1"}) == "False"
