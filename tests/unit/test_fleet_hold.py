"""The engine's side of the fleet budget: no pull from upstream without the node's slot, one
claim shared by all the node's pulls, given back after the last one, and /status saying why
the node waits. The slot here is a gate the test opens (the Lease-backed one is tested
against the API stand-in in test_fleet_leases.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jcp.engine.fleet import FleetHold
from jcp.engine.scheduler import Scheduler
from jcp.model.failures import Backoff
from jcp.runtime.fake import ScriptedRuntime
from jcp.settings import Settings
from tests.support.helpers import entry, publish, wait_for

REG = "reg-a.example:5000"
IMAGES = [f"{REG}/team/app-{i}:1" for i in range(3)]


class GateSlot:
    """A fleet slot granted when the test says so; it records what the engine asked."""

    def __init__(self) -> None:
        self.granted = asyncio.Event()
        self.acquires = 0
        self.releases = 0
        self.asking = False

    async def acquire(self) -> None:
        self.acquires += 1
        self.asking = True
        await self.granted.wait()
        self.asking = False

    async def release(self) -> None:
        self.releases += 1

    def waiting(self) -> str | None:
        return "waiting for a fleet slot (1 of 1 taken: nodes other)" if self.asking else None


async def test_no_pull_before_the_slot_then_one_claim_for_all_pulls(tmp_path: Path) -> None:
    slot, runtime = GateSlot(), ScriptedRuntime()
    settings = Settings(
        config_dir=publish(tmp_path / "config", [entry(r) for r in IMAGES]),
        docker_config_root=tmp_path / "docker",
        concurrency=3,
        backoff=Backoff(base=0.01, cap=0.05, retries=1),
    )
    s = Scheduler(settings, runtime, label="scripted", env={}, fleet=FleetHold(slot))
    assert await s.reload()
    await s.connect(give_up=True)
    hold = s.tools.fleet
    async with s.pulling():
        sweep = asyncio.create_task(s.run_sweep())
        await wait_for(lambda: slot.asking, 5, "the engine to ask for a slot")
        assert runtime.pulls == []  # nothing pulled from upstream without the slot
        assert s.snapshot().fleet_waiting == "waiting for a fleet slot (1 of 1 taken: nodes other)"
        slot.granted.set()
        done = await sweep
    assert len(done.results) == 3
    assert len(runtime.pulls) == 3
    assert slot.acquires == 1  # one claim for the node's three pulls
    await wait_for(lambda: slot.releases == 1, 5, "the slot given back after the last pull")
    assert not hold.held


async def test_a_steady_sweep_never_asks_for_a_slot(tmp_path: Path) -> None:
    slot, runtime = GateSlot(), ScriptedRuntime()
    for ref in IMAGES:
        runtime.hold(ref)
    settings = Settings(
        config_dir=publish(tmp_path / "config", [entry(r) for r in IMAGES]),
        docker_config_root=tmp_path / "docker",
        refresh=Settings().refresh.NEVER,
    )
    s = Scheduler(settings, runtime, label="scripted", env={}, fleet=FleetHold(slot))
    assert await s.reload()
    await s.connect(give_up=True)
    async with s.pulling():
        done = await s.run_sweep()
    assert len(done.results) == 3
    assert slot.acquires == 0
    assert runtime.pulls == []
