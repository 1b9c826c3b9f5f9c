"""Sweeps over the configured images, a bounded pool of pullers, and hot reload.

One priority queue feeds `concurrency` workers. A sweep enqueues every selected image; a config
reload enqueues the images it adds ahead of the rest, so they start as soon as a slot is free,
even in the middle of a long sweep; images it removes are dropped from the queue (a pull in
flight may finish). A transient failure is re-queued after a jittered backoff instead of holding
a slot while it waits. A permanent failure is not tried again until its entry or its secret
changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiodocker

from jcp import credentials, disk
from jcp.config import Config, ConfigError, Target, TargetKey, build_config, read_files
from jcp.credentials import CredentialError, RegistryAuth
from jcp.daemon import DaemonInfo, wait_for_daemon
from jcp.failures import Backoff, Failure, Reason, classify
from jcp.observer import Observer
from jcp.pull import Outcome, Progress, pull_once
from jcp.refs import ImageRef, InvalidReferenceError, parse_reference
from jcp.sweep import ImageState, PullResult, Sweep

log = logging.getLogger(__name__)

PRIORITY_NEW = 0
PRIORITY_SWEEP = 1


@dataclass(frozen=True)
class Settings:
    config_dir: Path
    docker_config_root: Path = credentials.DEFAULT_ROOT
    docker_host: str = "unix:///var/run/docker.sock"
    arch: str | None = None
    concurrency: int = 8
    pull_timeout: float = 7200.0
    stall_timeout: float = 120.0
    backoff: Backoff = field(default_factory=Backoff)
    interval_flag: float | None = None
    poll: float = 5.0
    """Seconds between re-reads of the config when no inotify event came (a safety net)."""
    disk_path: Path | None = None
    """Where the image disk is visible to jcp; None: the daemon's data root, if visible."""
    min_free: disk.MinFree = field(default_factory=lambda: disk.MinFree(fraction=0.15))
    disk_poll: float = 10.0
    track_presence: bool = True
    """List the daemon's images at each sweep, for /status and metrics (`jcp run` only)."""
    outlast_daemon: bool = True
    """A pull cut off because the daemon went away waits for it and goes again, without
    spending an attempt (`jcp run`); `jcp once` counts it as a failure instead."""


