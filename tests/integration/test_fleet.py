"""`jcp fleet` as an operator runs it: a real process against the API stand-in, reading the
warm-state annotations that a real `jcp run --node-label` wrote (node-a) and that jcp's own
writer formats (the others), through --kube-api and through a kubeconfig."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml

from devstack.images import RegistryClient, push_synthetic
from devstack.kubeapi import KubeApiStandIn
from jcp.kube.warm_state import WarmState
from tests.support.helpers import entry, publish, wait_for
from tests.support.jcp_process import JcpProcess, engine_args

TOKEN = "fleet-token-do-not-log"
LABEL = "jcp.nimbix.net/warm"
STATE = f"{LABEL}-state"
PRIVATE = "registry.example.com/solver:2.1"
BIG = "registry.example.com/cuda:12"


def annotate(kube: KubeApiStandIn, node: str, state: WarmState) -> None:
    def change(doc: dict[str, object]) -> None:
        meta = doc["metadata"]
        assert isinstance(meta, dict)
        meta.setdefault("annotations", {})[STATE] = state.annotation()
        meta["labels"][LABEL] = "true" if state.warm else "false"

    kube.edit(node, change)


@pytest.fixture
async def kube() -> AsyncIterator[KubeApiStandIn]:
    api = KubeApiStandIn(TOKEN)
    for name in ("node-a", "node-b", "node-c", "node-d"):
        api.add_node(name, labels={"pool": "gpu" if name != "node-d" else "cpu"})
    # node-b: cold, 1 of 3, one image failing permanently, one still missing;
    # node-c: jcp never wrote there; node-d: warm, on the previous config generation.
    annotate(api, "node-b", WarmState(2, 3, 1, failed_permanent=(PRIVATE,), missing=(BIG,)))
    annotate(api, "node-d", WarmState(1, 2, 2))
    await api.start()
    yield api
    await api.stop()


async def fleet(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jcp", "fleet", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def api_args(kube: KubeApiStandIn, tmp_path: Path) -> list[str]:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    return ["--kube-api", kube.url, "--kube-token-file", str(token)]


async def test_the_table_the_json_and_which_nodes_miss_an_image(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Callable[..., JcpProcess],
    kube: KubeApiStandIn,
    unique: Callable[[str], str],
) -> None:
    good = push_synthetic(open_client, unique("fleet"), "1").reference
    gone = f"{open_client.host}/{unique('gone')}:1"
    cfg = publish(tmp_path / "config", [entry(good), entry(gone)], interval="1")
    token = api_args(kube, tmp_path)
    run = jcp(
        "run",
        [*engine_args(cfg, docker_root), *token, "--node-label", LABEL],
        env={"NODE_NAME": "node-a"},
    )
    await wait_for(
        lambda: STATE in (kube.node("node-a")["metadata"].get("annotations") or {}),
        timeout=30,
        what="jcp run to annotate node-a",
    )
    run.signal()
    assert await run.wait_exit() == 0

    code, out, err = await fleet(*token)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["NODE", "WARM", "PRESENT", "GENERATION", "FAILING"]
    rows = {line.split()[0]: line.split(maxsplit=4) for line in lines[1:-1]}
    assert rows["node-a"] == ["node-a", "yes", "1/2", "1", gone]  # not_found: permanent, warm
    assert rows["node-b"] == ["node-b", "no", "1/3", "2", PRIVATE]
    assert rows["node-c"][1:3] == ["?", "-"]
    assert "no warm-state annotation" in lines[3]
    assert rows["node-d"] == ["node-d", "yes", "2/2", "1", "-"]
    assert lines[-1] == (
        "4 nodes: 2 warm, 1 not warm, 1 without a warm state; config generations 1, 2 "
        "(a reload in flight)"
    )
    assert TOKEN not in out

    code, out, _ = await fleet(*token, "-o", "json", "-l", "pool=gpu")
    assert code == 0
    doc = json.loads(out)
    assert [n["name"] for n in doc["nodes"]] == ["node-a", "node-b", "node-c"]
    a = doc["nodes"][0]
    assert (a["warm"], a["present"], a["selected"], a["failed"]) == (True, 1, 2, [gone])

    # Which nodes miss the image that fails: node-a (failed); cold node-b names what it
    # misses (not this one); node-c has no annotation and cannot say.
    code, out, _ = await fleet(*token, "--image", gone, "-o", "json")
    assert code == 1
    assert json.loads(out) == {
        "image": gone,
        "missing": ["node-a"],
        "unknown": ["node-c"],
        "notMissing": ["node-b", "node-d"],
    }
    # The image cold node-b still misses: it says so; node-c does not know.
    code, out, _ = await fleet(*token, "--image", BIG, "-l", "pool=gpu")
    assert code == 1
    assert out.splitlines()[0] == f"{BIG}: missing on 1 of 3 nodes"
    assert "  missing  node-b" in out
    assert "  unknown  node-c" in out


async def test_a_kubeconfig_is_read_like_kubectl_reads_it(
    tmp_path: Path, kube: KubeApiStandIn
) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "stand-in", "cluster": {"server": kube.url}}],
        "users": [{"name": "ops", "user": {"token": TOKEN}}],
        "contexts": [{"name": "ops@stand-in", "context": {"cluster": "stand-in", "user": "ops"}}],
        "current-context": "ops@stand-in",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    code, out, err = await fleet("--node", "node-b", env={"KUBECONFIG": str(path)})
    assert (code, err) == (0, ""), err
    assert out.splitlines()[1].split(maxsplit=4) == ["node-b", "no", "1/3", "2", PRIVATE]
    assert out.splitlines()[-1] == "1 node: 0 warm, 1 not warm, 0 without a warm state"
    code, out, err = await fleet("--kubeconfig", str(path), "--context", "nope")
    assert code == 2
    assert "nope" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node", "node-x"], "no node node-x"),
        (["--image", "UPPER/Case:1"], "--image"),
        (["--label", "bad//label"], "--label"),
    ],
    ids=["no-such-node", "bad-image", "bad-label"],
)
async def test_usage_errors_exit_2(
    tmp_path: Path, kube: KubeApiStandIn, args: list[str], message: str
) -> None:
    code, _, err = await fleet(*api_args(kube, tmp_path), *args)
    assert code == 2
    assert message in err


async def test_api_trouble_is_said_without_the_token(tmp_path: Path, kube: KubeApiStandIn) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-" + TOKEN)
    code, out, err = await fleet("--kube-api", kube.url, "--kube-token-file", str(wrong))
    assert (code, out) == (2, "")
    assert "401" in err
    assert TOKEN not in err
    kube.forbid("list")
    code, _, err = await fleet(*api_args(kube, tmp_path))
    assert code == 2
    assert "403" in err
    assert 'cannot list resource "nodes"' in err


async def test_who_holds_the_fleet_pull_slots(tmp_path: Path, kube: KubeApiStandIn) -> None:
    """With --fleet-parallelism, the table ends with the budget's slots: held by whom, and who
    waits (the Leases jcp writes, created here through the same API client)."""
    from jcp.kube.api import NodeApi  # noqa: PLC0415
    from jcp.kube.fleet_queue import new_lease  # noqa: PLC0415
    from jcp.kube.lease_api import LeaseApi  # noqa: PLC0415

    token = api_args(kube, tmp_path)
    code, out, _ = await fleet(*token)
    assert code == 0
    assert "fleet pull slots" not in out  # no budget: no line
    api = NodeApi.connect(kube.url, TOKEN)
    leases = LeaseApi.of(api, "jarvice-system")
    try:
        await leases.create(new_lease("jcp-fleet-0", "slot", "node-a", 30))
        await leases.create(new_lease("jcp-fleet-1", "slot", "node-d", 30))
        await leases.create(new_lease("jcp-fleet-wait-node-b", "wait", "node-b", 30))
    finally:
        await leases.close()
        await api.close()
    code, out, _ = await fleet(*token)
    assert code == 0
    assert out.splitlines()[-1] == "fleet pull slots: 2 of 2 taken: node-a, node-d; waiting: node-b"
    code, out, _ = await fleet(*token, "-o", "json")
    assert json.loads(out)["fleet"] == {
        "holders": ["node-a", "node-d"],
        "free": [],
        "waiting": ["node-b"],
    }
