"""`python -m bench.fleet [--nodes 200] [--parallelism 10] [--quick]`: the fleet pull budget,
simulated: N nodes, each running jcp's real engine (`Scheduler` over the in-memory
`ScriptedRuntime`) in one process, all told at once to pull one new image through one shared
registry link (`fleet_link.Link`), once without a budget and once with `--fleet-parallelism K`
(the real `LeaseSlot` against the API stand-in's Leases, over real HTTP).

Time is compressed by `--scale` (5: a simulated second stands for five): the link's rate, the
lease duration, the waiters' poll and the engine's linger are all divided by it, and every time
reported is multiplied back, so the table reads in real-equivalent seconds. API requests per
node per minute are counted at the stand-in and expressed per real-equivalent minute.

Exits 1 unless the budget held exactly (never more than K pulls at once, from every pull's own
start and end) and the median node was warm sooner with the budget than without.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.fleet_link import Link, Outcome, most_at_once, table
from devstack.kubeapi import KubeApiStandIn
from devstack.kubelet import write_volume
from jcp.engine.fleet import LINGER, FleetHold
from jcp.engine.scheduler import Scheduler
from jcp.kube.api import NodeApi
from jcp.kube.fleet import HEAD_POLL, LeaseSlot
from jcp.kube.lease_api import LeaseApi
from jcp.runtime.fake import ScriptedRuntime, gate
from jcp.settings import Inspect, Refresh, Settings

TOKEN = "fleet-simulation-token"  # noqa: S105 - the stand-in's, never a real one
NS = "jcp"
IMAGE = "registry.sim:5000/team/solver:2"


@dataclass(frozen=True)
class Plan:
    nodes: int = 200
    parallelism: int = 10
    image_gb: float = 5.0
    link_gbit: float = 10.0
    lease_seconds: int = 30
    scale: float = 5.0

    @property
    def alone(self) -> float:
        """Real seconds one pull takes with the link to itself."""
        return self.image_gb * 8 / self.link_gbit


async def _node(
    i: int, plan: Plan, config: Path, kube: KubeApiStandIn, budget: bool
) -> tuple[Scheduler, ScriptedRuntime, LeaseSlot | None]:
    runtime = ScriptedRuntime()
    runtime.script(IMAGE, gate())
    settings = Settings(
        config_dir=config,
        docker_config_root=config.parent / "docker",
        inspect=Inspect.NEVER,
        refresh=Refresh.NEVER,
        pull_timeout=1e6,
        stall_timeout=1e6,
    )
    slot = None
    if budget:
        slot = LeaseSlot(
            f"node-{i:03}",
            plan.parallelism,
            api=lambda: LeaseApi.of(NodeApi.connect(kube.url, TOKEN), NS),
            lease_seconds=plan.lease_seconds / plan.scale,
            head_poll=HEAD_POLL / plan.scale,
        )
    # The engine's linger, on the simulation's clock.
    hold = None if slot is None else FleetHold(slot, linger=LINGER / plan.scale)
    s = Scheduler(settings, runtime, label="scripted", env={}, fleet=hold)
    assert await s.reload()
    await s.connect(give_up=True)
    return s, runtime, slot


async def run(plan: Plan, *, budget: bool) -> Outcome:
    kube = KubeApiStandIn(TOKEN)
    await kube.start()
    with tempfile.TemporaryDirectory(prefix="jcp-fleet-") as tmp:
        config = Path(tmp) / "config"
        write_volume(config, {"image.config": f'[{{"ref": "{IMAGE}", "registry": '
                              f'"registry.sim:5000"}}]', "interval": "300"})  # fmt: skip
        nodes = [await _node(i, plan, config, kube, budget) for i in range(plan.nodes)]
        runtimes = [rt for _, rt, _ in nodes]
        link = Link(plan.link_gbit / 8 * 1e9 * plan.scale, plan.image_gb * 1e9, runtimes)
        loop = asyncio.get_running_loop()
        everyone = asyncio.Event()
        warm: list[float] = []
        start, calls_before = loop.time(), len(kube.leases.calls)

        async def warm_up(s: Scheduler) -> None:
            async with s.pulling():
                await s.run_sweep()
                warm.append((loop.time() - start) * plan.scale)
                if len(warm) == plan.nodes:
                    everyone.set()
                await everyone.wait()

        flow = asyncio.create_task(link.run())
        await asyncio.gather(*(warm_up(s) for s, _, _ in nodes))
        took = (loop.time() - start) * plan.scale
        requests = len(kube.leases.calls) - calls_before
        flow.cancel()
        for s, _, slot in nodes:
            await s.tools.fleet.close()
            if slot is not None:
                await slot.close()
    await kube.stop()
    peak = most_at_once([c for rt in runtimes for c in rt.pulls])
    label = f"budget K={plan.parallelism}" if budget else "no budget"
    per_minute = requests / plan.nodes / (took / 60) if took else 0.0
    return Outcome(label, warm, peak, requests, per_minute)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fleet")
    p.add_argument("--nodes", type=int, default=Plan.nodes)
    p.add_argument("--parallelism", type=int, default=Plan.parallelism)
    p.add_argument("--image-gb", type=float, default=Plan.image_gb)
    p.add_argument("--link-gbit", type=float, default=Plan.link_gbit)
    p.add_argument("--scale", type=float, default=Plan.scale)
    p.add_argument(
        "--quick", action="store_true", help="20 nodes, K=3, 10 GB, 10x: checks the harness"
    )
    args = p.parse_args(argv)
    plan = Plan(args.nodes, args.parallelism, args.image_gb, args.link_gbit, scale=args.scale)
    if args.quick:
        plan = dataclasses.replace(plan, nodes=20, parallelism=3, image_gb=10.0, scale=10.0)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(
        f"{plan.nodes} nodes pull one {plan.image_gb:g} GB image through one "
        f"{plan.link_gbit:g} Gbit/s link ({plan.alone:.0f} s alone); lease "
        f"{plan.lease_seconds} s; time compressed {plan.scale:g}x",
        flush=True,
    )
    outcomes = [asyncio.run(run(plan, budget=False)), asyncio.run(run(plan, budget=True))]
    print(table(plan.nodes, outcomes))
    free, capped = outcomes
    ok = capped.peak_pullers <= plan.parallelism and capped.median < free.median
    print(
        f"budget held: at most {capped.peak_pullers} of K={plan.parallelism} pulling at once; "
        f"median warm {free.median / capped.median:.1f}x sooner with it"
        + ("" if ok else "  <-- FAILED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
