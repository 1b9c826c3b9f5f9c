"""`jcp fleet`'s view of the fleet pull budget (`--fleet-parallelism`): who holds the slots and
who waits, read from the budget's Leases (`jcp.kube.fleet`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jcp.kube.api import JsonObject


FLEET_LABEL = "jcp.nimbix.net/fleet"
"""On every Lease of the fleet budget (`jcp.kube.fleet_queue.LABEL`): `slot` or `wait`."""


def slots(leases: JsonObject | None) -> dict[str, list[str]] | None:
    """Who holds the fleet's pull slots, and who waits for one (oldest first); None: no budget
    (or its Leases could not be read)."""
    items = (leases or {}).get("items") or []
    if not items:
        return None
    out: dict[str, list[str]] = {"holders": [], "free": [], "waiting": []}
    for lease in sorted(items, key=lambda x: (x["metadata"].get("creationTimestamp", ""),
                                               x["metadata"]["name"])):  # fmt: skip
        kind = lease["metadata"].get("labels", {}).get(FLEET_LABEL)
        holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
        if kind == "slot":
            out["holders" if holder else "free"].append(holder or lease["metadata"]["name"])
        elif kind == "wait" and holder:
            out["waiting"].append(holder)
    return out


def slots_line(found: dict[str, list[str]] | None) -> str | None:
    if found is None:
        return None
    taken, total = len(found["holders"]), len(found["holders"]) + len(found["free"])
    held = f": {', '.join(sorted(found['holders']))}" if taken else ""
    waiting = f"; waiting: {', '.join(found['waiting'])}" if found["waiting"] else ""
    return f"fleet pull slots: {taken} of {total} taken{held}{waiting}"