@dataclass(frozen=True)
class _Item:
    target: Target
    sweep: Sweep
    attempt: int


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        docker: aiodocker.Docker,
        *,
        env: Mapping[str, str] | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.docker = docker
        self.env = env
        self.observer = observer or Observer()
        self.config: Config | None = None
        self.generation = 0
        self.node_arch: str | None = settings.arch
        self.daemon: DaemonInfo | None = None
        self.wanted: dict[TargetKey, Target] = {}
        self.states: dict[TargetKey, ImageState] = {}
        self.sweep: Sweep | None = None
        self.last_full_sweep: Sweep | None = None
        self.last_progress = time.monotonic()
        self._permanent: dict[TargetKey, tuple[str, PullResult]] = {}
        self._queue: asyncio.PriorityQueue[tuple[int, int, _Item]] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._sweeps = itertools.count(1)
        self._config_changed = asyncio.Event()
        self._raw_seen: str | None = None
        self._in_flight: set[TargetKey] = set()
        self._retry_handles: set[asyncio.TimerHandle] = set()
        self._daemon_lock = asyncio.Lock()
        self._outages = 0
        self._skipped = 0  # entries of the current config this node's architecture skips
        self.disk_reading: disk.DiskReading | None = None
        self.disk_guard_active = False

    # -- config ---------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Re-read the config directory; apply it if it is new and valid. True if applied."""
        try:
            files = await asyncio.to_thread(read_files, self.settings.config_dir)
        except ConfigError as exc:
            return self._rejected(exc, None)
        raw = hashlib.sha256(
            json.dumps([files.image_text, files.interval_text]).encode()
        ).hexdigest()
        if raw == self._raw_seen:
            return False
        self._raw_seen = raw
        try:
            config = build_config(files, interval_flag=self.settings.interval_flag, env=self.env)
        except ConfigError as exc:
            return self._rejected(exc, raw)
        self._apply(config)
        return True

    def _rejected(self, exc: ConfigError, raw: str | None) -> bool:
        if raw is None:
            # The directory itself is unreadable: report each time it changes state only.
            text = str(exc)
            if text == self._raw_seen:
                return False
            self._raw_seen = text
        kept = "keeping the last good config" if self.config else "no valid config yet"
        log.error(
            f"ERROR: config rejected ({kept}):",
            extra={
                "fields": {"event": "config_rejected", "problems": [str(p) for p in exc.problems]}
            },
        )
        for problem in exc.problems:
            (log.error if problem.severity == "error" else log.warning)(f"  {problem}")
        self.observer.config_reloaded(ok=False, scheduler=self)
        return False

    def _apply(self, config: Config) -> None:
        old = self.config
        self.config = config
        self.generation += 1
        for problem in config.warnings:
            log.warning(str(problem))
        self.observer.config_reloaded(ok=True, scheduler=self)
        if self.node_arch is None:  # selected once the daemon tells the architecture
            self._config_changed.set()
            return
        self._select(old)

    def _select(self, old: Config | None) -> None:
        assert self.config is not None
        assert self.node_arch is not None
        selection = self.config.select(self.node_arch)
        new = {t.key: t for t in selection.targets}
        self._skipped = len(selection.skipped)
        added = [t for k, t in new.items() if k not in self.wanted]
        removed = [k for k in self.wanted if k not in new]
        self.wanted = new
        for key in removed:
            self._permanent.pop(key, None)
            if key not in self._in_flight:
                self.states.pop(key, None)
            if self.sweep is not None and key not in self._in_flight:
                self._drop(self.sweep, key)
        for key, target in new.items():  # entries may have moved: keep /status's index true
            state = self.states.get(key)
            if state is None:
                self.states[key] = ImageState(target)
            else:
                state.target = target
        interval_note = ""
        if old is not None and old.interval != self.config.interval:
            interval_note = f", interval {old.interval:g}s -> {self.config.interval:g}s"
        delta = f"; +{len(added)} -{len(removed)}" if old is not None else ""
        log.info(
            f"config generation {self.generation} loaded: {len(selection.targets)} images for "
            f"{self.node_arch}, {len(selection.skipped)} skipped{delta}{interval_note}",
            extra={
                "fields": {
                    "event": "config_loaded",
                    "generation": self.generation,
                    "digest": self.config.digest[:12],
                    "added": len(added),
                    "removed": len(removed),
                    "interval": self.config.interval,
                }
            },
        )
        if old is not None and added:
            self._enqueue_new(added)
        self._config_changed.set()

    def _enqueue_new(self, targets: list[Target]) -> None:
        sweep = self.sweep
        if sweep is None:
            sweep = self._new_sweep("reload", [])
        for target in targets:
            sweep.add(target.key)
            self._put(PRIORITY_NEW, _Item(target, sweep, 1))

    # -- sweeps ---------------------------------------------------------------------------

    def _new_sweep(self, kind: str, targets: list[Target]) -> Sweep:
        sweep = Sweep(number=next(self._sweeps), kind=kind, remaining={t.key for t in targets})
        self.sweep = sweep
        if kind == "sweep":
            sweep.skipped = self._skipped
        self.observer.sweep_started(sweep, scheduler=self)
        for target in targets:
            self._put(PRIORITY_SWEEP, _Item(target, sweep, 1))
        if not targets and kind == "sweep":
            sweep.close()
            self._finish(sweep)
        return sweep

    def _finish(self, sweep: Sweep) -> None:
        if self.sweep is sweep:
            self.sweep = None
        if sweep.kind == "sweep":
            self.last_full_sweep = sweep
        c = sweep.counts
        log.info(
            sweep.summary(),
            extra={
                "fields": {
                    "event": "sweep_done",
                    "kind": sweep.kind,
                    "sweep": sweep.number,
                    "pulled": c[Outcome.PULLED],
                    "up_to_date": c[Outcome.UP_TO_DATE],
                    "skipped": sweep.skipped,
                    "failed": c[Outcome.FAILED],
                    "seconds": round((sweep.ended or time.monotonic()) - sweep.started, 3),
                }
            },
        )
        self.observer.sweep_finished(sweep, scheduler=self)

    def _drop(self, sweep: Sweep, key: TargetKey) -> None:
        if sweep.drop(key):
            self._finish(sweep)

    def _put(self, priority: int, item: _Item) -> None:
        self._queue.put_nowait((priority, next(self._seq), item))

    async def run_sweep(self) -> Sweep:
        """Run one full sweep to its end (after any reload sweep still in progress)."""
        while self.sweep is not None:
            await self.sweep.done.wait()
        if self.settings.track_presence:
            await self.refresh_presence()
        targets = list(self.wanted.values())
        sweep = self._new_sweep("sweep", targets)
        await sweep.done.wait()
        return sweep

    # -- workers --------------------------------------------------------------------------

    async def worker(self) -> None:
        while True:
            _, _, item = await self._queue.get()
            key = item.target.key
            if key not in self.wanted or item.sweep.done.is_set():
                self._drop(item.sweep, key)
                continue
            await self._wait_for_disk()
            if key not in self.wanted or item.sweep.done.is_set():
                self._drop(item.sweep, key)
                continue
            self._in_flight.add(key)
            try:
                await self._process(item)
            finally:
                self._in_flight.discard(key)
                self.last_progress = time.monotonic()

    def _disk_path(self) -> Path | None:
        if self.settings.disk_path is not None:
            return self.settings.disk_path
        if self.daemon is not None and self.daemon.data_root:
            return Path(self.daemon.data_root)
        return None

    def check_disk(self) -> bool:
        """True when there is room to start a pull (or no way to tell)."""
        path = self._disk_path()
        reading = disk.read(path, self.settings.min_free) if path is not None else None
        self.disk_reading = reading
        low = reading is not None and reading.low
        if low != self.disk_guard_active:
            self.disk_guard_active = low
            assert reading is not None
            if low:
                log.warning(
                    f"disk guard: {reading.free / 1e9:.2f} GB free on {reading.path}, below "
                    f"--min-free {self.settings.min_free}; new pulls wait until space is back",
                    extra={"fields": {"event": "disk_low", "free": reading.free}},
                )
            else:
                log.info(
                    f"disk guard: {reading.free / 1e9:.2f} GB free on {reading.path}; pulls resume",
                    extra={"fields": {"event": "disk_ok", "free": reading.free}},
                )
        self.observer.disk_checked(scheduler=self)
        return not low

    async def _wait_for_disk(self) -> None:
        while not self.check_disk():
            self.last_progress = time.monotonic()
            await asyncio.sleep(self.settings.disk_poll)

    def disk_status(self) -> dict[str, object] | None:
        r = self.disk_reading
        if r is None:
            return None
        return {
            "path": r.path,
            "free_bytes": r.free,
            "required_bytes": r.required,
            "active": self.disk_guard_active,
        }

    async def refresh_presence(self) -> None:
        """Mark which selected images the daemon holds now (kubelet GC may have removed some)."""
        try:
            images = await self.docker.images.list()
        except Exception:
            return
        held: set[ImageRef] = set()
        for image in images:
            for name in (image.get("RepoTags") or []) + (image.get("RepoDigests") or []):
                try:
                    held.add(parse_reference(name))
                except InvalidReferenceError:
                    continue
        now = time.time()
        for state in self.states.values():
            if state.status in ("pulling", "retrying"):
                continue
            if state.target.image in held:
                if state.cached_since is None:
                    state.cached_since = now
                if state.status == "pending":
                    state.status = "cached"
            elif state.status == "cached":
                state.status = "pending"
                state.cached_since = None

    async def _credentials(self, target: Target) -> tuple[RegistryAuth | None, str]:
        """Credentials for a private target, and a fingerprint of the entry and its secret."""
        entry = target.entry
        fingerprint = repr(target.key)
        if not entry.private:
            return None, fingerprint
        auth, secret_fingerprint = await credentials.resolve(
            self.settings.docker_config_root, entry.secret, target.registry
        )
        return auth, fingerprint + secret_fingerprint

    async def _process(self, item: _Item) -> None:
        target, key = item.target, item.target.key
        state = self.states.setdefault(key, ImageState(target))
        image, registry = target.image, target.registry
        fields = {"image": str(image), "registry": registry, "attempt": item.attempt}
        try:
            auth, fingerprint = await self._credentials(target)
        except CredentialError as exc:
            self._complete(item, state, failure=classify(exc), duration=0.0, bytes_=0, digest=None)
            return
        cached = self._permanent.get(key)
        if cached is not None and cached[0] == fingerprint:
            self._complete(
                item, state, failure=None, duration=0.0, bytes_=0, digest=None, repeat=cached[1]
            )
            return
        state.status = "pulling"
        state.next_retry = None
        state.progress = Progress()
        again = f" (attempt {item.attempt})" if item.attempt > 1 else ""
        log.info(
            f"Pulling {image} from {registry}{again}",
            extra={"fields": {"event": "pull_start", **fields}},
        )
        self.observer.pull_started(target, scheduler=self)
        assert self.node_arch is not None
        attempt = await pull_once(
            self.docker,
            image,
            platform=f"linux/{self.node_arch}",
            auth=auth,
            pull_timeout=self.settings.pull_timeout,
            stall_timeout=self.settings.stall_timeout,
            progress=state.progress,
            on_event=self._touch,
            activity=lambda: self.last_progress,
        )
        failure = attempt.failure
        if failure and failure.reason == Reason.DAEMON and await self._outlast_daemon(item):
            return
        retries = self.settings.backoff.retries
        if failure and failure.transient and item.attempt <= retries and key in self.wanted:
            self._retry(item, state, failure)
            return
        if failure is not None and not failure.transient:
            self._permanent[key] = (
                fingerprint,
                self._result(
                    item,
                    duration=attempt.duration,
                    bytes_=attempt.bytes,
                    digest=None,
                    failure=failure,
                ),
            )
        else:
            self._permanent.pop(key, None)
        self._complete(
            item,
            state,
            failure=failure,
            duration=attempt.duration,
            bytes_=attempt.bytes,
            digest=attempt.digest,
            outcome=attempt.outcome,
        )

    async def _outlast_daemon(self, item: _Item) -> bool:
        """If the daemon really is gone, wait for it and re-queue ITEM as it was. A probe
        decides, so that an error merely classified as a daemon error can never loop."""
        if not self.settings.outlast_daemon or item.target.key not in self.wanted:
            return False
        outages = self._outages
        # A daemon that is shutting down still answers /version for a moment while it fails
        # pulls ("grpc: the client connection is closing"): probe once it has had time to go.
        await asyncio.sleep(1.0)
        async with self._daemon_lock:
            if self._outages == outages:  # nobody waited out an outage meanwhile: probe
                try:
                    async with asyncio.timeout(5):
                        await self.docker.version()
                except Exception:
                    state = self.states.get(item.target.key)
                    if state is not None:
                        state.status = "pending"
                    log.warning(
                        f"Docker daemon went away while pulling {item.target.image}; waiting "
                        "for it, then pulling again"
                    )
                    await self.connect(give_up=False)
                    self._outages += 1
                else:
                    return False
        self._put(PRIORITY_SWEEP, item)
        return True

    def _daemon_down(self) -> None:
        # Waiting for the daemon is not being wedged: keep /healthz from restarting the pod.
        self.last_progress = time.monotonic()
        self.observer.daemon_lost()

    def _touch(self) -> None:
        self.last_progress = time.monotonic()

    def _retry(self, item: _Item, state: ImageState, failure: Failure) -> None:
        delay = self.settings.backoff.delay(item.attempt)
        state.status = "retrying"
        state.next_retry = time.time() + delay
        log.warning(
            f"retrying {item.target.image} from {item.target.registry} in {delay:.1f}s "
            f"(attempt {item.attempt + 1} of {self.settings.backoff.retries + 1}): "
            f"{failure.reason}: {failure.message}",
            extra={
                "fields": {
                    "event": "pull_retry",
                    "image": str(item.target.image),
                    "registry": item.target.registry,
                    "reason": str(failure.reason),
                    "delay": round(delay, 3),
                }
            },
        )
        loop = asyncio.get_running_loop()
        nxt = _Item(item.target, item.sweep, item.attempt + 1)

        def requeue() -> None:
            self._retry_handles.discard(handle)
            self._put(PRIORITY_SWEEP, nxt)

        handle = loop.call_later(delay, requeue)
        self._retry_handles.add(handle)

    def _result(
        self,
        item: _Item,
        *,
        duration: float,
        bytes_: int,
        digest: str | None,
        failure: Failure | None,
        outcome: Outcome | None = None,
    ) -> PullResult:
        return PullResult(
            image=item.target.image,
            registry=item.target.registry,
            outcome=Outcome.FAILED if failure else (outcome or Outcome.PULLED),
            duration=duration,
            attempts=item.attempt,
            bytes=bytes_,
            digest=digest,
            reason=failure.reason if failure else None,
            message=failure.message if failure else None,
            permanent=bool(failure and not failure.transient),
        )

    def _complete(
        self,
        item: _Item,
        state: ImageState,
        *,
        failure: Failure | None,
        duration: float,
        bytes_: int,
        digest: str | None,
        outcome: Outcome | None = None,
        repeat: PullResult | None = None,
    ) -> None:
        result = repeat or self._result(
            item, duration=duration, bytes_=bytes_, digest=digest, failure=failure, outcome=outcome
        )
        image, registry = result.image, result.registry
        fields = {
            "image": str(image),
            "registry": registry,
            "outcome": str(result.outcome),
            "duration": round(result.duration, 3),
            "bytes": result.bytes,
            "attempts": result.attempts,
        }
        if result.outcome == Outcome.FAILED:
            note = ""
            if repeat is not None:
                note = " (permanent: not retried until the config or the secret changes)"
            if result.reason == Reason.DAEMON:
                self.observer.daemon_lost()
            log.error(
                f"ERROR: failed pulling {image} from {registry}: {result.reason}: "
                f"{result.message}{note}",
                extra={"fields": {"event": "pull_failed", **fields, "reason": str(result.reason)}},
            )
            state.status = "failed"
        else:
            verb = "Pulled" if result.outcome == Outcome.PULLED else "Up to date:"
            extra = (
                f" in {result.duration:.1f}s ({result.bytes / 1e6:.1f} MB)"
                if result.outcome == Outcome.PULLED
                else ""
            )
            log.info(
                f"{verb} {image} from {registry}{extra}",
                extra={"fields": {"event": "pull_done", **fields, "digest": result.digest}},
            )
            state.status = "cached"
            if state.cached_since is None:
                state.cached_since = time.time()
        result = dataclasses.replace(result, present=state.cached_since is not None)
        state.last = result
        state.next_retry = None
        state.progress = None  # per-layer counts matter only while pulling
        if item.target.key not in self.wanted:
            self.states.pop(item.target.key, None)
        self.observer.pull_finished(result, scheduler=self)
        if item.sweep.record(item.target.key, result):
            self._finish(item.sweep)

    # -- lifecycle ------------------------------------------------------------------------

    async def connect(self, *, give_up: bool) -> DaemonInfo:
        info = await wait_for_daemon(
            self.docker,
            self.settings.docker_host,
            self.settings.backoff,
            give_up=give_up,
            on_failure=self._daemon_down,
        )
        if self.daemon is None:
            log.info(
                f"Docker daemon at {self.settings.docker_host}: version {info.version}, "
                f"API {info.api_version}, architecture {info.raw_arch}"
            )
        self.daemon = info
        if self.node_arch is None:
            if info.arch is None:
                raise UnknownArchError(
                    f"the daemon reports architecture {info.raw_arch!r}, which jcp does not "
                    "know; pass --arch"
                )
            self.node_arch = info.arch
            if self.config is not None:
                self._select(None)
        self.observer.daemon_seen(info, scheduler=self)
        return info

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


class UnknownArchError(Exception):
    pass
