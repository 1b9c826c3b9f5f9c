"""`jcp run` and `jcp once`: the process lifecycle around the scheduler.

SIGTERM and SIGINT only set one stop event; this module turns it into cancellation of the
whole task group, which closes every pull stream (the daemon then abandons those pulls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiodocker

from jcp.daemon import DaemonUnavailableError
from jcp.observer import Observer, Observers
from jcp.scheduler import Scheduler, Settings, UnknownArchError

if TYPE_CHECKING:
    from jcp.progress import TerminalProgress

# `jcp once` is often a one-shot job: the HTTP server, metrics and the config watcher are
# imported only by `jcp run`, which keeps once's start-up (and its share of a sweep) short.

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


async def _forever(name: str, coro: Coroutine[Any, Any, None]) -> None:
    """A task that should never return: if it does, that is a bug, and it is said loudly."""
    await coro
    log.error(f"BUG: task {name} returned; jcp stops so that the pod restarts it")
    raise RuntimeError(f"{name} returned")


async def _run_forever(scheduler: Scheduler, options: RunOptions) -> int:
    from jcp.watch import watch_config  # noqa: PLC0415 - see the note on imports above

    await scheduler.reload()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(_forever("config watcher", watch_config(scheduler)))
        for i in range(scheduler.settings.concurrency):
            tg.create_task(_forever(f"puller {i}", scheduler.worker()))
        tg.create_task(_forever("sweeper", _sweeps(scheduler, options)))
    return EXIT_OK


async def _sweeps(scheduler: Scheduler, options: RunOptions) -> None:
    loop = asyncio.get_running_loop()
    await scheduler.wait_config()
    if options.host_root is not None:
        from jcp import runtime_check  # noqa: PLC0415 - see the note on imports above

        runtime_check.warn_if_other_runtime(options.host_root)
    if options.start_jitter > 0:
        delay = random.uniform(0, options.start_jitter)  # noqa: S311 - spreading load, not crypto
        log.info(f"start jitter: first sweep in {delay:.1f}s")
        await asyncio.sleep(delay)
    while True:
        await scheduler.connect(give_up=False)
        sweep = await scheduler.run_sweep()
        await scheduler.wait_interval(sweep.ended or loop.time())


async def _run_once(scheduler: Scheduler) -> int:
    await scheduler.reload()
    if scheduler.config is None:
        return EXIT_CONFIG
    try:
        await scheduler.connect(give_up=True)
    except DaemonUnavailableError as exc:
        log.error(f"ERROR: {exc}")
        return EXIT_FAILED
    workers = [
        asyncio.create_task(scheduler.worker()) for _ in range(scheduler.settings.concurrency)
    ]
    try:
        sweep = await scheduler.run_sweep()
    finally:
        scheduler.cancel_retries()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return EXIT_FAILED if sweep.failed else EXIT_OK


def _unknown_arch(exc: BaseException) -> UnknownArchError | None:
    if isinstance(exc, UnknownArchError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _unknown_arch(inner)
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class RunOptions:
    """What `jcp run` adds around the scheduler."""

    http_addr: str | None = ":8080"
    start_jitter: float = 0.0
    host_root: Path | None = None


async def main(
    settings: Settings,
    *,
    once: bool,
    display: TerminalProgress | None = None,
    options: RunOptions | None = None,
) -> int:
    """Run until done (once) or until SIGTERM/SIGINT (run); returns the exit code."""
    options = options or RunOptions()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    observers: list[Observer] = []
    if not once:
        from jcp import http  # noqa: PLC0415 - see the note on imports above
        from jcp.metrics import Metrics  # noqa: PLC0415

        metrics = Metrics()
        observers.append(metrics)
    if display is not None:
        observers.append(display)
    docker = aiodocker.Docker(url=settings.docker_host)
    scheduler = Scheduler(settings, docker, observer=Observers(*observers))
    work = asyncio.create_task(_run_once(scheduler) if once else _run_forever(scheduler, options))
    side = [asyncio.create_task(display.run(scheduler))] if display is not None else []
    runner = None
    if not once and options.http_addr:
        host, port = http.parse_addr(options.http_addr)
        app = http.make_app(scheduler, metrics, alive=lambda: not work.done())
        try:
            runner = await http.serve(app, host, port)
        except OSError as exc:
            log.error(f"ERROR: cannot listen on {options.http_addr}: {exc.strerror}")
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            await docker.close()
            return EXIT_CONFIG
        log.info(f"serving /healthz /readyz /metrics /status on {options.http_addr}")
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            try:
                return work.result()
            except (UnknownArchError, ExceptionGroup) as exc:
                arch = _unknown_arch(exc)
                if arch is None:
                    raise
                log.error(f"ERROR: {arch}")
                return EXIT_CONFIG
        log.info("stop signal received: cancelling pulls in flight and exiting")
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        return EXIT_FAILED if once else EXIT_OK
    finally:
        scheduler.cancel_retries()
        for task in (stopper, *side):
            task.cancel()
        await asyncio.gather(stopper, *side, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await docker.close()
