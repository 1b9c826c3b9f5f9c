"""Snapshots built by hand, for tests of what the HTTP surface does with one."""

from __future__ import annotations

from jcp.engine.state import ConfigView, Snapshot


def empty_snapshot(images: int = 0) -> Snapshot:
    """Config generation 1 of IMAGES entries, nothing selected, no sweep yet."""
    return Snapshot(
        taken=0.0,
        config=ConfigView(1, "abc", images, 300.0, last_reload_ok=True, last_error=None),
        loaded=True,
        node_arch="amd64",
        runtime_endpoint="unix:///x.sock",
        runtime=None,
        runtime_reachable=True,
        runtime_choice=None,
        disk=None,
        image_fs=None,
        sweep=None,
        last_full_sweep=None,
        last_progress=0.0,
        stall_timeout=120.0,
        images=(),
    )
