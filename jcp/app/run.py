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
import dataclasses
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jcp.app import modes
from jcp.app.modes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, RunOptions, Task
from jcp.app.runtime import find_runtime
from jcp.engine import readmodel
from jcp.engine.events import Fanout
from jcp.engine.fleet import FleetHold
from jcp.engine.runtime_link import RuntimeUnavailableError, UnknownArchError
from jcp.engine.scheduler import Scheduler
from jcp.engine.state import Snapshot
from jcp.model.errors import JcpError
from jcp.model.fetch import FetchCounts
from jcp.settings import (
    FetchMode,
    Inspect,
    Refresh,
    Settings,
)

if TYPE_CHECKING:
    from aiohttp import web

    from jcp.observe.metrics import Metrics
    from jcp.observe.progress import TerminalProgress

# `jcp once` is often a one-shot job: the HTTP server, metrics and the watchers are imported
# only by `jcp run`, which keeps once's start-up (and its share of a sweep) short.

log = logging.getLogger(__name__)

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "RunOptions", "main"]


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
    surface = http.make_app(
        agent.snapshot, metrics.render, alive=agent.alive, extra=metrics.status_extra
    )
    runner = await http.serve(surface, host, port, data=data)
    where = f"{options.http_addr}" + (
        f", /metrics /status on {options.metrics_addr}" if data else ""
    )
    log.info(f"serving /healthz /readyz /metrics /status on {where}")
    return runner


def _build(
    settings: Settings,
    found: tuple[Any, str, str],
    metrics: Metrics | None,
    fleet: FleetHold | None,
) -> tuple[Scheduler, list[Callable[[], Awaitable[None]]]]:
    """The engine over the chosen runtime, with the registry client when it is asked (and
    what to close at exit)."""
    runtime, label, why = found
    remote = None
    # The CRI adapter's module is loaded only when the runtime is one (gRPC is heavy to import).
    cri = sys.modules.get("jcp.runtime.cri")
    is_cri = cri is not None and isinstance(runtime, cri.CriRuntime)
    fetch = settings.fetch.mode != FetchMode.OFF and is_cri
    if settings.refresh == Refresh.DIGEST or settings.inspect != Inspect.NEVER or fetch:
        from jcp.registry.client import RegistryClient  # noqa: PLC0415
        from jcp.registry.hosts import HostsConfig  # noqa: PLC0415

        hosts = None
        if settings.registry_config_path is not None:
            hosts = HostsConfig(settings.registry_config_path)
            log.info(f"registry host config (containerd's config_path) {hosts.describe()}")
        remote = RegistryClient(
            insecure=settings.insecure_registries,
            hosts=hosts,
            on_request=metrics.registry_request if metrics is not None else None,
            on_limits=metrics.registry_limits if metrics is not None else None,
        )
    if is_cri and remote is not None:
        from jcp.fetch.runtime import FetchingRuntime  # noqa: PLC0415

        counts = FetchCounts()
        # The lease must outlive the longest pull it holds content for: at least the timeout.
        ttl = max(settings.fetch.lease_ttl, settings.pull_timeout)
        fetch_settings = dataclasses.replace(settings.fetch, lease_ttl=ttl)
        runtime = FetchingRuntime(runtime, remote, fetch_settings, counts)
        if metrics is not None:
            metrics.fetch.watch(counts)
    events = Fanout(*([metrics] if metrics is not None else []))
    if is_cri and remote is not None:
        events.add(runtime.janitor())
    scheduler = Scheduler(
        settings,
        runtime,
        label=label,
        events=events,
        choice=why,
        remote=remote,
        fleet=fleet,
    )
    if is_cri and remote is not None:
        runtime.policy.askable = scheduler.tools.gate.askable
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
    side: list[asyncio.Task[Any]] = [
        asyncio.create_task(modes.on_hup(lambda: agent.scheduler, hup))
    ]
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
    fleet = None
    if not once and options.fleet.enabled:
        from jcp.app.node import fleet_slot  # noqa: PLC0415 - kubernetes_asyncio is heavy

        exempt = frozenset(options.fleet.exempt_registries)
        fleet = FleetHold(fleet_slot(options.fleet, options.node), exempt=exempt)
        agent.closers.append(fleet.close)
    scheduler, closers = _build(run.settings, found, metrics, fleet)
    agent.closers.extend(closers)
    if not once:
        from jcp.app.node import node_lifecycle  # noqa: PLC0415

        parts = node_lifecycle(scheduler, options.node, metrics)
        for sink in parts.sinks:
            scheduler.events.add(sink)
        agent.tasks, agent.closers = parts.tasks, [*agent.closers, *parts.closers]
    agent.scheduler = scheduler
    work = asyncio.create_task(
        modes.run_once(scheduler) if once else modes.run_forever(scheduler, options, agent.tasks)
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
