"""Each node warms what runs on it, end to end: `jcp run` on the real dockerd follows its Node's
labels through the API stand-in (LIST + WATCH) and pulls, or cancels, as a relabel selects."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiodocker
import pytest

from devstack.images import RegistryClient, push_synthetic
from devstack.kubeapi import KubeApiStandIn
from devstack.proxy import ThrottleProxy
from tests.support.helpers import entry, image_present, publish, wait_for
from tests.support.jcp_process import JcpProcess, engine_args
from tests.support.scrape import get

Start = Callable[..., JcpProcess]
TOKEN = "selection-token-do-not-log"
NODE = "gpu-node-1"


@pytest.fixture
async def kube() -> AsyncIterator[KubeApiStandIn]:
    api = KubeApiStandIn(TOKEN)
    api.add_node(NODE, labels={"pool": "cpu"})
    await api.start()
    yield api
    await api.stop()


def kube_args(kube: KubeApiStandIn, tmp_path: Path) -> list[str]:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    return ["--kube-api", kube.url, "--kube-token-file", str(token)]


async def test_a_relabel_starts_and_cancels_pulls(
    tmp_path: Path,
    kube: KubeApiStandIn,
    open_client: RegistryClient,
    proxy: Callable[..., ThrottleProxy],
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    everyone = push_synthetic(open_client, unique("all"), "1").reference
    slow = proxy(rate=256 * 1024)
    cuda_repo = unique("cuda")
    push_synthetic(open_client, cuda_repo, "1", layers=1, layer_size=4 << 20)
    cuda = f"{slow.host}/{cuda_repo}:1"
    gpu_only = entry(cuda, nodeSelector={"gpu": "nvidia"}, priority=10)
    cfg = publish(tmp_path / "config", [entry(everyone), gpu_only])
    run = jcp("run", [*engine_args(cfg, docker_root), *kube_args(kube, tmp_path)],
              env={"NODE_NAME": NODE})  # fmt: skip
    await run.wait_line(r"sweep 1 done.*1 pulled.*1 skipped", timeout=60)
    assert await image_present(docker, everyone)
    assert f"Pulling {cuda}" not in run.text()  # not selected: the node is no GPU node
    relabelled = time.monotonic()
    kube.relabel(NODE, {"gpu": "nvidia"})  # a GPU driver was installed
    await run.wait_line(rf"Pulling {cuda}", timeout=20)
    print(f"label change to pull start: {time.monotonic() - relabelled:.2f}s")
    await run.wait_line(r"node labels changed \(.*gpu=nvidia.*\): 2 images selected", timeout=5)
    await wait_for(lambda: slow.sent_down > 0, 20, "the GPU image downloading")
    kube.relabel(NODE, {"gpu": None})  # the pool was relabelled back: the pull is cancelled
    line = await run.wait_line(rf"Cancelled pulling {cuda}", timeout=20)
    assert "no longer selected for this node" in line
    assert not await image_present(docker, cuda)
    assert TOKEN not in run.text()


async def test_labels_unknown_then_the_api_comes_back(
    tmp_path: Path,
    kube: KubeApiStandIn,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    everyone = push_synthetic(open_client, unique("all"), "1").reference
    cpu_only = push_synthetic(open_client, unique("cpu"), "1").reference
    kube.relabel(NODE, {"pool": "cpu"})
    await kube.stop()  # the API is down when jcp starts
    cfg = publish(
        tmp_path / "config", [entry(everyone), entry(cpu_only, nodeSelector={"pool": "cpu"})]
    )
    run = jcp("run", [*engine_args(cfg, docker_root), *kube_args(kube, tmp_path)],
              env={"NODE_NAME": NODE})  # fmt: skip
    await run.wait_line(r"sweep 1 done.*1 pulled.*1 skipped", timeout=60)  # the rest goes on
    await run.wait_line(r"1 entries with a nodeSelector are not pulled: this node's labels")
    assert not await image_present(docker, cpu_only)
    assert run.http is not None
    doc = json.loads((await get(run.http + "/status"))[1])
    assert doc["selection"]["node_labels"] is None
    assert doc["selection"]["waiting_for_labels"] == 1
    assert doc["selection"]["labels_trouble"]  # why: the API is not there
    await kube.start()  # the API is back: the labels are read, the entry selected
    await run.wait_line(rf"Pulled {cpu_only}", timeout=60)
    assert await image_present(docker, cpu_only)
    assert run.count(r"entries with a nodeSelector are not pulled") == 1  # said once
