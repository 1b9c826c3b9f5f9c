"""What the endpoints say: the probes' verdicts and the /status document, from one Snapshot.

Pure functions of the snapshot (and whether the scheduler runs), so that the server can cache
what they return and tests can call them on a snapshot they built.
"""

from __future__ import annotations

from typing import Any

from jcp.engine.state import ImageView, Snapshot


def parse_addr(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (all interfaces) or `[v6]:PORT`; raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - a node agent's probes come from the kubelet
    return host, int(port)


def health(snap: Snapshot, *, alive: bool, now: float | None = None) -> tuple[bool, str]:
    """Alive unless the scheduler died, or a sweep has made no progress for far too long.

    NOW (time.monotonic()) defaults to when the snapshot was taken; the server passes the
    present, since a snapshot built when state changed is as old as the last change.
    """
    if not alive:
        return False, "scheduler task has stopped"
    if snap.sweep is not None:
        quiet = (snap.taken if now is None else now) - snap.last_progress
        limit = snap.stall_timeout * 2 + 60
        if quiet > limit and not snap.disk_guard_active and snap.fleet_waiting is None:
            return False, f"sweep {snap.sweep.number} has made no progress for {quiet:.0f}s"
    return True, "ok"


def readiness(snap: Snapshot) -> list[str]:
    """What is missing before this node counts as warm enough to be ready."""
    if snap.waiting_for is not None:  # the engine has not started: say what it waits for
        return [snap.waiting_for]
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
    """The /status document (`now` for health is the snapshot's time: it is cached)."""
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
        "selection": {
            "node_labels": None if snap.node_labels is None else dict(snap.node_labels),
            "waiting_for_labels": snap.labels_waiting,
            "labels_trouble": snap.labels_trouble,
        },
        "fleet_waiting": snap.fleet_waiting,
        "disk_short": _disk_short(snap),
        "images": [_image(v) for v in snap.images],
    }


def _disk_short(snap: Snapshot) -> list[str]:
    """Selected images not cached because the disk is short: their pull did not fit, or the
    guard holds every new pull back (then all that wait, lowest priority last in the queue)."""
    return [
        str(v.image)
        for v in snap.images
        if v.cached_since is None
        and (
            (v.last is not None and v.last.reason == "disk")
            or (snap.disk_guard_active and v.state == "pending")
        )
    ]
