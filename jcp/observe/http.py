"""One small aiohttp server: /healthz and /readyz for the kubelet, /metrics, /status.

Every handler reads one `Snapshot` (the engine's read model) and nothing else. Signals are left
to jcp's own handlers (handle_signals=False): the server is one more task that the stop event
cancels.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from jcp.engine.state import ImageView, Snapshot

SnapshotSource = Callable[[], Snapshot]


def parse_addr(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (all interfaces) or `[v6]:PORT`; raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - a node agent's probes come from the kubelet
    return host, int(port)


def health(snap: Snapshot, *, alive: bool) -> tuple[bool, str]:
    """Alive unless the scheduler died, or a sweep has made no progress for far too long."""
    if not alive:
        return False, "scheduler task has stopped"
    if snap.sweep is not None:
        quiet = snap.taken - snap.last_progress
        limit = snap.stall_timeout * 2 + 60
        if quiet > limit and not snap.disk_guard_active:
            return False, f"sweep {snap.sweep.number} has made no progress for {quiet:.0f}s"
    return True, "ok"


def readiness(snap: Snapshot) -> list[str]:
    """What is missing before this node counts as warm enough to be ready."""
    if snap.config.generation == 0:
        why = f": {snap.config.last_error}" if snap.config.last_error else ""
        return [f"no valid config loaded yet{why}"]
    missing = []
    if snap.runtime is None:
        missing.append(f"container runtime at {snap.runtime_endpoint} has not answered")
    if snap.last_full_sweep is None:
        missing.append("first full sweep has not finished")
    return missing


def _image(view: ImageView) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "image": str(view.image),
        "registry": view.registry,
        "entry": view.entry,
        "private": view.private,
        "state": view.state,
    }
    if view.progress is not None and view.state == "pulling":
        doc["progress"] = {"bytes": view.progress.current, "total": view.progress.total}
    last = view.last
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
    if view.next_retry is not None:
        doc["next_retry"] = round(view.next_retry, 3)
    return doc


def status(snap: Snapshot, *, alive: bool) -> dict[str, Any]:
    runtime = snap.runtime
    sweep, last = snap.sweep, snap.last_full_sweep
    return {
        "healthy": health(snap, alive=alive)[0],
        "ready": not readiness(snap),
        "config": {
            "generation": snap.config.generation,
            "digest": snap.config.digest,
            "entries": snap.config.entries,
            "interval": snap.config.interval,
            "last_reload_ok": snap.config.last_reload_ok,
            "last_error": snap.config.last_error,
        },
        "node_arch": snap.node_arch,
        "runtime": {
            "endpoint": snap.runtime_endpoint,
            "kind": runtime.kind if runtime else None,
            "name": runtime.name if runtime else None,
            "version": runtime.version if runtime else None,
            "reachable": snap.runtime_reachable,
            "chosen_because": snap.runtime_choice,
        },
        "disk_guard": None
        if snap.disk is None
        else {
            "path": snap.disk.path,
            "free_bytes": snap.disk.free,
            "required_bytes": snap.disk.required,
            "active": snap.disk.active,
        },
        "image_fs": None
        if snap.image_fs is None
        else {
            "mountpoint": snap.image_fs.mountpoint,
            "used_bytes": snap.image_fs.used_bytes,
            "inodes_used": snap.image_fs.inodes_used,
        },
        "sweep": None
        if sweep is None
        else {
            "number": sweep.number,
            "kind": sweep.kind,
            "remaining": sweep.remaining,
            "done": sweep.done,
        },
        "last_full_sweep": (
            None if last is None else {"number": last.number, "summary": last.summary}
        ),
        "images": [_image(v) for v in snap.images],
    }


def make_app(
    snapshot: SnapshotSource,
    metrics_body: Callable[[Snapshot], tuple[bytes, str]],
    alive: Callable[[], bool],
) -> web.Application:
    """ALIVE tells whether the scheduler's tasks still run; METRICS_BODY renders a scrape."""

    async def healthz(_: web.Request) -> web.Response:
        ok, why = health(snapshot(), alive=alive())
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def readyz(_: web.Request) -> web.Response:
        missing = readiness(snapshot())
        if missing:
            return web.Response(status=503, text="not ready: " + "; ".join(missing) + "\n")
        return web.Response(text="ready\n")

    async def metrics_handler(_: web.Request) -> web.Response:
        body, content_type = metrics_body(snapshot())
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def status_handler(_: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(status(snapshot(), alive=alive()), indent=1),
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
