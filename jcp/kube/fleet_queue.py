"""What one node makes of the fleet's Leases (pure: no I/O): which slots are free, who waits
ahead of it, and what /status says while it waits.

A lease is *silent* when its resourceVersion has not changed for its whole
`leaseDurationSeconds`, as measured on this node's monotonic clock from the moment this node
first saw that version (`Sightings`). Never by comparing `renewTime` with this node's wall
clock: the holder wrote that with its own clock, and two clocks a minute apart would let two
nodes hold one slot. A node that has just started has seen every version just now, so it waits
a full lease duration before it takes over anything: it never judges too early.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from jcp.kube.api import JsonObject

GROUP = "coordination.k8s.io"
LABEL = "jcp.nimbix.net/fleet"
"""On every Lease of the budget: `slot` (one of K) or `wait` (a node in the queue)."""
RBAC_RULE = (
    f'apiGroups: ["{GROUP}"], resources: ["leases"], verbs: ["get", "list", "watch", "create", '
    '"update", "delete"] (a Role in jcp\'s namespace)'
)
SLOT_PREFIX = "jcp-fleet-"
WAIT_PREFIX = "jcp-fleet-wait-"
MAX_NAME = 253  # a Lease's name is a DNS subdomain


def microtime() -> str:
    """A MicroTime, as `renewTime` and `acquireTime` are written."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_lease(name: str, kind: str, node: str, duration: float) -> JsonObject:
    """A Lease held by NODE: a slot (KIND "slot") or its place in the queue ("wait")."""
    stamp = microtime()
    spec = {"holderIdentity": node, "leaseDurationSeconds": int(duration),
            "acquireTime": stamp, "renewTime": stamp}  # fmt: skip
    meta = {"name": name, "labels": {LABEL: kind}}
    return {"apiVersion": f"{GROUP}/v1", "kind": "Lease", "metadata": meta, "spec": spec}


def claim(
    name: str, lease: JsonObject | None, node: str, duration: float
) -> tuple[JsonObject, str]:
    """The slot NAME as NODE writes it to take it (LEASE: as read; None: to create it), and
    the holder it had."""
    if lease is None:
        return new_lease(name, "slot", node, duration), ""
    body = copy.deepcopy(lease)
    spec = body.setdefault("spec", {})
    previous = str(spec.get("holderIdentity") or "")
    stamp = microtime()
    spec.update(holderIdentity=node, acquireTime=stamp, renewTime=stamp,
                leaseDurationSeconds=int(duration))  # fmt: skip
    if previous and previous != node:
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
    return body, previous


def slot_names(parallelism: int) -> list[str]:
    return [f"{SLOT_PREFIX}{i}" for i in range(parallelism)]


def wait_name(node: str) -> str:
    """The node's place in the queue; a node name too long for the prefix is hashed."""
    name = f"{WAIT_PREFIX}{node}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(node.encode()).hexdigest()[:16]
    return f"{WAIT_PREFIX}{node[: MAX_NAME - len(WAIT_PREFIX) - 17]}-{digest}"


@dataclass(frozen=True)
class Lease:
    """The fields of a Lease the budget reads."""

    name: str
    version: str
    holder: str
    duration: float
    created: str
    """metadata.creationTimestamp: set by the API server (one clock for every node)."""
    raw: JsonObject

    @classmethod
    def of(cls, item: JsonObject, default_duration: float) -> Lease:
        meta, spec = item.get("metadata") or {}, item.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        return cls(
            name=str(meta.get("name", "")),
            version=str(meta.get("resourceVersion", "")),
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(duration)
            if isinstance(duration, int) and duration > 0
            else default_duration,
            created=str(meta.get("creationTimestamp", "")),
            raw=item,
        )


class Sightings:
    """When this node first saw each lease's current resourceVersion (monotonic seconds)."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[str, float]] = {}

    def see(self, leases: Iterable[Lease], now: float) -> None:
        listed = {}
        for lease in leases:
            known = self._first.get(lease.name)
            listed[lease.name] = (
                known if known and known[0] == lease.version else (lease.version, now)
            )
        self._first = listed

    def silent_for(self, lease: Lease, now: float) -> float:
        known = self._first.get(lease.name)
        return 0.0 if known is None or known[0] != lease.version else now - known[1]

    def silent(self, lease: Lease, now: float) -> bool:
        """Its holder stopped renewing: unchanged for a whole lease duration, seen from here."""
        return self.silent_for(lease, now) >= lease.duration


@dataclass(frozen=True)
class View:
    """The budget as this node sees it at one listing."""

    slots: dict[str, Lease | None]
    """Every slot name, in order, with its lease (None: never created yet)."""
    holders: dict[str, str]
    """Slot -> the node holding it (live holders only)."""
    free: list[str]
    """Slots this node may take: never created, given back, its own, or silent."""
    queue: list[Lease]
    """Live waiters, oldest first (creationTimestamp, then name)."""
    stale_waiters: list[Lease]


def view(node: str, parallelism: int, leases: list[Lease], seen: Sightings, now: float) -> View:
    by_name = {lease.name: lease for lease in leases}
    slots = {name: by_name.get(name) for name in slot_names(parallelism)}
    holders, free = {}, []
    for name, lease in slots.items():
        if lease is None or not lease.holder or lease.holder == node or seen.silent(lease, now):
            free.append(name)
        else:
            holders[name] = lease.holder
    waiters = [lease for lease in leases if lease.name.startswith(WAIT_PREFIX)]
    holding = set(holders.values())
    live = [w for w in waiters if not seen.silent(w, now) and w.holder not in holding]
    stale = [w for w in waiters if seen.silent(w, now)]
    live.sort(key=lambda w: (w.created, w.name))
    return View(slots, holders, free, live, stale)


def position(v: View, node: str) -> int | None:
    """How many live waiters are ahead of NODE; None when it is not in the queue."""
    return next((i for i, w in enumerate(v.queue) if w.holder == node), None)


def describe(v: View, ahead: int | None, parallelism: int) -> str:
    """What /status says while the node waits."""
    nodes = ", ".join(sorted(v.holders.values())) or "none"
    text = f"waiting for a fleet slot ({len(v.holders)} of {parallelism} taken: nodes {nodes}"
    if ahead:
        text += f"; {ahead} node{'s' if ahead > 1 else ''} ahead in the queue"
    return text + ")"
