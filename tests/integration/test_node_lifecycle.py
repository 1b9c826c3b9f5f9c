"""`jcp run` managing its node: the warm label and startup taint through the API (stand-in),
eviction churn, and purge of only what jcp pulled, on the real dockerd and registries."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiodocker
import pytest

from devstack.images import RegistryClient, push_synthetic
from devstack.kubeapi import KubeApiStandIn
from tests.support.helpers import entry, image_present, publish, wait_for
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]
TOKEN = "lifecycle-token-do-not-log"
NODE = "node-a"
LABEL = "jcp.example.com/warm"
TAINT = "jcp.example.com/warming"


@pytest.fixture
async def kube() -> AsyncIterator[KubeApiStandIn]:
    api = KubeApiStandIn(TOKEN)
    api.add_node(NODE, taints=[{"key": TAINT, "value": "true", "effect": "NoSchedule"}])
    await api.start()
    yield api
    await api.stop()


def node_args(kube: KubeApiStandIn, tmp_path: Path, *extra: str) -> list[str]:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    return [
        "--kube-api", kube.url, "--kube-token-file", str(token),
        "--node-label", LABEL, "--untaint", TAINT, *extra,
    ]  # fmt: skip


async def test_warm_label_and_taint_follow_the_cache(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    kube: KubeApiStandIn,
    unique: Callable[[str], str],
) -> None:
    a, b = (push_synthetic(open_client, unique(n), "1").reference for n in "ab")
    missing = f"{open_client.host}/{unique('gone')}:1"
    cfg = publish(tmp_path / "config", [entry(a), entry(missing)], interval="1")
    run = jcp(
        "run",
        [*engine_args(cfg, docker_root), *node_args(kube, tmp_path)],
        env={"NODE_NAME": NODE},
    )

    def labelled(value: str) -> bool:
        return bool(kube.node(NODE)["metadata"]["labels"].get(LABEL) == value)

    def untainted() -> bool:
        return not kube.node(NODE)["spec"].get("taints")

    await wait_for(lambda: labelled("true"), timeout=30, what="node labelled warm")
    # The label and the taint are two patches: the taint follows the label within moments.
    await wait_for(untainted, timeout=10, what="the startup taint removed once warm")
    node = kube.node(NODE)
    state = json.loads(node["metadata"]["annotations"][f"{LABEL}-state"])
    assert (state["selected"], state["present"], state["failed"]) == (2, 1, [missing])
    patches = len(kube.patches())
    await run.wait_line(r"sweep 3 done", timeout=20)
    assert len(kube.patches()) == patches, "no patch while the warm state does not change"
    # A new image the node lacks makes it cold until pulled, then warm again.
    publish(cfg, [entry(a), entry(missing), entry(b)], interval="1")
    await wait_for(lambda: len(kube.patches()) > patches, timeout=20, what="a new patch")
    await wait_for(lambda: labelled("true"), timeout=30, what="warm again")
    state = json.loads(kube.node(NODE)["metadata"]["annotations"][f"{LABEL}-state"])
    assert (state["selected"], state["present"]) == (3, 2)
    assert not kube.node(NODE)["spec"].get("taints"), "a removed taint is never put back"
    assert TOKEN not in run.text()


async def test_api_forbidden_and_down_never_stop_pulling(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    kube: KubeApiStandIn,
    unique: Callable[[str], str],
) -> None:
    a = push_synthetic(open_client, unique("a"), "1").reference
    cfg = publish(tmp_path / "config", [entry(a)], interval="1")
    kube.forbid("patch")
    run = jcp(
        "run",
        [*engine_args(cfg, docker_root), *node_args(kube, tmp_path)],
        env={"NODE_NAME": NODE},
    )
    await run.wait_line(r'verbs: \["get", "patch"\]', timeout=30)
    await run.wait_line(r"sweep 3 done", timeout=20)
    assert run.count(r'verbs: \["get", "patch"\]') == 1, "RBAC trouble is said once"
    await kube.stop()
    await docker.images.delete(a, force=True)
    await run.wait_line(f"Pulled {re.escape(a)}", count=2, timeout=20)
    assert run.proc.poll() is None
    assert TOKEN not in run.text()


async def test_eviction_is_logged_and_counted(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    a = push_synthetic(open_client, unique("ev"), "1").reference
    cfg = publish(tmp_path / "config", [entry(a)], interval="1")
    run = jcp("run", engine_args(cfg, docker_root))
    await run.wait_line(f"Pulled {re.escape(a)}")
    await run.wait_line(r"sweep 2 done", timeout=20)
    await docker.images.delete(a, force=True)  # what the kubelet's image GC does
    await run.wait_line(rf"evicted: {re.escape(a)} was cached for \d+s", timeout=20)
    await run.wait_line(f"Pulled {re.escape(a)}", count=2, timeout=20)
    assert run.http is not None
    import aiohttp  # noqa: PLC0415

    async with aiohttp.ClientSession() as s, s.get(run.http + "/metrics") as resp:
        text = await resp.text()
    assert re.search(r"^jcp_images_evicted_total 1\.0$", text, re.MULTILINE), text


async def test_purge_removes_only_what_jcp_pulled(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    repo = unique("purge")
    ours = push_synthetic(open_client, repo, "1").reference
    by_hand = push_synthetic(open_client, repo, "2").reference
    kept = push_synthetic(open_client, unique("kept"), "1").reference
    await docker.images.pull(by_hand)  # same repository, pulled by a person: never jcp's
    ledger = tmp_path / "jcp" / "ledger.json"
    ledger.parent.mkdir()
    cfg = publish(tmp_path / "config", [entry(ours), entry(kept), entry(by_hand)], interval="1")
    args = [
        *engine_args(cfg, docker_root),
        "--purge",
        "--purge-grace",
        "0",
        "--ledger",
        str(ledger),
    ]
    run = jcp("run", args)
    await run.wait_line(r"sweep 1 done")
    await wait_for(
        lambda: ledger.exists() and ours in ledger.read_text(),
        what="the pull recorded in the ledger",
    )
    assert by_hand not in ledger.read_text()
    run.signal()
    assert await run.wait_exit() == 0
    # The ledger survives a restart: the new process purges what the old one pulled.
    publish(cfg, [entry(kept)], interval="1")
    again = jcp("run", args)
    await again.wait_line(rf"purged {re.escape(ours)}", timeout=30)
    assert not await image_present(docker, ours)
    assert await image_present(docker, by_hand), "an image jcp did not pull stays"
    assert await image_present(docker, kept)
    assert ours not in json.loads(ledger.read_text()).get("images", {})


async def test_purge_dry_run_and_unusable_ledger_remove_nothing(
    tmp_path: Path,
    open_client: RegistryClient,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    a = push_synthetic(open_client, unique("dry"), "1").reference
    ledger = tmp_path / "jcp" / "ledger.json"
    ledger.parent.mkdir()
    cfg = publish(tmp_path / "config", [entry(a)], interval="1")
    base = [*engine_args(cfg, docker_root), "--purge-grace", "0", "--ledger", str(ledger)]
    run = jcp("run", [*base, "--purge-dry-run"])
    await run.wait_line(f"Pulled {re.escape(a)}")
    publish(cfg, [], interval="1")
    await run.wait_line(rf"purge \(dry run\): would remove {re.escape(a)}", timeout=20)
    assert await image_present(docker, a)
    run.signal()
    assert await run.wait_exit() == 0
    ledger.write_bytes(ledger.read_bytes()[:-7])  # a torn write
    torn = jcp("run", [*base, "--purge"])
    await torn.wait_line(r"purge ledger .*: unusable", timeout=20)
    await torn.wait_line(r"purge: nothing removed: the ledger is unusable", timeout=20)
    assert await image_present(docker, a)
