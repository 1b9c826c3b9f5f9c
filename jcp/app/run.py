"""The composition root: wires settings, runtime, watchers, engine and HTTP, and owns the
process lifecycle of `jcp run` and `jcp once`.

SIGTERM and SIGINT only set one stop event; this module turns it into cancellation of the
whole task group, which cancels every pull (the runtime then abandons them). SIGHUP re-reads
the config and the secrets (the daemon convention) instead of killing the agent. The signal
handlers and (for `jcp run`) the HTTP server are up from the first second, before any runtime
answers: a node whose runtime starts late keeps its pod, and /readyz says what it waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jcp.app.runtime import find_runtime
from jcp.engine import readmodel
from jcp.engine.events import Fanout
from jcp.engine.runtime_link import RuntimeUnavailableError, UnknownArchError
from jcp.engine.scheduler import Scheduler
from jcp.engine.state import Snapshot
from jcp.model.errors import JcpError
from jcp.settings import DEFAULT_HTTP_ADDR, Inspect, NodeSettings, Refresh, Settings

if TYPE_CHECKING:
    from aiohttp import web

    from jcp.observe.metrics import Metrics
    from jcp.observe.progress import TerminalProgress

# `jcp once` is often a one-shot job: the HTTP server, metrics and the watchers are imported
# only by `jcp run`, which keeps once's start-up (and its share of a sweep) short.

log = logging.getLogger(__name__)

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


class _Agent:
    """What the process holds: the engine once built, and what it waits for until then."""

    def __init__(self) -> None:
        self.scheduler: Scheduler | None = None
        self.work: asyncio.Task[int] | None = None
        self.waiting_for: str | None = None
        self.closers: list[Callable[[], Awaitable[None]]] = []
        self.tasks: list[Task] = []

    def snapshot(self) -> Snapshot:
        if self.scheduler is None:
            return readmodel.booting(self.waiting_for)
        return self.scheduler.snapshot()

    def alive(self) -> bool:
        return self.work is None or not self.work.done()

    def waiting(self, why: str) -> None:
        self.waiting_for = why


async def _forever(name: str, coro: Coroutine[Any, Any, None]) -> None:
    """A task that should never return: if it does, that is a bug, and it is said loudly."""
    await coro
    log.error(f"BUG: task {name} returned; jcp stops so that the pod restarts it")
    raise RuntimeError(f"{name} returned")


async def _run_forever(scheduler: Scheduler, options: RunOptions, extra: list[Task]) -> int:
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


async def _run_once(scheduler: Scheduler) -> int:
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


def _domain_error(exc: BaseException) -> JcpError | None:
    if isinstance(exc, (UnknownArchError, RuntimeUnavailableError)):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _domain_error(inner)
            if found is not None:
                return found
    return None


async def _serve(options: RunOptions, agent: _Agent, metrics: Metrics) -> web.AppRunner | None:
    """The probes, /metrics and /status, from the first second. Raises OSError (the address
    cannot be bound), said by the caller."""
    if not options.http_addr:
        return None
    from jcp.observe import http  # noqa: PLC0415 - see the note on imports above

    host, port = http.parse_addr(options.http_addr)
    data = http.parse_addr(options.metrics_addr) if options.metrics_addr else None
    surface = http.make_app(agent.snapshot, metrics.render, alive=agent.alive)
    runner = await http.serve(surface, host, port, data=data)
    where = f"{options.http_addr}" + (
        f", /metrics /status on {options.metrics_addr}" if data else ""
    )
    log.info(f"serving /healthz /readyz /metrics /status on {where}")
    return runner


def _build(
    settings: Settings, found: tuple[Any, str, str], metrics: Metrics | None
) -> tuple[Scheduler, list[Callable[[], Awaitable[None]]]]:
    """The engine over the chosen runtime, with the registry client when it is asked (and
    what to close at exit)."""
    runtime, label, why = found
    remote = None
    if settings.refresh == Refresh.DIGEST or settings.inspect != Inspect.NEVER:
        from jcp.registry.client import RegistryClient  # noqa: PLC0415

        remote = RegistryClient(
            insecure=settings.insecure_registries,
            on_request=metrics.registry_request if metrics is not None else None,
            on_limits=metrics.registry_limits if metrics is not None else None,
        )
    events = Fanout(*([metrics] if metrics is not None else []))
    scheduler = Scheduler(settings, runtime, label=label, events=events, choice=why, remote=remote)
    return scheduler, [remote.close] if remote is not None else []


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
    stop, hup, agent = asyncio.Event(), asyncio.Event(), _Agent()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not once:  # SIGHUP never stops the agent, not even before a runtime answers
        loop.add_signal_handler(signal.SIGHUP, hup.set)
    side: list[asyncio.Task[Any]] = [asyncio.create_task(_on_hup(agent, hup))]
    runner = None
    try:
        metrics = None
        if not once:
            from jcp.observe.metrics import Metrics  # noqa: PLC0415

            metrics = Metrics()
            try:
                runner = await _serve(options, agent, metrics)
            except OSError as exc:
                log.error(f"ERROR: cannot listen on {options.http_addr}: {exc.strerror}")
                return EXIT_CONFIG
        found = await _until_stopped(find_runtime(settings, once=once, waiting=agent.waiting), stop)
        if found is None:  # stopped while waiting for a runtime to appear
            return EXIT_FAILED if once else EXIT_OK
        run = _Run(settings, options, once, display, stop, hup)
        return await _drive(run, found, metrics, agent, side)
    except JcpError as exc:  # no runtime (`jcp once`)
        log.error(f"ERROR: {exc}")
        return EXIT_FAILED
    finally:
        await _cleanup(loop, agent, side, runner)


async def _until_stopped(coro: Coroutine[Any, Any, Any], stop: asyncio.Event) -> Any:  # noqa: ANN401
    """CORO's result, or None if STOP came first (CORO is then cancelled)."""
    task = asyncio.ensure_future(coro)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


