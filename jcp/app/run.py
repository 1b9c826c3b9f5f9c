"""The composition root: wires settings, runtime, watchers, engine and HTTP, and owns the
process lifecycle of `jcp run` and `jcp once`.

SIGTERM and SIGINT only set one stop event; this module turns it into cancellation of the
whole task group, which cancels every pull (the runtime then abandons them). SIGHUP re-reads
the config and the secrets (the daemon convention) instead of killing the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jcp.engine import worker
from jcp.engine.events import Events, Fanout
from jcp.engine.runtime_link import RuntimeUnavailableError, UnknownArchError
from jcp.engine.scheduler import Scheduler
from jcp.model.errors import JcpError
from jcp.runtime.base import ImageRuntime
from jcp.settings import DEFAULT_HTTP_ADDR, NodeSettings, Settings

if TYPE_CHECKING:
    from aiohttp import web

    from jcp.observe.progress import TerminalProgress

# `jcp once` is often a one-shot job: the HTTP server, metrics and the watchers are imported
# only by `jcp run`, which keeps once's start-up (and its share of a sweep) short.

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


@dataclass(frozen=True)
class RunOptions:
    """What `jcp run` adds around the scheduler."""

    http_addr: str | None = DEFAULT_HTTP_ADDR
    start_jitter: float = 0.0
    host_root: Path | None = None
    node: NodeSettings = field(default_factory=NodeSettings)


async def make_runtime(settings: Settings) -> tuple[ImageRuntime, str, str]:
    """The runtime to warm, how logs name it, and why it was chosen."""
    from jcp.runtime.docker import DockerRuntime, default_host  # noqa: PLC0415

    if settings.runtime == "docker":  # explicit: no probing, the daemon may come up later
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


async def _find_runtime(
    settings: Settings, stop: asyncio.Event, *, once: bool
) -> tuple[ImageRuntime, str, str]:
    """`jcp once` reports a missing runtime; `jcp run` waits for one to appear (a DaemonSet
    that exits on a node whose runtime starts after it would crash-loop)."""
    said = False
    while True:
        try:
            return await make_runtime(settings)
        except JcpError as exc:
            if once:
                raise
            if not said:
                log.error(f"ERROR: {exc}; probing again every 5s")
                said = True
        try:
            async with asyncio.timeout(5):
                await stop.wait()
        except TimeoutError:
            continue
        raise asyncio.CancelledError


async def _forever(name: str, coro: Coroutine[Any, Any, None]) -> None:
    """A task that should never return: if it does, that is a bug, and it is said loudly."""
    await coro
    log.error(f"BUG: task {name} returned; jcp stops so that the pod restarts it")
    raise RuntimeError(f"{name} returned")


async def _run_forever(
    scheduler: Scheduler, options: RunOptions, extra: list[tuple[str, Coroutine[Any, Any, None]]]
) -> int:
    from jcp.inputs.watch import SecretWatch, watch_dir  # noqa: PLC0415 - see the note on imports

    settings = scheduler.settings
    await scheduler.reload()
    secrets = SecretWatch(settings.docker_config_root, scheduler.secrets_changed)

    async def reload() -> None:
        await scheduler.reload()

    async with asyncio.TaskGroup() as tg:
        for name, coro in extra:
            tg.create_task(_forever(name, coro))
        tg.create_task(
            _forever(
                "config watcher",
                watch_dir(settings.config_dir, reload, poll=settings.poll, what="config directory"),
            )
        )
        tg.create_task(
            _forever(
                "secret watcher",
                watch_dir(
                    settings.docker_config_root,
                    secrets.tick,
                    poll=settings.poll,
                    what="secrets directory",
                    recursive=True,
                ),
            )
        )
        for i in range(settings.concurrency):
            tg.create_task(_forever(f"puller {i}", worker.work(scheduler)))
        tg.create_task(_forever("sweeper", _sweeps(scheduler, options)))
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


async def _run_once(scheduler: Scheduler) -> int:
    await scheduler.reload()
    if scheduler.config is None:
        return EXIT_CONFIG
    try:
        await scheduler.connect(give_up=True)
    except RuntimeUnavailableError as exc:
        log.error(f"ERROR: {exc}")
        return EXIT_FAILED
    workers = [
        asyncio.create_task(worker.work(scheduler)) for _ in range(scheduler.settings.concurrency)
    ]
    try:
        sweep = await scheduler.run_sweep()
    finally:
        scheduler.cancel_retries()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return EXIT_FAILED if sweep.failed else EXIT_OK


def _domain_error(exc: BaseException) -> JcpError | None:
    if isinstance(exc, (UnknownArchError, RuntimeUnavailableError)):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _domain_error(inner)
            if found is not None:
                return found
    return None


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
    try:
        runtime, label, why = await _find_runtime(settings, stop, once=once)
    except JcpError as exc:
        log.error(f"ERROR: {exc}")
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        return EXIT_FAILED
    except asyncio.CancelledError:  # stopped while waiting for a runtime to appear
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        return EXIT_FAILED if once else EXIT_OK
    log.info(f"runtime: {label} ({why})", extra={"fields": {"event": "runtime_chosen"}})
    sinks: list[Events] = []
    metrics = None
    if not once:
        from jcp.observe import http  # noqa: PLC0415 - see the note on imports above
        from jcp.observe.metrics import Metrics  # noqa: PLC0415

        metrics = Metrics()
        sinks.append(metrics)
    extra: list[tuple[str, Coroutine[Any, Any, None]]] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    remote = None
    if settings.refresh == "digest" or settings.inspect != "never":
        from jcp.registry.client import RegistryClient  # noqa: PLC0415

        remote = RegistryClient(
            insecure=settings.insecure_registries,
            on_request=metrics.registry_request if metrics is not None else None,
            on_limits=metrics.registry_limits if metrics is not None else None,
        )
        closers.append(remote.close)
    scheduler = Scheduler(
        settings, runtime, label=label, events=Fanout(*sinks), choice=why, remote=remote
    )
    if not once:
        from jcp.app.node import node_lifecycle  # noqa: PLC0415

        node_lifecycle(scheduler, options.node, sinks, extra, closers, metrics=metrics)
        scheduler.events = Fanout(*sinks)
    hup = asyncio.Event()
    if not once:
        loop.add_signal_handler(signal.SIGHUP, hup.set)
    work = asyncio.create_task(
        _run_once(scheduler) if once else _run_forever(scheduler, options, extra)
    )
    side: list[asyncio.Task[Any]] = [asyncio.create_task(_on_hup(scheduler, hup))]
    if display is not None:
        side.append(asyncio.create_task(display.run(scheduler.snapshot)))
    runner = None
    if metrics is not None and options.http_addr:
        host, port = http.parse_addr(options.http_addr)
        app = http.make_app(scheduler.snapshot, metrics.render, alive=lambda: not work.done())
        try:
            runner = await http.serve(app, host, port)
        except OSError as exc:
            log.error(f"ERROR: cannot listen on {options.http_addr}: {exc.strerror}")
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            await _cleanup(loop, scheduler, side, runner)
            return EXIT_CONFIG
        log.info(f"serving /healthz /readyz /metrics /status on {options.http_addr}")
    stopper = asyncio.create_task(stop.wait())
    side.append(stopper)
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            try:
                return work.result()
            except (JcpError, ExceptionGroup) as exc:
                known = _domain_error(exc)
                if known is None:
                    raise
                log.error(f"ERROR: {known}")
                return EXIT_CONFIG if isinstance(known, UnknownArchError) else EXIT_FAILED
        log.info("stop signal received: cancelling pulls in flight and exiting")
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        return EXIT_FAILED if once else EXIT_OK
    finally:
        await _cleanup(loop, scheduler, side, runner)
        for close in closers:
            await close()
        for _, coro in extra:
            coro.close()  # never started when the work ended early


async def _on_hup(scheduler: Scheduler, hup: asyncio.Event) -> None:
    while True:
        await hup.wait()
        hup.clear()
        log.info("SIGHUP: re-reading the config and the secrets")
        await scheduler.reload(force=True)
        scheduler.secrets_changed()


async def _cleanup(
    loop: asyncio.AbstractEventLoop,
    scheduler: Scheduler,
    side: list[asyncio.Task[Any]],
    runner: web.AppRunner | None,
) -> None:
    scheduler.cancel_retries()
    for task in side:
        task.cancel()
    await asyncio.gather(*side, return_exceptions=True)
    if runner is not None:
        await runner.cleanup()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.remove_signal_handler(sig)
    await scheduler.runtime.close()
