"""This node's labels, read at start and followed: what image entries' selectors match against.

A label added or removed (a GPU driver installed, a pool relabelled) must change what the node
pulls within seconds, without a restart, and without costing the API server more than one
watch per node. So: LIST the one Node (`fieldSelector=metadata.name=NAME`), then WATCH from the
list's resourceVersion, as "Kubernetes API Concepts" ("Efficient detection of changes")
prescribes. The list's version, not the object's: a node whose object has not changed for a
while has a resourceVersion older than the watch cache's window, and a watch from it would be
410 Gone at once. Each watch asks the server to end it after `watch_seconds` (client-go's
reflector does the same, 5 to 10 minutes) and is resumed from the last resourceVersion seen;
bookmarks keep that version fresh while the node is quiet. 410 Gone (an ERROR event or an
answer) means list again. A lost connection or an API that is down is retried with jittered
backoff, the labels as last read staying in force meanwhile: a flapping API must not flap the
selection. Each kind of trouble is logged once while it lasts, and the recovery once.

Until the labels are known (the API down at start, no RBAC, NODE_NAME unset), the callback is
given None: entries with a selector are not pulled, everything else goes on. `static` labels
(`--node-labels`) replace the API entirely, for tests and for `jcp once` outside a cluster.
Every failure is a KubeError, whose text never holds the token.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from typing import NoReturn

from jcp.kube.api import JsonObject, KubeError, NodeApi

log = logging.getLogger(__name__)

Labels = Mapping[str, str]
OnChange = Callable[[Labels | None], None]
OnTrouble = Callable[[str | None], None]
RBAC_RULE = 'apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"]'
WAITING = "entries with a nodeSelector or matchExpressions are not pulled until they are known"
WATCH_SECONDS = 300
SHORT_WATCH = 1.0
"""A watch that ends this fast with no event counts as a failure (backoff, no busy loop)."""


class NodeLabels:
    """The labels of node NODE_NAME, pushed to a callback as they change.

    `api` makes the client on first use (and again after it failed to, e.g. outside a pod);
    tests pass `lambda: NodeApi.connect(url, token)`.
    """

    def __init__(
        self,
        node_name: str | None,
        *,
        static: Labels | None = None,
        api: Callable[[], NodeApi] = NodeApi.in_cluster,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self._node = node_name or None
        self._static = None if static is None else dict(static)
        self._make_api = api
        self._api: NodeApi | None = None
        self._backoff, self._max_backoff = backoff, max_backoff
        self._watch_seconds = watch_seconds
        self._labels: dict[str, str] | None = self._static
        self._told = False  # on_change has been called at least once
        self._failures = 0  # in a row, since the last event: the backoff's exponent
        self._trouble: tuple[str, str] | None = None  # (kind, text) logged, while it lasts
        self._on_trouble: OnTrouble | None = None

    @property
    def labels(self) -> Labels | None:
        """The labels as last read; None while unknown."""
        return None if self._labels is None else dict(self._labels)

    @property
    def trouble(self) -> str | None:
        """Why the labels are unknown or may be stale (for /readyz and /status); None if fine."""
        return None if self._trouble is None else self._trouble[1]

    async def run(self, on_change: OnChange, on_trouble: OnTrouble | None = None) -> None:
        """Call ON_CHANGE with the labels once known and whenever they change (None while
        unknown), and ON_TROUBLE with `trouble` whenever it changes (it is already current
        when ON_CHANGE is called); never returns, until cancelled."""
        self._on_trouble = on_trouble
        if self._static is not None:
            self._set(on_change, self._static)
            await _forever()
        node = self._node
        if node is None:
            self._fail(on_change, "no-node-name", "NODE_NAME is not set (pass spec.nodeName "
                       "through the downward API)")  # fmt: skip
            await _forever()
        version: str | None = None
        while True:
            try:
                api = self._connect()
                if version is None:
                    version = await self._list(api, node, on_change)
                version = await self._watch(api, node, version, on_change)
            except KubeError as exc:
                if exc.status == 410:
                    log.info(f"node labels: {exc}; listing node {node} again")
                    version = None
                    if self._failures:
                        await self._pause()
                    self._failures += 1
                    continue
                kind, text = self._explain(exc)
                self._fail(on_change, kind, text)
                await self._pause()

    async def close(self) -> None:
        if self._api is not None:
            api, self._api = self._api, None
            await api.close()

    # -- the API ----------------------------------------------------------------------------

    def _connect(self) -> NodeApi:
        if self._api is None:
            self._api = self._make_api()
        return self._api

    async def _list(self, api: NodeApi, node: str, on_change: OnChange) -> str:
        answer = await api.list_nodes(field_selector=f"metadata.name={node}")
        items = answer.get("items")
        meta = answer.get("metadata")
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if not isinstance(version, str) or not isinstance(items, list):
            raise KubeError(200, "list nodes: the API answered without items or resourceVersion")
        if not items:
            raise KubeError(404, f"list nodes: node {node} not found")
        self._fixed()
        self._set(on_change, _labels(items[0]))
        return version

    async def _watch(self, api: NodeApi, node: str, version: str, on_change: OnChange) -> str:
        """Follow the node until the server ends the stream; the last resourceVersion seen."""
        loop = asyncio.get_running_loop()
        started, events = loop.time(), 0
        stream = api.watch_nodes(
            field_selector=f"metadata.name={node}",
            resource_version=version,
            timeout_seconds=self._watch_seconds,
        )
        async for event in stream:
            events += 1
            self._failures = 0
            obj = event["object"]
            meta = obj.get("metadata")
            seen = meta.get("resourceVersion") if isinstance(meta, dict) else None
            version = seen if isinstance(seen, str) and seen else version
            self._fixed()
            if event.get("type") in ("ADDED", "MODIFIED"):
                self._set(on_change, _labels(obj))
            elif event.get("type") == "DELETED":
                self._trouble = ("deleted", f"node labels unknown: node {node} was deleted")
                log.warning(f"node labels: node {node} was deleted; {WAITING}")
                self._tell_trouble()
                self._set(on_change, None)
        if not events and loop.time() - started < SHORT_WATCH:
            await self._pause()
        return version

    async def _pause(self) -> None:
        # Full jitter: the nodes of a cluster whose API came back must not relist in step.
        delay = min(self._max_backoff, self._backoff * 2**self._failures)
        self._failures += 1
        await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter

    # -- what is said -------------------------------------------------------------------------

    def _set(self, on_change: OnChange, labels: dict[str, str] | None) -> None:
        if self._told and labels == self._labels:
            return
        old, self._labels, self._told = self._labels, labels, True
        if labels is not None:
            if old is None:
                log.info(f"node labels: node {self._node}: {_listing(labels) or 'no labels'}")
            else:
                log.info(f"node labels: node {self._node} changed: {_diff(old, labels)}")
        try:
            on_change(None if labels is None else dict(labels))
        except Exception:
            log.exception("node labels: the selection could not follow the labels (a bug)")

    def _fail(self, on_change: OnChange, kind: str, text: str) -> None:
        unknown = self._labels is None
        if self._trouble is not None and self._trouble[0] == kind:
            log.debug(f"node labels: still {text}")
        else:
            self._trouble = (kind, f"node labels unknown: {text}" if unknown else text)
            if unknown:
                log.warning(f"node labels: {text}; {WAITING}; retrying")
            else:
                log.warning(f"node labels: {text}; following the labels as last read; retrying")
            self._tell_trouble()
        if unknown:
            self._set(on_change, None)  # once: _set says nothing twice

    def _fixed(self) -> None:
        if self._trouble is not None:
            self._trouble = None
            log.info(f"node labels: the Kubernetes API answers again for node {self._node}")
            self._tell_trouble()

    def _tell_trouble(self) -> None:
        if self._on_trouble is not None:
            try:
                self._on_trouble(self.trouble)
            except Exception:
                log.exception("node labels: the trouble could not be reported (a bug)")

    def _explain(self, exc: KubeError) -> tuple[str, str]:
        """A kind (logged once while it lasts) and the text an operator acts on."""
        if exc.status == 403:
            return "forbidden", (
                f"the API refused jcp ({exc}); the service account needs a ClusterRole rule "
                f"{RBAC_RULE} bound to it"
            )
        if exc.status == 401:
            return "unauthorized", (
                f"the API rejected jcp's credentials ({exc}): is the service account token "
                "mounted (automountServiceAccountToken) and current?"
            )
        if exc.status == 404:
            return "not-found", f"{exc}: NODE_NAME must be the pod's spec.nodeName"
        return ("unreachable" if exc.status is None else f"http-{exc.status}"), str(exc)


async def _forever() -> NoReturn:
    await asyncio.Event().wait()
    raise AssertionError  # an Event nobody sets


def _labels(obj: JsonObject) -> dict[str, str]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(labels, dict):
        return {}
    return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}


def _listing(labels: Labels) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _diff(old: Labels, new: Labels) -> str:
    added = [f"+{k}={v}" for k, v in sorted(new.items()) if k not in old]
    removed = [f"-{k}" for k in sorted(old) if k not in new]
    changed = [f"{k}={old[k]}->{v}" for k, v in sorted(new.items()) if k in old and old[k] != v]
    return ", ".join(added + removed + changed)
