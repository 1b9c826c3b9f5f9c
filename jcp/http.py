"""One small aiohttp server: /healthz and /readyz for the kubelet, /metrics, /status.

Signals are left to jcp's own handlers (handle_signals=False): the server is one more task that
the stop event cancels.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from jcp.metrics import Metrics
    from jcp.scheduler import Scheduler
    from jcp.sweep import ImageState


def parse_addr(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (all interfaces) or `[v6]:PORT`; raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - a node agent's probes come from the kubelet
    return host, int(port)


def health(scheduler: Scheduler, *, alive: bool) -> tuple[bool, str]:
    """Alive unless the scheduler died, or a sweep has made no progress for far too long."""
    if not alive:
        return False, "scheduler task has stopped"
    if scheduler.sweep is not None:
        quiet = time.monotonic() - scheduler.last_progress
        limit = scheduler.settings.stall_timeout * 2 + 60
        if quiet > limit and not scheduler.disk_guard_active:
            return False, f"sweep {scheduler.sweep.number} has made no progress for {quiet:.0f}s"
    return True, "ok"


def readiness(scheduler: Scheduler) -> list[str]:
    missing = []
    if scheduler.config is None:
        missing.append("no valid config loaded")
    if scheduler.daemon is None:
        missing.append("Docker daemon has not answered")
    if scheduler.last_full_sweep is None:
        missing.append("first full sweep has not finished")
    return missing


def _state(state: ImageState) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "image": str(state.target.image),
        "registry": state.target.registry,
        "entry": state.target.entry.index,
        "private": state.target.entry.private,
        "state": state.status,
    }
    if state.progress is not None and state.status == "pulling":
        doc["progress"] = {"bytes": state.progress.current, "total": state.progress.total}
    last = state.last
    if last is not None:
        doc["last"] = {
            "outcome": str(last.outcome),
            "duration": round(last.duration, 3),
            "attempts": last.attempts,
            "bytes": last.bytes,
        }
        if last.digest:
            doc["digest"] = last.digest
        if last.reason:
            doc["last"]["reason"] = str(last.reason)
            doc["last"]["message"] = last.message
            doc["last"]["permanent"] = last.permanent
    if state.next_retry is not None:
        doc["next_retry"] = round(state.next_retry, 3)
    return doc


def status(scheduler: Scheduler, *, alive: bool) -> dict[str, Any]:
    config = scheduler.config
    sweep = scheduler.sweep
    last = scheduler.last_full_sweep
    return {
        "healthy": health(scheduler, alive=alive)[0],
        "ready": not readiness(scheduler),
        "config": {
            "generation": scheduler.generation,
            "digest": config.digest[:12] if config else None,
            "entries": len(config.entries) if config else 0,
            "interval": config.interval if config else None,
        },
        "node_arch": scheduler.node_arch,
        "daemon": {
            "host": scheduler.settings.docker_host,
            "version": scheduler.daemon.version if scheduler.daemon else None,
        },
        "disk_guard": scheduler.disk_status(),
        "sweep": None
        if sweep is None
        else {
            "number": sweep.number,
            "kind": sweep.kind,
            "remaining": len(sweep.remaining),
            "done": len(sweep.results),
        },
        "last_full_sweep": (
            None if last is None else {"number": last.number, "summary": last.summary()}
        ),
        "images": [_state(s) for s in scheduler.states.values()],
    }


def make_app(scheduler: Scheduler, metrics: Metrics, alive: Callable[[], bool]) -> web.Application:
    """ALIVE is a callable telling whether the scheduler's tasks still run."""

    async def healthz(_: web.Request) -> web.Response:
        ok, why = health(scheduler, alive=alive())
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def readyz(_: web.Request) -> web.Response:
        missing = readiness(scheduler)
        if missing:
            return web.Response(status=503, text="not ready: " + "; ".join(missing) + "\n")
        return web.Response(text="ready\n")

    async def metrics_handler(_: web.Request) -> web.Response:
        metrics.sync_images(scheduler)
        metrics.disk_guard.set(1 if scheduler.disk_guard_active else 0)
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status_handler(_: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(status(scheduler, alive=alive()), indent=1),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/status", status_handler)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
