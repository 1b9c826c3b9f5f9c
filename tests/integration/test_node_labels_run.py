"""`jcp run` follows its node's labels through the API stand-in, on the real dockerd and
registries, measured: label change to `Pulling` of the newly selected entry, and to `Cancelled`
of a deselected one in flight, from the log's own millisecond timestamps; nodeSelector and
matchExpressions; one LIST then one watch, no polling. (test_node_selection.py covers the
API down at start.)"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

import aiodocker
import pytest

from devstack.images import RegistryClient, push_synthetic
from devstack.kubeapi import KubeApiStandIn
from devstack.proxy import ThrottleProxy
from tests.support.helpers import entry, image_present, publish, push_via
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]
TOKEN = "labels-token-do-not-log"
NODE = "gpu-node"
GPU = {"nvidia.com/gpu.present": "true"}


@pytest.fixture
async def kube() -> AsyncIterator[KubeApiStandIn]:
    api = KubeApiStandIn(TOKEN)
    api.add_node(NODE, {"pool": "a"})
    api.add_node("other", {"pool": "b"})
    await api.start()
    yield api
    await api.stop()


def run_args(kube: KubeApiStandIn, tmp_path: Path, cfg: Path, docker_root: Path) -> list[str]:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    return [
        *engine_args(cfg, docker_root),
        "--kube-api", kube.url, "--kube-token-file", str(token), "--log-format", "json",
    ]  # fmt: skip


def logged_at(line: str) -> float:
    """The wall-clock time of a JSON log line (millisecond resolution)."""
    return datetime.fromisoformat(json.loads(line)["ts"]).timestamp()


async def test_a_relabel_starts_and_cancels_pulls_within_a_second(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    kube: KubeApiStandIn,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> None:
    base = push_synthetic(open_client, unique("base"), "1").reference
    cuda = push_synthetic(open_client, unique("cuda"), "1").reference
    slow = proxy(rate=1 << 20)
    big = push_via(open_client, slow, unique("big"), 8 << 20)
    entries = [
        entry(base),
        entry(cuda, nodeSelector=GPU, priority=5),
        entry(big, matchExpressions=[{"key": "pool", "operator": "In", "values": ["big"]}]),
    ]
    cfg = publish(tmp_path / "config", entries)
    run = jcp("run", run_args(kube, tmp_path, cfg, docker_root), env={"NODE_NAME": NODE})
    await run.wait_line(f"Pulled {re.escape(base)}", timeout=30)
    await run.wait_line(r"node labels: node gpu-node: kubernetes.io/hostname=gpu-node, pool=a")
    assert not await image_present(docker, cuda)

    before = time.time()
    kube.relabel(NODE, GPU)
    started = logged_at(await run.wait_line(f"Pulling {re.escape(cuda)}", timeout=10))
    await run.wait_line(f"Pulled {re.escape(cuda)}", timeout=30)
    kube.relabel(NODE, {"pool": "big"})  # the big image is now selected: slow, in flight
    await run.wait_line(f"Pulling {re.escape(big)}", timeout=10)
    deselected = time.time()
    kube.relabel(NODE, {"pool": "a"})
    cancelled = logged_at(await run.wait_line(f"Cancelled pulling {re.escape(big)}", timeout=10))
    print(
        f"\nlabel change to pull start: {(started - before) * 1000:.0f} ms; label change to "
        f"cancel: {max(0.0, cancelled - deselected) * 1000:.0f} ms (log timestamps, 1 ms)"
    )
    assert started - before < 1.0
    assert cancelled - deselected < 1.5
    assert run.count(r"node labels changed") >= 3
    assert not await image_present(docker, big)
    assert len(kube.requests("list")) == 1, "followed by one watch, not by polling"
    assert TOKEN not in run.text()
