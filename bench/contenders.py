"""Who is measured, and the loop that measures them in turn.

Contenders are commands, started as processes, so that start-up costs count for all alike:
shell loops of `docker pull`, `jcp once`, and a small CRI client doing what the kubelet does.
A contender whose part is missing (a jcp feature another change brings) is kept in the
results as skipped, with the reason, never dropped silently.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import Harness, Run, Stats, progress

Command = Callable[[list[str], Path], tuple[list[str], str | None]]
"""(references, config directory) -> (argv, stdin)."""


@dataclass(frozen=True)
class Contender:
    name: str
    command: Command
    skip: str | None = None


def serial_cli() -> Contender:
    script = 'while read -r r; do docker pull -q "$r" >/dev/null || exit 1; done'
    return Contender("serial", lambda refs, _: (["sh", "-c", script], "\n".join(refs) + "\n"))


def xargs(parallel: int) -> Contender:
    cmd = ["sh", "-c", f"xargs -P {parallel} -n 1 docker pull -q >/dev/null"]
    return Contender(f"xargs -P {parallel}", lambda refs, _: (cmd, "\n".join(refs) + "\n"))


def missing(module: str) -> str | None:
    """None if MODULE can be imported, else the reason a contender needing it is skipped."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:
        found = False
    return None if found else f"{module} not available"


def jcp(
    h: Harness,
    name: str,
    *,
    refresh: str | None = None,
    runtime: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    skip: str | None = None,
) -> Contender:
    """`jcp once` with its defaults (concurrency included) unless told otherwise."""
    if refresh == "digest" and skip is None:
        skip = missing("jcp.registry")

    def command(_: list[str], config: Path) -> tuple[list[str], str | None]:
        return [
            sys.executable, "-m", "jcp", "once", "--config-dir", str(config),
            "--docker-config-root", str(h.root / "no-secrets"), "--progress", "never",
            *(["--refresh", refresh] if refresh else []), *runtime, *extra,
        ], None  # fmt: skip

    return Contender(name, command, skip)


def _summary(runs: list[Run], images: int) -> dict[str, Any]:
    last = runs[-1]
    requests = Counter[str]()
    for r in runs:
        requests.update(r.requests)
    pulls = [r.runtime_pulls for r in runs if r.runtime_pulls is not None]
    return {
        "runs": len(runs),
        "seconds": Stats.of([r.wall for r in runs]).json(),
        "cpu_seconds": Stats.of([r.cpu for r in runs]).json(),
        "runtime_cpu_seconds": Stats.of([r.runtime.total for r in runs]).json(),
        "runtime_children_cpu_seconds": Stats.of([r.runtime.children for r in runs]).json(),
        "runtime_kernel_cpu_seconds": Stats.of([r.runtime.kernel for r in runs]).json(),
        "registry_cpu_seconds": Stats.of([r.registry_cpu for r in runs]).json(),
        "requests_per_image": {
            k: round(v / len(runs) / images, 3) for k, v in sorted(requests.items())
        },
        "requests_by_agent": dict(last.agents),
        "runtime_pulls_per_image": round(sum(pulls) / len(pulls) / images, 3) if pulls else None,
    }


def compare(
    h: Harness,
    label: str,
    refs: list[str],
    contenders: list[Contender],
    *,
    repeats: int,
    long_run: float,
    before_each: Callable[[], None] | None = None,
    runtime_pid: int | None = None,
    docker_events: bool = True,
    count_pulls: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Each contender on REFS, in turn, REPEATS times (BEFORE_EACH runs before every run, e.g.
    removing the images for a cold start). A contender whose first run took over LONG_RUN
    seconds and over 3 times the fastest first run runs once: so far from the others, its
    spread does not move a ratio, and the full benchmark must fit in its time budget."""
    config = h.config_dir(label.replace(" ", "-"), refs)
    runs: dict[str, list[Run]] = {c.name: [] for c in contenders if c.skip is None}

    def once_is_enough(name: str) -> bool:
        first = runs[name][0].wall
        fastest = min(r[0].wall for r in runs.values())
        return first > long_run and first > 3 * fastest

    for rep in range(repeats):
        for c in contenders:
            if c.skip is not None or (rep > 0 and once_is_enough(c.name)):
                continue
            if before_each is not None:
                before_each()
            cmd, stdin = c.command(refs, config)
            run = h.measure(
                cmd,
                stdin=stdin,
                runtime_pid=runtime_pid,
                docker_events=docker_events,
                count_pulls=count_pulls,
            )
            runs[c.name].append(run)
            progress(f"{label}: {c.name} run {rep + 1}/{repeats}: {run.wall:.2f}s")
    out: dict[str, Any] = {}
    for c in contenders:
        out[c.name] = {"skipped": c.skip} if c.skip else _summary(runs[c.name], len(refs))
    return {"images": len(refs), "contenders": out}


def median(result: dict[str, Any], name: str) -> float | None:
    """A contender's median seconds in a `compare` result; None if skipped or absent."""
    c = result.get("contenders", {}).get(name)
    if not c or "seconds" not in c:
        return None
    return float(c["seconds"]["median"])


def ratio(result: dict[str, Any], name: str, baseline: str) -> float | None:
    a, b = median(result, name), median(result, baseline)
    return round(a / b, 3) if a is not None and b else None
