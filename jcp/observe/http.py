"""One small aiohttp server: /healthz and /readyz for the kubelet, /metrics, /status.

Every handler reads one `Snapshot` (the engine's read model) and nothing else, and no request
may cost more than a small fixed share of the event loop the pulls run on: rendering /status
and /metrics may take a tenth of the time (`render_share`: a body that took 25 ms to render is
served again for 0.5 s, one that took 1 ms for 20 ms), the probes read a snapshot at most a
second old and do no work that grows with the image count, and `http_limits` bounds
connections, pace and log lines. /status and /metrics may listen on another address than the
probes (`--metrics-addr`). Signals are left to jcp's own handlers (handle_signals=False): the
server is one more task that the stop event cancels.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from jcp.engine.state import Snapshot
from jcp.observe.documents import health, parse_addr, readiness, status
from jcp.observe.http_limits import BoundedSite, Pacer, tamed_logger
from jcp.settings import HttpLimits

SnapshotSource = Callable[[], Snapshot]
MetricsBody = Callable[[Snapshot], tuple[bytes, str]]
Extra = Callable[[], dict[str, Any]]
"""More top-level sections of /status (e.g. the purge ledger's health)."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROBES = ("/healthz", "/readyz")
DATA = ("/metrics", "/status")
__all__ = ["Surface", "health", "make_app", "parse_addr", "readiness", "serve", "status"]


@dataclass
class _Body:
    snap: Snapshot
    alive: bool
    data: bytes
    content_type: str
    at: float
    gap: float
    """Seconds it is served again before a fresh render: its cost / (`render_share` / 2), so
    that the two bodies together take at most `render_share` of the time, without bursts."""


FRESH_RENDERS = 4
"""Renders a second that are always fresh after a change (a scrape, a person's curl); beyond,
a body is served again for 20 times its cost, so rendering takes a tenth of the time at most."""


class Surface:
    """The four endpoints over one cached read of the engine's snapshot."""

    def __init__(
        self,
        snapshot: SnapshotSource,
        metrics_body: MetricsBody,
        alive: Callable[[], bool],
        *,
        extra: Extra | None = None,
        limits: HttpLimits | None = None,
    ) -> None:
        self._source, self._metrics_body, self._alive = snapshot, metrics_body, alive
        self._extra = extra
        self.limits = limits or HttpLimits()
        self._snap: Snapshot | None = None
        self._snap_at = 0.0
        self._bodies: dict[str, _Body] = {}
        self._rendered: list[float] = []  # when bodies were rendered, the last second's
        self._pacer = Pacer(self.limits.data_rate, max_wait=3600)
        self._waiting = 0
        self.renders = 0
        """Bodies rendered so far (tests check that a burst of requests renders few)."""
        self.listening: dict[str, tuple[str, int]] = {}
        """What serves where, once listening: `all`, or `probes` and `data` -> (host, port)."""

    def snapshot(self) -> Snapshot:
        """The engine's snapshot for the probes: read again at most once per `probe_age`."""
        now = time.monotonic()
        if self._snap is None or now - self._snap_at >= self.limits.probe_age:
            self._snap, self._snap_at = self._source(), now
        return self._snap

    def _body(self, name: str, render: Callable[[Snapshot, bool], tuple[bytes, str]]) -> _Body:
        old = self._bodies.get(name)
        started = time.monotonic()
        snap, alive = self._source(), self._alive()
        if old is not None and old.snap is snap and old.alive == alive:
            return old  # the engine's read model is the same object: nothing changed
        recent = [at for at in self._rendered if started - at < 1.0]
        self._rendered = recent
        if old is not None and started - old.at < old.gap and len(recent) >= FRESH_RENDERS:
            return old  # a burst: the engine keeps its time, the body is at most `gap` old
        self._snap, self._snap_at = snap, started
        if name == "status" and old is not None and old.snap is snap and old.alive == alive:
            return old  # nothing /status shows has changed (extra sections aside: rare)
        data, content_type = render(snap, alive)
        cost = time.monotonic() - started
        body = _Body(snap, alive, data, content_type, started, cost * 2 / self.limits.render_share)
        self._bodies[name] = body
        self._rendered.append(started)
        self.renders += 1
        return body

    def _status_body(self, snap: Snapshot, alive: bool) -> tuple[bytes, str]:
        doc = status(snap, alive=alive)
        if self._extra is not None:
            doc.update(self._extra())
        return json.dumps(doc, indent=1).encode(), "application/json"

    def _metrics(self, snap: Snapshot, _alive: bool) -> tuple[bytes, str]:
        return self._metrics_body(snap)

    async def _paced(
        self, name: str, render: Callable[[Snapshot, bool], tuple[bytes, str]]
    ) -> web.Response:
        if self._waiting >= self.limits.data_waiting:
            return web.Response(status=503, text="busy; try again\n", headers={"Retry-After": "1"})
        delay = self._pacer.reserve(time.monotonic()) or 0.0
        if delay > 0:
            self._waiting += 1
            try:
                await asyncio.sleep(delay)
            finally:
                self._waiting -= 1
        body = self._body(name, render)
        return web.Response(body=body.data, headers={"Content-Type": body.content_type})

    async def healthz(self, _: web.Request) -> web.Response:
        ok, why = health(self.snapshot(), alive=self._alive(), now=time.monotonic())
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def readyz(self, _: web.Request) -> web.Response:
        missing = readiness(self.snapshot())
        if missing:
            return web.Response(status=503, text="not ready: " + "; ".join(missing) + "\n")
        return web.Response(text="ready\n")

    async def metrics(self, _: web.Request) -> web.Response:
        return await self._paced("metrics", self._metrics)

    async def status(self, _: web.Request) -> web.Response:
        return await self._paced("status", self._status_body)

    def app(self, paths: tuple[str, ...] = PROBES + DATA) -> web.Application:
        """An application serving PATHS (all four by default)."""
        handlers: dict[str, Handler] = {
            "/healthz": self.healthz,
            "/readyz": self.readyz,
            "/metrics": self.metrics,
            "/status": self.status,
        }
        app = web.Application()
        for path in paths:
            app.router.add_get(path, handlers[path])
        return app


def make_app(
    snapshot: SnapshotSource,
    metrics_body: MetricsBody,
    alive: Callable[[], bool],
    *,
    extra: Extra | None = None,
    limits: HttpLimits | None = None,
) -> Surface:
    """ALIVE tells whether the scheduler's tasks still run; METRICS_BODY renders a scrape."""
    return Surface(snapshot, metrics_body, alive, extra=extra, limits=limits)


async def _listen(app: web.Application, host: str, port: int, limits: HttpLimits) -> web.AppRunner:
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=limits.idle_timeout,
        logger=tamed_logger(),
    )
    await runner.setup()
    try:
        await BoundedSite(runner, host, port, max_connections=limits.max_connections).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def _bound(runner: web.AppRunner) -> tuple[str, int]:
    host, port = runner.addresses[0][:2]
    return str(host), int(port)


async def serve(
    surface: Surface, host: str, port: int, *, data: tuple[str, int] | None = None
) -> web.AppRunner:
    """Listen on HOST:PORT; with DATA, /status and /metrics there instead (the probes stay).

    One runner is returned; its cleanup also stops the data listener.
    """
    if data is None or (data == (host, port) and port != 0):  # port 0: two free ports
        runner = await _listen(surface.app(), host, port, surface.limits)
        surface.listening = {"all": _bound(runner)}
        return runner
    data_runner = await _listen(surface.app(DATA), *data, surface.limits)
    probes = surface.app(PROBES)

    async def stop_data(_: web.Application) -> None:
        await data_runner.cleanup()

    probes.on_cleanup.append(stop_data)
    try:
        runner = await _listen(probes, host, port, surface.limits)
    except BaseException:
        await data_runner.cleanup()
        raise
    surface.listening = {"probes": _bound(runner), "data": _bound(data_runner)}
    return runner
