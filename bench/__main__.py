"""`python -m bench [--quick] [--only NAME] [--out FILE]`: every figure of BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.containerd import containerd
from bench.harness import Harness, progress
from bench.report import report
from bench.scenarios import SCENARIOS
from bench.sizes import QUICK, Sizes
from jcp import __version__

ALL = {**SCENARIOS, "containerd": containerd}
OPTIONAL = ("cold_slow_link",)
"""Left out of the full run for its time budget (run with --only); --quick runs them too."""


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, one repetition: checks the harness, not the timings",
    )
    parser.add_argument(
        "--only", action="append", choices=sorted(ALL), help="run only this scenario (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument(
        "--daemon-arg",
        action="append",
        default=[],
        help="extra dockerd flag, e.g. --daemon-arg=--max-concurrent-downloads=12",
    )
    args = parser.parse_args(argv)
    # SIGTERM (and SIGINT, ignored in a background job) unwind through the harness, which
    # stops the daemons it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sizes = QUICK if args.quick else Sizes()
    names = args.only or [n for n in ALL if args.quick or n not in OPTIONAL]
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    started = time.time()
    load_before = _load()
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
            t0 = time.time()
            results[name] = ALL[name](h, sizes)
            seconds[name] = round(time.time() - t0, 1)
    doc = {
        "jcp_version": __version__,
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "docker": docker_version,
            "load_average_before": load_before,
            "load_average_after": _load(),
        },
        "sizes": sizes.__dict__,
        "daemon_args": args.daemon_arg,
        "seconds_total": round(time.time() - started, 1),
        "seconds_by_scenario": seconds,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=list))
    print(report(results))
    print(f"\nresults: {args.out} ({doc['seconds_total']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
