"""`jcp run` / `jcp once` as a user runs them: a real process, its log, its exit code."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest


class JcpProcess:
    def __init__(self, command: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.http: str | None = None
        self._out = log.open("wb")
        full_env = {**os.environ, **env}
        full_env.pop("PULL_INTERVAL", None)
        full_env.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jcp", command, *args],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=full_env,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        return sum(1 for line in self.lines() if rx.search(line))

    async def wait_line(self, pattern: str, *, timeout: float = 30, count: int = 1) -> str:
        """Poll the log until PATTERN has matched COUNT lines; return the last such line."""
        rx = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            hits = [line for line in self.lines() if rx.search(line)]
            if len(hits) >= count:
                return hits[count - 1]
            if self.proc.poll() is not None:
                pytest.fail(
                    f"jcp exited ({self.proc.returncode}) before {pattern!r}:\n{self.text()}"
                )
            if loop.time() > deadline:
                pytest.fail(
                    f"no {count} line(s) matching {pattern!r} in {timeout}s:\n{self.text()}"
                )
            await asyncio.sleep(0.05)

    async def wait_exit(self, timeout: float = 60) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.proc.poll() is None:
            if loop.time() > deadline:
                self.proc.kill()
                pytest.fail(f"jcp did not exit in {timeout}s:\n{self.text()}")
            await asyncio.sleep(0.05)
        self._out.close()
        return self.proc.returncode

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


def engine_args(
    config_dir: Path, docker_root: Path, *, concurrency: int = 4, extra: list[str] | None = None
) -> list[str]:
    return [
        "--config-dir",
        str(config_dir),
        "--docker-config-root",
        str(docker_root),
        "--concurrency",
        str(concurrency),
        "--backoff",
        "0.1",
        *(extra or []),
    ]
