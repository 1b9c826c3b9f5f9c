"""The Docker scenarios; each returns a JSON-ready dict of figures (ratios computed here)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from bench import sets
from bench.contenders import (
    Contender,
    compare,
    jcp,
    median,
    missing,
    ratio,
    serial_cli,
    xargs,
)
from bench.harness import Harness, Stats, event_time, proc_stats, progress, wait_event
from bench.phases import pull_phases
from bench.sizes import Sizes
from bench.textlayers import floor
from devstack.images import RegistryClient, push_synthetic
from devstack.kubelet import write_volume


def _client(h: Harness) -> RegistryClient:
    assert h.client is not None
    return h.client


def _best(result: dict[str, Any], names: list[str]) -> tuple[str, float]:
    timed = [(n, t) for n in names if (t := median(result, n)) is not None]
    return min(timed, key=lambda nt: nt[1])


def _cold_ratios(result: dict[str, Any], sz: Sizes) -> None:
    best, seconds = _best(result, [f"xargs -P {p}" for p in sz.parallel])
    result["best_xargs"] = best
    jcp_s = median(result, "jcp")
    result["jcp_vs_best_xargs"] = round(jcp_s / seconds, 3) if jcp_s else None
    result["jcp_vs_serial"] = ratio(result, "jcp", "serial")


def steady(h: Harness, sz: Sizes) -> dict[str, Any]:
    """Present images, refreshed: serial and parallel `docker pull` loops against jcp with
    `--refresh pull` (the runtime is asked) and `--refresh digest` (one HEAD per image)."""
    refs = sets.push_steady(_client(h), "steady", max(sz.steady), sz.steady_repos)
    proxy = h.proxy(latency=sz.latency, rate=sz.rate)
    out: dict[str, Any] = {"link": {"latency_ms": sz.latency * 1000, "rate_MBps": sz.rate / 1e6}}
    for link, link_refs in (("loopback", refs), ("slow_link", h.via(refs, proxy))):
        progress(f"steady {link}: making {len(link_refs)} references present")
        _present(h, link_refs)
        out[link] = {}
        for n in sz.steady:
            contenders = [
                serial_cli(),
                xargs(8),
                jcp(h, "jcp pull", refresh="pull"),
                jcp(h, "jcp digest", refresh="digest"),
            ]
            r = compare(
                h, f"steady {link} {n}", link_refs[:n], contenders,
                repeats=sz.repeats, long_run=sz.long_run,
            )  # fmt: skip
            for name in ("jcp pull", "jcp digest", "xargs -P 8"):
                r[f"{name} vs serial"] = ratio(r, name, "serial")
            r["jcp digest vs xargs -P 8"] = ratio(r, "jcp digest", "xargs -P 8")
            serial_s = median(r, "serial")
            if n >= sz.run_sweeps_from and serial_s and not missing("jcp.registry"):
                sweep = h.run_sweeps(f"{link}-{n}", link_refs[:n], sz.repeats)
                progress(f"steady {link} {n}: jcp run sweeps {sweep.runs}")
                r["jcp run sweep"] = sweep.json()
                r["jcp run sweep vs serial"] = round(sweep.median / serial_s, 3)
            out[link][str(n)] = r
        h.remove(link_refs)
    return out


def _present(h: Harness, refs: list[str]) -> None:
    """Pull REFS once (not measured): the steady scenarios start from a warm cache."""
    present = jcp(h, "present", refresh="pull", extra=("--concurrency", "16"))
    h.measure(present.command(refs, h.config_dir("present", refs))[0], docker_events=False)


def _cold_contenders(h: Harness, sz: Sizes) -> list[Contender]:
    """The cold target is against the best `xargs -P`; the serial loop is left out for the
    time budget (cold_slow_link still runs it)."""
    return [*(xargs(p) for p in sz.parallel), jcp(h, "jcp")]


def cold_small(h: Harness, sz: Sizes) -> dict[str, Any]:
    """Absent images: the serial loop, `xargs -P` at each level, and jcp as shipped."""
    refs = sets.push_small(
        _client(h), "cold", sz.small_images,
        layers=sz.layers, layer_size=sz.layer_size, base_size=sz.base_size,
    )  # fmt: skip
    r = compare(
        h, "cold small", refs, _cold_contenders(h, sz),
        repeats=sz.repeats, long_run=sz.long_run, before_each=lambda: h.remove(refs),
    )  # fmt: skip
    _cold_ratios(r, sz)
    h.remove(refs)
    return r


def cold_slow_link(h: Harness, sz: Sizes) -> dict[str, Any]:
    """The small set through the 25 ms / 100 MB/s link, where the serial loop pays latency."""
    refs = sets.push_small(
        _client(h), "slow", sz.small_images,
        layers=sz.layers, layer_size=sz.layer_size, base_size=sz.base_size,
    )  # fmt: skip
    proxy = h.proxy(latency=sz.latency, rate=sz.rate)
    refs = h.via(refs, proxy)
    contenders = [serial_cli(), xargs(8), jcp(h, "jcp")]
    r = compare(
        h, "cold slow link", refs, contenders,
        repeats=sz.repeats, long_run=sz.long_run, before_each=lambda: h.remove(refs),
    )  # fmt: skip
    r["jcp_vs_serial"] = ratio(r, "jcp", "serial")
    r["jcp_vs_xargs"] = ratio(r, "jcp", "xargs -P 8")
    r["link"] = {"latency_ms": sz.latency * 1000, "rate_MBps": sz.rate / 1e6}
    h.remove(refs)
    return r


def cold_big(h: Harness, sz: Sizes) -> dict[str, Any]:
    """A few images of two big pseudo-text layers each, against the machine's floor."""
    progress(f"building {2 * sz.big_images} pseudo-text layers of {sz.big_layer_size >> 20} MiB")
    layers = sets.big_layers(sz.big_images, sz.big_layer_size)
    refs = sets.push_big(_client(h), "big", layers)
    f = floor(layers, h.root / "floor")
    progress(f"floor: {f.one_core:.2f}s on one core, {f.two_cores:.2f}s on two")
    r = compare(
        h, "cold big", refs, _cold_contenders(h, sz),
        repeats=sz.repeats, long_run=sz.long_run, before_each=lambda: h.remove(refs),
    )  # fmt: skip
    _cold_ratios(r, sz)
    r["floor"] = {
        "one_core_seconds": round(f.one_core, 3),
        "two_cores_seconds": round(f.two_cores, 3),
        "compressed_mb": round(f.compressed_bytes / 1e6, 1),
        "uncompressed_mb": round(f.uncompressed_bytes / 1e6, 1),
        "how": "Python zlib + hashlib from the page cache: sha256(blob), gunzip, sha256(tar); "
        "two cores = two processes at once",
    }
    jcp_s = median(r, "jcp")
    r["jcp_vs_floor"] = round(jcp_s / f.two_cores, 2) if jcp_s else None
    r["phases"] = {}
    for label, some in (("one image", refs[:1]), ("all at once", refs)):
        h.remove(refs)
        r["phases"][label] = pull_phases(some, h.env)
    h.remove(refs)
    return r


