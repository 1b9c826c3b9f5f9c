"""Purge: remove what jcp pulled once the config drops it, after a grace, never anything else.

It follows the engine (its events and the config in force) and the runtime protocol, and never
changes what the engine does: whatever happens to the ledger, pulling goes on. A ledger that
cannot be written (its directory full, read-only) is retried with backoff until it is, so that
what was recorded in memory reaches the disk before a restart can lose it; the first failure of
an episode is logged, and its end, nothing in between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from jcp.engine.events import Events
from jcp.engine.state import SweepView
from jcp.lifecycle.ledger import Ledger, LedgerError
from jcp.lifecycle.purge_plan import Action, purge_candidates, unlisted_since
from jcp.model.config import Config
from jcp.model.refs import InvalidReferenceError, parse_reference
from jcp.model.results import Outcome, PullResult
from jcp.runtime.base import ImageRuntime, RuntimeFailure

log = logging.getLogger(__name__)

RETRY_FIRST = 1.0
RETRY_CAP = 30.0
"""Backoff of a failing ledger write: 1 s doubling to 30 s (a write is a few KB; cheap)."""


def configured_images(config: Config | None) -> set[str]:
    """Every image the config names, for any architecture: purge never removes one of them."""
    if config is None:
        return set()
    out: set[str] = set()
    for entry in config.entries:
        if entry.default_ref is not None:
            out.add(str(entry.default_ref))
        for _, ref in entry.arch or ():
            out.add(str(ref))
    return out


class Purger(Events):
    """Records what jcp pulled in the ledger, and removes it after the grace once unlisted."""

    def __init__(
        self,
        runtime: ImageRuntime,
        ledger: Ledger,
        config: Callable[[], Config | None],
        *,
        grace: float,
        dry_run: bool,
        enabled: bool,
    ) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.config = config
        self.grace = grace
        self.dry_run = dry_run
        self.enabled = enabled
        self._pulled: asyncio.Queue[str] = asyncio.Queue()
        self._sweeps = asyncio.Event()
        self._unlisted: dict[str, float] = {}
        self._retry_delay = RETRY_FIRST
        self._retry_at = 0.0
        self._failed_attempts = 0
        self._failing_since = 0.0

    # -- events (sync: the work happens in run()) ----------------------------------------------

    def pull_finished(self, result: PullResult) -> None:
        # Only content jcp brought: an image that was already there may be someone else's.
        if result.outcome == Outcome.PULLED:
            self._pulled.put_nowait(str(result.image))

    def sweep_finished(self, sweep: SweepView) -> None:
        if sweep.kind == "sweep":
            self._sweeps.set()

    # -- the task -----------------------------------------------------------------------------

    async def run(self) -> None:
        log.info(f"purge ledger {self.ledger.path}: {self.ledger.state}")
        loop = asyncio.get_running_loop()
        while True:
            pulled = asyncio.create_task(self._pulled.get())
            swept = asyncio.create_task(self._sweeps.wait())
            failing = self.ledger.write_error is not None
            retry_in = max(0.0, self._retry_at - loop.time()) if failing else None
            try:
                await asyncio.wait(
                    {pulled, swept}, timeout=retry_in, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for t in (pulled, swept):
                    t.cancel()
                await asyncio.gather(pulled, swept, return_exceptions=True)
            if pulled.done() and not pulled.cancelled():
                await self._record(pulled.result())
            elif self.ledger.write_error is not None and loop.time() >= self._retry_at:
                await self._save()
            if self._sweeps.is_set():
                self._sweeps.clear()
                if self.enabled:
                    await self.purge()

    async def _record(self, image: str) -> None:
        try:
            status = await self.runtime.image_status(parse_reference(image))
        except (RuntimeFailure, InvalidReferenceError):
            status = None
        self.ledger.record(image, status.id if status is not None else None)
        await self._save()

    async def _save(self) -> None:
        """Save; a failure starts (or continues) an episode retried with backoff by run()."""
        loop = asyncio.get_running_loop()
        try:
            await self.ledger.save()
        except LedgerError as exc:
            self._failed_attempts += 1
            if self._failed_attempts == 1:
                self._failing_since = loop.time()
                log.warning(
                    f"purge ledger: {exc}; what jcp pulled is kept in memory and written as "
                    f"soon as it can be (retrying with backoff up to {RETRY_CAP:g}s)",
                    extra={"fields": {"event": "ledger_write_failing"}},
                )
            self._retry_at = loop.time() + self._retry_delay
            self._retry_delay = min(RETRY_CAP, self._retry_delay * 2)
            return
        if self._failed_attempts:
            log.info(
                f"purge ledger: {self.ledger.path} written again after "
                f"{self._failed_attempts} failed attempt(s) over "
                f"{loop.time() - self._failing_since:.1f}s",
                extra={"fields": {"event": "ledger_write_recovered"}},
            )
        self._failed_attempts = 0
        self._retry_delay = RETRY_FIRST

    async def purge(self) -> None:
        """One purge pass: only the ledger's images, unlisted for the grace, unused."""
        if not self.ledger.usable:
            log.warning(f"purge: nothing removed: the ledger is {self.ledger.state}")
            return
        try:
            images = await self.runtime.list_images()
            in_use = await self.runtime.images_in_use()
        except RuntimeFailure as exc:
            log.warning(f"purge: skipped this time: {exc.failure.message}")
            return
        desired = configured_images(self.config())
        owned = self.ledger.owned()
        present: dict[str, str] = {}
        for image in images:
            for parsed in image.refs():
                ref = str(parsed)
                # `repo@sha256:...` is the runtime's alias of a tag it pulled, not another
                # user of the image: it counts only when the config or the ledger names it.
                if "@" not in ref or ref in owned or ref in desired:
                    present[ref] = image.id
        now = time.monotonic()
        self._unlisted = unlisted_since(self._unlisted, owned, desired, now)
        verdicts = purge_candidates(
            self.ledger.ids(),
            desired,
            present=present,
            in_use=in_use,
            first_seen_unlisted=self._unlisted,
            now=now,
            grace=self.grace,
        )
        for v in verdicts:
            if v.action == Action.FORGET:
                self.ledger.forget(v.image)
            elif v.action == Action.REMOVE and self.dry_run:
                log.info(f"purge (dry run): would remove {v.image}: {v.reason}")
            elif v.action == Action.REMOVE:
                await self._remove(v.image, v.reason)
            else:
                log.debug(f"purge: {v.action} {v.image}: {v.reason}")
        if self.ledger.dirty:
            await self._save()

    async def _remove(self, image: str, reason: str) -> None:
        try:
            await self.runtime.remove(parse_reference(image))
        except RuntimeFailure as exc:
            log.warning(f"purge: could not remove {image}: {exc.failure.message}")
            return
        self.ledger.forget(image)
        self._unlisted.pop(image, None)
        log.info(
            f"purged {image}: {reason}",
            extra={"fields": {"event": "purged", "image": image}},
        )
