"""The Bearer token flow against a real token-auth registry: Debian's `docker-registry` with
`auth: token`, its tokens issued by devstack.token_service (a test token service: the protocol
as documented; the registry verifies every token it is given). It serves the open registry's
storage, so images pushed there are private here."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.images import RegistryClient, make_layer, push_synthetic
from devstack.ratelimit import RateLimitedRegistry
from devstack.services import Registry
from devstack.stack import Stack, write_docker_secret
from devstack.token_service import TokenService
from jcp.model.credentials import RegistryAuth
from jcp.model.failures import Reason, RegistryFailure
from jcp.model.refs import parse_reference
from jcp.registry.client import RegistryClient as Client
from tests.support.helpers import entry, publish, wait_for
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]
USER, PASSWORD = "tokuser", "tok-secret-pw-4711"


@dataclass
class TokenRegistry:
    service: TokenService
    registry: Registry

    @property
    def host(self) -> str:
        return self.registry.host

    def auth(self, password: str = PASSWORD) -> RegistryAuth:
        return RegistryAuth(self.host, USER, password)


@pytest.fixture
def token_registry(stack: Stack, tmp_path: Path) -> Iterator[TokenRegistry]:
    service = TokenService(tmp_path, USER, PASSWORD).start()
    root = tmp_path / "token-registry"
    root.mkdir()
    (root / "data").symlink_to(stack.open_registry.root / "data")  # the open one's images
    registry = Registry(root, auth_config=service.registry_auth())
    registry.start()
    yield TokenRegistry(service, registry)
    registry.stop()
    service.stop()


async def test_bearer_flow_with_cached_and_renewed_tokens(
    token_registry: TokenRegistry, open_client: RegistryClient, unique: Callable[[str], str]
) -> None:
    repo = unique("tok")
    pushed = push_synthetic(open_client, repo, "1")
    image = parse_reference(f"{token_registry.host}/{repo}:1")
    tokens = token_registry.service.requests
    client = Client()
    try:
        for _ in range(3):
            assert await client.digest(image, token_registry.auth()) == pushed.digest
        sized = await client.inspect(image, token_registry.auth(), "amd64")
        assert sized.digest == pushed.digest
        assert sized.size > pushed.size
        granted = [(r.user, r.scope, r.status) for r in tokens]
        assert granted == [(USER, f"repository:{repo}:pull", 200)], "one token, then cached"

        with pytest.raises(RegistryFailure) as denied:
            await client.digest(image, token_registry.auth("wrong-pw-0815"))
        assert denied.value.failure.reason == Reason.AUTH
        assert "wrong-pw-0815" not in str(denied.value)
        assert tokens[-1].status == 401

        # A short-lived token is renewed before it expires, not used past its time.
        token_registry.service.expires_in = 6  # cached for 1 s (renewed 5 s early)
        other = unique("tok2")
        multi = open_client.push_multiarch(other, "1", {"amd64": [make_layer(512)]})
        image2 = parse_reference(f"{token_registry.host}/{other}:1")
        assert await client.digest(image2, token_registry.auth()) == multi.digest
        asked = len(tokens)
        start = time.monotonic()
        await wait_for(lambda: time.monotonic() > start + 1.2, what="the token's cache life")
        assert await client.digest(image2, token_registry.auth()) == multi.digest
        assert len(tokens) == asked + 1
        assert tokens[-1].status == 200
    finally:
        await client.close()


async def test_jcp_run_warms_and_refreshes_a_token_registry(
    tmp_path: Path,
    token_registry: TokenRegistry,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    """dockerd pulls through the token service too; the steady sweep is one HEAD per image at
    the registry (a recording proxy in front of it) and no new token: jcp's is cached."""
    proxy = RateLimitedRegistry(token_registry.host).start()
    try:
        repos = [unique("tokrun") for _ in range(3)]
        for repo in repos:
            push_synthetic(open_client, repo, "1")
        refs = [f"{proxy.host}/{repo}:1" for repo in repos]
        secrets_root = tmp_path / "docker"
        write_docker_secret(secrets_root, "tok", proxy.host, USER, PASSWORD)
        cfg = publish(
            tmp_path / "config",
            [entry(r, private=True, config="tok") for r in refs],
            interval="1",
        )
        run = jcp("run", engine_args(cfg, secrets_root))
        await run.wait_line(r"sweep 1 done.*3 pulled", timeout=40)
        await run.wait_line(r"sweep 2 done", timeout=20)
        seen, tokens, lines = (
            len(proxy.seen),
            len(token_registry.service.requests),
            len(run.lines()),
        )
        await run.wait_line(r"sweep 3 done.*0 pulled, 3 up to date", timeout=20)
        steady = sorted(
            f"{s.method} {'manifest' if '/manifests/' in s.path else s.path} {s.status}"
            for s in proxy.seen[seen:]
        )
        print(f"steady sweep of 3 private images behind a token service: {steady}")
        assert steady == ["HEAD manifest 200"] * 3
        assert len(token_registry.service.requests) == tokens, "the token is cached"
        assert not [x for x in run.lines()[lines:] if "Pulling " in x]
        users = {r.user for r in token_registry.service.requests}
        assert users == {USER}, "dockerd and jcp both got their tokens with the secret"
        assert PASSWORD not in run.text()
        assert not re.search(r"Bearer \S+", run.text()), "tokens never logged"
    finally:
        proxy.stop()
