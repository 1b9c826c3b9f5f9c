"""containerd through the CRI: jcp against the kubelet's own behaviour, in the same run.

The baselines are what the kubelet does on a containerd node: CRI PullImage one image after
another (its default, `serializeImagePulls: true`) and the same calls N at a time
(`serializeImagePulls: false`), made by `bench.cri_pull`. The scenario runs once the CRI
runtime and the test containerd exist, and says "skipped" until then.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from bench import sets
from bench.contenders import Contender, compare, jcp, missing, ratio
from bench.harness import Harness, progress
from bench.report import cell, num, per_image_header, per_image_rows
from bench.sizes import Sizes

PARTS = ("devstack.containerd", "jcp.runtime.cri_api.api_pb2_grpc")
"""What the baselines need; jcp's contenders need `jcp.runtime.cri` as well."""
CONCURRENCY = 8


def cri_pull(endpoint: str, concurrency: int, name: str) -> Contender:
    cmd = [sys.executable, "-m", "bench.cri_pull", "--endpoint", endpoint]
    cmd += ["--concurrency", str(concurrency)]
    return Contender(name, lambda refs, _: (cmd, "\n".join(refs) + "\n"))


class _Daemon:
    """The test containerd (`devstack.containerd`), trusting the loopback registry over plain
    HTTP, and the pulls its log reports (one `PullImage ... returns` line per call, written
    before the call returns)."""

    def __init__(self, h: Harness) -> None:
        module: Any = importlib.import_module("devstack.containerd")
        self.daemon = module.Containerd(h.root / "containerd", registries=[h.registry.host])
        self.daemon.start()
        h.cleanups.append(self.daemon.stop)
        self.endpoint: str = self.daemon.endpoint
        self.pid: int = self.daemon.proc.pid
        self.log: Path = self.daemon.root / "containerd.log"

    def pulls(self) -> int:
        return self.log.read_bytes().count(b" returns image reference ")

    def remove_all(self) -> None:
        self.daemon.remove_all()


def containerd(h: Harness, sz: Sizes) -> dict[str, Any]:
    for part in PARTS:
        why = missing(part)
        if why is not None:
            return {"skipped": why}
    d = _Daemon(h)
    runtime = ("--runtime", "cri", "--runtime-endpoint", d.endpoint)
    no_cri = missing("jcp.runtime.cri")

    def run(
        label: str, refs: list[str], contenders: list[Contender], *, cold: bool
    ) -> dict[str, Any]:
        return compare(
            h, label, refs, contenders, repeats=sz.repeats, long_run=sz.long_run,
            before_each=d.remove_all if cold else None, runtime_pid=d.pid,
            docker_events=False, count_pulls=d.pulls,
        )  # fmt: skip

    assert h.client is not None
    out: dict[str, Any] = {"endpoint": d.endpoint, "concurrency": CONCURRENCY}
    serial = cri_pull(d.endpoint, 1, "CRI serial")
    parallel = cri_pull(d.endpoint, CONCURRENCY, f"CRI parallel {CONCURRENCY}")
    small = sets.push_small(
        h.client, "cri-cold", sz.small_images,
        layers=sz.layers, layer_size=sz.layer_size, base_size=sz.base_size,
    )  # fmt: skip
    contenders = [serial, parallel, jcp(h, "jcp", runtime=runtime, skip=no_cri)]
    out["cold"] = run("containerd cold", small, contenders, cold=True)
    _ratios(out["cold"], "jcp")
    d.remove_all()

    refs = sets.push_steady(h.client, "cri-steady", max(sz.cri_steady), sz.steady_repos)
    progress(f"containerd steady: making {len(refs)} references present")
    cmd, stdin = parallel.command(refs, h.root)
    h.measure(cmd, stdin=stdin, runtime_pid=d.pid, docker_events=False)
    out["steady"] = {}
    for n in sz.cri_steady:
        contenders = [
            serial,
            parallel,
            jcp(h, "jcp pull", refresh="pull", runtime=runtime, skip=no_cri),
            jcp(h, "jcp digest", refresh="digest", runtime=runtime, skip=no_cri),
        ]
        r = run(f"containerd steady {n}", refs[:n], contenders, cold=False)
        _ratios(r, "jcp pull")
        _ratios(r, "jcp digest")
        out["steady"][str(n)] = r
    d.remove_all()
    return out


def _ratios(result: dict[str, Any], name: str) -> None:
    result[f"{name} vs CRI serial"] = ratio(result, name, "CRI serial")
    result[f"{name} vs CRI parallel"] = ratio(result, name, f"CRI parallel {CONCURRENCY}")


def report_lines(result: dict[str, Any]) -> list[str]:
    if "skipped" in result:
        return [f"skipped: {result['skipped']}"]
    parallel = f"CRI parallel {CONCURRENCY}"
    lines = [
        (
            f"| scenario | images | CRI serial s | {parallel} s | jcp (pull) s | jcp digest s "
            "| jcp/serial | jcp/parallel | digest/serial | digest/parallel |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [("cold", result["cold"], "jcp")]
    rows += [(f"steady {n}", r, "jcp pull") for n, r in result["steady"].items()]
    counts = per_image_header("scenario", "containerd")
    for label, r, pull in rows:
        lines.append(
            f"| {label} | {r['images']} | {cell(r, 'CRI serial')} | {cell(r, parallel)} | "
            f"{cell(r, pull)} | {cell(r, 'jcp digest')} | "
            + " | ".join(
                num(r.get(f"{name} vs CRI {base}"))
                for name in (pull, "jcp digest")
                for base in ("serial", "parallel")
            )
            + " |"
        )
        counts += per_image_rows(label, r)
    return [
        *lines,
        "",
        "per image (runtime pulls from containerd's log):",
        "",
        *counts,
    ]
