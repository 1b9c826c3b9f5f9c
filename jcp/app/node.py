"""The node lifecycle wired into `jcp run`: the warm signal, pinning and the purge ledger,
each only when asked for (all off by default), each imported only then (kubernetes_asyncio and
the containerd API are heavy, and `jcp once` never needs them). Part of the composition root:
it knows the concrete runtime, to pin through containerd's own API on a CRI socket.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jcp.engine.events import Events
from jcp.engine.fleet import FleetSlot
from jcp.engine.scheduler import Scheduler
from jcp.settings import FleetSettings, NodeSettings

if TYPE_CHECKING:
    from jcp.kube.api import NodeApi
    from jcp.observe.metrics import Metrics


@dataclass
class NodeParts:
    """What the node lifecycle adds to a run: event sinks, forever-tasks, and closers."""

    sinks: list[Events] = field(default_factory=list)
    tasks: list[tuple[str, Coroutine[Any, Any, None]]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def node_lifecycle(scheduler: Scheduler, node: NodeSettings, metrics: Metrics | None) -> NodeParts:
    """The warm signal, pinning and the purge ledger, when asked for (off by default)."""
    parts = NodeParts()
    if scheduler.labels is None:  # no --node-labels: follow the Node once the config asks
        parts.tasks.append(("node labels", _follow_labels(scheduler, node, parts)))
    if node.uses_api:
        _signal(scheduler, node, parts)
    if node.pin:
        _pins(scheduler, metrics, parts)
    if node.purge or node.ledger.parent.is_dir():
        from jcp.lifecycle.ledger import Ledger  # noqa: PLC0415
        from jcp.lifecycle.purge import Purger  # noqa: PLC0415

        purger = Purger(
            scheduler.runtime,
            Ledger.load(node.ledger),
            lambda: scheduler.snapshot().config.config,  # the read model, as every follower
            grace=node.purge_grace,
            dry_run=node.purge_dry_run,
            enabled=node.purge,
        )
        if metrics is not None:
            metrics.watch_ledger(purger.ledger)
        parts.sinks.append(purger)
        parts.tasks.append(("purger", purger.run()))
    return parts


def fleet_slot(fleet: FleetSettings, node: NodeSettings) -> FleetSlot:
    """The node's claim on the fleet's pull budget: Leases in jcp's namespace."""
    from jcp.kube.fleet import lease_slot  # noqa: PLC0415 - kubernetes_asyncio is heavy

    return lease_slot(fleet, node.node_name or socket.gethostname(), node_api(node))


def node_api(node: NodeSettings) -> Callable[[], NodeApi]:
    """How to reach the API: in-cluster, or an explicit URL and token file (tests, outside)."""
    from jcp.kube.api import KubeError, NodeApi  # noqa: PLC0415 - kubernetes_asyncio is heavy

    url, token_file = node.kube_api, node.kube_token_file

    def api() -> NodeApi:
        if url is None:
            return NodeApi.in_cluster()
        try:
            token = token_file.read_text().strip() if token_file is not None else None
        except OSError as exc:
            raise KubeError(None, f"cannot read {token_file}: {exc.strerror}") from None
        return NodeApi.connect(url, token)

    return api


async def _follow_labels(scheduler: Scheduler, node: NodeSettings, parts: NodeParts) -> None:
    """Watch this node's labels, but only once the config has an entry that selects by them:
    a node agent without selectors costs the API server nothing and needs no RBAC for it."""
    from jcp.kube.node_watch import NodeLabels  # noqa: PLC0415 - kubernetes_asyncio is heavy

    await scheduler.until_config(lambda config: config.uses_node_labels)
    labels = NodeLabels(node.node_name, api=node_api(node))
    parts.closers.append(labels.close)

    def trouble(text: str | None) -> None:
        scheduler.labels_trouble = text

    await labels.run(scheduler.labels_changed, trouble)


def _signal(scheduler: Scheduler, node: NodeSettings, parts: NodeParts) -> None:
    from jcp.kube.node_signal import NodeSignal  # noqa: PLC0415
    from jcp.lifecycle.warm import signal_warmth  # noqa: PLC0415

    signal_ = NodeSignal(
        node.node_name,
        label=node.label,
        untaint_key=node.untaint,
        untaint_deadline=node.untaint_deadline,
        api=node_api(node),
    )
    parts.tasks.append(("node signal", signal_warmth(scheduler.snapshot, signal_)))
    parts.closers.append(signal_.close)


def _pins(scheduler: Scheduler, metrics: Metrics | None, parts: NodeParts) -> None:
    from jcp.fetch.runtime import FetchingRuntime  # noqa: PLC0415
    from jcp.lifecycle.pinning import Pinning  # noqa: PLC0415
    from jcp.runtime.cri import CriRuntime  # noqa: PLC0415

    setter = None
    if isinstance(scheduler.runtime, CriRuntime | FetchingRuntime):  # containerd's own API
        from jcp.runtime.pins import ContainerdPins  # noqa: PLC0415

        setter = ContainerdPins(scheduler.runtime.endpoint)
        parts.closers.append(setter.close)
    pins = Pinning(
        scheduler.runtime,
        scheduler.snapshot,
        setter,
        on_counts=metrics.pinned if metrics is not None else None,
    )
    parts.sinks.append(pins)
    parts.tasks.append(("pinning", pins.run()))
