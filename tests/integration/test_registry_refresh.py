"""Refresh by digest on the real stack: a steady sweep makes one manifest HEAD per image at the
registry (counted there, by a recording proxy), no manifest GET and no runtime pull; a tag
pushed anew is pulled."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import aiodocker
import aiohttp
import pytest

from devstack.images import RegistryClient, push_synthetic
from devstack.ratelimit import RateLimitedRegistry
from devstack.stack import AUTH_USER, Stack
from jcp.model.credentials import RegistryAuth
from jcp.model.failures import Reason, RegistryFailure
from jcp.model.refs import parse_reference
from jcp.registry.client import RegistryClient as Client
from tests.support.helpers import entry, publish
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]


def counts(r: RateLimitedRegistry, since: int) -> dict[str, int]:
    out = {"HEAD manifest": 0, "GET manifest": 0, "GET blob": 0}
    for seen in r.seen[since:]:
        if "/manifests/" in seen.path:
            out[f"{seen.method} manifest"] = out.get(f"{seen.method} manifest", 0) + 1
        elif "/blobs/" in seen.path:
            out["GET blob"] += 1
    return out


async def test_client_digests_auth_and_errors(
    stack: Stack,
    open_client: RegistryClient,
    auth_client: RegistryClient,
    unique: Callable[[str], str],
) -> None:
    client = Client()
    try:
        pushed = push_synthetic(open_client, unique("rc"), "1")
        assert await client.digest(parse_reference(pushed.reference), None) == pushed.digest
        multi = open_client.push_multiarch(unique("rcm"), "1", {"amd64": [], "arm64": []})
        assert await client.digest(parse_reference(multi.reference), None) == multi.digest
        private = push_synthetic(auth_client, unique("rcp"), "1")
        host, password = stack.auth_registry.host, stack.auth_registry.password or ""
        good = RegistryAuth(host, AUTH_USER, password)
        assert await client.digest(parse_reference(private.reference), good) == private.digest
        with pytest.raises(RegistryFailure) as denied:
            await client.digest(
                parse_reference(private.reference), RegistryAuth(host, AUTH_USER, "nope-pass")
            )
        assert denied.value.failure.reason == Reason.AUTH
        assert "nope-pass" not in str(denied.value)
        with pytest.raises(RegistryFailure) as missing:
            await client.digest(parse_reference(f"{open_client.host}/{unique('x')}:1"), None)
        assert missing.value.failure.reason == Reason.NOT_FOUND
        with pytest.raises(RegistryFailure) as down:
            await client.digest(parse_reference("127.0.0.1:9/none:1"), None)
        assert down.value.unreachable
    finally:
        await client.close()


async def test_steady_sweep_is_one_head_per_image_and_no_pull(
    tmp_path: Path,
    open_client: RegistryClient,
    recorder: RateLimitedRegistry,
    docker: aiodocker.Docker,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    repos = [unique("steady") for _ in range(5)]
    for repo in repos:
        push_synthetic(open_client, repo, "1")
    refs = [f"{recorder.host}/{repo}:1" for repo in repos]
    cfg = publish(tmp_path / "config", [entry(r) for r in refs], interval="1")
    run = jcp("run", [*engine_args(cfg, docker_root), "--log-level", "debug"])
    await run.wait_line(r"sweep 1 done.*5 pulled", timeout=30)
    await run.wait_line(r"sweep 2 done", timeout=20)
    before = len(recorder.seen)
    events_since = len(run.lines())
    await run.wait_line(r"sweep 3 done.*0 pulled, 5 up to date", timeout=20)
    steady = counts(recorder, before)
    print(f"steady sweep of 5 present images at the registry: {steady}")
    assert steady == {"HEAD manifest": 5, "GET manifest": 0, "GET blob": 0}
    # No runtime pull call: no "Pulling" line in the steady sweep, even at debug level.
    assert not [line for line in run.lines()[events_since:] if "Pulling " in line]
    # A tag pushed anew is pulled on the next sweep.
    push_synthetic(open_client, repos[0], "1")
    await run.wait_line(rf"Pulled {re.escape(refs[0])}", count=2, timeout=20)
    assert run.count(r"Pulled ") == 6


async def test_rate_limit_headers_become_metrics(
    tmp_path: Path,
    stack: Stack,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    """Docker Hub says on every manifest answer how much of its limit is left; jcp shows it, so
    operators see the allowance shrink before the first 429."""
    hub = RateLimitedRegistry(stack.open_registry.host, allow=100).start()
    try:
        repos = [unique("lim") for _ in "ab"]
        for repo in repos:
            push_synthetic(open_client, repo, "1")
        refs = [f"{hub.host}/{repo}:1" for repo in repos]
        cfg = publish(tmp_path / "config", [entry(r) for r in refs], interval="1")
        run = jcp("run", engine_args(cfg, docker_root))
        await run.wait_line(r"sweep 1 done.*2 pulled", timeout=30)
        await run.wait_line(r"sweep 2 done.*0 pulled", timeout=20)  # steady: HEADs only
        assert run.http is not None
        async with aiohttp.ClientSession() as s, s.get(run.http + "/metrics") as resp:
            text = await resp.text()
        gets = sum(1 for seen in hub.seen if seen.method == "GET" and "/manifests/" in seen.path)
        assert gets >= 2, "the daemon's pulls (and jcp's inspection) are counted GETs"
        labels = f'{{registry="{hub.host}"}}'
        assert f"jcp_registry_ratelimit_limit{labels} 100.0" in text, text
        assert f"jcp_registry_ratelimit_remaining{labels} {100 - gets}.0" in text, text
    finally:
        hub.stop()
