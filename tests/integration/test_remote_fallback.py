"""The fallback, end to end: a registry that refuses jcp's HEAD (as some proxies answer HEAD
with 405) while it serves the runtime. jcp says so once, then refreshes that registry's images
through the runtime's own pull, sweep after sweep, on Docker and on containerd."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from devstack.containerd import Containerd
from devstack.images import RegistryClient, push_synthetic
from devstack.ratelimit import RateLimitedRegistry
from devstack.stack import Stack
from tests.support.cri_args import cri_args
from tests.support.helpers import entry, publish
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]


@pytest.fixture
def refusing(stack: Stack) -> Iterator[RateLimitedRegistry]:
    """The open registry behind a proxy that answers 405 to jcp's manifest HEADs (its
    User-Agent is aiohttp's `Python/...`), not to the runtimes' (dockerd's names aiodocker's
    only in a trailing `UpstreamClient(...)`)."""
    proxy = RateLimitedRegistry(stack.open_registry.host, refuse_head_from="Python/").start()
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("runtime", ["docker", "containerd"])
async def test_a_registry_refusing_head_is_refreshed_through_the_runtime(
    runtime: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    refusing: RateLimitedRegistry,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    extra: list[str] = []
    if runtime == "containerd":
        containerd: Containerd = request.getfixturevalue("containerd")
        containerd.add_registry(refusing.host)
        extra = cri_args(containerd)
    repos = [unique("fb") for _ in range(2)]
    for repo in repos:
        push_synthetic(open_client, repo, "1")
    refs = [f"{refusing.host}/{repo}:1" for repo in repos]
    cfg = publish(tmp_path / "config", [entry(r) for r in refs], interval="1")
    run = jcp("run", [*engine_args(cfg, docker_root), *extra])
    await run.wait_line(r"sweep 1 done.*2 pulled", timeout=30)
    await run.wait_line(r"sweep 3 done.*0 failed", timeout=30)
    seen = len(refusing.seen)
    await run.wait_line(r"sweep 4 done.*0 failed", timeout=30)
    # Said once, whatever the number of sweeps; the refusal was jcp's only.
    said = run.count(rf"registry {re.escape(refusing.host)} cannot be asked for digests")
    assert said == 1, run.text()
    assert re.search(r"cannot be asked for digests \(.* refuses HEAD \(405\)\)", run.text())
    refused = [s for s in refusing.seen if s.status == 405]
    # Only the HEADs already in flight when the first 405 came back: never again after it.
    assert 1 <= len(refused) <= len(refs), refused
    assert all(s.at < refusing.seen[seen].at for s in refused)
    # Sweep 4: the runtime refreshed both images itself (its own HEADs), jcp asked nothing.
    sweep4 = refusing.seen[seen:]
    runtime_heads = [s for s in sweep4 if s.method == "HEAD" and not s.agent.startswith("Python/")]
    assert len(runtime_heads) >= 2, [(s.method, s.path, s.agent) for s in sweep4]
    assert not [s for s in sweep4 if s.agent.startswith("Python/")]
    assert run.proc.poll() is None
    assert run.http is not None
    async with aiohttp.ClientSession() as s, s.get(run.http + "/metrics") as resp:
        metrics = await resp.text()
    head_405 = f'jcp_registry_requests_total{{kind="head",registry="{refusing.host}",result="405"}}'
    assert f"{head_405} {len(refused)}.0" in metrics, metrics
