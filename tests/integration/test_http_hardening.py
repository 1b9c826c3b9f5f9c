"""jcp's HTTP surface under abuse, on the real stack: a `jcp run` warming 1000 images (tags of one
small image, in the registry and in the daemon: every sweep is a steady one) against scrapers,
idle and trickling connections and malformed requests, on loopback, bounded in count and time.

The figures each test prints are the ones the issue quotes (before: 64.1 s sweeps and 3.2 s
/healthz under 50 clients; 5,501 log lines for 500 bad requests; 500 idle connections kept).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiodocker
import aiohttp
import pytest

from devstack.images import MANIFEST_V2, RegistryClient, push_synthetic
from jcp.settings import HttpLimits
from tests.support.helpers import entry, publish, wait_for
from tests.support.jcp_process import JcpProcess, engine_args
from tests.support.scrape import wait_http

Start = Callable[..., JcpProcess]
STEADY = ["--inspect", "never"]
"""The default refresh (`digest`): a steady sweep is one HEAD per image at the registry."""
LIMITS = HttpLimits()


async def _tags(
    client: RegistryClient, docker: aiodocker.Docker, repo: str, count: int
) -> list[str]:
    """COUNT tags of one small image, in the registry (a manifest PUT each) and in the daemon
    (tagged there), so that every sweep is a steady one: one HEAD per image, no pull."""
    first = push_synthetic(client, repo, "0", layers=1, layer_size=1024).reference
    status, _, body = client._request(
        "GET", f"/v2/{repo}/manifests/0", headers={"Accept": MANIFEST_V2}
    )
    assert status == 200
    manifest = json.loads(body)
    await docker.images.pull(first)
    tags = [str(t) for t in range(1, count)]

    def put(part: list[str]) -> None:
        own = RegistryClient(client.host)  # one connection per thread
        try:
            for tag in part:
                own.put_manifest(repo, tag, manifest, MANIFEST_V2)
        finally:
            own.close()

    gate = asyncio.Semaphore(8)

    async def tag(t: str) -> None:
        async with gate:
            await docker.images.tag(first, repo=f"{client.host}/{repo}", tag=t)

    await asyncio.gather(
        *(asyncio.to_thread(put, tags[k::4]) for k in range(4)), *(tag(t) for t in tags)
    )
    return [first] + [f"{client.host}/{repo}:{t}" for t in tags]


async def _steady_run(
    tmp_path: Path,
    client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    repo: str,
    *,
    count: int = 1000,
    interval: str = "1",
) -> tuple[JcpProcess, str]:
    refs = await _tags(client, docker, repo, count)
    cfg = publish(tmp_path / "config", [entry(r) for r in refs], interval=interval)
    run = jcp("run", engine_args(cfg, docker_root, concurrency=8, extra=STEADY))
    base = await wait_http(run)
    await run.wait_line(rf"sweep 1 done.*{count} up to date", timeout=120)
    return run, base


def _sweeps(run: JcpProcess) -> dict[int, float]:
    """Sweep number -> seconds, from the `sweep N done in X.Xs` lines."""
    found = (re.search(r"\bsweep (\d+) done in ([\d.]+)s", line) for line in run.lines())
    return {int(m[1]): float(m[2]) for m in found if m}


async def _sweep_times(run: JcpProcess, count: int, *, after: int) -> list[float]:
    """The durations of COUNT sweeps that start after sweep AFTER has finished."""
    await wait_for(lambda: len([n for n in _sweeps(run) if n > after + 1]) >= count, 300)
    times = _sweeps(run)
    return [times[n] for n in sorted(times) if n > after + 1][:count]


def _cpu(pid: int) -> float:
    """Seconds of CPU the process has used (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PROBER = """
import http.client, json, os, sys, time
host, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = []
while not os.path.exists(stop):
    t0 = time.monotonic()
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", "/healthz")
    r = c.getresponse()
    r.read()
    c.close()
    out.append((r.status, time.monotonic() - t0))
    time.sleep(0.05)
print(json.dumps(out))
"""
"""/healthz every 50 ms on a fresh connection, as the kubelet probes: in a process of its own,
so that the load generator's own event loop does not inflate what it measures."""


async def _healthz_latencies(base: str, stop: Path) -> list[float]:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBER, host, port, str(stop), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    probes = json.loads(out)
    assert all(status == 200 for status, _ in probes)
    return [seconds for _, seconds in probes]


async def _scraper(base: str, stop: asyncio.Event, budget: list[int]) -> int:
    """Reads /status and /metrics back to back until STOP or the shared BUDGET runs out."""
    done = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        while not stop.is_set() and budget[0] > 0:
            budget[0] -= 1
            path = "/status" if done % 2 else "/metrics"
            async with s.get(base + path) as r:
                await r.read()
                assert r.status == 200, r.status
            done += 1
    return done


def _p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]


