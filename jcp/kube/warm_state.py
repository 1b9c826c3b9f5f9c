"""What a node says of its cache: the warm state, and its annotation's wire format.

Kept apart from the signal that writes it, because `jcp fleet` reads the same annotation back
from every node: one definition of the format on both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

LISTED = 20
"""Image references shown in the annotation and in log lines, before `(+N more)`."""


@dataclass(frozen=True)
class WarmState:
    """What the node holds of the images selected for its architecture."""

    generation: int
    """The config generation these counts are for."""
    selected: int
    present: int
    failed_permanent: tuple[str, ...] = ()
    """Images that will not arrive without a config change (auth, not found, platform)."""
    missing: tuple[str, ...] = ()
    """Selected images neither present nor failed permanently (named in the deadline's log)."""

    @property
    def warm(self) -> bool:
        """Every selected image is present or has failed permanently: waiting gains nothing."""
        return self.present + len(self.failed_permanent) >= self.selected

    def annotation(self) -> str:
        return json.dumps(
            {
                "generation": self.generation,
                "warm": self.warm,
                "selected": self.selected,
                "present": self.present,
                "failed": list(self.failed_permanent[:LISTED]),
                "failedCount": len(self.failed_permanent),
                "missing": list(self.missing[:LISTED]),
                "missingCount": len(self.missing),
            },
            separators=(",", ":"),
        )
