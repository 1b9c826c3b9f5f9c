"""The engine's loop over the scripted runtime: a real `Scheduler`, real `worker.work` tasks, a
real config directory written the way kubelet writes it; only the runtime is scripted.

What is asserted is what an operator would see: which pulls reached the runtime (and which
never did), each image's outcome in the sweep, the log lines, and the `Snapshot` that /status,
/metrics and the probes read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from devstack.kubelet import write_volume
from devstack.stack import write_docker_secret
from jcp.engine.events import Events
from jcp.engine.scheduler import Scheduler
from jcp.engine.state import ImageView, Snapshot, Sweep
from jcp.model.credentials import RegistryAuth
from jcp.model.failures import Backoff, Reason
from jcp.model.refs import parse_reference
from jcp.model.results import Outcome, PullResult
from jcp.runtime.fake import ScriptedRuntime, fail, gate, hang, succeed, unchanged
from jcp.settings import MinFree, Settings
from tests.support.helpers import entry, publish, wait_for

REG_A, REG_B = "reg-a.example.com", "reg-b.example.com"
APP, LIB, TOOL = f"{REG_A}/team/app:1", f"{REG_A}/team/lib:1", f"{REG_B}/team/tool:1"
D1 = f"sha256:{'1' * 64}"
BASE = f"{REG_A}/team/base@{D1}"
FAST = Backoff(base=0.01, cap=0.05, retries=2)


class Recorder(Events):
    def __init__(self) -> None:
        self.finished: list[PullResult] = []
        self.rate_limits: list[tuple[str, float]] = []
        self.lost = 0
        self.evictions: list[str] = []

    def pull_finished(self, result: PullResult) -> None:
        self.finished.append(result)

    def rate_limited(self, registry: str, pause: float) -> None:
        self.rate_limits.append((registry, pause))

    def runtime_lost(self) -> None:
        self.lost += 1

    def evicted(self, image: str) -> None:
        self.evictions.append(image)


@asynccontextmanager
async def engine(
    tmp_path: Path,
    runtime: ScriptedRuntime,
    entries: list[dict[str, object]],
    events: Events | None = None,
    **overrides: Any,
) -> AsyncIterator[Scheduler]:
    """What `jcp run` starts around the scheduler, minus the watchers and the sweeper."""
    settings = Settings(
        config_dir=publish(tmp_path / "config", entries),
        docker_config_root=tmp_path / "docker",
        concurrency=4,
        pull_timeout=5.0,
        stall_timeout=2.0,
        backoff=FAST,
        rate_limit_pause=0.3,
    )
    settings = dataclasses.replace(settings, **overrides)
    s = Scheduler(settings, runtime, label="scripted runtime", env={}, events=events)
    assert await s.reload()
    await s.connect(give_up=True)
    async with s.pulling():  # raises if a puller died of a bug
        yield s


def outcomes(sweep: Sweep) -> dict[str, tuple[Outcome, int]]:
    return {str(r.image): (r.outcome, r.attempts) for r in sweep.results}


def view(snapshot: Snapshot, image: str) -> ImageView:
    ref = parse_reference(image)
    (found,) = [v for v in snapshot.images if v.image == ref]
    return found


async def settle(s: Scheduler) -> Sweep:
    """The reload sweep a change started, once done."""
    sweep = s.sweeps.current
    assert sweep is not None, "no sweep was started"
    await sweep.done.wait()
    return sweep


# -- sweeps ----------------------------------------------------------------------------------


async def test_sweep_pulls_absent_and_skips_pinned_present_without_a_pull(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    runtime = ScriptedRuntime()
    runtime.hold(BASE)  # as Docker lists an image pulled by digest
    runtime.script(APP, succeed(2), unchanged())
    async with engine(tmp_path, runtime, [entry(APP), entry(BASE)]) as s:
        first = await s.run_sweep()
        assert outcomes(first) == {
            APP: (Outcome.PULLED, 1),
            BASE: (Outcome.UP_TO_DATE, 1),
        }
        assert [str(p.image) for p in runtime.pulls] == [APP]
        assert runtime.pulls[0].platform == "linux/amd64"
        assert runtime.pulls[0].auth is None  # a public entry never gets credentials
        assert f"Pulling {APP} from {REG_A}" in caplog.text
        assert first.summary().startswith("sweep 1 done in ")
        assert first.summary().endswith(
            ": 1 pulled, 1 up to date, 0 skipped, 0 failed (0.0 MB downloaded)"
        )

        second = await s.run_sweep()  # the tag goes to the runtime again; the pin never does
        assert outcomes(second) == {
            APP: (Outcome.UP_TO_DATE, 1),
            BASE: (Outcome.UP_TO_DATE, 1),
        }
        assert [str(p.image) for p in runtime.pulls] == [APP, APP]
        assert ("pull", BASE) not in runtime.calls


async def test_refresh_never_steady_sweep_makes_no_pull_call(tmp_path: Path) -> None:
    runtime = ScriptedRuntime()
    async with engine(tmp_path, runtime, [entry(APP), entry(LIB)], refresh="never") as s:
        await s.run_sweep()
        assert len(runtime.pulls) == 2
        steady = await s.run_sweep()
        assert outcomes(steady) == {APP: (Outcome.UP_TO_DATE, 1), LIB: (Outcome.UP_TO_DATE, 1)}
        assert len(runtime.pulls) == 2
        assert [m for m, _ in runtime.calls].count("list_images") == 2  # once per sweep


async def test_image_gone_from_the_runtime_is_pulled_again(tmp_path: Path) -> None:
    events = Recorder()
    runtime = ScriptedRuntime()
    async with engine(tmp_path, runtime, [entry(APP)], events, refresh="never") as s:
        await s.run_sweep()
        runtime.forget(APP)  # the kubelet's image GC
        again = await s.run_sweep()
        assert outcomes(again) == {APP: (Outcome.PULLED, 1)}
        assert events.evictions == [APP]


# -- retries and permanent failures ------------------------------------------------------------


async def test_transient_failures_are_retried_then_succeed(tmp_path: Path) -> None:
    runtime = ScriptedRuntime()
    runtime.script(APP, fail(Reason.REGISTRY), fail(Reason.STALL), succeed())
    async with engine(tmp_path, runtime, [entry(APP)]) as s:
        sweep = await s.run_sweep()
        assert outcomes(sweep) == {APP: (Outcome.PULLED, 3)}
        assert [p.result for p in runtime.pulls] == ["failed", "failed", "done"]


async def test_transient_failures_give_up_after_retries_and_go_again_next_sweep(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = ScriptedRuntime()
    runtime.script(APP, *[fail(Reason.REGISTRY, "received unexpected HTTP status: 502")] * 3)
    async with engine(tmp_path, runtime, [entry(APP)]) as s:
        sweep = await s.run_sweep()
        (result,) = sweep.results
        assert (result.outcome, result.attempts, result.reason, result.permanent) == (
            Outcome.FAILED,
            3,  # the first attempt and FAST.retries retries
            Reason.REGISTRY,
            False,
        )
        assert len(runtime.pulls) == 3
        assert "retrying" in caplog.text
        assert "(attempt 3 of 3)" in caplog.text
        assert (
            f"ERROR: failed pulling {APP} from {REG_A}: registry_error: "
            "received unexpected HTTP status: 502" in caplog.text
        )
        assert outcomes(await s.run_sweep()) == {APP: (Outcome.PULLED, 1)}
        assert len(runtime.pulls) == 4


async def test_permanent_failure_is_tried_once(tmp_path: Path) -> None:
    runtime = ScriptedRuntime()
    runtime.script(APP, fail(Reason.NOT_FOUND, "manifest unknown"))
    async with engine(tmp_path, runtime, [entry(APP), entry(LIB)]) as s:
        sweep = await s.run_sweep()
        assert outcomes(sweep) == {APP: (Outcome.FAILED, 1), LIB: (Outcome.PULLED, 1)}
        again = await s.run_sweep()
        assert outcomes(again)[APP] == (Outcome.FAILED, 1)
        assert len(runtime.pulls_of(APP)) == 1


async def test_permanent_failure_waits_for_the_secret_to_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "docker"
    write_docker_secret(root, "jarvice-docker", REG_A, "puller", "first-password")
    runtime = ScriptedRuntime()
    runtime.script(APP, fail(Reason.AUTH, "unauthorized: authentication required"), succeed())
    async with engine(tmp_path, runtime, [entry(APP, private=True)]) as s:
        first = await s.run_sweep()
        assert outcomes(first) == {APP: (Outcome.FAILED, 1)}
        assert runtime.pulls[0].auth == RegistryAuth(REG_A, "puller", "first-password")

        second = await s.run_sweep()  # same entry, same secret: no pull call
        assert outcomes(second) == {APP: (Outcome.FAILED, 1)}
        assert second.results[0].permanent
        assert len(runtime.pulls) == 1
        assert "(permanent: not retried until the config or the secret changes)" in caplog.text

        s.secrets_changed()  # an event in the secrets directory, but the bytes are the same
        assert outcomes(await settle(s)) == {APP: (Outcome.FAILED, 1)}
        assert len(runtime.pulls) == 1

        write_docker_secret(root, "jarvice-docker", REG_A, "puller", "rotated-password")
        s.secrets_changed()
        assert outcomes(await settle(s)) == {APP: (Outcome.PULLED, 1)}
        assert len(runtime.pulls) == 2
        assert runtime.pulls[1].auth == RegistryAuth(REG_A, "puller", "rotated-password")
    assert "first-password" not in caplog.text
    assert "rotated-password" not in caplog.text


async def test_secret_fixed_mid_sweep_counts_the_image_once(tmp_path: Path) -> None:
    root = tmp_path / "docker"
    write_docker_secret(root, "jarvice-docker", REG_A, "puller", "first-password")
    runtime = ScriptedRuntime()
    runtime.script(APP, fail(Reason.AUTH, "unauthorized"), succeed())
    runtime.script(LIB, gate())
    async with engine(tmp_path, runtime, [entry(APP, private=True), entry(LIB)]) as s:
        sweeping = asyncio.create_task(s.run_sweep())
        try:
            await runtime.until(lambda: runtime.running(LIB), "the sweep under way")
            await wait_for(lambda: view(s.snapshot(), APP).state == "failed", 5, "app failed")
            write_docker_secret(root, "jarvice-docker", REG_A, "puller", "rotated-password")
            s.secrets_changed()
            await runtime.until(lambda: runtime.holds(APP), "app pulled with the new secret")
        finally:
            runtime.release(LIB)
            sweep = await sweeping
        assert "2 pulled, 0 up to date, 0 skipped, 0 failed" in sweep.summary()
        assert sweep.view().failed == 0
        assert sweep.view().done == 2


# -- hot reload --------------------------------------------------------------------------------


async def test_removing_an_image_cancels_its_hanging_pull(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    events = Recorder()
    runtime = ScriptedRuntime()
    runtime.script(APP, hang(events=1))
    async with engine(tmp_path, runtime, [entry(APP), entry(LIB)], events) as s:
        sweeping = asyncio.create_task(s.run_sweep())
        await runtime.until(lambda: runtime.running(APP), "the pull of app in flight")
        await runtime.until(lambda: runtime.holds(LIB), "lib pulled")

        publish(tmp_path / "config", [entry(LIB)])
        reloaded = time.monotonic()
        assert await s.reload()
        (hung,) = runtime.pulls_of(APP)
        await runtime.until(lambda: not hung.running, "the runtime's pull cancelled", 1.0)
        assert hung.ended is not None
        took = hung.ended - reloaded
        print(f"\nreload -> runtime pull cancelled: {took * 1000:.1f} ms")
        assert hung.result == "cancelled"
        assert took < 1.0

        sweep = await sweeping
        assert outcomes(sweep) == {APP: (Outcome.CANCELLED, 1), LIB: (Outcome.PULLED, 1)}
        assert sweep.counts[Outcome.PULLED] == 1
        assert "1 pulled" in sweep.summary()
        assert "1 cancelled" in sweep.summary()
        assert [r.outcome for r in events.finished if str(r.image) == APP] == [Outcome.CANCELLED]
        assert (
            f"Cancelled pulling {APP} from {REG_A}: removed from the config while pulling"
            in caplog.text
        )
        assert [str(v.image) for v in s.snapshot().images] == [LIB]
        assert not runtime.holds(APP)


async def test_image_added_mid_sweep_is_pulled_without_waiting_for_the_sweep(
    tmp_path: Path,
) -> None:
    runtime = ScriptedRuntime()
    runtime.script(APP, gate())
    async with engine(tmp_path, runtime, [entry(APP)]) as s:
        sweeping = asyncio.create_task(s.run_sweep())
        await runtime.until(lambda: runtime.running(APP), "app in flight")
        publish(tmp_path / "config", [entry(APP), entry(TOOL)])
        assert await s.reload()
        await runtime.until(lambda: runtime.holds(TOOL), "tool pulled while app still pulls")
        assert runtime.running(APP)
        runtime.release(APP)
        sweep = await sweeping
        assert outcomes(sweep) == {APP: (Outcome.PULLED, 1), TOOL: (Outcome.PULLED, 1)}


# -- the disk guard ---------------------------------------------------------------------------


async def test_disk_guard_holds_pulls_back_until_space_is_back(tmp_path: Path) -> None:
    runtime = ScriptedRuntime()
    full = MinFree(bytes=2**62)  # more than any disk: the guard is on from the start
    async with engine(
        tmp_path, runtime, [entry(APP)], disk_path=tmp_path, min_free=full, disk_poll=0.02
    ) as s:
        sweeping = asyncio.create_task(s.run_sweep())
        await wait_for(lambda: s.snapshot().disk_guard_active, 5, "the disk guard on")
        disk = s.snapshot().disk
        assert disk is not None
        assert (disk.path, disk.required) == (str(tmp_path), 2**62)
        assert runtime.pulls == []
        assert not sweeping.done()
        s.tools.disk.threshold = MinFree(bytes=0)  # space is back (no real disk is filled here)
        sweep = await sweeping
        assert outcomes(sweep) == {APP: (Outcome.PULLED, 1)}
        assert not s.snapshot().disk_guard_active


# -- rate limits ------------------------------------------------------------------------------


async def test_rate_limited_registry_is_paused_while_others_continue(tmp_path: Path) -> None:
    events = Recorder()
    runtime = ScriptedRuntime()
    limited = "toomanyrequests: You have reached your pull rate limit."
    runtime.script(APP, fail(Reason.RATE_LIMITED, limited), succeed())
    entries = [entry(APP), entry(LIB), entry(TOOL)]
    pause = 0.3
    async with engine(tmp_path, runtime, entries, events, concurrency=1) as s:
        sweep = await s.run_sweep()
    (refused, *later) = [p for p in runtime.pulls if p.image.registry == REG_A]
    assert refused.result == "failed"
    assert refused.ended is not None
    resume = refused.ended + pause
    assert [str(p.image) for p in later] == [APP, LIB] or [str(p.image) for p in later] == [
        LIB,
        APP,
    ]
    assert all(p.started >= resume - 0.01 for p in later), "a paused registry got a pull"
    (other,) = runtime.pulls_of(TOOL)
    assert other.started < resume, "the other registry waited for the pause"
    assert events.rate_limits == [(REG_A, pause)]
    # The pause spends the refused pull's attempt, never the attempts of those held back.
    assert outcomes(sweep) == {
        APP: (Outcome.PULLED, 2),
        LIB: (Outcome.PULLED, 1),
        TOOL: (Outcome.PULLED, 1),
    }


async def test_rate_limit_pause_honours_retry_after(tmp_path: Path) -> None:
    events = Recorder()
    runtime = ScriptedRuntime()
    runtime.script(APP, fail(Reason.RATE_LIMITED, "429", retry_after=0.2), succeed())
    async with engine(tmp_path, runtime, [entry(APP)], events, rate_limit_pause=60.0) as s:
        sweep = await s.run_sweep()
    assert events.rate_limits == [(REG_A, 0.2)]
    assert outcomes(sweep) == {APP: (Outcome.PULLED, 2)}
    first, second = runtime.pulls
    assert first.ended is not None
    assert second.started - first.ended >= 0.19


# -- the runtime going away -------------------------------------------------------------------


async def test_runtime_down_mid_pull_is_waited_out_without_spending_an_attempt(
    tmp_path: Path,
) -> None:
    events = Recorder()
    runtime = ScriptedRuntime()
    runtime.script(APP, hang(events=1), succeed())
    async with engine(tmp_path, runtime, [entry(APP), entry(LIB)], events) as s:
        assert s.settings.outlast_runtime
        sweeping = asyncio.create_task(s.run_sweep())
        await runtime.until(lambda: runtime.running(APP) and runtime.holds(LIB), "app pulling")
        asked = len(runtime.calls)
        runtime.go_down()
        await runtime.until(
            lambda: [m for m, _ in runtime.calls[asked:]].count("info") >= 2,
            "the engine waiting for the runtime",
        )
        down = s.snapshot()
        assert not down.runtime_reachable
        assert view(down, APP).state == "pending"
        assert events.lost >= 1
        runtime.come_up()
        sweep = await sweeping
    assert [p.result for p in runtime.pulls_of(APP)] == ["down", "done"]
    assert outcomes(sweep) == {APP: (Outcome.PULLED, 1), LIB: (Outcome.PULLED, 1)}
    assert s.snapshot().runtime_reachable


async def test_no_image_shows_pulling_while_the_runtime_is_down(tmp_path: Path) -> None:
    runtime = ScriptedRuntime()
    runtime.script(APP, hang(events=1), succeed())
    runtime.script(LIB, hang(events=1), succeed())
    async with engine(tmp_path, runtime, [entry(APP), entry(LIB)]) as s:
        sweeping = asyncio.create_task(s.run_sweep())
        try:
            await runtime.until(lambda: runtime.running(APP) and runtime.running(LIB), "pulls")
            asked = len(runtime.calls)
            runtime.go_down()
            await runtime.until(
                lambda: [m for m, _ in runtime.calls[asked:]].count("info") >= 2,
                "the engine waiting for the runtime",
            )
            states = {str(v.image): v.state for v in s.snapshot().images}
        finally:
            runtime.come_up()
            sweep = await sweeping
        assert outcomes(sweep) == {APP: (Outcome.PULLED, 1), LIB: (Outcome.PULLED, 1)}
        assert states == {APP: "pending", LIB: "pending"}


async def test_runtime_down_counts_as_an_attempt_for_once(tmp_path: Path) -> None:
    """`jcp once` does not wait for the runtime: the outage is a transient failure."""
    runtime = ScriptedRuntime()
    runtime.script(APP, hang(events=1), succeed())
    async with engine(tmp_path, runtime, [entry(APP)], outlast_runtime=False) as s:
        sweeping = asyncio.create_task(s.run_sweep())
        await runtime.until(lambda: runtime.running(APP), "app pulling")
        runtime.go_down()
        await runtime.until(lambda: not runtime.running(APP), "the pull cut off")
        runtime.come_up()
        sweep = await sweeping
    assert outcomes(sweep) == {APP: (Outcome.PULLED, 2)}


# -- the read model -------------------------------------------------------------------------


async def test_snapshot_follows_states_sweeps_and_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = ScriptedRuntime()
    runtime.hold(BASE)
    runtime.script(APP, gate(events=1))
    runtime.script(LIB, fail(Reason.NOT_FOUND, "manifest unknown"))
    entries = [entry(APP), entry(LIB), entry(BASE)]
    async with engine(tmp_path, runtime, entries) as s:
        before = s.snapshot()
        assert before.loaded
        assert before.node_arch == "amd64"
        assert before.runtime is not None
        assert before.runtime.name == "scripted"
        assert before.runtime_reachable
        assert (before.sweep, before.last_full_sweep) == (None, None)
        assert [(str(v.image), v.state, v.entry) for v in before.images] == [
            (APP, "pending", 0),
            (LIB, "pending", 1),
            (BASE, "pending", 2),
        ]
        config = before.config
        assert (config.generation, config.entries, config.interval) == (1, 3, 300.0)
        assert (config.last_reload_ok, config.last_error) == (True, None)
        assert config.digest is not None
        assert len(config.digest) == 12

        sweeping = asyncio.create_task(s.run_sweep())
        await runtime.until(
            lambda: runtime.running(APP) and bool(runtime.pulls_of(APP)[0].bytes),
            "app pulling",
        )
        await wait_for(lambda: view(s.snapshot(), LIB).state == "failed", 5, "lib failed")
        during = s.snapshot()
        app = view(during, APP)
        assert app.state == "pulling"
        assert app.progress is not None
        assert app.progress.current == 1000
        lib = view(during, LIB)
        assert lib.last is not None
        assert (lib.last.reason, lib.last.permanent) == (Reason.NOT_FOUND, True)
        assert view(during, BASE).state == "cached"
        assert view(during, BASE).cached_since is not None
        assert during.sweep is not None
        assert (during.sweep.number, during.sweep.kind) == (1, "sweep")
        assert (during.sweep.remaining, during.sweep.done, during.sweep.failed) == (1, 2, 1)
        assert during.sweep.ended is None

        runtime.release(APP)
        await sweeping
        after = s.snapshot()
        assert after.sweep is None
        full = after.last_full_sweep
        assert full is not None
        assert (full.number, full.remaining, full.done, full.failed) == (1, 0, 3, 1)
        assert full.bytes == 1000
        assert full.ended is not None
        assert "1 pulled, 1 up to date, 0 skipped, 1 failed" in full.summary
        app = view(after, APP)
        assert (app.state, app.progress) == ("cached", None)
        assert app.last is not None
        assert app.last.outcome == Outcome.PULLED
        assert app.cached_since is not None
        assert before.images[0].state == "pending", "a snapshot is a picture, not a live view"

        # A bad edit: rejected, reported in the snapshot, and the last good config kept.
        good = s.config
        write_volume(tmp_path / "config", {"image.config": "[{", "interval": "300"})
        assert not await s.reload()
        bad = s.snapshot().config
        assert s.config is good
        assert (bad.generation, bad.entries, bad.digest) == (1, 3, config.digest)
        assert not bad.last_reload_ok
        assert bad.last_error is not None
        assert "image.config" in bad.last_error
        assert "config rejected (keeping the last good config)" in caplog.text
        assert [str(v.image) for v in s.snapshot().images] == [APP, LIB, BASE]

        publish(tmp_path / "config", [entry(APP)], interval="60")
        assert await s.reload()
        fixed = s.snapshot().config
        assert (fixed.generation, fixed.entries, fixed.interval) == (2, 1, 60.0)
        assert (fixed.last_reload_ok, fixed.last_error) == (True, None)
        assert [str(v.image) for v in s.snapshot().images] == [APP]


async def test_snapshot_shows_retrying_with_the_next_try(tmp_path: Path) -> None:
    runtime = ScriptedRuntime()
    runtime.script(APP, fail(Reason.REGISTRY), succeed())
    slow = Backoff(base=0.6, cap=0.6, retries=1)
    async with engine(tmp_path, runtime, [entry(APP)], backoff=slow) as s:
        sweeping = asyncio.create_task(s.run_sweep())
        await wait_for(lambda: view(s.snapshot(), APP).state == "retrying", 5, "retrying")
        retrying = view(s.snapshot(), APP)
        assert retrying.next_retry is not None
        assert time.time() < retrying.next_retry <= time.time() + 0.6
        sweep = await sweeping
        assert outcomes(sweep) == {APP: (Outcome.PULLED, 2)}
        assert view(s.snapshot(), APP).next_retry is None


def test_a_pull_that_would_not_fit_beside_those_in_flight(tmp_path: Path) -> None:
    """The size check counts what the pulls in flight expected to need: two pulls that each
    fit alone do not both start into the same free space."""
    from jcp.engine.disk import DiskGuard, human  # noqa: PLC0415

    guard = DiskGuard(MinFree(bytes=0), tmp_path)
    assert guard.check()
    assert guard.reading is not None
    half = guard.reading.free // 2 + 1
    assert guard.shortfall(half) is None
    guard.reserved["first"] = half
    why = guard.shortfall(half)
    assert why is not None
    assert why.startswith(f"needs about {human(half)} on {tmp_path}")
    assert why.endswith("and the pulls in flight")
    del guard.reserved["first"]
    assert guard.shortfall(half) is None
    assert DiskGuard(MinFree(bytes=0), None).shortfall(10**18) is None, "no way to tell: go"
