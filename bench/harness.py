"""The benchmark's moving parts: a fresh stack, one measured run, and the helpers around it.

Every contender runs against the same daemon, registry and images, in turn, so that each
figure is a ratio measured in one run on one machine. A run is measured from outside: wall
time, the CPU of the contender's processes, of the runtime daemon and of the registry, the
requests the registry logged, and (Docker) the pulls the daemon's own event stream reported.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.probes import CPU, DockerPulls
from bench.registry_log import LoggedRegistry, RequestCounter
from devstack.images import RegistryClient
from devstack.kubelet import write_volume
from devstack.proxy import ThrottleProxy
from devstack.stack import Stack

MiB = 1 << 20


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Stats:
    median: float
    low: float
    high: float
    runs: tuple[float, ...]

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        return cls(statistics.median(values), min(values), max(values), tuple(values))

    def json(self) -> dict[str, Any]:
        return {
            "median": round(self.median, 4),
            "min": round(self.low, 4),
            "max": round(self.high, 4),
            "runs": [round(v, 4) for v in self.runs],
        }


@dataclass(frozen=True)
class Run:
    """One contender's run, measured from outside."""

    wall: float
    cpu: float
    """user + system seconds of the contender's own processes (waited-for children)."""
    runtime: CPU
    """CPU the runtime daemon (dockerd or containerd) and its children spent meanwhile."""
    registry_cpu: float
    requests: Counter[str] = field(default_factory=Counter)
    """Requests by kind, as the registry logged them."""
    agents: Counter[str] = field(default_factory=Counter)
    """Requests by user agent's product (docker, containerd, jcp, ...)."""
    runtime_pulls: int | None = None
    """Pulls the runtime reported (Docker's event stream, containerd's log); None where it
    was not asked."""


def cpu_seconds(pid: int | None) -> float:
    return CPU.of(pid).own


