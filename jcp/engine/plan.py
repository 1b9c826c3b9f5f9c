"""What to do for each wanted image, decided without I/O from what is known.

Inputs: the targets a node wants, the runtime's image list read once per sweep (`Observed`),
and, where the registry was asked, each tag's current remote digest. Output: one `Decision` per
target: pull it through the runtime, or skip it (already as wanted: no runtime call at all).
Kept pure so that every rule is a row in a table test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from jcp.model.config import Target
from jcp.model.refs import ImageRef
from jcp.runtime.base import ImageStatus
from jcp.settings import Refresh

__all__ = ["TAG_MOVED", "Action", "Decision", "Observed", "Refresh", "Why", "decide"]


class Action(StrEnum):
    PULL = "pull"
    SKIP = "skip"


class Why(StrEnum):
    """Why the plan decided as it did: in the pull's log line, and what the worker acts on."""

    UNKNOWN = "runtime's images unknown"
    ABSENT = "absent"
    PINNED = "present, pinned by digest"
    NEVER = "present (--refresh never)"
    RUNTIME_CHECKS = "present; the runtime checks the registry"
    UNCHANGED = "present, remote digest unchanged"
    TAG_MOVED = "tag moved"

    @property
    def sizes(self) -> bool:
        """Whether the image is to be fetched anew, so its manifest is worth reading first."""
        return self in (Why.ABSENT, Why.TAG_MOVED)


TAG_MOVED = Why.TAG_MOVED


@dataclass(frozen=True)
class Observed:
    """The runtime's images, indexed by normalised reference."""

    refs: frozenset[ImageRef]
    digests: Mapping[ImageRef, frozenset[str]]
    """Tag reference -> the digests of the image that tag names on the node (not of every
    image of the repository: a tag moved to content held under another tag has moved)."""

    @classmethod
    def from_images(cls, images: Iterable[ImageStatus]) -> Observed:
        refs: set[ImageRef] = set()
        digests: dict[ImageRef, frozenset[str]] = {}
        for image in images:
            held: set[str] = set()
            tags: list[ImageRef] = []
            for ref in image.refs():
                refs.add(ref)
                if ref.digest is not None:
                    held.add(ref.digest)
                else:
                    tags.append(ref)
            for tag in tags:
                digests[tag] = frozenset(held)
        return cls(frozenset(refs), digests)

    def holds(self, image: ImageRef) -> bool:
        if image in self.refs:
            return True
        # `name:tag@digest` is pinned by its digest: the runtime lists it as `name@digest`.
        return image.digest is not None and (
            ImageRef(image.registry, image.repository, None, image.digest) in self.refs
        )

    def digests_of(self, image: ImageRef) -> frozenset[str]:
        return self.digests.get(image, frozenset())


@dataclass(frozen=True)
class Decision:
    target: Target
    action: Action
    why: Why


def decide(
    target: Target,
    observed: Observed | None,
    remote_digest: str | None = None,
    refresh: Refresh = Refresh.PULL,
) -> Decision:
    image = target.image
    if observed is None:
        return Decision(target, Action.PULL, Why.UNKNOWN)
    if not observed.holds(image):
        return Decision(target, Action.PULL, Why.ABSENT)
    if image.pinned:
        return Decision(target, Action.SKIP, Why.PINNED)
    if refresh == Refresh.NEVER:
        return Decision(target, Action.SKIP, Why.NEVER)
    if refresh == Refresh.PULL or remote_digest is None:
        return Decision(target, Action.PULL, Why.RUNTIME_CHECKS)
    if remote_digest in observed.digests_of(image):
        return Decision(target, Action.SKIP, Why.UNCHANGED)
    return Decision(target, Action.PULL, Why.TAG_MOVED)
