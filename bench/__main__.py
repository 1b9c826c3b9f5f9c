"""`python -m bench [--quick] [--only NAME] [--out FILE]`: every figure of BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import Harness, progress
from bench.scenarios import QUICK, SCENARIOS, Sizes
from jcp import __version__

GOALS = [
    ("cold warm-up jcp/serial <= 0.5 (loopback)", ("cold_warm_up", "jcp_vs_serial"), 0.5),
    ("cold warm-up jcp/serial <= 0.3 (slow link)", ("slow_link", "jcp_vs_serial"), 0.3),
    ("cold warm-up jcp/parallel <= 1.0 (loopback)", ("cold_warm_up", "jcp_vs_parallel"), 1.0),
    ("cold warm-up jcp/parallel <= 1.0 (slow link)", ("slow_link", "jcp_vs_parallel"), 1.0),
    (
        "steady sweep jcp/serial <= 0.1 (small set)",
        ("steady_state", "*small", "jcp_vs_serial"),
        0.1,
    ),
    (
        "steady sweep jcp/serial <= 0.1 (large set)",
        ("steady_state", "*large", "jcp_vs_serial"),
        0.1,
    ),
    (
        "steady sweep jcp/parallel <= 1.0 (small set)",
        ("steady_state", "*small", "jcp_vs_parallel"),
        1.0,
    ),
    (
        "steady sweep jcp/parallel <= 1.0 (large set)",
        ("steady_state", "*large", "jcp_vs_parallel"),
        1.0,
    ),
    (
        "reload: median to pull start <= 1 s",
        ("reload_latency", "to_pull_start_seconds", "median"),
        1.0,
    ),
    ("idle RSS <= 80 MB", ("footprint", "idle_rss_mb"), 80.0),
]


def _dig(results: dict[str, Any], path: tuple[str, ...]) -> float | None:
    node: Any = results
    for step in path:
        if not isinstance(node, dict):
            return None
        key = step
        if step.startswith("*"):
            keys = sorted(node, key=lambda k: int(k) if k.isdigit() else 0)
            if not keys:
                return None
            key = keys[0] if step == "*small" else keys[-1]
        if key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, (int, float)) else None


def report(results: dict[str, Any]) -> str:
    lines = [
        "",
        "| scenario | serial CLI s | parallel CLI s | jcp s | jcp/serial | jcp/parallel |",
        "|---|---|---|---|---|---|",
    ]
    rows: list[tuple[str, Any]] = [
        (n, results[n]) for n in ("cold_warm_up", "slow_link") if n in results
    ]
    for n, r in sorted(results.get("steady_state", {}).items(), key=lambda kv: int(kv[0])):
        rows.append((f"steady_state {n}", r))
    for name, r in rows:
        s = r["seconds"]

        def fmt(k: str, s: dict[str, Any] = s) -> str:
            return f"{s[k]['median']:.2f} ({s[k]['min']:.2f}-{s[k]['max']:.2f})"

        lines.append(
            f"| {name} ({r['images']} images) | {fmt('serial_cli')} | "
            f"{fmt('parallel_cli')} | {fmt('jcp')} | {r['jcp_vs_serial']:.2f} | "
            f"{r['jcp_vs_parallel']:.2f} |"
        )
    if "reload_latency" in results:
        r = results["reload_latency"]
        lines.append(
            f"\nreload latency: pull start {r['to_pull_start_seconds']['median'] * 1000:.0f}"
            f" ms median ({r['to_pull_start_seconds']['min'] * 1000:.0f}-"
            f"{r['to_pull_start_seconds']['max'] * 1000:.0f}), image present "
            f"{r['to_present_seconds']['median'] * 1000:.0f} ms median"
        )
    if "footprint" in results:
        f = results["footprint"]
        lines.append(
            f"footprint: peak RSS {f['peak_rss_mb_cold_warm_up']} MB during a cold "
            f"warm-up, idle RSS {f['idle_rss_mb']} MB, idle CPU "
            f"{f['idle_cpu_seconds']} s over {f['idle_window_seconds']} s"
        )
    if "scale" in results:
        lines += [
            "",
            "| entries | validate s | steady sweep s | jcp CPU s | ms/image | CPU ms/image |",
            "|---|---|---|---|---|---|",
        ]
        for n, r in sorted(results["scale"].items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"| {n} | {r['validate_seconds']['median']:.2f} | "
                f"{r['steady_sweep_seconds']['median']:.2f} | "
                f"{r['jcp_cpu_seconds']['median']:.2f} | {r['ms_per_image']} | "
                f"{r['cpu_ms_per_image']} |"
            )
    lines += ["", "goals:"]
    for label, path, limit in GOALS:
        value = _dig(results, path)
        verdict = "n/a" if value is None else ("met" if value <= limit else "MISSED")
        shown = "-" if value is None else f"{value:g}"
        lines.append(f"  [{verdict}] {label}: {shown}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, one repetition: checks the harness, not the timings",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument(
        "--daemon-arg",
        action="append",
        default=[],
        help="extra dockerd flag, e.g. --daemon-arg=--max-concurrent-downloads=12",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    names = args.only or list(SCENARIOS)
    results: dict[str, Any] = {}
    started = time.time()
    with Harness(daemon_args=tuple(args.daemon_arg)) as h:
        docker_version = subprocess.run(
            ["docker", "version", "-f", "{{.Server.Version}}"],
            env=h.env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        for name in names:
            progress(f"scenario {name}")
            results[name] = SCENARIOS[name](h, sizes)
    doc = {
        "jcp_version": __version__,
        "quick": args.quick,
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "docker": docker_version,
        },
        "sizes": sizes.__dict__,
        "daemon_args": args.daemon_arg,
        "seconds_total": round(time.time() - started, 1),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=list))
    print(report(results))
    print(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