def proc_stats(pid: int) -> dict[str, float]:
    """RSS now and peak (bytes), and CPU seconds so far, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) * 1024  # type: ignore[union-attr]
    return {"rss": rss, "peak_rss": hwm, "cpu": cpu_seconds(pid)}


class Harness:
    def __init__(self, root: Path | None = None, daemon_args: tuple[str, ...] = ()) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="jcp-bench-"))
        self.stack = Stack(self.root / "stack")
        # The devstack registry runs without an access log; the bench counts requests in it.
        self.registry = LoggedRegistry(self.root / "stack" / "registry-open")
        self.stack.open_registry = self.registry
        self.stack.dockerd.extra_args = daemon_args
        self.counter = RequestCounter(self.registry)
        self.client: RegistryClient | None = None
        self.proxies: list[ThrottleProxy] = []
        self.env = {**os.environ, "DOCKER_HOST": ""}
        self.cleanups: list[Any] = []
        self._docker_pulls: DockerPulls | None = None

    def __enter__(self) -> Harness:  # noqa: PYI034 - a final class; Self adds nothing here
        progress(f"starting dockerd and registries in {self.root}")
        self.stack.start()
        self.env["DOCKER_HOST"] = self.stack.dockerd.host
        self.client = self.stack.open_client()
        return self

    def __exit__(self, *_: object) -> None:
        for cleanup in reversed(self.cleanups):
            cleanup()
        for p in self.proxies:
            p.stop()
        if self.client is not None:
            self.client.close()
        self.stack.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def docker_pulls(self) -> DockerPulls:
        """The daemon's pull events, watched from the first measured run on."""
        if self._docker_pulls is None:
            self._docker_pulls = DockerPulls(self.env)
            self.cleanups.append(self._docker_pulls.close)
        return self._docker_pulls

    @property
    def dockerd_pid(self) -> int | None:
        proc = self.stack.dockerd.proc
        return proc.pid if proc is not None else None

    def proxy(self, *, latency: float, rate: float) -> ThrottleProxy:
        p = ThrottleProxy(self.registry.host, latency=latency, rate=rate).start()
        self.proxies.append(p)
        return p

    def via(self, refs: list[str], proxy: ThrottleProxy) -> list[str]:
        return [proxy.host + r[r.index("/") :] for r in refs]

    def remove(self, refs: list[str]) -> None:
        for i in range(0, len(refs), 200):
            subprocess.run(
                ["docker", "rmi", "-f", *refs[i : i + 200]],
                env=self.env,
                capture_output=True,
                check=False,
            )
        subprocess.run(
            ["docker", "image", "prune", "-f"], env=self.env, capture_output=True, check=False
        )

    def config_dir(self, name: str, refs: list[str], interval: str = "3600") -> Path:
        d = self.root / "configs" / name
        entries = [{"ref": r, "registry": r.split("/")[0]} for r in refs]
        write_volume(d, {"image.config": json.dumps(entries), "interval": interval})
        return d

    # -- jcp ------------------------------------------------------------------------------------

    def jcp_validate(self, config: Path) -> list[str]:
        return [sys.executable, "-m", "jcp", "validate", str(config)]

    def start_run(
        self, config: Path, log: Path, extra: tuple[str, ...] = ()
    ) -> subprocess.Popen[bytes]:
        """`jcp run` with its defaults, JSON logs to LOG, no HTTP server, no start jitter."""
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "jcp", "run", "--config-dir", str(config),
                 "--docker-config-root", str(self.root / "no-secrets"), "--http-addr", "",
                 "--start-jitter", "0", "--log-format", "json", *extra],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def run_sweeps(self, name: str, refs: list[str], sweeps: int) -> Stats:
        """Seconds of SWEEPS steady sweeps inside one `jcp run` (its first sweep and its
        start-up left out): what the DaemonSet pays per interval once it is up."""
        config = self.config_dir(f"run-{name}", refs)
        log = self.root / f"run-{name}.log"
        proc = self.start_run(config, log, ("--interval", "1"))
        try:
            wait_event(log, proc, {"event": "sweep_done", "sweep": sweeps + 1}, timeout=600)
        finally:
            proc.terminate()
            proc.wait(20)
        done = [e for e in log_events(log) if e.get("event") == "sweep_done"]
        return Stats.of([float(e["seconds"]) for e in done if e["sweep"] > 1][:sweeps])

    # -- one measured run ---------------------------------------------------------------------

    def measure(
        self,
        cmd: list[str],
        *,
        stdin: str | None = None,
        runtime_pid: int | None = None,
        docker_events: bool = True,
        count_pulls: Callable[[], int] | None = None,
    ) -> Run:
        """Run CMD to completion; it must exit 0. The runtime's pulls are counted by
        COUNT_PULLS (called before and after; the difference counts) if given, else from the
        Docker daemon's event stream if DOCKER_EVENTS."""
        runtime_pid = runtime_pid if runtime_pid is not None else self.dockerd_pid
        registry_pid = self.registry.proc.pid if self.registry.proc is not None else None
        if count_pulls is None and docker_events:
            count_pulls = self.docker_pulls().mark
        self.counter.mark()
        pulls_before = count_pulls() if count_pulls is not None else 0
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        runtime_before = CPU.of(runtime_pid)
        registry_before = cpu_seconds(registry_pid)
        t0 = time.perf_counter()
        out = subprocess.run(
            cmd, env=self.env, input=stdin, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - t0
        runtime = CPU.of(runtime_pid) - runtime_before
        registry_cpu = cpu_seconds(registry_pid) - registry_before
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if out.returncode != 0:
            raise RuntimeError(f"{cmd[:4]} failed ({out.returncode}): {out.stderr[-1500:]}")
        requests, agents = self.counter.take()
        pulls = count_pulls() - pulls_before if count_pulls is not None else None
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return Run(wall, cpu, runtime, registry_cpu, requests, agents, pulls)


def log_events(log: Path) -> list[dict[str, Any]]:
    events = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def wait_event(
    log: Path,
    proc: subprocess.Popen[bytes],
    match: dict[str, Any],
    timeout: float = 300,
    count: int = 1,
) -> dict[str, Any]:
    """Poll a JSON log until COUNT events match all of MATCH; return the last of them."""
    deadline = time.monotonic() + timeout
    while True:
        hits = [e for e in log_events(log) if all(e.get(k) == v for k, v in match.items())]
        if len(hits) >= count:
            return hits[count - 1]
        if proc.poll() is not None:
            raise RuntimeError(f"jcp run exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no event {match} in {timeout}s:\n{log.read_text()[-2000:]}")
        time.sleep(0.005)


def event_time(event: dict[str, Any]) -> float:
    """Wall-clock seconds of a JSON log event (`ts` has millisecond precision)."""
    ts = str(event["ts"])
    m = re.match(r"(.*)\.(\d{3})Z$", ts)
    assert m is not None
    base = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return base + int(m.group(2)) / 1000
