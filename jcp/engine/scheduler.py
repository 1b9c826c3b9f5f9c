"""Sweeps over the configured images, the desk the pullers take jobs from, and hot reload.

A sweep queues every selected image (`intake.py`); a config reload queues the images it adds
ahead of the rest, so they start as soon as a slot is free, even in the middle of a long sweep;
images it removes are dropped from the queue and their pulls in flight are cancelled. Pullers
(`worker.py`) are handed tools and jobs, never this object: what they return is applied here
and only here (`end`), so every change to an image's state has one author. A transient failure
is re-queued after the retry policy's delay; a permanent one is not tried again until its entry
or its secret changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from jcp.engine import readmodel, report, tools, worker
from jcp.engine.configs import ConfigSource
from jcp.engine.desk import Book, Desk
from jcp.engine.events import Events, Fanout
from jcp.engine.fleet import FleetHold
from jcp.engine.intake import Intake
from jcp.engine.plan import Observed
from jcp.engine.remote import Remote
from jcp.engine.runtime_link import RuntimeLink, UnknownArchError
from jcp.engine.state import Snapshot, Sweep
from jcp.engine.sweeps import Sweeps
from jcp.model.config import Config, Target
from jcp.model.failures import Reason
from jcp.runtime.base import FsUsage, ImageRuntime, RuntimeFailure, RuntimeInfo
from jcp.settings import Settings

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        runtime: ImageRuntime,
        *,
        label: str,
        env: Mapping[str, str] | None = None,
        events: Events | None = None,
        choice: str | None = None,
        remote: Remote | None = None,
        fleet: FleetHold | None = None,
    ) -> None:
        self.settings = settings
        self.choice = choice
        self.events = events if isinstance(events, Fanout) else Fanout(*filter(None, [events]))
        self.source = ConfigSource(settings.config_dir, settings.interval_flag, env)
        self.node_arch: str | None = settings.arch
        self.labels: Mapping[str, str] | None = settings.node_labels
        """The node's labels (the Node watch, or --node-labels); None: unknown."""
        self._labels_said = 0
        self.labels_trouble: str | None = None
        """Why the node's labels are unknown or may be stale (the Node watch says)."""
        self.book = book = Book()
        self.image_fs: FsUsage | None = None
        """The image file system as the runtime reported it at the last sweep (CRI ImageFsInfo)."""
        self.intake = Intake()
        self.sweeps = Sweeps(self.intake, self.events, book.rev)
        self._config_changed = asyncio.Event()
        self._config_applied = asyncio.Event()  # for until_config's one waiter
        self._skipped = 0  # entries of the current config this node's architecture skips
        self.link = RuntimeLink(
            runtime, settings.backoff, label=label, on_down=self._runtime_down,
            on_seen=self.events.runtime_seen,
        )  # fmt: skip
        self.tools = tools.assemble(settings, runtime, self.link, remote, self.events, fleet=fleet)
        self.desk = Desk(
            book, self.intake, self.sweeps, self.tools,
            arch=lambda: self.node_arch, disk_poll=settings.disk_poll,
        )  # fmt: skip
        self._read = readmodel.ReadModel(self._build_snapshot)

    @property
    def config(self) -> Config | None:
        return self.source.config

    @property
    def runtime(self) -> ImageRuntime:
        return self.tools.runtime

    @property
    def label(self) -> str:
        return self.link.label

    # -- config ---------------------------------------------------------------------------

    async def reload(self, *, force: bool = False) -> bool:
        """Re-read the config directory; apply it if it is new and valid. True if applied."""
        old = self.source.config
        loaded = await self.source.reload(force=force)
        if not loaded.changed:
            return False
        self.events.config_loaded(ok=loaded.error is None)
        self.book.rev.bump()
        if loaded.config is None:
            return False
        if self.node_arch is not None:  # else selected once the runtime tells the architecture
            self._select(loaded.config, old)
        self._config_changed.set()
        self._config_applied.set()
        return True

    def _select(self, config: Config, old: Config | None, *, relabelled: bool = False) -> None:
        assert self.node_arch is not None
        book = self.book
        selection = config.select(self.node_arch, self.labels)
        new = {t.key: t for t in selection.targets}
        self._skipped = len(selection.skipped)
        added = [t for k, t in new.items() if k not in book.wanted]
        removed = [k for k in book.wanted if k not in new]
        book.wanted = new
        for key in removed:
            book.permanent.pop(key, None)
            task = book.in_flight.get(key)
            if task is not None:
                why = (
                    "no longer selected for this node" if relabelled else "removed from the config"
                )
                book.cancelled[key] = f"{why} while pulling"
                task.cancel(book.cancelled[key])
                continue
            book.states.pop(key, None)
            self.sweeps.drop_everywhere(key)
        for target in new.values():  # entries may have moved: keep /status's index true
            book.state(target).target = target
        self.book.rev.bump()
        if relabelled:
            report.relabelled(self.labels, selection, added=len(added), removed=len(removed))
        else:
            report.config_loaded(
                self.source.generation, config=config, old=old, arch=self.node_arch,
                selection=selection, added=len(added), removed=removed,
            )  # fmt: skip
        waiting = len(selection.waiting_for_labels)
        if waiting and waiting != self._labels_said:  # said once, not at every reload
            report.labels_unknown(waiting)
        self._labels_said = waiting
        if old is not None and added:
            self.enqueue_new(added)

    def labels_changed(self, labels: Mapping[str, str] | None) -> None:
        """The node was relabelled (or its labels became known): select again, as a reload
        does: newly selected entries start at once, deselected pulls are cancelled."""
        if labels == self.labels:
            return
        self.labels = labels
        config = self.config
        if config is not None and self.node_arch is not None and config.uses_node_labels:
            self._select(config, config, relabelled=True)
        self.book.rev.bump()

    def enqueue_new(self, targets: list[Target]) -> None:
        """Queue TARGETS ahead of the running sweep (or in a reload sweep of their own)."""
        self.sweeps.add_new(targets)

    def secrets_changed(self) -> None:
        """A secret was mounted, fixed or rotated: images that failed for credentials go again
        now (the worker compares the secret's fingerprint, so an unchanged one costs no pull)."""
        self.tools.creds.forget()
        book = self.book
        again = [
            book.wanted[key]
            for key, (_, result) in book.permanent.items()
            if key in book.wanted and result.reason in (Reason.AUTH, Reason.CREDENTIALS)
        ]
        if again and self.node_arch is not None:
            self.enqueue_new(again)

    # -- sweeps ---------------------------------------------------------------------------

    async def run_sweep(self) -> Sweep:
        """Run one full sweep to its end (after any reload sweep still in progress)."""
        await self.sweeps.idle()
        await self.observe()
        self.tools.creds.forget()
        started, started_wall = time.monotonic(), time.time()
        book = self.book
        targets = await self.tools.sizing.ordered(
            list(book.wanted.values()), book.observed, self.node_arch, skip=book.permanent.keys()
        )
        sweep = self.sweeps.start_full(targets, self._skipped)
        sweep.started, sweep.started_wall = started, started_wall  # sizing is part of it
        await sweep.done.wait()
        return sweep

    async def observe(self) -> None:
        """Read the runtime's image list (once per sweep): the plan's input, and which selected
        images are cached now (the kubelet's image GC may have removed some)."""
        try:
            observed = Observed.from_images(await self.runtime.list_images())
        except RuntimeFailure:
            self.book.observed = None
            return
        try:
            self.image_fs = await self.runtime.fs_usage()
        except RuntimeFailure:
            self.image_fs = None
        for image in self.book.observe(observed):
            self.events.evicted(str(image))

    # -- the runtime ----------------------------------------------------------------------

    async def connect(self, *, give_up: bool) -> RuntimeInfo:
        info = await self.link.connect(give_up=give_up)
        if self.node_arch is None:
            if info.arch is None:
                raise UnknownArchError(
                    f"the runtime reports architecture {info.raw_arch!r}, which jcp does not "
                    "know; pass --arch"
                )
            self.node_arch = info.arch
            if self.config is not None:
                self._select(self.config, None)
        disk = self.tools.disk
        if disk.path is None and info.image_root:
            disk.path = Path(info.image_root)
        self.book.rev.bump()
        return info

    def _runtime_down(self) -> None:
        # Waiting for the runtime is not being wedged: keep /healthz from restarting the pod.
        self.book.alive()
        self.book.rev.bump()
        self.events.runtime_lost()

    # -- waiting --------------------------------------------------------------------------

    async def wait_interval(self, since: float) -> None:
        """Sleep `interval` after SINCE; a live change of the interval moves the wake-up."""
        loop = asyncio.get_running_loop()
        while True:
            assert self.config is not None
            remaining = since + self.config.interval - loop.time()
            if remaining <= 0:
                return
            self._config_changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._config_changed.wait()
            except TimeoutError:
                return

    async def until_config(self, predicate: Callable[[Config], bool]) -> Config:
        """Until the config in force satisfies PREDICATE (one waiter at a time)."""
        while True:
            self._config_applied.clear()
            config = self.config
            if config is not None and predicate(config):
                return config
            await self._config_applied.wait()

    async def wait_config(self) -> Config:
        while self.config is None:
            self._config_changed.clear()
            await self._config_changed.wait()
        return self.config

    def cancel_retries(self) -> None:
        self.intake.cancel_timers()

    # -- the pool -------------------------------------------------------------------------

    def pullers(self) -> list[Coroutine[Any, Any, None]]:
        """`--concurrency` pullers, each handed this desk and the tools (`jcp run`)."""
        return [worker.work(self.desk, self.tools) for _ in range(self.settings.concurrency)]

    def pulling(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The pullers for as long as a block runs (`jcp once`, the engine's tests)."""
        return worker.pool(self.pullers(), self.intake)

    # -- the read model -------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        disk, link, sweeps = self.tools.disk, self.link, self.sweeps
        key = (self.book.rev.n, self.source.generation, self.source.last_error, disk.reading,
               disk.active, link.info, link.reachable, self.node_arch, self.image_fs,
               sweeps.current, sweeps.last_full, self.book.last_progress,
               self.tools.fleet.slot.waiting(), self.labels_trouble)  # fmt: skip
        return self._read.get(key)

    def _build_snapshot(self) -> Snapshot:
        return readmodel.build(
            source=self.source, link=self.link, disk=self.tools.disk, sweeps=self.sweeps,
            states=self.book.states.values(), node_arch=self.node_arch, image_fs=self.image_fs,
            last_progress=self.book.last_progress, stall_timeout=self.settings.stall_timeout,
            choice=self.choice, fleet_waiting=self.tools.fleet.slot.waiting(),
            labels=(self.labels, self._labels_said, self.labels_trouble),
        )  # fmt: skip
