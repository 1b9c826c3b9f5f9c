"""Which runtime to warm: chosen once at start, and waited for when none answers yet.

Part of the composition root: it knows the concrete adapters. `jcp once` reports a missing
runtime; `jcp run` waits for one to appear (a DaemonSet that exits on a node whose runtime
starts after it would crash-loop), and says what it waits for, on /readyz too.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from jcp.model.errors import JcpError
from jcp.runtime.base import ImageRuntime
from jcp.settings import RuntimeChoice, Settings

log = logging.getLogger("jcp.app.run")

FIND_EVERY = 5.0
"""Seconds between looks for a runtime while none answers (`jcp run`)."""


async def make_runtime(settings: Settings) -> tuple[ImageRuntime, str, str]:
    """The runtime to warm, how logs name it, and why it was chosen."""
    from jcp.runtime.docker import DockerRuntime, default_host  # noqa: PLC0415

    if settings.runtime == RuntimeChoice.DOCKER:  # explicit: no probing, it may come up later
        endpoint = settings.runtime_endpoint or default_host()
        return DockerRuntime(endpoint), f"Docker daemon at {endpoint}", "--runtime docker"
    from jcp.runtime.choose import choose  # noqa: PLC0415

    runtime, why = await choose(
        settings.runtime,
        settings.runtime_endpoint,
        kubelet_endpoint=os.environ.get("KUBELET_RUNTIME_ENDPOINT") or None,
    )
    if isinstance(runtime, DockerRuntime):
        return runtime, f"Docker daemon at {runtime.endpoint}", why
    return runtime, f"CRI runtime at {runtime.endpoint}", why


async def find_runtime(
    settings: Settings, *, once: bool, waiting: Callable[[str], None]
) -> tuple[ImageRuntime, str, str]:
    """The runtime; `jcp run` looks again every FIND_EVERY seconds, telling WAITING why."""
    said = False
    while True:
        try:
            return await make_runtime(settings)
        except JcpError as exc:
            if once:
                raise
            waiting(f"waiting for a container runtime: {exc}")
            if not said:
                log.error(f"ERROR: {exc}; probing again every {FIND_EVERY:g}s")
                said = True
        await asyncio.sleep(FIND_EVERY)
