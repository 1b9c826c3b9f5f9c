"""Is the kubelet on this node going to see images pulled into Docker at all?

Since Kubernetes 1.24 (dockershim removed), a kubelet uses Docker's image store only through
cri-dockerd. A node with a containerd or CRI-O socket and no cri-dockerd socket almost surely
runs its pods from another image store, where jcp's pulls are invisible: say so, once, loudly.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

CRI_DOCKERD = ("run/cri-dockerd.sock", "var/run/cri-dockerd.sock")
OTHER_RUNTIMES = {
    "containerd": ("run/containerd/containerd.sock", "var/run/containerd/containerd.sock"),
    "CRI-O": ("run/crio/crio.sock", "var/run/crio/crio.sock"),
}


def _exists(root: Path, paths: tuple[str, ...]) -> bool:
    return any((root / p).exists() for p in paths)


def other_runtime(root: Path) -> str | None:
    """The message to warn with, or None when Docker looks like the kubelet's runtime."""
    if _exists(root, CRI_DOCKERD):
        return None
    found = [name for name, paths in OTHER_RUNTIMES.items() if _exists(root, paths)]
    if not found:
        return None
    return (
        f"this node has a {' and a '.join(found)} socket and no cri-dockerd socket under "
        f"{root}: its kubelet most likely uses {found[0]}, which never sees images pulled into "
        "Docker, so jcp's cache will not speed up pod starts here (unless the node runs "
        "Kubernetes < 1.24 with dockershim). See the README's note on runtimes."
    )


def warn_if_other_runtime(root: Path) -> str | None:
    message = other_runtime(root)
    if message is not None:
        log.warning(f"WARNING: {message}", extra={"fields": {"event": "runtime_mismatch"}})
    return message
