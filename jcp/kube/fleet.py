"""The fleet's pull budget on the Kubernetes API: at most K nodes pull from upstream at once.

200 nodes pulling one 15 GB image at once all crawl; K at a time warm the median node sooner.
The slots are Leases `jcp-fleet-0..K-1` in jcp's namespace, used as leader election uses them
(client-go's `resourcelock`): taken with optimistic concurrency (create, or update with the
resourceVersion read; 409: another node won), renewed every leaseDurationSeconds/3 while held,
given back by clearing `holderIdentity`.

- **Takeover**: a holder that stops renewing (its pod killed, its node gone) loses the slot once
  the lease's resourceVersion has not changed for a whole lease duration, measured on the
  taker's own monotonic clock (`fleet_queue.Sightings`): clock skew cannot hand one slot to two.
- **Fair**: a waiting node joins a queue, a Lease `jcp-fleet-wait-<node>` (renewed while it
  waits: a dead waiter drops out after a lease duration) ordered by its `creationTimestamp`. The
  waiter N-th in the queue may only take the N-th free slot, so a freed slot goes to the oldest
  waiter, and waiters do not stampede on one slot. A waiter's wait is bounded: (its place / K)
  holds, each a warm-up (`--pull-timeout` per image).
- **Never stuck**: the API unreachable for `trouble_wait` seconds, or refusing jcp (401, 403,
  no in-cluster config): acquire() returns as if granted, said once, and asks again at the next
  pull. A slot it cannot renew for a lease duration ends its claim (said once); it carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
import time
from collections.abc import Callable

from jcp.kube import fleet_queue as q
from jcp.kube.api import JsonObject, KubeError, NodeApi
from jcp.kube.lease_api import LeaseApi, pod_namespace
from jcp.settings import FleetSettings

log = logging.getLogger(__name__)

RBAC_RULE = q.RBAC_RULE
NO_CONFIG = 0  # the KubeError status of a client that cannot be made (no in-cluster config)
_HOPELESS = frozenset({NO_CONFIG, 401, 403, 404})  # waiting will not help (404: no namespace)
HEAD_POLL = 1.0  # seconds between listings within 2K of the head; further back, one a lease


def lease_slot(fleet: FleetSettings, node: str, api: Callable[[], NodeApi]) -> LeaseSlot:
    """The slot `jcp run` hands the engine (NODE: $NODE_NAME, else the pod's host name)."""
    namespace = fleet.namespace or pod_namespace() or "default"
    return LeaseSlot(node, fleet.parallelism, lease_seconds=fleet.lease_seconds,
                     api=lambda: LeaseApi.of(api(), namespace))  # fmt: skip


class LeaseSlot:
    """This node's claim on one of PARALLELISM slots (implements `jcp.engine.fleet.FleetSlot`).

    `api` makes the client on first use (and again after it failed to); tests pass
    `lambda: LeaseApi(NodeApi.connect(url, token).configuration, "jcp")`.
    """

    def __init__(
        self,
        node: str,
        parallelism: int,
        *,
        api: Callable[[], LeaseApi],
        lease_seconds: float = 30.0,
        trouble_wait: float | None = None,
        head_poll: float = HEAD_POLL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node, self.parallelism = node, max(1, parallelism)
        self._make_api = api
        self._api: LeaseApi | None = None
        self._duration = max(1.0, lease_seconds)
        self._trouble_wait = self._duration if trouble_wait is None else trouble_wait
        self._head_poll = min(head_poll, self._duration / 3)
        self._clock = clock
        self._seen = q.Sightings()
        self._held: JsonObject | None = None  # our slot's lease as last written
        self._renewer: asyncio.Task[None] | None = None
        self._waiting: str | None = None
        self._wait: JsonObject | None = None  # our place in the queue, as last written
        self._wait_renewed = 0.0
        self._view: q.View | None = None  # the last listing (and its time, and our place)
        self._listed, self._far = 0.0, False
        self._trouble: str | None = None  # the kind logged, while it lasts
        self._alone = False  # the last acquire() gave up on the API

    @property
    def holding(self) -> str | None:  # the slot this node holds now, if any
        return None if self._held is None else self._held["metadata"]["name"]

    def waiting(self) -> str | None:
        return self._waiting

    async def acquire(self) -> None:
        started = self._clock()
        try:
            await self._acquire(started)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._leave_queue(), 2)
            raise
        except Exception:
            log.exception("fleet: taking a slot failed (a bug); this node pulls without one")
        finally:
            self._waiting = None

    async def release(self) -> None:
        try:
            await self._release()
        except Exception:
            log.exception("fleet: giving the slot back failed (a bug)")

    async def close(self) -> None:
        await self.release()
        if self._api is not None:
            api, self._api = self._api, None
            await api.close()

    # -- taking a slot --------------------------------------------------------------------------

    async def _acquire(self, started: float) -> None:
        troubled_since: float | None = None
        told = False
        while True:
            try:
                api = self._connect()
                v = await self._look(api)
                troubled_since = None
                self._recovered()
                ahead = q.position(v, self.node)
                if ahead is not None and ahead < len(v.free):
                    if await self._take(api, v, v.free[ahead], started):
                        await self._leave_queue()
                        return
                    delay = min(0.05, self._head_poll)  # another node won it: look again
                else:
                    self._waiting = q.describe(v, ahead, self.parallelism)
                    if not told:
                        log.info(f"fleet: {self._waiting}")
                        told = True
                    self._far = ahead is not None and ahead >= 2 * self.parallelism
                    delay = self._duration / 3 if self._far else self._head_poll
            except KubeError as exc:
                now = self._clock()
                troubled_since = now if troubled_since is None else troubled_since
                left = self._trouble_wait - (now - troubled_since)
                if self._alone or left <= 0 or exc.status in _HOPELESS:
                    self._go_alone(exc)
                    return
                self._waiting = (
                    f"waiting for a fleet slot (the Kubernetes API: {exc}; pulling without one "
                    f"in {left:.0f}s)"
                )
                delay = min(1.0, left)
            await asyncio.sleep(random.uniform(0.8, 1.2) * delay)  # noqa: S311 - jitter

    def _connect(self) -> LeaseApi:
        if self._api is None:
            try:
                self._api = self._make_api()
            except KubeError as exc:
                raise KubeError(NO_CONFIG, str(exc)) from None  # waiting will not help
        return self._api

    async def _look(self, api: LeaseApi) -> q.View:
        """Join or renew our place in the queue, then list the budget's leases."""
        now = self._clock()
        if self._wait is None:
            await self._join_queue(api)
        elif now - self._wait_renewed >= self._duration / 3:
            await self._renew_wait(api)
        if self._far and self._view is not None and now - self._listed < self._duration:
            return self._view  # far back in the queue: renew the place, list once a lease
        self._far, self._listed = False, now
        listing = await api.list_leases(q.LABEL)
        leases = [q.Lease.of(i, self._duration) for i in listing.get("items") or []]
        now = self._clock()
        self._seen.see(leases, now)
        v = q.view(self.node, self.parallelism, leases, self._seen, now)
        if not any(w.holder == self.node for w in v.queue) and self.holding is None:
            self._wait = None  # our place was lost (deleted by hand): join again next time
        for stale in v.stale_waiters[:1]:  # tidy up after a waiter that died, one per look
            with contextlib.suppress(KubeError):
                await api.delete(stale.name, stale.version)
        self._view = v
        return v

    async def _join_queue(self, api: LeaseApi) -> None:
        name = q.wait_name(self.node)
        try:
            made = await api.create(q.new_lease(name, "wait", self.node, self._duration))
        except KubeError as exc:
            if exc.status != 409:
                raise
            old = await api.get(name)  # left by this node's previous pod: to the back
            await api.delete(name, old["metadata"]["resourceVersion"])
            made = await api.create(q.new_lease(name, "wait", self.node, self._duration))
        self._wait, self._wait_renewed = made, self._clock()

    async def _renew_wait(self, api: LeaseApi) -> None:
        assert self._wait is not None
        renewed = copy.deepcopy(self._wait)
        renewed["spec"]["renewTime"] = q.microtime()
        try:
            self._wait = await api.replace(renewed)
        except KubeError as exc:
            if exc.status not in (404, 409):  # deleted, or judged dead by a node that tidied up
                raise
            self._wait = None
            await self._join_queue(api)
        self._wait_renewed = self._clock()

    async def _leave_queue(self) -> None:
        wait, self._wait = self._wait, None
        if wait is not None and self._api is not None:
            with contextlib.suppress(KubeError):
                await self._api.delete(q.wait_name(self.node))

    async def _take(self, api: LeaseApi, v: q.View, name: str, started: float) -> bool:
        before = v.slots[name]
        body, previous = q.claim(
            name, None if before is None else before.raw, self.node, self._duration
        )
        try:
            self._held = await (api.create(body) if before is None else api.replace(body))
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        how = f"waited {self._clock() - started:.1f}s"
        if previous and previous != self.node and before is not None:
            silent = self._seen.silent_for(before, self._clock())
            how += f"; taken over from node {previous}, silent for {silent:.0f}s"
        log.info(f"fleet: node {self.node} holds {name} of {self.parallelism} ({how})")
        self._renewer = asyncio.create_task(self._renew(), name=f"fleet renew {name}")
        return True

    # -- holding and giving back ----------------------------------------------------------------

    async def _renew(self) -> None:
        """Renew every lease/3; a 409 or 404 means the slot was taken over (or deleted)."""
        last_ok, ended = self._clock(), False
        while self._held is not None:
            await asyncio.sleep(self._duration / 3)
            held = copy.deepcopy(self._held)
            held["spec"]["renewTime"] = q.microtime()
            try:
                self._held = await self._connect().replace(held)
            except KubeError as exc:
                name = held["metadata"]["name"]
                if exc.status in (404, 409):
                    log.warning(f"fleet: {name} was taken over by another node ({exc}); this "
                                "node carries on pulling without it")  # fmt: skip
                    self._held = None
                    return
                if not ended and self._clock() - last_ok >= self._duration:
                    ended = True
                    log.warning(f"fleet: cannot renew {name} for {self._duration:.0f}s ({exc}): "
                                "its claim has ended and another node may take it over; this "
                                "node carries on pulling")  # fmt: skip
                continue
            if ended:
                log.info(f"fleet: {held['metadata']['name']} renewed again: nobody took it over")
            last_ok, ended = self._clock(), False

    async def _release(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        held, self._held = self._held, None
        if held is None:
            return
        held["spec"].update(holderIdentity="", renewTime=q.microtime())
        try:
            await self._connect().replace(held)
        except KubeError as exc:
            if exc.status not in (404, 409):  # 409: taken over meanwhile; nothing to give back
                log.warning(f"fleet: could not give {held['metadata']['name']} back ({exc}); "
                            f"other nodes take it over after {self._duration:.0f}s")  # fmt: skip

    # -- trouble, said once -----------------------------------------------------------------------

    def _go_alone(self, exc: KubeError) -> None:
        self._alone = True
        kind = "forbidden" if exc.status == 403 else str(exc.status)
        if self._trouble != kind:
            self._trouble = kind
            hint = f"; the service account needs {RBAC_RULE}" if exc.status == 403 else ""
            log.warning(f"fleet: {exc}{hint}; this node pulls without a fleet slot until the "
                        "API answers (the budget does not count it meanwhile)")  # fmt: skip

    def _recovered(self) -> None:
        self._alone = False
        if self._trouble is not None:
            self._trouble = None
            log.info("fleet: the Kubernetes API answers again; pulls wait for a fleet slot again")
