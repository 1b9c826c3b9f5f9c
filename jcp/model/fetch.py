"""What jcp's own blob fetch has done so far: counted where it happens, read by /status and
/metrics (the observers never import the fetch, they are handed these counts)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FetchCounts:
    """Totals since the start; only the fetch writes them (one event loop, no lock)."""

    mode: str = "off"
    """What the fetch does on this node: `on`, or `off (<why>)`."""
    bytes_fetched: int = 0
    """Blob bytes jcp fetched from registries into the runtime's content store."""
    bytes_present: int = 0
    """Blob bytes an image to pull needed that the content store already held."""
    bytes_resumed: int = 0
    """Bytes of cut-off ingests that were kept and not fetched again."""
    ranges: int = 0
    """Range requests made (a blob fetched whole counts one)."""
    images: int = 0
    """Images whose blobs jcp fetched before the runtime unpacked them."""
    fallbacks: dict[tuple[str, str], int] = field(default_factory=dict)
    """(registry or runtime, reason class) -> pulls left to the runtime's own fetch."""

    def fell_back(self, where: str, reason: str) -> bool:
        """Count one fallback; True the first time for WHERE and REASON (say it then)."""
        key = (where, reason)
        first = key not in self.fallbacks
        self.fallbacks[key] = self.fallbacks.get(key, 0) + 1
        return first

    def document(self) -> dict[str, object]:
        """For /status."""
        return {
            "mode": self.mode,
            "bytesFetched": self.bytes_fetched,
            "bytesPresent": self.bytes_present,
            "bytesResumed": self.bytes_resumed,
            "ranges": self.ranges,
            "images": self.images,
            "fallbacks": [
                {"where": w, "reason": r, "count": n}
                for (w, r), n in sorted(self.fallbacks.items())
            ],
        }
