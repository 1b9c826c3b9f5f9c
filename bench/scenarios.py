"""The benchmark's scenarios; each returns a JSON-ready dict of figures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.harness import (
    Harness,
    MiB,
    Stats,
    event_time,
    proc_stats,
    progress,
    wait_event,
)
from devstack.images import push_synthetic
from devstack.kubelet import write_volume


@dataclass(frozen=True)
class Sizes:
    images: int = 40
    layers: int = 3
    layer_size: int = 1 * MiB
    base_size: int = 4 * MiB
    steady_large: int = 200
    repeats: int = 3
    concurrency: int = 8
    latency: float = 0.025
    rate: float = 100e6
    reload_repeats: int = 10
    idle_window: float = 30.0
    scale: tuple[int, ...] = (10, 100, 1000, 5000)


QUICK = Sizes(
    images=6,
    layers=2,
    layer_size=64 * 1024,
    base_size=256 * 1024,
    steady_large=12,
    repeats=1,
    reload_repeats=2,
    idle_window=1.0,
    scale=(10, 50),
)


def _contenders(h: Harness, refs: list[str], name: str, sz: Sizes, *, cold: bool) -> dict[str, Any]:
    """serial CLI, parallel CLI and jcp on REFS, each SZ.repeats times."""
    config = h.config_dir(name, refs)
    runs: dict[str, list[float]] = {"serial_cli": [], "parallel_cli": [], "jcp": []}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    daemon: dict[str, list[float]] = {k: [] for k in runs}
    actions: dict[str, Callable[[], tuple[float, float]]] = {
        "serial_cli": lambda: h.serial_cli(refs),
        "parallel_cli": lambda: h.parallel_cli(refs, sz.concurrency),
        "jcp": lambda: h.jcp_once(config, sz.concurrency),
    }
    if not cold:
        h.jcp_once(config, sz.concurrency)  # make every image present once
    for rep in range(sz.repeats):
        for contender, action in actions.items():
            if cold:
                h.remove(refs)
            wall, used = action()
            runs[contender].append(wall)
            cpu[contender].append(used)
            daemon[contender].append(h.last_daemon_cpu)
            progress(f"{name}: {contender} run {rep + 1}/{sz.repeats}: {wall:.2f}s")
    stats = {k: Stats.of(v) for k, v in runs.items()}
    return {
        "images": len(refs),
        "seconds": {k: s.json() for k, s in stats.items()},
        "cpu_seconds": {k: Stats.of(v).json() for k, v in cpu.items()},
        "dockerd_cpu_seconds": {k: Stats.of(v).json() for k, v in daemon.items()},
        "jcp_vs_serial": round(stats["jcp"].median / stats["serial_cli"].median, 3),
        "jcp_vs_parallel": round(stats["jcp"].median / stats["parallel_cli"].median, 3),
    }


def cold_warm_up(h: Harness, sz: Sizes) -> dict[str, Any]:
    refs = h.push_set(
        "cold", sz.images, layers=sz.layers, layer_size=sz.layer_size, base_size=sz.base_size
    )
    return _contenders(h, refs, "cold", sz, cold=True)


def slow_link(h: Harness, sz: Sizes) -> dict[str, Any]:
    refs = h.push_set(
        "slow", sz.images, layers=sz.layers, layer_size=sz.layer_size, base_size=sz.base_size
    )
    proxy = h.proxy(latency=sz.latency, rate=sz.rate)
    result = _contenders(h, h.via(refs, proxy), "slow-link", sz, cold=True)
    result["link"] = {"latency_ms": sz.latency * 1000, "rate_MBps": sz.rate / 1e6}
    return result


def steady_state(h: Harness, sz: Sizes) -> dict[str, Any]:
    small = h.push_set("steady", sz.images, layers=1, layer_size=64 * 1024, base_size=64 * 1024)
    large = small + h.push_set(
        "steady-more",
        sz.steady_large - sz.images,
        layers=1,
        layer_size=16 * 1024,
        base_size=16 * 1024,
    )
    return {
        str(len(small)): _contenders(h, small, "steady-small", sz, cold=False),
        str(len(large)): _contenders(h, large, "steady-large", sz, cold=False),
    }


def reload_latency(h: Harness, sz: Sizes) -> dict[str, Any]:
    refs = h.push_set("reload", sz.images, layers=1, layer_size=64 * 1024, base_size=64 * 1024)
    config = h.config_dir("reload", refs)
    log = h.root / "reload.log"
    proc = h.start_run(config, sz.concurrency, log)
    to_start: list[float] = []
    to_present: list[float] = []
    try:
        wait_event(log, proc, {"event": "sweep_done", "kind": "sweep"})
        current = list(refs)
        assert h.client is not None
        for i in range(sz.reload_repeats):
            new = push_synthetic(
                h.client, f"bench/reload-new-{i}", "1", layers=1, layer_size=256 * 1024
            ).reference
            current.append(new)
            entries = [{"ref": r, "registry": r.split("/")[0]} for r in current]
            swapped = time.time()
            write_volume(config, {"image.config": json.dumps(entries), "interval": "3600"})
            start = wait_event(log, proc, {"event": "pull_start", "image": new}, timeout=30)
            done = wait_event(log, proc, {"event": "pull_done", "image": new}, timeout=60)
            to_start.append(event_time(start) - swapped)
            to_present.append(event_time(done) - swapped)
            progress(
                f"reload {i + 1}/{sz.reload_repeats}: pull started after "
                f"{to_start[-1] * 1000:.0f} ms, present after {to_present[-1] * 1000:.0f} ms"
            )
    finally:
        proc.terminate()
        proc.wait(20)
    return {
        "to_pull_start_seconds": Stats.of(to_start).json(),
        "to_present_seconds": Stats.of(to_present).json(),
        "note": "log timestamps have 1 ms resolution",
    }


def footprint(h: Harness, sz: Sizes) -> dict[str, Any]:
    refs = h.push_set(
        "foot", sz.images, layers=sz.layers, layer_size=sz.layer_size, base_size=sz.base_size
    )
    h.remove(refs)
    config = h.config_dir("foot", refs)
    log = h.root / "foot.log"
    proc = h.start_run(config, sz.concurrency, log)
    try:
        wait_event(log, proc, {"event": "sweep_done", "kind": "sweep"}, timeout=600)
        during = proc_stats(proc.pid)
        first = proc_stats(proc.pid)
        time.sleep(sz.idle_window)  # the measurement window itself, not synchronisation
        second = proc_stats(proc.pid)
    finally:
        proc.terminate()
        proc.wait(20)
    return {
        "peak_rss_mb_cold_warm_up": round(during["peak_rss"] / 1e6, 1),
        "idle_rss_mb": round(second["rss"] / 1e6, 1),
        "idle_cpu_seconds": round(second["cpu"] - first["cpu"], 3),
        "idle_window_seconds": sz.idle_window,
    }


def scale(h: Harness, sz: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    biggest = max(sz.scale)
    refs_all = h.push_tags("scale", biggest)
    for n in sz.scale:
        refs = refs_all[:n]
        config = h.config_dir(f"scale-{n}", refs)
        validate = [h.jcp_validate(config)[0] for _ in range(max(1, sz.repeats))]
        h.jcp_once(config, sz.concurrency)  # present
        sweeps = [h.jcp_once(config, sz.concurrency) for _ in range(max(1, sz.repeats))]
        walls = [w for w, _ in sweeps]
        cpus = [c for _, c in sweeps]
        out[str(n)] = {
            "validate_seconds": Stats.of(validate).json(),
            "steady_sweep_seconds": Stats.of(walls).json(),
            "jcp_cpu_seconds": Stats.of(cpus).json(),
            "ms_per_image": round(Stats.of(walls).median / n * 1000, 2),
            "cpu_ms_per_image": round(Stats.of(cpus).median / n * 1000, 2),
        }
        progress(
            f"scale {n}: sweep {Stats.of(walls).median:.2f}s, cpu {Stats.of(cpus).median:.2f}s"
        )
    h.remove(refs_all)
    return out


SCENARIOS: dict[str, Callable[[Harness, Sizes], dict[str, Any]]] = {
    "cold_warm_up": cold_warm_up,
    "slow_link": slow_link,
    "steady_state": steady_state,
    "reload_latency": reload_latency,
    "footprint": footprint,
    "scale": scale,
}
