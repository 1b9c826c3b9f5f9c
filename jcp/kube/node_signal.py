"""Tell Kubernetes when this node's cache is warm: a label, an annotation, a startup taint.

Jobs land on a new node at once and wait on the very pulls jcp is making. The label lets
schedulers prefer warm nodes; the taint (registered by the operator, removed by jcp) makes jobs
wait for the warm-up. A broken registry must not leave a node unusable, so a deadline removes
the taint anyway and says what was still missing.

Nothing here may stop jcp from pulling: `publish` never raises (except cancellation), logs each
kind of API trouble once (naming the missing RBAC rule, the missing token, the unreachable
host), and simply tries again at the next call. Writes happen only when what the node should
show changes, never once per sweep: the API server and every watcher of nodes pay for each.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from jcp.kube.api import JSON_PATCH, STRATEGIC_MERGE_PATCH, JsonObject, KubeError, NodeApi
from jcp.kube.keys import label_problem, state_annotation
from jcp.kube.warm_state import LISTED, WarmState

__all__ = ["NodeSignal", "WarmState"]

log = logging.getLogger(__name__)

NO_SCHEDULE = "NoSchedule"
RBAC_RULE = 'apiGroups: [""], resources: ["nodes"], verbs: ["get", "patch"]'


def _listing(images: tuple[str, ...]) -> str:
    more = len(images) - LISTED
    return ", ".join(images[:LISTED]) + (f" (+{more} more)" if more > 0 else "") or "none"


class NodeSignal:
    """Publishes a `WarmState` to this node's label, annotation and startup taint.

    `api` makes the API client on first use (and again after it failed to, e.g. outside a
    pod); tests pass `lambda: NodeApi.connect(url, token)`. Calls to `publish` are serialised.
    """

    def __init__(
        self,
        node_name: str | None,
        *,
        label: str | None,
        untaint_key: str | None,
        untaint_deadline: float,
        api: Callable[[], NodeApi] = NodeApi.in_cluster,
        clock: Callable[[], float] = time.monotonic,
        attempts: int = 5,
        backoff: float = 0.2,
    ) -> None:
        if label is not None and (problem := label_problem(label)):
            raise ValueError(f"node label: {problem}")
        self._node = node_name or None
        self._label = label
        self._untaint = untaint_key
        self._deadline = untaint_deadline
        self._make_api = api
        self._api: NodeApi | None = None
        self._clock = clock
        self._started = clock()
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._lock = asyncio.Lock()
        self._shown: tuple[str, str] | None = None  # label value and annotation on the node
        self._untainted = False
        self._failing: dict[str, str] = {}  # step -> kind of trouble it met last
        self._logged: dict[str, str] = {}  # kind -> text, logged once while it lasts

    @property
    def enabled(self) -> bool:
        return self._label is not None or self._untaint is not None

    @property
    def untainted(self) -> bool:
        """The startup taint is gone (removed, or never there): jcp never touches it again."""
        return self._untainted

    @property
    def trouble(self) -> str | None:
        """The API trouble of the last publish, for /status; None when all went through."""
        return next(iter(self._logged.values()), None)

    def untaint_due_in(self) -> float | None:
        """Seconds until the deadline removes the taint (0: due); None when none is pending.

        Publish again by then even if the state has not changed: only a publish acts.
        """
        if self._untaint is None or self._untainted:
            return None
        return max(0.0, self._started + self._deadline - self._clock())

    async def publish(self, state: WarmState) -> None:
        """Bring the node in line with STATE; cheap (no request) when nothing changed."""
        if not self.enabled:
            return
        async with self._lock:
            try:
                await self._publish(state)
            except Exception:
                log.exception("node signal: publishing failed (a bug); jcp keeps pulling")

    async def _publish(self, state: WarmState) -> None:
        if self._node is None:
            text = "NODE_NAME is not set: pass spec.nodeName through the downward API"
            self._trouble("node", "no-node-name", text)
            return
        api = self._connect()
        if api is None:
            return
        if self._label is not None and not await self._step(
            "label", self._show(api, self._node, self._label, state)
        ):
            return
        if self._untaint is not None and not self._untainted:
            reason = self._untaint_reason(state)
            if reason is not None:
                await self._step("taint", self._remove_taint(api, self._node, state, reason))

    async def close(self) -> None:
        if self._api is not None:
            api, self._api = self._api, None
            await api.close()

    # -- steps ------------------------------------------------------------------------------

    def _connect(self) -> NodeApi | None:
        if self._api is None:
            try:
                self._api = self._make_api()
            except KubeError as exc:
                self._trouble("connect", "no-config", f"node label and taint updates wait: {exc}")
                return None
            self._fixed("connect")
        return self._api

    async def _step(self, step: str, work: Coroutine[Any, Any, None]) -> bool:
        """Run one step; False when the API itself is out of reach (skip the other steps)."""
        try:
            await work
        except KubeError as exc:
            kind, text = self._explain(exc)
            self._trouble(step, kind, text)
            return exc.status not in _UNREACHABLE
        except Exception:
            log.exception(f"node signal: {step} failed (a bug); jcp keeps pulling")
            return True
        self._fixed(step)
        return True

    async def _show(self, api: NodeApi, node: str, label: str, state: WarmState) -> None:
        want = ("true" if state.warm else "false", state.annotation())
        if want == self._shown:
            return
        body = {
            "metadata": {
                "labels": {label: want[0]},
                "annotations": {state_annotation(label): want[1]},
            }
        }
        await self._retrying(lambda: api.patch(node, body, STRATEGIC_MERGE_PATCH))
        self._shown = want
        log.info(
            f"node {node}: {label}={want[0]} (generation {state.generation}: {state.present} of "
            f"{state.selected} images present, {len(state.failed_permanent)} failed permanently)"
        )

    def _untaint_reason(self, state: WarmState) -> str | None:
        if state.warm:
            return "warm"
        if self._clock() - self._started >= self._deadline:
            return "deadline"
        return None

    async def _remove_taint(self, api: NodeApi, node: str, state: WarmState, reason: str) -> None:
        """Remove every `KEY:NoSchedule` taint; a concurrent change to the taints retries."""
        assert self._untaint is not None
        removed = False
        for attempt in range(self._attempts):
            doc = await api.get(node)
            index, taint = _find_taint(doc, self._untaint)
            if taint is None:
                break
            patch = [
                {"op": "test", "path": f"/spec/taints/{index}", "value": taint},
                {"op": "remove", "path": f"/spec/taints/{index}"},
            ]
            try:
                await api.patch(node, patch, JSON_PATCH)
            except KubeError as exc:
                if not exc.conflict or attempt == self._attempts - 1:
                    raise
                await self._pause(attempt)
                continue
            removed = True  # the API keeps key and effect unique: there is no second one
            break
        else:
            raise KubeError(409, f"the taints of node {node} kept changing: {self._attempts} tries")
        self._untainted = True
        key = self._untaint
        if not removed:
            log.info(f"node {node}: taint {key}:{NO_SCHEDULE} is not there; nothing to remove")
        elif reason == "warm":
            log.info(
                f"node {node}: removed taint {key}:{NO_SCHEDULE}, the node is warm "
                f"({state.present} of {state.selected} images present; failed permanently: "
                f"{_listing(state.failed_permanent)})"
            )
        else:
            log.warning(
                f"node {node}: removed taint {key}:{NO_SCHEDULE} at the deadline "
                f"({self._deadline:.0f}s) although the node is not warm: {state.present} of "
                f"{state.selected} images present; missing: {_listing(state.missing)}; "
                f"failed permanently: {_listing(state.failed_permanent)}"
            )

    async def _retrying(self, call: Callable[[], Awaitable[object]]) -> None:
        for attempt in range(self._attempts):
            try:
                await call()
            except KubeError as exc:
                if exc.status != 409 or attempt == self._attempts - 1:
                    raise
                await self._pause(attempt)
            else:
                return

    async def _pause(self, attempt: int) -> None:
        # Full jitter: nodes that race on the same object must not retry in step.
        await asyncio.sleep(random.uniform(0, self._backoff * 2**attempt))  # noqa: S311 - jitter

    # -- troubles, each logged once ------------------------------------------------------------

    def _explain(self, exc: KubeError) -> tuple[str, str]:
        """A kind (logged once while it lasts) and the text an operator acts on."""
        node = self._node
        if exc.status == 403:
            return "forbidden", (
                f"the API refused jcp ({exc}); the service account needs a ClusterRole rule "
                f"{RBAC_RULE} bound to it; jcp keeps pulling and tries again"
            )
        if exc.status == 401:
            return "unauthorized", (
                f"the API rejected jcp's credentials ({exc}): is the service account token "
                "mounted (automountServiceAccountToken) and current?"
            )
        if exc.status == 404:
            return "not-found", (
                f"node {node} not found ({exc}): NODE_NAME must be the pod's spec.nodeName"
            )
        if exc.status is None:
            return "unreachable", f"{exc}; jcp keeps pulling and tries again"
        return f"http-{exc.status}", f"{exc}; jcp keeps pulling and tries again"

    def _trouble(self, step: str, kind: str, text: str) -> None:
        self._failing[step] = kind
        if kind in self._logged:
            log.debug(f"node signal: {step}: still {text}")
            return
        self._logged[kind] = text
        log.error(f"node signal: {text}")

    def _fixed(self, step: str) -> None:
        kind = self._failing.pop(step, None)
        if kind is not None and kind not in self._failing.values():
            self._logged.pop(kind, None)
            log.info(f"node signal: the Kubernetes API works again for node {self._node}")


_UNREACHABLE = frozenset({None, 401, 403, 404})
"""Failures that every other step would meet too: the rest of a publish is skipped."""


def _find_taint(doc: JsonObject, key: str) -> tuple[int, JsonObject | None]:
    spec = doc.get("spec")
    taints = spec.get("taints") if isinstance(spec, dict) else None
    for index, taint in enumerate(taints if isinstance(taints, list) else []):
        if (
            isinstance(taint, dict)
            and taint.get("key") == key
            and taint.get("effect") == NO_SCHEDULE
        ):
            return index, taint
    return -1, None
