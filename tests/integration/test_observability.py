"""What an operator sees without reading logs: /metrics, /readyz, /healthz, /status, JSON logs,
and the disk guard and runtime warning."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
from collections.abc import Callable
from pathlib import Path

import aiodocker

from devstack.images import RegistryClient, push_synthetic
from devstack.kubelet import write_volume
from devstack.proxy import ThrottleProxy
from devstack.stack import AUTH_USER, Stack, write_docker_secret
from jcp.lifecycle.runtime_check import other_runtime
from tests.support.helpers import entry, image_config, image_present, publish, push_via, wait_for
from tests.support.jcp_process import JcpProcess, engine_args
from tests.support.scrape import get, samples, value, wait_http

Start = Callable[..., JcpProcess]


async def test_metrics_after_a_mixed_sweep(
    tmp_path: Path,
    stack: Stack,
    open_client: RegistryClient,
    auth_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    good = push_synthetic(open_client, unique("good"), "1", layers=1, layer_size=50_000).reference
    private = push_synthetic(auth_client, unique("priv"), "1").reference
    missing = f"{stack.open_registry.host}/{unique('missing')}:1"
    denied = push_synthetic(auth_client, unique("denied"), "1").reference
    skipped: dict[str, object] = {"ref": "ppc", "arch": {"ppc64le": "q.io/ppc:1"}}
    cfg = publish(
        tmp_path / "config",
        [entry(good), entry(private, private=True), entry(missing), entry(denied), skipped],
    )
    run = jcp("run", engine_args(cfg, docker_root))
    base = await wait_http(run)
    await run.wait_line(r"sweep 1 done.*2 pulled, 0 up to date, 1 skipped, 2 failed")
    status, text = await get(base + "/metrics")
    assert status == 200
    m = samples(text)
    assert value(m, "jcp_image_cached", image=good) == 1
    assert value(m, "jcp_image_cached", image=private) == 1
    assert value(m, "jcp_image_cached", image=missing) == 0
    assert value(m, "jcp_image_failing", image=missing, reason="not_found") == 1
    assert value(m, "jcp_image_failing", image=denied, reason="auth") == 1
    assert value(m, "jcp_image_failing", image=good, reason="not_found") is None
    assert value(m, "jcp_pulls_total", image=good, outcome="pulled", reason="") == 1
    assert value(m, "jcp_pulls_total", image=missing, outcome="failed", reason="not_found") == 1
    assert value(m, "jcp_images_configured") == 5
    assert value(m, "jcp_images_selected") == 4
    assert value(m, "jcp_images_present") == 2
    assert value(m, "jcp_config_reloads_total", result="ok") == 1
    assert value(m, "jcp_config_generation") == 1
    assert value(m, "jcp_daemon_reachable") == 1
    assert value(m, "jcp_downloaded_bytes_total") >= 50_000  # type: ignore[operator]
    assert value(m, "jcp_pull_duration_seconds_count", outcome="pulled") == 2
    assert value(m, "jcp_sweep_duration_seconds_count", kind="sweep") == 1
    assert value(m, "jcp_last_sweep_end_timestamp_seconds") > 0  # type: ignore[operator]
    assert value(m, "jcp_last_successful_sweep_timestamp_seconds") == 0
    build = [k for k in m if k[0] == "jcp_build_info"]
    assert len(build) == 1
    assert ("arch", "amd64") in build[0][1]
    # A rejected edit is counted, and the generation stays.
    write_volume(cfg, {"image.config": "[", "interval": "300"})
    await run.wait_line("config rejected")
    m = samples((await get(base + "/metrics"))[1])
    assert value(m, "jcp_config_reloads_total", result="rejected") == 1
    assert value(m, "jcp_config_generation") == 1
    # An image dropped from the config loses its series.
    publish(cfg, [entry(good)])
    await run.wait_line(r"config generation 2 loaded")
    m = samples((await get(base + "/metrics"))[1])
    assert value(m, "jcp_image_cached", image=missing) is None
    assert value(m, "jcp_image_failing", image=missing, reason="not_found") is None
    assert value(m, "jcp_images_selected") == 1


async def test_readyz_healthz_status_during_a_long_pull(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    slow = proxy(rate=1 << 20)
    ref = push_via(open_client, slow, unique("long"), 6 << 20)
    cfg = publish(tmp_path / "config", [entry(ref)])
    run = jcp("run", engine_args(cfg, docker_root))
    base = await wait_http(run)
    await run.wait_line(f"Pulling {re.escape(ref)}")

    async def pulling_with_bytes() -> bool:
        doc = json.loads((await get(base + "/status"))[1])
        (img,) = doc["images"]
        return bool(img["state"] == "pulling" and img.get("progress", {}).get("bytes", 0) > 0)

    await wait_for(pulling_with_bytes, what="/status to show the pull's progress")
    status, text = await get(base + "/readyz")
    assert status == 503
    assert "first full sweep has not finished" in text
    assert (await get(base + "/healthz"))[0] == 200
    doc = json.loads((await get(base + "/status"))[1])
    assert doc["config"]["generation"] == 1
    assert doc["sweep"]["kind"] == "sweep"
    assert doc["ready"] is False
    await run.wait_line(r"sweep 1 done.*1 pulled", timeout=60)
    assert await get(base + "/readyz") == (200, "ready\n")
    assert (await get(base + "/healthz"))[0] == 200
    doc = json.loads((await get(base + "/status"))[1])
    (img,) = doc["images"]
    assert img["state"] == "cached"
    assert img["digest"].startswith("sha256:")
    assert img["last"]["outcome"] == "pulled"


async def test_readyz_without_config_says_why(
    tmp_path: Path, docker_root: Path, jcp: Start
) -> None:
    cfg = tmp_path / "config"
    write_volume(cfg, {"image.config": '{"not": "a list"}'})
    run = jcp("run", engine_args(cfg, docker_root))
    base = await wait_http(run)
    await run.wait_line("config rejected")
    status, text = await get(base + "/readyz")
    assert status == 503
    assert "no valid config loaded" in text
    assert (await get(base + "/healthz"))[0] == 200


async def test_no_secret_in_any_output(
    tmp_path: Path,
    stack: Stack,
    auth_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    password = stack.auth_registry.password or ""
    token = base64.b64encode(f"{AUTH_USER}:{password}".encode()).decode()
    ok = push_synthetic(auth_client, unique("ok"), "1").reference
    bad = push_synthetic(auth_client, unique("bad"), "1").reference
    write_docker_secret(docker_root, "wrong", stack.auth_registry.host, AUTH_USER, "NotThePw-77")
    cfg = publish(
        tmp_path / "config", [entry(ok, private=True), entry(bad, private=True, config="wrong")]
    )
    run = jcp("run", [*engine_args(cfg, docker_root), "--log-format", "json"])
    base = await wait_http(run)
    await run.wait_line(r'"event": "sweep_done"')
    outputs = [run.text()]
    outputs += [
        (await get(base + path))[1] for path in ("/metrics", "/status", "/healthz", "/readyz")
    ]
    for text in outputs:
        for secret in (password, token, "NotThePw-77"):
            assert secret not in text


async def test_json_logs_carry_fields(
    tmp_path: Path,
    stack: Stack,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    good = push_synthetic(open_client, unique("j"), "1").reference
    missing = f"{stack.open_registry.host}/{unique('nope')}:1"
    cfg = tmp_path / "c"
    cfg.mkdir()
    (cfg / "image.config").write_text(image_config([entry(good), entry(missing)]))
    run = jcp("once", [*engine_args(cfg, docker_root), "--log-format", "json"])
    assert await run.wait_exit() == 1
    docs = [json.loads(line) for line in run.lines()]
    done = next(d for d in docs if d.get("event") == "pull_done")
    assert done["image"] == good
    assert done["outcome"] == "pulled"
    assert done["bytes"] > 0
    assert {"registry", "duration", "attempts", "digest"} <= done.keys()
    failed = next(d for d in docs if d.get("event") == "pull_failed")
    assert (failed["image"], failed["reason"], failed["level"]) == (missing, "not_found", "error")
    assert failed["msg"].startswith(f"ERROR: failed pulling {missing} from ")
    summary = next(d for d in docs if d.get("event") == "sweep_done")
    assert (summary["pulled"], summary["failed"]) == (1, 1)


async def test_disk_guard_holds_and_resumes_pulls(
    tmp_path: Path,
    small_disk: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    ref = push_synthetic(open_client, unique("disk"), "1").reference
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (6 << 20))
    cfg = publish(tmp_path / "config", [entry(ref)])
    run = jcp(
        "run",
        [
            *engine_args(cfg, docker_root),
            "--disk-path",
            str(small_disk),
            "--min-free",
            "4MiB",
            "--disk-check-interval",
            "0.2",
        ],
    )
    base = await wait_http(run)
    await run.wait_line(r"disk guard: .* below --min-free 4194304 bytes; new pulls wait")
    doc = json.loads((await get(base + "/status"))[1])
    assert doc["disk_guard"]["active"] is True
    assert doc["disk_short"] == [ref]  # not cached because the disk is short
    assert doc["disk_guard"]["path"] == str(small_disk)
    m = samples((await get(base + "/metrics"))[1])
    assert value(m, "jcp_disk_guard_active") == 1
    assert (await get(base + "/healthz"))[0] == 200
    assert run.count("Pulling ") == 0
    assert not await image_present(docker, ref)
    filler.unlink()
    await run.wait_line("disk guard: .* pulls resume")
    await run.wait_line(f"Pulled {re.escape(ref)}")
    m = samples((await get(base + "/metrics"))[1])
    assert value(m, "jcp_disk_guard_active") == 0


def _listen(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    return s


def test_runtime_check(tmp_path: Path) -> None:
    assert other_runtime(tmp_path) is None
    with contextlib.ExitStack() as stack:
        stack.enter_context(_listen(tmp_path / "run/containerd/containerd.sock"))
        message = other_runtime(tmp_path)
        assert message is not None
        assert "kubelet most likely uses containerd" in message
        stack.enter_context(_listen(tmp_path / "run/cri-dockerd.sock"))
        assert other_runtime(tmp_path) is None


async def test_runtime_warning_and_start_jitter_in_run(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    ref = push_synthetic(open_client, unique("rt"), "1").reference
    cfg = publish(tmp_path / "config", [entry(ref)])
    host = tmp_path / "host"
    with _listen(host / "run/crio/crio.sock"):
        run = jcp(
            "run",
            [*engine_args(cfg, docker_root), "--host-root", str(host), "--start-jitter", "1.5"],
        )
        line = await run.wait_line(r"start jitter: first sweep in [\d.]+s")
        delay = float(re.search(r"in ([\d.]+)s", line).group(1))  # type: ignore[union-attr]
        assert 0 <= delay <= 1.5
        await run.wait_line(r"WARNING: this node has a CRI-O socket and no cri-dockerd socket")
        await run.wait_line(f"Pulled {re.escape(ref)}")
        assert run.count("WARNING: this node") == 1


def test_healthz_reports_a_wedged_sweep(tmp_path: Path) -> None:
    """A scheduler that stops making progress cannot be produced on purpose with a real daemon
    (every real hang is cut by the stall timeout); /healthz decides from the engine's snapshot,
    so this checks that decision on snapshots whose progress clock is set back."""
    import dataclasses  # noqa: PLC0415

    from jcp.engine.state import ConfigView, DiskView, Snapshot, SweepKind, SweepView  # noqa: PLC0415
    from jcp.observe.http import health  # noqa: PLC0415

    idle = Snapshot(
        taken=1000.0,
        config=ConfigView(1, "abc", 1, 300.0, last_reload_ok=True, last_error=None),
        loaded=True,
        node_arch="amd64",
        runtime_endpoint="unix:///x.sock",
        runtime=None,
        runtime_reachable=True,
        runtime_choice=None,
        disk=None,
        image_fs=None,
        sweep=None,
        last_full_sweep=None,
        last_progress=1000.0,
        stall_timeout=10,
        images=(),
    )
    assert health(idle, alive=True) == (True, "ok")
    assert health(idle, alive=False) == (False, "scheduler task has stopped")
    sweep = SweepView(7, SweepKind.SWEEP, 1, 0, 0, 0, 0.0, 0.0, None, "")
    busy = dataclasses.replace(idle, sweep=sweep, last_progress=1000.0 - 79)
    assert health(busy, alive=True)[0] is True  # limit is 2 * stall_timeout + 60 = 80 s
    wedged = dataclasses.replace(busy, last_progress=1000.0 - 81)
    ok, why = health(wedged, alive=True)
    assert not ok
    assert why.startswith("sweep 7 has made no progress for 8")
    waiting = dataclasses.replace(wedged, disk=DiskView(str(tmp_path), 0, 10, 5, active=True))
    assert health(waiting, alive=True)[0] is True  # waiting for disk space is not being wedged
