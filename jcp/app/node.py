"""The node lifecycle wired into `jcp run`: the warm signal, pinning and the purge ledger,
each only when asked for (all off by default), each imported only then (kubernetes_asyncio and
the containerd API are heavy, and `jcp once` never needs them). Part of the composition root:
it knows the concrete runtime, to pin through containerd's own API on a CRI socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from jcp.engine.events import Events
from jcp.engine.scheduler import Scheduler
from jcp.settings import NodeSettings

if TYPE_CHECKING:
    from jcp.observe.metrics import Metrics


def node_lifecycle(
    scheduler: Scheduler,
    node: NodeSettings,
    sinks: list[Events],
    extra: list[tuple[str, Coroutine[Any, Any, None]]],
    closers: list[Callable[[], Awaitable[None]]],
    *,
    metrics: Metrics | None,
) -> None:
    """The warm signal, pinning and the purge ledger, when asked for (off by default)."""
    if node.uses_api:
        from jcp.kube.api import KubeError, NodeApi  # noqa: PLC0415
        from jcp.kube.node_signal import NodeSignal  # noqa: PLC0415
        from jcp.lifecycle.warm import signal_warmth  # noqa: PLC0415 - kubernetes_asyncio is heavy

        url, token_file = node.kube_api, node.kube_token_file

        def api() -> NodeApi:
            if url is None:
                return NodeApi.in_cluster()
            try:
                token = token_file.read_text().strip() if token_file is not None else None
            except OSError as exc:
                raise KubeError(None, f"cannot read {token_file}: {exc.strerror}") from None
            return NodeApi.connect(url, token)

        signal_ = NodeSignal(
            node.node_name,
            label=node.label,
            untaint_key=node.untaint,
            untaint_deadline=node.untaint_deadline,
            api=api,
        )
        extra.append(("node signal", signal_warmth(scheduler.snapshot, signal_)))
        closers.append(signal_.close)
    if node.pin:
        from jcp.lifecycle.pinning import Pinning  # noqa: PLC0415
        from jcp.runtime.cri import CriRuntime  # noqa: PLC0415

        setter = None
        if isinstance(scheduler.runtime, CriRuntime):  # containerd's API on the same socket
            from jcp.runtime.pins import ContainerdPins  # noqa: PLC0415

            setter = ContainerdPins(scheduler.runtime.endpoint)
            closers.append(setter.close)
        pins = Pinning(
            scheduler.runtime,
            scheduler.snapshot,
            setter,
            on_counts=metrics.pinned if metrics is not None else None,
        )
        sinks.append(pins)
        extra.append(("pinning", pins.run()))
    if node.purge or node.ledger.parent.is_dir():
        from jcp.lifecycle.ledger import Ledger  # noqa: PLC0415
        from jcp.lifecycle.purge import Purger  # noqa: PLC0415

        purger = Purger(
            scheduler.runtime,
            Ledger.load(node.ledger),
            lambda: scheduler.config,
            grace=node.purge_grace,
            dry_run=node.purge_dry_run,
            enabled=node.purge,
        )
        sinks.append(purger)
        extra.append(("purger", purger.run()))
