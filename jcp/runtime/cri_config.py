"""What containerd's own settings mean for jcp's pulls, read from its effective config.

containerd's CRI plugin answers `RuntimeService/Status` with `verbose: true` with its effective
configuration as JSON under `info["config"]` (checked on Debian's containerd 1.6.20 and 1.7.24):
- `maxConcurrentDownloads` (TOML `max_concurrent_downloads`, default 3) is one node-wide
  semaphore shared by every PullImage (`pkg/cri/server/images/service.go`): jcp's concurrent
  pulls queue behind it, so eight of jcp's pulls over the runtime's own fetch move three
  layers at a time;
- `containerd.discardUnpackedLayers` (`discard_unpacked_layers`): containerd deletes the
  compressed blobs once unpacked, so blobs jcp fetched are gone after the pull (they are
  fetched again only if the image is);
- containerd 2.1 fetches ranges of one layer itself when `concurrent_layer_fetch_buffer` is set
  (containerd PR 10177; off by default, absent from 1.6, 1.7 and 2.0): then the bytes are best
  left to it. jcp looks for that key anywhere in the config, as 2.1 names it in JSON, and takes
  any positive value as "on" (no containerd 2.1 runs here to check its exact place).
Other runtimes (CRI-O, cri-dockerd) answer without a `config`: nothing is known, nothing said.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

_RANGED_KEYS = ("concurrentLayerFetchBuffer", "concurrent_layer_fetch_buffer")


@dataclass(frozen=True)
class RuntimeTuning:
    """containerd's settings that change what jcp's fetch is worth; None: not said."""

    max_concurrent_downloads: int | None = None
    discard_unpacked_layers: bool | None = None
    ranged_fetch: bool = False
    """The runtime fetches ranges of a layer itself (containerd 2.1+ with the buffer set)."""
    config_path: str | None = None
    """Where containerd reads registry host config (`hosts.toml`), if it says."""

    def lines(self, runtime: str) -> list[str]:
        """What these settings mean, said once at start."""
        out = []
        if self.max_concurrent_downloads is not None:
            out.append(
                f"{runtime} downloads at most {self.max_concurrent_downloads} layers at once "
                "for all pulls (max_concurrent_downloads): pulls beyond that queue inside it"
            )
        if self.discard_unpacked_layers:
            out.append(
                f"{runtime} discards compressed layers once unpacked (discard_unpacked_layers): "
                "fetched blobs do not outlive their pull"
            )
        if self.ranged_fetch:
            out.append(
                f"{runtime} fetches layer ranges itself (concurrent_layer_fetch_buffer): "
                "jcp leaves the bytes to it"
            )
        return out


def parse(info: Mapping[str, str]) -> RuntimeTuning:
    """The tuning in a verbose CRI Status's INFO map; an empty one for anything unreadable."""
    raw = info.get("config")
    if not raw:
        return RuntimeTuning()
    try:
        config = json.loads(raw)
    except ValueError:
        return RuntimeTuning()
    if not isinstance(config, dict):
        return RuntimeTuning()
    downloads = config.get("maxConcurrentDownloads")
    inner = config.get("containerd")
    discard = inner.get("discardUnpackedLayers") if isinstance(inner, dict) else None
    if not isinstance(discard, bool):
        discard = config.get("discardUnpackedLayers")
    registry = config.get("registry")
    path = registry.get("configPath") if isinstance(registry, dict) else None
    return RuntimeTuning(
        max_concurrent_downloads=downloads if _count(downloads) else None,
        discard_unpacked_layers=discard if isinstance(discard, bool) else None,
        ranged_fetch=any(isinstance(v, int) and v > 0 for v in _find(config, _RANGED_KEYS)),
        config_path=path if isinstance(path, str) and path else None,
    )


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _find(node: object, keys: tuple[str, ...]) -> Iterator[object]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys:
                yield value
            yield from _find(value, keys)
    elif isinstance(node, list):
        for item in node:
            yield from _find(item, keys)
