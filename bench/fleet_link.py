"""The fleet simulation's one registry link, and what the run measured from it.

Every pull in flight, on every simulated node, shares one link: each gets `rate / active`
bytes a second, re-divided every tick, as TCP flows sharing a bottleneck roughly do. The nodes'
runtimes are jcp's own in-memory adapter (`ScriptedRuntime`) with gated pulls: the link opens a
pull's gate once its bytes have gone through, so the engine sees a pull that lasts exactly as
long as the link makes it.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass, field

from jcp.runtime.fake import PullCall, ScriptedRuntime


@dataclass
class Link:
    """RATE bytes a (simulated) second through one link; each pull moves SIZE bytes."""

    rate: float
    size: float
    runtimes: list[ScriptedRuntime]
    tick: float = 0.01
    peak: int = 0
    _left: dict[int, float] = field(default_factory=dict)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.tick)
            now = loop.time()
            dt, last = now - last, now
            active = [(rt, c) for rt in self.runtimes for c in rt.pulls if c.running]
            self.peak = max(self.peak, len(active))
            if not active:
                continue
            share = self.rate * dt / len(active)
            for rt, call in active:
                left = self._left.get(id(call), self.size) - share
                self._left[id(call)] = left
                if left <= 0:
                    rt.release(call.image)


def most_at_once(calls: list[PullCall]) -> int:
    """The most pulls that overlapped in time, from their exact start and end."""
    edges = sorted(
        [(c.started, 1) for c in calls] + [(c.ended or c.started, -1) for c in calls],
        key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
    )
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


@dataclass(frozen=True)
class Outcome:
    """One run: seconds (real-equivalent) from the config change to each node warm."""

    label: str
    warm: list[float]
    peak_pullers: int
    api_requests: int
    per_node_minute: float

    @property
    def first(self) -> float:
        return min(self.warm)

    @property
    def median(self) -> float:
        return statistics.median(self.warm)

    @property
    def last(self) -> float:
        return max(self.warm)


def table(nodes: int, outcomes: list[Outcome]) -> str:
    head = (
        "| run | first warm | median warm | all warm | peak pullers | API requests "
        "| per node per minute |\n|---|---|---|---|---|---|---|\n"
    )
    rows = [
        f"| {o.label} | {o.first:.0f} s | {o.median:.0f} s | {o.last:.0f} s | {o.peak_pullers} "
        f"| {o.api_requests} | {o.per_node_minute:.1f} |"
        for o in outcomes
    ]
    return head + "\n".join(rows) + f"\n\n{nodes} nodes; times are real-equivalent seconds."
