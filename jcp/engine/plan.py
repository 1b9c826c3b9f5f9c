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

from jcp.model.config import Target, TargetKey
from jcp.model.refs import ImageRef
from jcp.runtime.base import ImageStatus

TAG_MOVED = "tag moved"


class Action(StrEnum):
    PULL = "pull"
    SKIP = "skip"


class Refresh(StrEnum):
    """How a present tag is refreshed (`--refresh`)."""

    DIGEST = "digest"
    """Compare the registry's digest with the runtime's; pull only when the tag moved."""
    PULL = "pull"
    """Ask the runtime to pull every sweep (the runtime checks the registry itself)."""
    NEVER = "never"
    """A present tag is never refreshed."""


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
    why: str


def decide(
    target: Target,
    observed: Observed | None,
    remote_digest: str | None = None,
    refresh: Refresh = Refresh.PULL,
) -> Decision:
    image = target.image
    if observed is None:
        return Decision(target, Action.PULL, "runtime's images unknown")
    if not observed.holds(image):
        return Decision(target, Action.PULL, "absent")
    if image.pinned:
        return Decision(target, Action.SKIP, "present, pinned by digest")
    if refresh == Refresh.NEVER:
        return Decision(target, Action.SKIP, "present (--refresh never)")
    if refresh == Refresh.PULL or remote_digest is None:
        return Decision(target, Action.PULL, "present; the runtime checks the registry")
    if remote_digest in observed.digests_of(image):
        return Decision(target, Action.SKIP, "present, remote digest unchanged")
    return Decision(target, Action.PULL, TAG_MOVED)


def plan(
    targets: Iterable[Target],
    observed: Observed | None,
    remote: Mapping[TargetKey, str] | None = None,
    refresh: Refresh = Refresh.PULL,
) -> list[Decision]:
    remote = remote or {}
    return [decide(t, observed, remote.get(t.key), refresh) for t in targets]
