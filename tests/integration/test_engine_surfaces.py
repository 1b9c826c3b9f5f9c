"""The engine's side of hardened surfaces, on the real stack: probes and SIGHUP before any
runtime answers, a runtime that comes back noticed within a second, SIGHUP storms coalesced,
and a config generation that moves only when the content does."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

from devstack.containerd import Containerd
from devstack.images import RegistryClient, push_synthetic
from devstack.proxy import ThrottleProxy
from tests.support.cri_args import cri_args
from tests.support.helpers import entry, publish, wait_for
from tests.support.jcp_process import JcpProcess, engine_args
from tests.support.scrape import get, samples, value, wait_http

Start = Callable[..., JcpProcess]


async def test_probes_and_sighup_work_before_any_runtime_answers(
    tmp_path: Path, docker_root: Path, jcp: Start
) -> None:
    cfg = publish(tmp_path / "config", [entry("127.0.0.1:1/never:1")])
    # --runtime auto with no $DOCKER_HOST and none of the usual sockets: still looking.
    run = jcp("run", engine_args(cfg, docker_root), env={"DOCKER_HOST": ""})
    base = await wait_http(run)
    await run.wait_line(r"probing again every", timeout=20)
    status, body = await get(base + "/healthz")
    assert status == 200, body
    status, body = await get(base + "/readyz")
    assert status == 503
    assert "waiting for a container runtime" in body, body
    run.signal(signal.SIGHUP)  # used to kill jcp with exit 129 at this point
    await run.wait_line(r"SIGHUP: still looking for a container runtime", timeout=10)
    assert run.proc.poll() is None
    status, _ = await get(base + "/healthz")
    assert status == 200
    run.signal(signal.SIGTERM)
    assert await run.wait_exit(timeout=15) == 0


async def test_a_runtime_that_answers_again_is_noticed_within_a_second(
    tmp_path: Path,
    containerd: Containerd,
    open_client: RegistryClient,
    proxy: Callable[..., ThrottleProxy],
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    slow = proxy(rate=512 * 1024)
    containerd.add_registry(slow.host)
    refs = []
    for _ in range(3):
        repo = unique("back")
        push_synthetic(open_client, repo, "1", layers=1, layer_size=3 << 20)
        refs.append(f"{slow.host}/{repo}:1")
    cfg = publish(tmp_path / "config", [entry(r) for r in refs], interval="3600")
    run = jcp("run", [*engine_args(cfg, docker_root, concurrency=3), *cri_args(containerd)])
    await wait_for(lambda: slow.sent_down > 0, 30, "the pulls downloading")
    containerd.kill()
    try:
        await run.wait_line(r"went away while pulling", timeout=30)
    finally:
        containerd.start()
    answered = time.monotonic()
    line = await run.wait_line(r"is back after [\d.]+s; resuming \d+ pull", timeout=30)
    noticed = time.monotonic() - answered
    print(f"containerd answered again; jcp said so {noticed:.2f}s later: {line}")
    assert noticed < 3.0, noticed  # probed every second, not a backoff of up to 30 s
    resumed = re.search(r"resuming (\d+) pulls?: (.*)", line)
    assert resumed is not None
    assert int(resumed.group(1)) >= 1
    assert any(r in resumed.group(2) for r in refs), line  # the interrupted pulls are named
    await run.wait_line(r"sweep 1 done.*3 pulled", timeout=120)
    assert "failed pulling" not in run.text()


async def test_a_sighup_storm_is_one_reload_and_counts_nothing_twice(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    good = push_synthetic(open_client, unique("storm"), "1").reference
    locked = entry(f"{open_client.host}/{unique('locked')}:1", private=True, config="absent")
    cfg = publish(tmp_path / "config", [entry(good), locked])
    run = jcp("run", engine_args(cfg, docker_root))
    base = await wait_http(run)
    await run.wait_line(r"sweep 1 done.*1 pulled.*1 failed", timeout=60)
    lines_before = len(run.lines())
    for _ in range(200):  # the load: 200 signals over about a second
        os.kill(run.proc.pid, signal.SIGHUP)
        await asyncio.sleep(0.005)

    async def storm_done() -> bool:
        lines = run.text()
        return 0 < lines.count("SIGHUP: re-reading") == lines.count("config in force is unchanged")

    await wait_for(storm_done, 20, "the coalesced reloads")
    reloads = run.count(r"SIGHUP: re-reading")
    written = len(run.lines()) - lines_before
    print(f"200 SIGHUPs: {reloads} reloads, {written} log lines")
    assert reloads <= 10, reloads
    assert written <= 6 * reloads, run.lines()[lines_before:]
    _, text = await get(base + "/metrics")
    m = samples(text)
    assert value(m, "jcp_config_generation") == 1  # unchanged content: no new generation
    failed = [v for (name, labels), v in m.items()
              if name == "jcp_pulls_total" and ("outcome", "failed") in labels]  # fmt: skip
    assert failed == [1.0], failed  # the permanent failure counted once, not per signal


async def test_the_same_bad_content_is_logged_once(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    good = push_synthetic(open_client, unique("flip"), "1").reference
    cfg = publish(tmp_path / "config", [entry(good)], interval="1")
    run = jcp("run", engine_args(cfg, docker_root))
    base = await wait_http(run)
    await run.wait_line(r"sweep 1 done", timeout=60)
    bad = [{"ref": good, "registry": 7}]
    for n in range(3):  # bad, good, bad, good, ...: the same bad content comes back
        publish(cfg, bad, interval="1")
        await wait_for(functools.partial(_reloads, base, "rejected", n + 1), 20, "rejected")
        publish(cfg, [entry(good)], interval="1")
        await wait_for(lambda: _reload_ok(base), 20, "the good content back in force")
    assert run.count(r"ERROR: config rejected") == 1, run.text()
    _, text = await get(base + "/metrics")
    assert value(samples(text), "jcp_config_generation") == 1  # the good content never changed


async def _reloads(base: str, result: str, n: int) -> bool:
    _, text = await get(base + "/metrics")
    return (value(samples(text), "jcp_config_reloads_total", result=result) or 0) >= n


async def _reload_ok(base: str) -> bool:
    _, text = await get(base + "/metrics")
    return value(samples(text), "jcp_config_last_reload_success") == 1
