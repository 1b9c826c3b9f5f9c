"""The benchmark's moving parts: a fresh stack, synthetic image sets, contenders, measurements.

Every contender runs against the same daemon and the same images, after the images were
removed, so that each figure is a ratio measured in one run on one machine.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.images import RegistryClient, make_layer, push_synthetic
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


class Harness:
    def __init__(self, root: Path | None = None, daemon_args: tuple[str, ...] = ()) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="jcp-bench-"))
        self.stack = Stack(self.root / "stack")
        self.stack.dockerd.extra_args = daemon_args
        self.client: RegistryClient | None = None
        self.proxies: list[ThrottleProxy] = []
        self.env = {**os.environ, "DOCKER_HOST": ""}
        self.last_daemon_cpu = 0.0

    def __enter__(self) -> Harness:  # noqa: PYI034 - a final class; Self adds nothing here
        progress(f"starting dockerd and registries in {self.root}")
        self.stack.start()
        self.env["DOCKER_HOST"] = self.stack.dockerd.host
        self.client = self.stack.open_client()
        return self

    def __exit__(self, *_: object) -> None:
        for p in self.proxies:
            p.stop()
        if self.client is not None:
            self.client.close()
        self.stack.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- images -------------------------------------------------------------------------------

    def push_set(
        self, name: str, count: int, *, layers: int, layer_size: int, base_size: int
    ) -> list[str]:
        """COUNT images of LAYERS unique layers each on one shared base layer."""
        assert self.client is not None
        base = make_layer(base_size, seed=hash(name) & 0xFFFF, name="base")
        return [
            push_synthetic(
                self.client,
                f"bench/{name}-{i}",
                "1",
                layers=layers,
                layer_size=layer_size,
                base=base,
            ).reference
            for i in range(count)
        ]

    def push_tags(self, name: str, count: int, distinct: int = 20) -> list[str]:
        """COUNT references over DISTINCT small images: many tags, few manifests (scale tests)."""
        assert self.client is not None
        refs = []
        for i in range(distinct):
            pushed = push_synthetic(
                self.client, f"bench/{name}-{i}", "t0", layers=1, layer_size=4096
            )
            manifest = self.client._request(  # noqa: SLF001 - re-tagging needs the raw manifest
                "GET",
                f"/v2/bench/{name}-{i}/manifests/t0",
                headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
            )[2]
            refs.append(pushed.reference)
            for t in range(1, (count + distinct - 1) // distinct):
                if len(refs) >= count:
                    break
                self.client.put_manifest(
                    f"bench/{name}-{i}",
                    f"t{t}",
                    json.loads(manifest),
                    "application/vnd.docker.distribution.manifest.v2+json",
                )
                refs.append(f"{self.client.host}/bench/{name}-{i}:t{t}")
        return refs[:count]

    def proxy(self, *, latency: float, rate: float) -> ThrottleProxy:
        p = ThrottleProxy(self.stack.open_registry.host, latency=latency, rate=rate).start()
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

    # -- contenders ----------------------------------------------------------------------------

    def daemon_cpu(self) -> float:
        proc = self.stack.dockerd.proc
        return proc_stats(proc.pid)["cpu"] if proc is not None else 0.0

    def _timed(self, cmd: list[str], *, stdin: str | None = None) -> tuple[float, float]:
        """Wall seconds and the child's CPU seconds (user + system); the daemon's CPU seconds
        for the same run are left in `last_daemon_cpu`."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        daemon_before = self.daemon_cpu()
        t0 = time.perf_counter()
        out = subprocess.run(
            cmd, env=self.env, input=stdin, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - t0
        self.last_daemon_cpu = self.daemon_cpu() - daemon_before
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if out.returncode != 0:
            raise RuntimeError(f"{cmd[:3]} failed ({out.returncode}): {out.stderr[-1500:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu

    def serial_cli(self, refs: list[str]) -> tuple[float, float]:
        script = 'while read -r r; do docker pull -q "$r" >/dev/null || exit 1; done'
        return self._timed(["sh", "-c", script], stdin="\n".join(refs) + "\n")

    def parallel_cli(self, refs: list[str], concurrency: int) -> tuple[float, float]:
        return self._timed(
            ["sh", "-c", f"xargs -P {concurrency} -n 1 docker pull -q >/dev/null"],
            stdin="\n".join(refs) + "\n",
        )

    def _jcp(self, command: str, config: Path, concurrency: int) -> list[str]:
        return [
            sys.executable, "-m", "jcp", command, "--config-dir", str(config),
            "--docker-config-root", str(self.root / "no-secrets"),
            "--concurrency", str(concurrency),
        ]  # fmt: skip

    def jcp_once(self, config: Path, concurrency: int) -> tuple[float, float]:
        return self._timed([*self._jcp("once", config, concurrency), "--progress", "never"])

    def jcp_validate(self, config: Path) -> tuple[float, float]:
        return self._timed([sys.executable, "-m", "jcp", "validate", str(config)])

    # -- jcp run ---------------------------------------------------------------------------------

    def start_run(self, config: Path, concurrency: int, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                [
                    *self._jcp("run", config, concurrency),
                    "--http-addr",
                    "",
                    "--start-jitter",
                    "0",
                    "--log-format",
                    "json",
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )


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


def proc_stats(pid: int) -> dict[str, float]:
    """RSS now and peak (bytes), and CPU seconds so far, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) * 1024  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return {"rss": rss, "peak_rss": hwm, "cpu": cpu}
