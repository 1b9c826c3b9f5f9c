"""containerd's hosts.toml, as jcp reads it: a table of files and the endpoints they resolve to,
checked against containerd's own rules (`core/remotes/docker/config/hosts.go`)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest

from jcp.registry.client import RegistryClient
from jcp.registry.hosts import ALL, PULL, RESOLVE, Endpoint, HostsConfig, directory

REG = "reg.example:5000"
DEFAULT = Endpoint("https", REG)

# (hosts.toml, [(root URL, capabilities)] in the order tried)
CASES: list[tuple[str, str, list[tuple[str, frozenset[str]]]]] = [
    ("empty server: the registry itself", "", [("https://reg.example:5000/v2", ALL)]),
    (
        "a mirror, then the registry",
        '[host."https://mirror.local"]\n',
        [("https://mirror.local/v2", ALL), ("https://reg.example:5000/v2", ALL)],
    ),
    (
        "file order kept, capabilities per host, plain http",
        (
            'server = "https://upstream.example"\n'
            '[host."http://b.local:5000"]\ncapabilities = ["pull"]\n'
            '[host."https://a.local"]\ncapabilities = ["pull", "resolve"]\n'
        ),
        [
            ("http://b.local:5000/v2", frozenset({PULL})),
            ("https://a.local/v2", frozenset({PULL, RESOLVE})),
            ("https://upstream.example/v2", ALL),
        ],
    ),
    (
        "server without scheme is https; a path gains /v2",
        'server = "upstream.example"\n[host."https://m.local/cache/"]\n',
        [("https://m.local/cache/v2", ALL), ("https://upstream.example/v2", ALL)],
    ),
    (
        "override_path: the URL's path is the API root",
        '[host."https://m.local/v2/upstream"]\noverride_path = true\ncapabilities = ["pull"]\n',
        [("https://m.local/v2/upstream", frozenset({PULL})), ("https://reg.example:5000/v2", ALL)],
    ),
    (
        "a header subtable between hosts does not break the order",
        (
            '[host."https://a.local"]\n[host."https://a.local".header]\nx-a = "1"\n'
            '[host."https://b.local"]\n'
        ),
        [
            ("https://a.local/v2", ALL),
            ("https://b.local/v2", ALL),
            ("https://reg.example:5000/v2", ALL),
        ],
    ),
    (
        "root capabilities apply to an explicit server",
        'server = "https://only.local"\ncapabilities = ["pull"]\n',
        [("https://only.local/v2", frozenset({PULL}))],
    ),
    ("not TOML: the registry itself", "server = [\n", [("https://reg.example:5000/v2", ALL)]),
    (
        "an unknown capability: the registry itself, as containerd",
        '[host."https://m.local"]\ncapabilities = ["pul"]\n',
        [("https://reg.example:5000/v2", ALL)],
    ),
    (
        "skip_verify not a boolean: the registry itself",
        '[host."https://m.local"]\nskip_verify = "yes"\n',
        [("https://reg.example:5000/v2", ALL)],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hosts_toml_resolves_to(
    tmp_path: Path, text: str, expected: list[tuple[str, frozenset[str]]]
) -> None:
    (tmp_path / REG).mkdir()
    (tmp_path / REG / "hosts.toml").write_text(text)
    found = HostsConfig(tmp_path).endpoints(REG, DEFAULT)
    assert [(e.root, e.capabilities) for e in found] == expected


def test_directory_order_as_containerd(tmp_path: Path) -> None:
    """`host_port_` before `host:port` before `_default`; a host without a port has no `_`
    form; the first directory that exists wins even without a hosts.toml in it."""
    assert directory(tmp_path, REG) is None
    (tmp_path / "_default").mkdir()
    assert directory(tmp_path, REG) == tmp_path / "_default"
    (tmp_path / REG).mkdir()
    assert directory(tmp_path, REG) == tmp_path / REG
    (tmp_path / "reg.example_5000_").mkdir()
    assert directory(tmp_path, REG) == tmp_path / "reg.example_5000_"
    assert directory(tmp_path, "other.example") == tmp_path / "_default"


def test_default_applies_to_every_registry_and_adds_ns(tmp_path: Path) -> None:
    (tmp_path / "_default").mkdir()
    (tmp_path / "_default" / "hosts.toml").write_text('[host."http://cache.local:5000"]\n')
    client = RegistryClient(hosts=HostsConfig(tmp_path))
    mirror, server = client.endpoints("ghcr.io", PULL, RESOLVE)
    assert mirror.url("ghcr.io", "org/app", "manifests", "1") == (
        "http://cache.local:5000/v2/org/app/manifests/1?ns=ghcr.io"
    )
    assert server.url("ghcr.io", "org/app", "manifests", "1") == (
        "https://ghcr.io/v2/org/app/manifests/1"
    )
    hub = client.endpoints("docker.io", PULL)
    assert hub[-1].root == "https://registry-1.docker.io/v2"
    assert not hub[-1].is_mirror("docker.io")
    loopback = client.endpoints("127.0.0.1:5000", PULL)
    assert loopback[-1].root == "http://127.0.0.1:5000/v2", "jcp's own default: loopback is http"


def test_capability_filter(tmp_path: Path) -> None:
    """A public mirror trusted to pull only: tags are resolved at the registry, content by
    digest comes from the mirror first (containerd's docs/hosts.md example)."""
    (tmp_path / REG).mkdir()
    (tmp_path / REG / "hosts.toml").write_text(
        '[host."https://public-mirror.local"]\ncapabilities = ["pull"]\n'
    )
    client = RegistryClient(hosts=HostsConfig(tmp_path))
    assert [e.host for e in client.endpoints(REG, PULL, RESOLVE)] == [REG]
    assert [e.host for e in client.endpoints(REG, PULL)] == ["public-mirror.local", REG]


def test_tls_fields_and_relative_paths(tmp_path: Path) -> None:
    d = tmp_path / REG
    d.mkdir()
    (d / "hosts.toml").write_text(
        'ca = ["/etc/a.pem", "b.pem"]\n'
        '[host."https://m.local"]\nca = "m.crt"\nskip_verify = true\n'
        'client = [["/abs/c.cert", "c.key"], "both.pem"]\ndial_timeout = "1m1.5s"\n'
        '[host."https://m.local".header]\nx-one = "a"\nx-two = ["b", "c"]\n'
    )
    mirror, server = HostsConfig(tmp_path).endpoints(REG, DEFAULT)
    assert mirror.ca == (d / "m.crt",)
    assert mirror.skip_verify
    assert mirror.client == ((Path("/abs/c.cert"), d / "c.key"), (d / "both.pem", None))
    assert mirror.dial_timeout == 61.5
    assert mirror.header == (("x-one", "a"), ("x-two", "b"), ("x-two", "c"))
    assert server.ca == (Path("/etc/a.pem"), d / "b.pem")
    assert server.host == REG


def test_docker_cert_layout_without_hosts_toml(tmp_path: Path) -> None:
    d = tmp_path / REG
    d.mkdir()
    for name in ("ca.crt", "client.cert", "client.key", "notes.txt"):
        (d / name).write_text("")
    (only,) = HostsConfig(tmp_path).endpoints(REG, DEFAULT)
    assert only.root == DEFAULT.root
    assert only.ca == (d / "ca.crt",)
    assert only.client == ((d / "client.cert", d / "client.key"),)


def test_skip_verify_context_and_unreadable_ca(tmp_path: Path) -> None:
    context = Endpoint("https", "m.local", skip_verify=True).ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE
    assert Endpoint("http", "m.local", skip_verify=True).ssl_context() is None
    assert Endpoint("https", "m.local").ssl_context() is None
    missing = Endpoint("https", "m.local", ca=(tmp_path / "nope.crt",))
    with pytest.raises(ValueError, match=r"ca: .*nope\.crt"):
        missing.ssl_context()


def test_bad_file_is_said_once_per_version_and_reread_when_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = tmp_path / REG
    d.mkdir()
    file = d / "hosts.toml"
    file.write_text(
        '[host."https://m.local"]\ncapabilities = ["pul"]\n[host."x".header]\nk="s3cret"'
    )
    config = HostsConfig(tmp_path)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            assert config.endpoints(REG, DEFAULT) == (DEFAULT,)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1, said
    assert str(file) in said[0]
    assert 'host."https://m.local".capabilities' in said[0]
    assert "unknown capability 'pul'" in said[0]
    assert "s3cret" not in said[0]
    file.write_text('[host."https://m.local"]\ncapabilities = ["pull", "resolve"]\n')
    assert [e.host for e in config.endpoints(REG, DEFAULT)] == ["m.local", REG]


def test_a_bad_default_is_said_once_for_all_registries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "_default").mkdir()
    (tmp_path / "_default" / "hosts.toml").write_text("server = 5\n")
    config = HostsConfig(tmp_path)
    with caplog.at_level(logging.ERROR):
        for registry in ("a.example", "b.example", "a.example"):
            default = Endpoint("https", registry)
            assert config.endpoints(registry, default) == (default,)
    assert len(caplog.records) == 1
    assert "server: expected a URL string" in caplog.records[0].getMessage()


def test_describe_says_what_the_directory_configures(tmp_path: Path) -> None:
    assert "no host directory" in HostsConfig(tmp_path).describe()
    assert "every registry is asked itself" in HostsConfig(tmp_path / "absent").describe()
    (tmp_path / "docker.io").mkdir()
    (tmp_path / "_default").mkdir()
    assert HostsConfig(tmp_path).describe().endswith("directories for _default, docker.io")