@dataclass(frozen=True)
class _Run:
    """What main() was asked to do, handed on whole."""

    settings: Settings
    options: RunOptions
    once: bool
    display: TerminalProgress | None
    stop: asyncio.Event
    hup: asyncio.Event


async def _drive(
    run: _Run,
    found: tuple[Any, str, str],
    metrics: Metrics | None,
    agent: _Agent,
    side: list[asyncio.Task[Any]],
) -> int:
    """Build the engine over the runtime found, run it, and turn its end into an exit code."""
    once, options, display = run.once, run.options, run.display
    log.info(f"runtime: {found[1]} ({found[2]})", extra={"fields": {"event": "runtime_chosen"}})
    scheduler, closers = _build(run.settings, found, metrics)
    agent.closers.extend(closers)
    if not once:
        from jcp.app.node import node_lifecycle  # noqa: PLC0415

        parts = node_lifecycle(scheduler, options.node, metrics)
        for sink in parts.sinks:
            scheduler.events.add(sink)
        agent.tasks, agent.closers = parts.tasks, [*agent.closers, *parts.closers]
    agent.scheduler = scheduler
    work = asyncio.create_task(
        _run_once(scheduler) if once else _run_forever(scheduler, options, agent.tasks)
    )
    agent.work = work
    if display is not None:
        side.append(asyncio.create_task(display.run(scheduler.snapshot)))
    stopper = asyncio.create_task(run.stop.wait())
    side.append(stopper)
    await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if not work.done():
        log.info("stop signal received: cancelling pulls in flight and exiting")
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        return EXIT_FAILED if once else EXIT_OK
    try:
        return work.result()
    except (JcpError, ExceptionGroup) as exc:
        known = _domain_error(exc)
        if known is None:
            raise
        log.error(f"ERROR: {known}")
        return EXIT_CONFIG if isinstance(known, UnknownArchError) else EXIT_FAILED


HUP_SETTLE = 0.25
"""Seconds a SIGHUP waits for more: a burst of signals becomes one reload."""


async def _on_hup(agent: _Agent, hup: asyncio.Event) -> None:
    while True:
        await hup.wait()
        signals = 0
        while hup.is_set():  # coalesce: whatever arrives while settling joins this reload
            hup.clear()
            signals += 1
            await asyncio.sleep(HUP_SETTLE)
        more = f" ({signals} signals)" if signals > 1 else ""
        scheduler = agent.scheduler
        if scheduler is None:
            log.info(f"SIGHUP{more}: still looking for a container runtime; the config and the "
                     "secrets are read once one answers")  # fmt: skip
            continue
        log.info(f"SIGHUP: re-reading the config and the secrets{more}")
        if not await scheduler.reload(force=True) and scheduler.source.last_error is None:
            log.info("SIGHUP: the config in force is unchanged")
        scheduler.secrets_changed()


async def _cleanup(
    loop: asyncio.AbstractEventLoop,
    agent: _Agent,
    side: list[asyncio.Task[Any]],
    runner: web.AppRunner | None,
) -> None:
    scheduler = agent.scheduler
    if scheduler is not None:
        scheduler.cancel_retries()
    for task in side:
        task.cancel()
    await asyncio.gather(*side, return_exceptions=True)
    if runner is not None:
        await runner.cleanup()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.remove_signal_handler(sig)
    if scheduler is not None:
        await scheduler.runtime.close()
    for close in agent.closers:
        await close()
    for _, coro in agent.tasks:
        coro.close()  # never started when the work ended early
