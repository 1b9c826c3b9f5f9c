"""Config hot reload: watch the directory (not the file) and re-read it on any event.

Kubelet updates a ConfigMap volume by swapping the `..data` symlink, so events name `..data`,
never `image.config`; the scheduler re-reads and compares a content hash, so spurious events
cost one small read. A periodic re-read (`poll`) covers file systems where inotify is silent.
"""

from __future__ import annotations

import asyncio
import logging

from watchfiles import awatch

from jcp.scheduler import Scheduler

log = logging.getLogger(__name__)


async def watch_config(scheduler: Scheduler) -> None:
    path = scheduler.settings.config_dir
    poll_ms = max(100, int(scheduler.settings.poll * 1000))
    warned = False
    while True:
        try:
            async for _ in awatch(
                path,
                recursive=False,
                debounce=300,
                step=20,
                watch_filter=None,
                rust_timeout=poll_ms,
                yield_on_timeout=True,
            ):
                warned = False
                await scheduler.reload()
        except (OSError, RuntimeError) as exc:
            if not warned:
                log.warning(
                    f"cannot watch config directory {path}: {exc}; re-reading it every "
                    f"{scheduler.settings.poll:g}s until it can be watched"
                )
                warned = True
            await asyncio.sleep(scheduler.settings.poll)
            await scheduler.reload()
