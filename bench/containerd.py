"""containerd through the CRI: jcp against the kubelet's own behaviour, in the same run.

The baselines are what the kubelet does on a containerd node: CRI PullImage one image after
another (its default, `serializeImagePulls: true`) and the same calls N at a time
(`serializeImagePulls: false`), made by `bench.cri_pull`. The scenario runs once the CRI
runtime and the test containerd exist, and says "skipped" until then.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from bench import sets
from bench.contenders import Contender, compare, jcp, missing, ratio
from bench.harness import Harness, progress
from bench.report import cell
from bench.sizes import Sizes

PARTS = ("devstack.containerd", "jcp.runtime.cri", "jcp.runtime.cri_api.api_pb2_grpc")
CONCURRENCY = 8


def cri_pull(endpoint: str, concurrency: int, name: str) -> Contender:
    cmd = [sys.executable, "-m", "bench.cri_pull", "--endpoint", endpoint]
    cmd += ["--concurrency", str(concurrency)]
    return Contender(name, lambda refs, _: (cmd, "\n".join(refs) + "\n"))


def _remove(h: Harness, endpoint: str, refs: list[str]) -> None:
    cmd = [sys.executable, "-m", "bench.cri_pull", "--endpoint", endpoint, "--remove"]
    cmd += ["--concurrency", "8"]
    h.measure(cmd, stdin="\n".join(refs) + "\n", docker_events=False)


def _start(h: Harness) -> tuple[str, int]:
    """Start the test containerd (trusting the loopback registry over plain HTTP); returns
    its CRI endpoint and pid, and registers its stop with the harness."""
    module: Any = importlib.import_module("devstack.containerd")
    daemon = module.Containerd(h.root / "containerd", insecure=[h.registry.host])
    daemon.start()
    h.cleanups.append(daemon.stop)
    return daemon.endpoint, daemon.proc.pid


def containerd(h: Harness, sz: Sizes) -> dict[str, Any]:
    for part in PARTS:
        why = missing(part)
        if why is not None:
            return {"skipped": why}
    endpoint, pid = _start(h)
    runtime = ("--runtime", "cri", "--runtime-endpoint", endpoint)

    def run(
        label: str, refs: list[str], contenders: list[Contender], *, cold: bool
    ) -> dict[str, Any]:
        return compare(
            h, label, refs, contenders, repeats=sz.repeats, long_run=sz.long_run,
            before_each=(lambda: _remove(h, endpoint, refs)) if cold else None,
            runtime_pid=pid, docker_events=False,
        )  # fmt: skip

    assert h.client is not None
    out: dict[str, Any] = {"endpoint": endpoint, "concurrency": CONCURRENCY}
    small = sets.push_small(
        h.client, "cri-cold", sz.small_images,
        layers=sz.layers, layer_size=sz.layer_size, base_size=sz.base_size,
    )  # fmt: skip
    serial = cri_pull(endpoint, 1, "CRI serial")
    parallel = cri_pull(endpoint, CONCURRENCY, f"CRI parallel {CONCURRENCY}")
    cold = run(
        "containerd cold", small, [serial, parallel, jcp(h, "jcp", runtime=runtime)], cold=True
    )
    _ratios(cold, "jcp")
    out["cold"] = cold
    _remove(h, endpoint, small)

    refs = sets.push_steady(h.client, "cri-steady", max(sz.steady), sz.steady_repos)
    progress(f"containerd steady: making {len(refs)} references present")
    cmd, stdin = parallel.command(refs, h.root)
    h.measure(cmd, stdin=stdin, runtime_pid=pid, docker_events=False)
    out["steady"] = {}
    for n in sz.steady:
        contenders = [
            serial,
            parallel,
            jcp(h, "jcp pull", refresh="pull", runtime=runtime),
            jcp(h, "jcp digest", refresh="digest", runtime=runtime),
        ]
        r = run(f"containerd steady {n}", refs[:n], contenders, cold=False)
        _ratios(r, "jcp pull")
        _ratios(r, "jcp digest")
        out["steady"][str(n)] = r
    _remove(h, endpoint, refs)
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
            f"| scenario | images | CRI serial s | {parallel} s | jcp pull s | jcp digest s "
            "| jcp/serial | jcp/parallel |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [("cold", result["cold"], "jcp")]
    rows += [(f"steady {n}", r, "jcp digest") for n, r in result["steady"].items()]
    for label, r, main in rows:
        pull = "jcp" if label == "cold" else "jcp pull"
        digest = "-" if label == "cold" else cell(r, "jcp digest")
        lines.append(
            f"| {label} | {r['images']} | {cell(r, 'CRI serial')} | {cell(r, parallel)} | "
            f"{cell(r, pull)} | {digest} | {r.get(f'{main} vs CRI serial')} | "
            f"{r.get(f'{main} vs CRI parallel')} |"
        )
    return lines
