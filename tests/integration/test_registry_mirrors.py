"""containerd's hosts.toml on the real stack: registry A with a mirror B that is a real
pull-through cache (`docker-registry` with `proxy: remoteurl:` A, what a site's mirror is).
jcp's manifest HEADs and GETs go to B (counted in B's own access log), A gets none of them; B
down, jcp falls back to A and says so once; a mirror without the image (404) is passed over."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from devstack.containerd import Containerd
from devstack.images import RegistryClient, push_synthetic
from devstack.ratelimit import RateLimitedRegistry
from devstack.services import Registry
from jcp.model.credentials import RegistryAuth
from jcp.model.failures import Reason, RegistryFailure
from jcp.model.refs import parse_reference
from jcp.registry.client import RegistryClient as Client
from jcp.registry.hosts import HostsConfig
from tests.support.cri_args import cri_args
from tests.support.helpers import entry, publish
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]
JCP_AGENT = "Python/"
"""jcp's User-Agent (aiohttp's); dockerd's pulls name it only inside theirs."""
_ACCESS = re.compile(r'"(HEAD|GET) (/v2/\S+) HTTP/[\d.]+" (\d+) .*"([^"]*)"$')


@dataclass
class Mirror(Registry):
    """A `docker-registry` that is a pull-through cache of REMOTE (None: a plain, empty
    registry), with its access log on (combined format, with the User-Agent) in registry.log."""

    remote: str | None = None
    mirror_of: str = ""

    def _config(self) -> str:
        config = super()._config().replace("accesslog:\n    disabled: true", "accesslog: {}")
        if self.remote is not None:
            config += f"proxy:\n  remoteurl: http://{self.remote}\n"
            if self.user is not None:  # the cache's own account upstream
                config += f"  username: {self.user}\n  password: {self.password}\n"
        return config

    def access(self, agent: str = JCP_AGENT) -> list[tuple[str, str, int]]:
        """(method, path, status) of the requests whose User-Agent contains AGENT; the path
        without the `?ns=<registry>` that every request to a mirror carries (checked here)."""
        log = self.root / "registry.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        found = [
            m for m in map(_ACCESS.search, lines) if m is not None and m.group(4).startswith(agent)
        ]
        ns = f"?ns={self.mirror_of}"  # containerd's form has %3A for the colon
        assert all(unquote(m.group(2)).endswith(ns) for m in found), [m.group(2) for m in found]
        return [(m.group(1), m.group(2).split("?")[0], int(m.group(3))) for m in found]


@pytest.fixture
def mirror(tmp_path: Path, recorder: RateLimitedRegistry) -> Iterator[Mirror]:
    m = Mirror(tmp_path / "mirror", remote=recorder.host, mirror_of=recorder.host)
    m.start()
    yield m
    m.stop()


def hosts_dir(root: Path, registry: str, text: str) -> Path:
    (root / registry).mkdir(parents=True)
    (root / registry / "hosts.toml").write_text(text)
    return root


def jcp_at(recorder: RateLimitedRegistry, agent: str = JCP_AGENT) -> list[str]:
    """What jcp asked registry A itself: its own requests (the daemon's pulls and the mirror's
    upstream fetches have other User-Agents)."""
    return [f"{s.method} {s.path}" for s in recorder.seen if s.agent.startswith(agent)]


