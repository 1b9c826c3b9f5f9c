"""The Docker daemon: where it is, whether it answers, and which architecture it runs."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import aiodocker

from jcp.arch import canonical_arch
from jcp.failures import Backoff, classify

log = logging.getLogger(__name__)

NODE_SOCKET = "unix:///var/run/docker.sock"


class DaemonUnavailableError(Exception):
    """The daemon did not answer within the allowed attempts (only `jcp once` gives up)."""


def default_host() -> str:
    return os.environ.get("DOCKER_HOST") or NODE_SOCKET


@dataclass(frozen=True)
class DaemonInfo:
    arch: str | None
    raw_arch: str
    version: str
    api_version: str
    data_root: str


async def probe(docker: aiodocker.Docker) -> DaemonInfo:
    info, version = await asyncio.gather(docker.system.info(), docker.version())
    raw = str(info.get("Architecture", ""))
    return DaemonInfo(
        arch=canonical_arch(raw),
        raw_arch=raw,
        version=str(version.get("Version", "")),
        api_version=str(version.get("ApiVersion", "")),
        data_root=str(info.get("DockerRootDir", "")),
    )


async def wait_for_daemon(
    docker: aiodocker.Docker,
    host: str,
    backoff: Backoff,
    *,
    give_up: bool,
    on_failure: Callable[[], None] | None = None,
) -> DaemonInfo:
    """Probe until the daemon answers, logging each failure with the next delay.

    A node agent must outlive a daemon restart, so `jcp run` waits forever (give_up=False);
    `jcp once` gives up after the backoff's retries and reports it.
    """
    attempt = 0
    while True:
        try:
            return await probe(docker)
        except Exception as exc:
            failure = classify(exc)
            if on_failure is not None:
                on_failure()
            attempt += 1
            if give_up and attempt > backoff.retries:
                raise DaemonUnavailableError(
                    f"Docker daemon at {host} unreachable: {failure.message}"
                ) from None
            delay = backoff.delay(min(attempt, 16))
            log.warning(
                f"Docker daemon at {host} unreachable: {failure.message}; retrying in {delay:.1f}s",
                extra={"fields": {"event": "daemon_unreachable", "docker_host": host}},
            )
            await asyncio.sleep(delay)