def cold_mixed(h: Harness, sz: Sizes) -> dict[str, Any]:
    """Small images with one big image listed last, as lists come in no size order: `xargs -P`
    starts pulls in list order, jcp sizes them at the registry and starts the largest first."""
    layers = sets.big_layers(1, sz.big_layer_size)
    big = sets.push_big(_client(h), "mixed-big", layers)
    small = sets.push_small(
        _client(h), "mixed", sz.mixed_small,
        layers=sz.layers, layer_size=sz.layer_size, base_size=sz.base_size,
    )  # fmt: skip
    refs = small + big
    r = compare(
        h, "cold mixed", refs, _cold_contenders(h, sz),
        repeats=sz.repeats, long_run=sz.long_run, before_each=lambda: h.remove(refs),
    )  # fmt: skip
    _cold_ratios(r, sz)
    h.remove(refs)
    return r


def reload_latency(h: Harness, sz: Sizes) -> dict[str, Any]:
    refs = sets.push_small(
        _client(h), "reload", sz.small_images, layers=1, layer_size=64 * 1024, base_size=65536
    )
    config = h.config_dir("reload", refs)
    log = h.root / "reload.log"
    proc = h.start_run(config, log)
    to_start: list[float] = []
    to_present: list[float] = []
    try:
        wait_event(log, proc, {"event": "sweep_done", "kind": "sweep"})
        current = list(refs)
        for i in range(sz.reload_repeats):
            new = push_synthetic(
                _client(h), f"bench/reload-new-{i}", "1", layers=1, layer_size=256 * 1024
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
    h.remove(current)
    return {
        "to_pull_start_seconds": Stats.of(to_start).json(),
        "to_present_seconds": Stats.of(to_present).json(),
        "note": "log timestamps have 1 ms resolution",
    }


def footprint(h: Harness, sz: Sizes) -> dict[str, Any]:
    refs = sets.push_small(
        _client(h), "foot", sz.small_images,
        layers=sz.layers, layer_size=sz.layer_size, base_size=sz.base_size,
    )  # fmt: skip
    h.remove(refs)
    config = h.config_dir("foot", refs)
    log = h.root / "foot.log"
    proc = h.start_run(config, log)
    try:
        wait_event(log, proc, {"event": "sweep_done", "kind": "sweep"}, timeout=600)
        during = proc_stats(proc.pid)
        first = proc_stats(proc.pid)
        time.sleep(sz.idle_window)  # the measurement window itself, not synchronisation
        second = proc_stats(proc.pid)
    finally:
        proc.terminate()
        proc.wait(20)
    h.remove(refs)
    return {
        "peak_rss_mb_cold_warm_up": round(during["peak_rss"] / 1e6, 1),
        "idle_rss_mb": round(second["rss"] / 1e6, 1),
        "idle_cpu_seconds": round(second["cpu"] - first["cpu"], 3),
        "idle_window_seconds": sz.idle_window,
    }


def scale(h: Harness, sz: Sizes) -> dict[str, Any]:
    """jcp's fixed cost (`jcp once` on one present image) and `jcp validate` as the config
    grows. The per-image cost of a sweep is in the steady scenario (1000 images)."""
    refs = sets.push_steady(_client(h), "scale", max(sz.scale), 20)
    config = h.config_dir("scale-1", refs[:1])
    _present(h, refs[:1])
    once = jcp(h, "jcp").command(refs[:1], config)[0]
    runs = [h.measure(once, docker_events=False) for _ in range(sz.repeats)]
    out: dict[str, Any] = {
        "once_one_image": {
            "seconds": Stats.of([r.wall for r in runs]).json(),
            "cpu_seconds": Stats.of([r.cpu for r in runs]).json(),
        },
        "validate": {},
    }
    for n in sz.scale:
        config = h.config_dir(f"scale-{n}", refs[:n])
        validate = [
            h.measure(h.jcp_validate(config), docker_events=False) for _ in range(sz.repeats)
        ]
        out["validate"][str(n)] = {
            "seconds": Stats.of([r.wall for r in validate]).json(),
            "cpu_seconds": Stats.of([r.cpu for r in validate]).json(),
        }
    h.remove(refs[:1])
    return out


SCENARIOS: dict[str, Callable[[Harness, Sizes], dict[str, Any]]] = {
    "steady": steady,
    "cold_small": cold_small,
    "cold_slow_link": cold_slow_link,
    "cold_big": cold_big,
    "cold_mixed": cold_mixed,
    "reload_latency": reload_latency,
    "footprint": footprint,
    "scale": scale,
}