async def test_mirror_takes_every_request_and_a_down_mirror_falls_back_once(
    tmp_path: Path,
    open_client: RegistryClient,
    recorder: RateLimitedRegistry,
    mirror: Mirror,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    repos = [unique("mirrored") for _ in range(3)]
    for repo in repos:
        push_synthetic(open_client, repo, "1")
    refs = [f"{recorder.host}/{repo}:1" for repo in repos]
    cfg = publish(tmp_path / "config", [entry(r) for r in refs], interval="60")
    certs = hosts_dir(
        tmp_path / "certs.d",
        recorder.host,
        f'[host."http://{mirror.host}"]\n  capabilities = ["pull", "resolve"]\n',
    )
    args = [
        *engine_args(cfg, docker_root, extra=["--runtime", "docker"]),
        "--registry-config-path",
        str(certs),
    ]
    first = jcp("once", args)  # absent: each manifest read (inspect) before dockerd pulls it
    assert await first.wait_exit() == 0, first.text()
    assert "3 pulled" in first.text()
    steady = jcp("once", args)  # present: refreshed by digest, one HEAD each
    assert await steady.wait_exit() == 0, steady.text()
    assert "0 pulled, 3 up to date" in steady.text()
    at_mirror = mirror.access()
    heads = [a for a in at_mirror if a[0] == "HEAD"]
    gets = [a for a in at_mirror if a[0] == "GET" and "/manifests/" in a[1]]
    print(f"at mirror B: {len(heads)} HEAD, {len(gets)} manifest GET; at A from jcp: none")
    assert sorted(p for _, p, _ in heads) == sorted(f"/v2/{r}/manifests/1" for r in repos)
    assert len(gets) >= 3
    assert all(status == 200 for _, _, status in at_mirror), at_mirror
    assert jcp_at(recorder) == [], "registry A got no request of jcp's while its mirror answered"
    assert "trying the next endpoint" not in steady.text()

    mirror.stop()  # B down: connection refused
    fallback = jcp("once", args)
    assert await fallback.wait_exit() == 0, fallback.text()
    assert "0 pulled, 3 up to date" in fallback.text()
    said = [line for line in fallback.lines() if "trying the next endpoint" in line]
    assert len(said) == 1, fallback.text()
    assert f"{recorder.host}: http://{mirror.host}/v2 failed (cannot reach" in said[0]
    assert sorted(jcp_at(recorder)) == sorted(f"HEAD /v2/{r}/manifests/1" for r in repos)


async def test_order_capabilities_and_404_fallback(
    tmp_path: Path,
    open_client: RegistryClient,
    recorder: RateLimitedRegistry,
    mirror: Mirror,
    unique: Callable[[str], str],
) -> None:
    """An empty mirror first (404: passed over, as containerd does), then the pull-through
    cache; a pull-only mirror is not asked for tags (they resolve at the next one)."""
    empty = Mirror(tmp_path / "empty", mirror_of=recorder.host)
    empty.start()
    try:
        pushed = push_synthetic(open_client, unique("order"), "1")
        image = parse_reference(pushed.reference.replace(open_client.host, recorder.host))
        certs = hosts_dir(
            tmp_path / "certs.d",
            recorder.host,
            f'[host."http://{empty.host}"]\n[host."http://{mirror.host}"]\n'
            f'  capabilities = ["pull"]\n',
        )
        client = Client(hosts=HostsConfig(certs))
        try:
            assert await client.digest(image, None) == pushed.digest  # empty 404s, A resolves
            sized = await client.inspect(
                dataclasses.replace(image, tag=None, digest=pushed.digest), None, "amd64"
            )
        finally:
            await client.close()
        assert sized.digest == pushed.digest
        assert empty.access() == [
            ("HEAD", f"/v2/{image.repository}/manifests/1", 404),
            ("GET", f"/v2/{image.repository}/manifests/{pushed.digest}", 404),
        ]
        assert [a[:2] for a in mirror.access()] == [
            ("GET", f"/v2/{image.repository}/manifests/{pushed.digest}")
        ]
        assert jcp_at(recorder) == [f"HEAD /v2/{image.repository}/manifests/1"]
        # All fail: the most telling failure is reported, as containerd's: not found (the
        # empty mirror) over unreachable (the server).
        down = hosts_dir(
            tmp_path / "down.d",
            recorder.host,
            f'server = "http://127.0.0.1:9"\n[host."http://{empty.host}"]\n',
        )
        client = Client(hosts=HostsConfig(down))
        try:
            with pytest.raises(RegistryFailure) as failed:
                await client.digest(image, None)
        finally:
            await client.close()
        assert failed.value.failure.reason == Reason.NOT_FOUND
        assert not failed.value.unreachable
    finally:
        empty.stop()


async def test_registry_credentials_reach_its_mirror_when_it_asks(
    tmp_path: Path,
    open_client: RegistryClient,
    recorder: RateLimitedRegistry,
    unique: Callable[[str], str],
) -> None:
    """A site's pull-through cache that asks for an account: jcp answers its challenge with the
    credentials configured for the registry it mirrors, as containerd does (its authorizer asks
    for the host that answered 401, and the CRI answers with the pull's auth); wrong ones are
    refused, and never appear in what jcp says."""
    password = "mirror-pass-4f1c"
    cache = Mirror(
        tmp_path / "cache", user="site", password=password, remote=recorder.host,
        mirror_of=recorder.host,
    )  # fmt: skip
    cache.start()
    try:
        pushed = push_synthetic(open_client, unique("authmirror"), "1")
        image = parse_reference(pushed.reference.replace(open_client.host, recorder.host))
        certs = hosts_dir(tmp_path / "certs.d", recorder.host, f'[host."http://{cache.host}"]\n')
        client = Client(hosts=HostsConfig(certs))
        try:
            good = RegistryAuth(recorder.host, "site", password)
            assert await client.digest(image, good) == pushed.digest
            denied = await client.digest(image, RegistryAuth(recorder.host, "site", "nope-pass"))
        finally:
            await client.close()
        path = f"/v2/{image.repository}/manifests/1"
        assert cache.access() == [
            ("HEAD", path, 401),  # the challenge
            ("HEAD", path, 200),  # answered with the registry's credentials
            ("HEAD", path, 401),  # the wrong password: refused, then the registry itself
        ]
        assert denied == pushed.digest, "the open registry answers when its mirror refuses"
        assert jcp_at(recorder) == [f"HEAD {path}"]
    finally:
        cache.stop()


async def test_jcp_and_containerd_read_the_same_config_path(
    tmp_path: Path,
    open_client: RegistryClient,
    recorder: RateLimitedRegistry,
    mirror: Mirror,
    containerd: Containerd,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    """The node's case: jcp is given containerd's own config_path. Registry A then sees neither
    containerd's pull nor jcp's requests (only the cache's upstream fetches): both go to B."""
    repo = unique("cri-mirrored")
    push_synthetic(open_client, repo, "1")
    ref = f"{recorder.host}/{repo}:1"
    certs = containerd.root / "certs.d"
    hosts_dir(certs, recorder.host, f'[host."http://{mirror.host}"]\n')
    try:
        cfg = publish(tmp_path / "config", [entry(ref)], interval="60")
        args = [
            *engine_args(cfg, docker_root, extra=cri_args(containerd)),
            "--registry-config-path",
            str(certs),
            "--fetch",
            "off",  # containerd's own pull: its blob GETs are what is counted at B
        ]
        for expected in ("1 pulled", "0 pulled, 1 up to date"):
            run = jcp("once", args)
            assert await run.wait_exit() == 0, run.text()
            assert expected in run.text()
    finally:
        shutil.rmtree(certs / recorder.host)  # the session's containerd: as it was
    asked = {(s.agent.split("/")[0], s.method) for s in recorder.seen}
    assert not {a for a in asked if a[0] in {"Python", "containerd"}}, asked
    runtime = mirror.access("containerd/")
    assert any(m == "GET" and "/blobs/" in p for m, p, _ in runtime), runtime
    assert [m for m, p, _ in mirror.access() if "/manifests/1" in p] == ["GET", "HEAD"]
