"""Sweeps over the configured images, a bounded pool of pullers, and hot reload.

One priority queue feeds `concurrency` workers. A sweep enqueues every selected image; a config
reload enqueues the images it adds ahead of the rest, so they start as soon as a slot is free,
even in the middle of a long sweep; images it removes are dropped from the queue and their
pulls in flight are cancelled. A transient failure is re-queued after a jittered backoff
instead of holding a slot while it waits. A permanent failure is not tried again until its
entry or its secret changes. What happens to one image is `worker.py`'s business.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jcp.engine import readmodel, report
from jcp.engine.configs import ConfigSource
from jcp.engine.disk import DiskGuard
from jcp.engine.events import Events
from jcp.engine.plan import Observed
from jcp.engine.remote import Remote
from jcp.engine.runtime_link import UnknownArchError, wait_for_runtime
from jcp.engine.sizing import Inspect, Sizing
from jcp.engine.state import ImageState, Snapshot, Sweep
from jcp.model.config import Config, Target, TargetKey
from jcp.model.failures import Failure, Reason
from jcp.model.results import PullResult
from jcp.runtime.base import FsUsage, ImageRuntime, RuntimeFailure, RuntimeInfo
from jcp.settings import Settings

log = logging.getLogger(__name__)

PRIORITY_NEW = 0
PRIORITY_SWEEP = 1


@dataclass(frozen=True)
class Item:
    target: Target
    sweep: Sweep
    attempt: int


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
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.label = label
        """How logs name the runtime: `Docker daemon at unix:///...`, `containerd at ...`."""
        self.choice = choice
        self.events = events or Events()
        self.remote = remote
        """Where tags' digests are asked; None: every present tag goes to the runtime."""
        self.no_remote: dict[str, str] = {}
        """Registry host -> why its digests cannot be asked (the runtime pulls instead)."""
        self.source = ConfigSource(settings.config_dir, settings.interval_flag, env)
        self.node_arch: str | None = settings.arch
        self.info: RuntimeInfo | None = None
        self.reachable = False
        self.wanted: dict[TargetKey, Target] = {}
        self.states: dict[TargetKey, ImageState] = {}
        self.sweep: Sweep | None = None
        self.last_full_sweep: Sweep | None = None
        self.last_progress = time.monotonic()
        self.permanent: dict[TargetKey, tuple[str, PullResult]] = {}
        self.observed: Observed | None = None
        self.image_fs: FsUsage | None = None
        """The image file system as the runtime reported it at the last sweep (CRI ImageFsInfo)."""
        self.disk = DiskGuard(settings.min_free, settings.disk_path)
        self.in_flight: dict[TargetKey, asyncio.Task[None]] = {}
        self.paused: dict[str, float] = {}
        """Registry host -> loop time until which its pulls wait (it answered 429)."""
        self.sizing = Sizing(
            remote, Inspect(settings.inspect), self.no_remote, self.paused, self.pause
        )
        self._queue: asyncio.PriorityQueue[tuple[int, int, Item]] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._sweeps = itertools.count(1)
        self._config_changed = asyncio.Event()
        self._retry_handles: set[asyncio.TimerHandle] = set()
        self.runtime_lock = asyncio.Lock()
        self.outages = 0
        self._skipped = 0  # entries of the current config this node's architecture skips

    @property
    def config(self) -> Config | None:
        return self.source.config

    # -- config ---------------------------------------------------------------------------

    async def reload(self, *, force: bool = False) -> bool:
        """Re-read the config directory; apply it if it is new and valid. True if applied."""
        old = self.source.config
        loaded = await self.source.reload(force=force)
        if not loaded.changed:
            return False
        self.events.config_loaded(ok=loaded.config is not None)
        if loaded.config is None:
            return False
        if self.node_arch is None:  # selected once the runtime tells the architecture
            self._config_changed.set()
            return True
        self._select(old)
        return True

    def _select(self, old: Config | None) -> None:
        config = self.source.config
        assert config is not None
        assert self.node_arch is not None
        selection = config.select(self.node_arch)
        new = {t.key: t for t in selection.targets}
        self._skipped = len(selection.skipped)
        added = [t for k, t in new.items() if k not in self.wanted]
        removed = [k for k in self.wanted if k not in new]
        self.wanted = new
        for key in removed:
            self.permanent.pop(key, None)
            task = self.in_flight.get(key)
            if task is not None:
                task.cancel("removed from the config while pulling")
                continue
            self.states.pop(key, None)
            if self.sweep is not None:
                self.drop(self.sweep, key)
        for key, target in new.items():  # entries may have moved: keep /status's index true
            state = self.states.get(key)
            if state is None:
                self.states[key] = ImageState(target)
            else:
                state.target = target
        notes = ""
        if old is not None and old.interval != config.interval:
            notes = f", interval {old.interval:g}s -> {config.interval:g}s"
        delta = f"; +{len(added)} -{len(removed)}" if old is not None else ""
        log.info(
            f"config generation {self.source.generation} loaded: {len(selection.targets)} "
            f"images for {self.node_arch}, {len(selection.skipped)} skipped{delta}{notes}",
            extra={
                "fields": {
                    "event": "config_loaded",
                    "generation": self.source.generation,
                    "digest": config.digest[:12],
                    "added": len(added),
                    "removed": len(removed),
                    "interval": config.interval,
                }
            },
        )
        if old is not None and added:
            self.enqueue_new(added)
        self._config_changed.set()

    def enqueue_new(self, targets: list[Target]) -> None:
        """Queue TARGETS ahead of the running sweep (or in a reload sweep of their own)."""
        sweep = self.sweep
        if sweep is None:
            sweep = self._new_sweep("reload", [])
        for target in targets:
            sweep.add(target.key)
            self.put(PRIORITY_NEW, Item(target, sweep, 1))

    def secrets_changed(self) -> None:
        """A secret was mounted, fixed or rotated: images that failed for credentials go again
        now (the worker compares the secret's fingerprint, so an unchanged one costs no pull)."""
        again = [
            self.wanted[key]
            for key, (_, result) in self.permanent.items()
            if key in self.wanted and result.reason in (Reason.AUTH, Reason.CREDENTIALS)
        ]
        if again and self.node_arch is not None:
            self.enqueue_new(again)

    # -- sweeps ---------------------------------------------------------------------------

    def _new_sweep(self, kind: str, targets: list[Target]) -> Sweep:
        sweep = Sweep(number=next(self._sweeps), kind=kind, remaining={t.key for t in targets})
        self.sweep = sweep
        if kind == "sweep":
            sweep.skipped = self._skipped
        self.events.sweep_started(sweep.view())
        for target in targets:
            self.put(PRIORITY_SWEEP, Item(target, sweep, 1))
        if not targets and kind == "sweep":
            sweep.close()
            self.finish(sweep)
        return sweep

    def finish(self, sweep: Sweep) -> None:
        if self.sweep is sweep:
            self.sweep = None
        if sweep.kind == "sweep":
            self.last_full_sweep = sweep
        report.sweep_finished(sweep)
        self.events.sweep_finished(sweep.view())

    def drop(self, sweep: Sweep, key: TargetKey) -> None:
        if sweep.drop(key):
            self.finish(sweep)

    def put(self, priority: int, item: Item) -> None:
        self._queue.put_nowait((priority, next(self._seq), item))

    async def get(self) -> Item:
        return (await self._queue.get())[2]

    def pause(self, registry: str, failure: Failure) -> None:
        """Leave REGISTRY alone for its Retry-After (else --rate-limit-pause): it answered 429."""
        pause = failure.retry_after or self.settings.rate_limit_pause
        loop = asyncio.get_running_loop()
        if self.paused.get(registry, 0) <= loop.time():
            log.warning(
                f"registry {registry} is rate-limiting pulls ({failure.message}); pausing all "
                f"its pulls for {pause:.0f}s",
                extra={"fields": {"event": "rate_limited", "registry": registry, "pause": pause}},
            )
            self.events.rate_limited(registry, pause)
        self.paused[registry] = max(self.paused.get(registry, 0), loop.time() + pause)

    def later(self, delay: float, priority: int, item: Item) -> None:
        """Queue ITEM after DELAY seconds without holding a worker meanwhile."""

        def requeue() -> None:
            self._retry_handles.discard(handle)
            self.put(priority, item)

        handle = asyncio.get_running_loop().call_later(delay, requeue)
        self._retry_handles.add(handle)

    async def run_sweep(self) -> Sweep:
        """Run one full sweep to its end (after any reload sweep still in progress)."""
        while self.sweep is not None:
            await self.sweep.done.wait()
        await self.observe()
        started, started_wall = time.monotonic(), time.time()
        targets = await self.sizing.ordered(
            list(self.wanted.values()),
            self.observed,
            self.node_arch,
            skip=self.permanent.keys(),
            secrets_root=self.settings.docker_config_root,
        )
        sweep = self._new_sweep("sweep", targets)
        sweep.started, sweep.started_wall = started, started_wall  # sizing is part of it
        await sweep.done.wait()
        return sweep

    async def observe(self) -> None:
        """Read the runtime's image list (once per sweep): the plan's input, and which selected
        images are cached now (the kubelet's image GC may have removed some)."""
        try:
            self.observed = Observed.from_images(await self.runtime.list_images())
        except RuntimeFailure:
            self.observed = None
            return
        try:
            self.image_fs = await self.runtime.fs_usage()
        except RuntimeFailure:
            self.image_fs = None
        now = time.time()
        for state in self.states.values():
            if state.status in ("pulling", "retrying"):
                continue
            if self.observed.holds(state.target.image):
                if state.cached_since is None:
                    state.cached_since = now
                if state.status == "pending":
                    state.status = "cached"
            elif state.status == "cached":
                self._evicted(state, now)

    def _evicted(self, state: ImageState, now: float) -> None:
        """An image jcp had cached is gone: the kubelet's image GC (or a person) removed it.
        Said, and counted, so that operators see a GC fight instead of guessing."""
        since = state.cached_since or now
        log.warning(
            f"evicted: {state.target.image} was cached for {now - since:.0f}s and is gone from "
            "the runtime (kubelet image GC?); pulling it again",
            extra={
                "fields": {
                    "event": "image_evicted",
                    "image": str(state.target.image),
                    "cached_since": since,
                }
            },
        )
        state.status = "pending"
        state.cached_since = None
        self.events.evicted(str(state.target.image))

    # -- the runtime ----------------------------------------------------------------------

    async def connect(self, *, give_up: bool) -> RuntimeInfo:
        info = await wait_for_runtime(
            self.runtime,
            self.settings.backoff,
            give_up=give_up,
            label=self.label,
            on_failure=self.runtime_down,
        )
        if self.info is None:
            log.info(
                f"{self.label}: {info.name} version {info.version}, API {info.api_version}, "
                f"architecture {info.raw_arch}"
            )
        self.info = info
        self.reachable = True
        if self.node_arch is None:
            if info.arch is None:
                raise UnknownArchError(
                    f"the runtime reports architecture {info.raw_arch!r}, which jcp does not "
                    "know; pass --arch"
                )
            self.node_arch = info.arch
            if self.config is not None:
                self._select(None)
        if self.disk.path is None and info.image_root:
            self.disk.path = Path(info.image_root)
        self.events.runtime_seen(info)
        return info

    def runtime_down(self) -> None:
        # Waiting for the runtime is not being wedged: keep /healthz from restarting the pod.
        self.last_progress = time.monotonic()
        self.reachable = False
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

    async def wait_config(self) -> Config:
        while self.config is None:
            self._config_changed.clear()
            await self._config_changed.wait()
        return self.config

    def cancel_retries(self) -> None:
        for handle in self._retry_handles:
            handle.cancel()
        self._retry_handles.clear()

    def snapshot(self) -> Snapshot:
        return readmodel.build(self)
