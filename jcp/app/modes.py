"""The two ways the engine runs: `jcp run` (sweep, wait `interval`, repeat; watchers and
pullers as forever-tasks) and `jcp once` (one sweep, then an exit code), and SIGHUP's reloads.

Part of the composition root: `run.py` builds the engine and hands it here.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jcp.engine.runtime_link import RuntimeUnavailableError
from jcp.engine.scheduler import Scheduler
from jcp.settings import DEFAULT_HTTP_ADDR, FleetSettings, NodeSettings

log = logging.getLogger("jcp.app.run")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

Task = tuple[str, Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class RunOptions:
    """What `jcp run` adds around the scheduler."""

    http_addr: str | None = DEFAULT_HTTP_ADDR
    metrics_addr: str | None = None
    """Where /status and /metrics listen when not beside the probes (None: with them)."""
    start_jitter: float = 0.0
    host_root: Path | None = None
    node: NodeSettings = field(default_factory=NodeSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)


async def _forever(name: str, coro: Coroutine[Any, Any, None]) -> None:
    """A task that should never return: if it does, that is a bug, and it is said loudly."""
    await coro
    log.error(f"BUG: task {name} returned; jcp stops so that the pod restarts it")
    raise RuntimeError(f"{name} returned")


async def run_forever(scheduler: Scheduler, options: RunOptions, extra: list[Task]) -> int:
    from jcp.inputs.watch import SecretWatch, watch_dir  # noqa: PLC0415 - see the note on imports

    settings = scheduler.settings
    await scheduler.reload()
    secrets = SecretWatch(settings.docker_config_root, scheduler.secrets_changed)

    async def reload() -> None:
        await scheduler.reload()

    watchers: list[Task] = [
        ("config watcher", watch_dir(settings.config_dir, reload, poll=settings.poll,
                                     what="config directory")),
        ("secret watcher", watch_dir(settings.docker_config_root, secrets.tick,
                                     poll=settings.poll, what="secrets directory",
                                     recursive=True)),
    ]  # fmt: skip
    pullers = [(f"puller {i}", c) for i, c in enumerate(scheduler.pullers())]
    async with asyncio.TaskGroup() as tg:
        for name, coro in [*extra, *watchers, *pullers, ("sweeper", _sweeps(scheduler, options))]:
            tg.create_task(_forever(name, coro))
    return EXIT_OK


async def _sweeps(scheduler: Scheduler, options: RunOptions) -> None:
    loop = asyncio.get_running_loop()
    await scheduler.wait_config()
    if options.host_root is not None and scheduler.label.startswith("Docker"):
        from jcp.lifecycle import runtime_check  # noqa: PLC0415 - see the note on imports above

        runtime_check.warn_if_other_runtime(options.host_root)
    if options.start_jitter > 0:
        delay = random.uniform(0, options.start_jitter)  # noqa: S311 - spreading load, not crypto
        log.info(f"start jitter: first sweep in {delay:.1f}s")
        await asyncio.sleep(delay)
    while True:
        await scheduler.connect(give_up=False)
        sweep = await scheduler.run_sweep()
        await scheduler.wait_interval(sweep.ended or loop.time())


async def run_once(scheduler: Scheduler) -> int:
    await scheduler.reload()
    if scheduler.config is None:
        return EXIT_CONFIG
    try:
        await scheduler.connect(give_up=True)
    except RuntimeUnavailableError as exc:
        log.error(f"ERROR: {exc}")
        return EXIT_FAILED
    async with scheduler.pulling():
        sweep = await scheduler.run_sweep()
    return EXIT_FAILED if sweep.failed else EXIT_OK


HUP_SETTLE = 0.25
"""Seconds a SIGHUP waits for more: a burst of signals becomes one reload."""


async def on_hup(current: Callable[[], Scheduler | None], hup: asyncio.Event) -> None:
    while True:
        await hup.wait()
        signals = 0
        while hup.is_set():  # coalesce: whatever arrives while settling joins this reload
            hup.clear()
            signals += 1
            await asyncio.sleep(HUP_SETTLE)
        more = f" ({signals} signals)" if signals > 1 else ""
        scheduler = current()
        if scheduler is None:
            log.info(f"SIGHUP{more}: still looking for a container runtime; the config and the "
                     "secrets are read once one answers")  # fmt: skip
            continue
        log.info(f"SIGHUP: re-reading the config and the secrets{more}")
        if not await scheduler.reload(force=True) and scheduler.source.last_error is None:
            log.info("SIGHUP: the config in force is unchanged")
        scheduler.secrets_changed()
