"""Hot reload: watch the config directory and the secrets' directory, not the files.

Kubelet updates a ConfigMap or Secret volume by swapping its `..data` symlink, so events name
`..data`, never `image.config`; the config is re-read and compared by content hash, so spurious
events cost one small read. A periodic re-read (`poll`) covers file systems where inotify is
silent. A failure of the watcher itself (directory gone, inotify limit reached) is reported as
such, once, and polling takes over: it is never mistaken for bad content.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from watchfiles import awatch

log = logging.getLogger(__name__)


async def watch_dir(
    path: Path,
    on_tick: Callable[[], Awaitable[None]],
    *,
    poll: float,
    what: str,
    recursive: bool = False,
) -> None:
    """Call ON_TICK after every change under PATH, and at least every POLL seconds."""
    poll_ms = max(100, int(poll * 1000))
    warned: str | None = None
    while True:
        try:
            async for _ in awatch(
                path,
                recursive=recursive,
                debounce=300,
                step=20,
                watch_filter=None,
                rust_timeout=poll_ms,
                yield_on_timeout=True,
            ):
                if warned is not None:
                    log.info(f"watching {what} {path} again")
                    warned = None
                await on_tick()
        except (OSError, RuntimeError) as exc:
            text = str(exc)
            if text != warned:
                log.warning(
                    f"cannot watch {what} {path} ({type(exc).__name__}: {text}): a problem of "
                    f"the watcher, not of the content; re-reading it every {poll:g}s until it "
                    "can be watched",
                    extra={"fields": {"event": "watch_failed", "path": str(path)}},
                )
                warned = text
            await asyncio.sleep(poll)
            await on_tick()


def tree_digest(root: Path, depth: int = 3) -> str:
    """A cheap fingerprint of what is mounted under ROOT (names, sizes, mtimes, link targets)."""
    h = hashlib.sha256()

    def walk(d: Path, level: int) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            try:
                st = e.stat()
                link = str(Path(e.path).readlink()) if e.is_symlink() else ""
            except OSError:
                continue
            h.update(f"{e.path}\0{st.st_size}\0{st.st_mtime_ns}\0{link}\n".encode())
            if level < depth and e.is_dir():
                walk(Path(e.path), level + 1)

    walk(root, 0)
    return h.hexdigest()


class SecretWatch:
    """Calls ON_CHANGE when anything under the secrets' root changes (mount, fix, rotation)."""

    def __init__(self, root: Path, on_change: Callable[[], None]) -> None:
        self.root = root
        self.on_change = on_change
        self._seen = tree_digest(root)

    async def tick(self) -> None:
        digest = await asyncio.to_thread(tree_digest, self.root)
        if digest != self._seen:
            self._seen = digest
            log.info(
                f"secrets under {self.root} changed: images that failed for credentials go again"
            )
            self.on_change()
