"""The warm signal: tell Kubernetes when the node is warm, from the engine's snapshot alone.

It never changes what the engine does: whatever happens to the API server, pulling goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from jcp.engine.state import Snapshot
from jcp.kube.node_signal import NodeSignal, WarmState


def warm_state(snap: Snapshot) -> WarmState | None:
    """The node's warm state, or None before there is anything to say (no config, no sweep:
    0 of 0 images would read as warm and untaint a node that has not started)."""
    if snap.config.generation == 0 or snap.last_full_sweep is None:
        return None
    present, failed, missing = 0, [], []
    for view in snap.images:
        if view.cached_since is not None:
            present += 1
        elif view.last is not None and view.last.permanent:
            failed.append(str(view.image))
        else:
            missing.append(str(view.image))
    return WarmState(
        generation=snap.config.generation,
        selected=len(snap.images),
        present=present,
        failed_permanent=tuple(sorted(failed)),
        missing=tuple(sorted(missing)),
    )


async def signal_warmth(
    snapshot: Callable[[], Snapshot], signal: NodeSignal, every: float = 2.0
) -> None:
    """Publish the warm state; the signal itself sends nothing when it did not change."""
    while True:
        state = warm_state(snapshot())
        if state is not None:
            await signal.publish(state)
        due = signal.untaint_due_in()
        await asyncio.sleep(min(every, due) if due is not None and due > 0 else every)