async def test_fifty_scrapers_neither_slow_the_sweeps_nor_the_probes(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    run, base = await _steady_run(tmp_path, open_client, docker, docker_root, jcp, unique("load"))
    quiet_probes = asyncio.create_task(_healthz_latencies(base, tmp_path / "stop-quiet"))
    quiet = await _sweep_times(run, 3, after=1)
    (tmp_path / "stop-quiet").touch()
    p99_quiet = _p99(await quiet_probes)
    stop = asyncio.Event()
    budget = [3000]  # the load is bounded in count (and in time: the sweeps below)
    load_started = max(_sweeps(run))
    scrapers = [asyncio.create_task(_scraper(base, stop, budget)) for _ in range(50)]
    probes = asyncio.create_task(_healthz_latencies(base, tmp_path / "stop-probing"))
    loaded = await _sweep_times(run, 2, after=load_started)
    stop.set()
    (tmp_path / "stop-probing").touch()
    served = sum(await asyncio.gather(*scrapers))
    latencies = await probes
    p99 = _p99(latencies)
    unloaded, under_load = statistics.median(quiet), statistics.median(loaded)
    print(
        f"1000 images: steady sweep {unloaded:.1f}s unloaded, {under_load:.1f}s under 50 "
        f"scrapers ({served} answers); /healthz p99 {p99_quiet * 1000:.1f} ms unloaded, "
        f"{p99 * 1000:.1f} ms under load ({len(latencies)} probes)"
    )
    assert served > 50, "the scrapers were answered"
    # On a quiet machine both are a few ms; on a shared CI machine the scheduler's own delay
    # (seen unloaded) is not jcp's doing, and 50 scrapers on 2 cores took it to 130 ms once.
    # What a user would see is a probe that times out: the kubelet waits 5 s
    # (k8s/base/daemonset.yaml), and a render holding the loop shows as seconds.
    assert p99 < max(0.5, 2 * p99_quiet)
    assert under_load <= max(1.5 * unloaded, unloaded + 0.2)  # the log's figure has one decimal


async def _answers(base: str, path: str, n: int) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            async with s.get(base + path) as r:
                await r.read()


@pytest.mark.parametrize("count", [1000, 5000])
async def test_cost_of_one_status_and_one_scrape(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
    count: int,
) -> None:
    """CPU per answer, measured on the idle agent (one sweep, then a long interval)."""
    run, base = await _steady_run(
        tmp_path,
        open_client,
        docker,
        docker_root,
        jcp,
        unique("cost"),
        count=count,
        interval="3600",
    )
    costs = {}
    for path in ("/status", "/metrics"):
        before = _cpu(run.proc.pid)
        await _answers(base, path, 40)
        costs[path] = (_cpu(run.proc.pid) - before) / 40
    print(
        f"{count} images: CPU per answer: /status {costs['/status'] * 1000:.1f} ms, "
        f"/metrics {costs['/metrics'] * 1000:.1f} ms"
    )
    # Measured 2.2-2.8 ms (/status) and 3.0-4.5 ms (/metrics) per 1000 images on this 2-core
    # machine, 5.25 once on a slow hour of it: the bound is twice the old one, so that a
    # shared machine's noise passes and a cost grown past twice today's does not.
    assert costs["/status"] < 0.010 * count / 1000
    assert costs["/metrics"] < 0.010 * count / 1000


async def _small_run(
    tmp_path: Path, client: RegistryClient, docker_root: Path, jcp: Start, repo: str
) -> tuple[JcpProcess, str, int]:
    ref = push_synthetic(client, repo, "1", layers=1, layer_size=1024).reference
    cfg = publish(tmp_path / "config", [entry(ref)])
    run = jcp("run", engine_args(cfg, docker_root))
    base = await wait_http(run)
    await run.wait_line(r"sweep 1 done")
    host, port = base.removeprefix("http://").rsplit(":", 1)
    return run, host, int(port)


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    got = b""
    while chunk := await reader.read(65536):
        got += chunk
    return got


async def _lifetime(opened: float, reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """What jcp sent before closing, and how long after `opened` it closed."""
    got = await _until_closed(reader)
    return got, time.monotonic() - opened


def _open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def test_idle_connections_are_closed_and_those_over_the_cap_refused(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    run, host, port = await _small_run(tmp_path, open_client, docker_root, jcp, unique("idle"))
    fds = _open_fds(run.proc.pid)
    conns = []
    for _ in range(500):
        reader, writer = await asyncio.open_connection(host, port)
        conns.append((time.monotonic(), reader, writer))
    readers = [asyncio.create_task(_lifetime(opened, r)) for opened, r, _ in conns]
    limit = LIMITS.idle_timeout + 5
    done, pending = await asyncio.wait(readers, timeout=limit)
    answers = [t.result() for t in done]
    refused = sum(1 for got, _ in answers if got.startswith(b"HTTP/1.1 503"))
    idle = [lasted for got, lasted in answers if not got]
    print(
        f"500 idle connections: {refused} refused at once, {len(pending)} still open "
        f"{limit:g}s later; the idle ones lasted {min(idle, default=0):.2f}"
        f"-{max(idle, default=0):.2f}s; jcp's fds {fds} before, {_open_fds(run.proc.pid)} after"
    )
    for _, _, w in conns:
        w.close()
    for t in pending:
        t.cancel()
    assert not pending
    assert refused >= 500 - LIMITS.max_connections
    assert idle, "some connections were held rather than refused"
    # Each from its own open: opening 500 takes long enough on a busy machine that the first
    # ones' timers run out before the last is open.
    assert min(idle) >= LIMITS.idle_timeout - 0.5, "idle ones lasted the timeout"
    await wait_for(lambda: _open_fds(run.proc.pid) <= fds + 2, what="jcp's fds back")


async def _trickle(host: str, port: int, stop: asyncio.Event) -> float:
    """Headers a byte pair at a time, every 0.5 s: seconds until jcp closed the connection."""
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\n")
    try:
        while not stop.is_set() and not reader.at_eof():
            writer.write(b"X")
            await writer.drain()
            try:
                await asyncio.wait_for(reader.read(1024), 0.5)
            except TimeoutError:
                continue
    except OSError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started


async def test_a_slowly_trickled_request_is_cut_off_by_the_header_timeout(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    _, host, port = await _small_run(tmp_path, open_client, docker_root, jcp, unique("slow"))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_trickle(host, port, stop)) for _ in range(50)]
    done, pending = await asyncio.wait(tasks, timeout=LIMITS.idle_timeout + 5)
    stop.set()
    await asyncio.gather(*pending)
    lasted = sorted(t.result() for t in done)
    print(f"50 trickling connections: {len(done)} cut off, after {lasted[-1]:.1f}s at most")
    assert not pending
    assert lasted[-1] < LIMITS.idle_timeout + 2


BAD = {
    "LineTooLong": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "BadHttpMessage": b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "BadStatusLine": b"GET / HTTP/7.1\r\nHost: x\r\n\r\n",
    "InvalidHeader": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "BadHttpMethod": b"GET / HTTP/1.1\r\nHost: x\r\n\r\nG@T / HTTP/1.1\r\nHost: x\r\n\r\n",
}
"""Five kinds of malformed request (the last after a good one: aiohttp keeps a bad first
method, i.e. TLS or a port scan, at debug level)."""


async def test_five_hundred_bad_requests_log_at_most_one_line_per_kind(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    run, host, port = await _small_run(tmp_path, open_client, docker_root, jcp, unique("bad"))
    before = len(run.lines())
    gate = asyncio.Semaphore(10)

    async def send(raw: bytes) -> bytes:
        async with gate:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(raw)
            try:
                return await asyncio.wait_for(_until_closed(reader), 10)
            finally:
                writer.close()

    kinds = list(BAD.values())
    answers = await asyncio.gather(*(send(kinds[i % len(kinds)]) for i in range(500)))
    assert all(b" 400 Bad Request" in a for a in answers), "each is answered (after logging)"
    new = [line for line in run.lines()[before:] if "sweep" not in line]
    size = sum(len(line) + 1 for line in new)
    print(f"500 bad requests: {len(new)} log lines ({size} bytes): {new}")
    assert len(new) <= len(BAD)
    assert not any("Traceback" in line or "aaaa" in line for line in new)
