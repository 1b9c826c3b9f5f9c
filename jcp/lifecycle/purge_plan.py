"""What purge would do with the images jcp pulled and the config no longer lists: pure, no I/O.

An image is removed only when all of these hold, each a row of the tests' tables:
jcp pulled it (it is in the ledger), the config no longer lists it, it still is the image jcp
pulled (a reference re-pulled by someone else now names another image: not jcp's), no container
uses it, every other name the same image has on the node is removable too (a runtime may remove
an image with all its names: CRI's RemoveImage does), and it has been unlisted for the grace
period (a config edited by mistake and fixed within the grace loses nothing).

The caller keeps `unlisted_since` from one sweep to the next (in memory: a restart restarts the
grace, which only delays a removal), feeds `purge_candidates` the runtime's view, then acts on
REMOVE (remove from the runtime, then forget it in the ledger) and FORGET (ledger only), and logs
WAIT and KEEP at debug. Dry-run logs REMOVE instead of acting. An unusable ledger gives an empty
`owned`, so nothing is ever removed on a guess.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    REMOVE = "remove"
    """Remove the image from the runtime, then forget it."""
    FORGET = "forget"
    """Drop the ledger entry only: the image is gone, or is no longer the one jcp pulled."""
    WAIT = "wait"
    """Unlisted, but still within the grace period."""
    KEEP = "keep"
    """Unlisted and due, but something still needs it."""


@dataclass(frozen=True)
class Removal:
    """The verdict on one image jcp pulled that the config no longer lists."""

    image: str
    image_id: str | None
    action: Action
    reason: str


def unlisted_since(
    previous: Mapping[str, float], owned: Iterable[str], desired: Collection[str], now: float
) -> dict[str, float]:
    """When each owned image was first seen unlisted; listed again restarts its grace."""
    return {image: previous.get(image, now) for image in owned if image not in desired}


def purge_candidates(
    owned: Mapping[str, str | None],
    desired: Collection[str],
    *,
    present: Mapping[str, str],
    in_use: Collection[str],
    first_seen_unlisted: Mapping[str, float],
    now: float,
    grace: float,
) -> list[Removal]:
    """Verdicts for every owned, unlisted image, sorted by image.

    owned: ledger image -> the id jcp pulled (None: unknown, then only the name is checked).
    desired: images the config lists (all of them, whatever the architecture).
    present: every name the runtime holds -> its image id, jcp's or not.
    in_use: image ids that containers (running or stopped) use.
    """
    verdicts = {
        image: _verdict(
            image,
            pulled_id,
            present=present,
            in_use=in_use,
            since=first_seen_unlisted,
            now=now,
            grace=grace,
        )
        for image, pulled_id in owned.items()
        if image not in desired
    }
    names: dict[str, list[str]] = {}
    for name, image_id in present.items():
        names.setdefault(image_id, []).append(name)
    out: list[Removal] = []
    for image in sorted(verdicts):
        verdict = verdicts[image]
        if verdict.action == Action.REMOVE and verdict.image_id is not None:
            for other in sorted(names.get(verdict.image_id, ())):
                if other == image:
                    continue
                blocker = verdicts.get(other)
                if blocker is None:
                    why = "listed" if other in desired else "not pulled by jcp"
                    verdict = _keep(verdict, f"the same image is also {other} ({why})")
                    break
                if blocker.action != Action.REMOVE:
                    verdict = _keep(verdict, f"the same image is also {other} ({blocker.reason})")
                    break
        out.append(verdict)
    return out


def _verdict(
    image: str,
    pulled_id: str | None,
    *,
    present: Mapping[str, str],
    in_use: Collection[str],
    since: Mapping[str, float],
    now: float,
    grace: float,
) -> Removal:
    image_id = present.get(image)
    if image_id is None:
        return Removal(image, pulled_id, Action.FORGET, "no longer on the node")
    if pulled_id is not None and image_id != pulled_id:
        return Removal(
            image,
            image_id,
            Action.FORGET,
            f"now names {_short(image_id)}, not {_short(pulled_id)} that jcp pulled",
        )
    if image_id in in_use:
        return Removal(image, image_id, Action.KEEP, "a container uses it")
    unlisted = now - since.get(image, now)
    if unlisted < grace:
        left = grace - unlisted
        return Removal(image, image_id, Action.WAIT, f"unlisted, {left:.0f}s of grace left")
    return Removal(
        image, image_id, Action.REMOVE, f"unlisted for {unlisted:.0f}s (grace {grace:.0f}s)"
    )


def _keep(verdict: Removal, reason: str) -> Removal:
    return Removal(verdict.image, verdict.image_id, Action.KEEP, reason)


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]
