"""containerd's registry host configuration (`config_path`, `hosts.toml`), read the way
containerd reads it, so that jcp's HEADs and GETs go to the mirror the runtime's own pull takes
(an air-gapped site, a pull-through cache, a peer mirror) and fall back as it does.

What is followed, from containerd's `core/remotes/docker/config/hosts.go` and
`config_unix.go` (the same in 1.6, 1.7 and 2.x):
- the directory of registry `host:port` is the first that exists of `<root>/host_port_`,
  `<root>/host:port`, `<root>/_default`; a directory without `hosts.toml` means the registry
  itself, with the `*.crt` CAs and `*.cert`/`*.key` client pairs found there (Docker's layout);
- the endpoints are the `[host."URL"]` tables in file order, then `server` (absent: the registry
  itself, with all capabilities); a URL without a scheme is https, its path gains `/v2` unless it
  ends so or `override_path` is set; `capabilities` default to all, `ca` and `client` paths are
  relative to the file; `skip_verify`, `header`, `dial_timeout` per endpoint;
- a file that does not parse, or names an unknown capability: containerd logs "failed to decode"
  and uses the registry itself; so does jcp (logged once per version of the file);
- a request to an endpoint that is not the registry carries `?ns=<registry>` (`isProxy`).
What is not: containerd's TLS-then-HTTP retry of an `http://` host that also has TLS settings
(here http is http), `push`/`referrers` (jcp never pushes). containerd's blob fetcher checks
that some host may `pull` but then tries them all; jcp asks only those that may.
`_default` is read by containerd since 1.6.x (not 1.6.0) and 1.7.

How the endpoints are tried in turn is `fallback.py`'s.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from jcp.registry.endpoint import ALL, PULL, RESOLVE, Endpoint, HostsError

__all__ = ["ALL", "PULL", "RESOLVE", "Endpoint", "HostsConfig", "HostsError", "parse"]

log = logging.getLogger(__name__)

FILE = "hosts.toml"
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def directory(root: Path, registry: str) -> Path | None:
    """The host directory containerd uses for REGISTRY (`HostDirFromRoot`), if any."""
    candidates = [root / registry, root / "_default"]
    head, colon, port = registry.rpartition(":")
    if colon and head:
        candidates.insert(0, root / f"{head}_{port}_")
    return next((p for p in candidates if p.is_dir()), None)


def parse(text: str, file: Path, default: Endpoint) -> tuple[Endpoint, ...]:
    """The endpoints of one hosts.toml, mirrors first; DEFAULT is the registry itself, used
    where `server` is absent. Raises HostsError naming the file and key."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HostsError(file, "", f"not TOML: {exc}") from None
    hosts = doc.get("host", {})
    if not isinstance(hosts, dict):
        raise HostsError(file, "host", 'expected tables [host."URL"]')
    found = []
    for url, table in hosts.items():  # tomllib keeps the file's order
        if not isinstance(table, dict):
            raise HostsError(file, f'host."{url}"', "expected a table")
        found.append(_Table(table, file, f'host."{url}"').endpoint(url, default))
    server = doc.get("server", "")
    if not isinstance(server, str):
        raise HostsError(file, "server", "expected a URL string")
    found.append(_Table(doc, file, "").endpoint(server, default))
    return tuple(found)


@dataclass(frozen=True)
class _Table:
    """One endpoint's table of a hosts.toml (the file's top level for `server`)."""

    table: Mapping[str, object]
    file: Path
    key: str

    def at(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def fail(self, name: str, message: str) -> HostsError:
        return HostsError(self.file, self.at(name) if name else self.key or "server", message)

    def endpoint(self, url: str, default: Endpoint) -> Endpoint:
        override = self.flag("override_path")
        if url:
            scheme, host, path = _split(url if url.startswith("http") else f"https://{url}")
            if not host or scheme not in {"http", "https"}:
                raise self.fail("", f"{url!r} is not an http(s) URL")
            path = path.rstrip("/")
            if not override and not path.endswith("/v2"):
                path += "/v2"
            capabilities = self.capabilities()
        else:  # containerd fills the registry itself in, with every capability
            scheme, host, path, capabilities = default.scheme, default.host, default.path, ALL
        return Endpoint(
            scheme=scheme,
            host=host,
            path=path,
            capabilities=capabilities,
            skip_verify=self.flag("skip_verify"),
            ca=tuple(self.path(p) for p in self.paths("ca")),
            client=self.client(),
            header=self.header(),
            dial_timeout=self.duration("dial_timeout"),
            source=self.file,
        )

    def flag(self, name: str) -> bool:
        value = self.table.get(name, False)
        if not isinstance(value, bool):
            raise self.fail(name, f"expected true or false, got {value!r}")
        return value

    def capabilities(self) -> frozenset[str]:
        given = self.table.get("capabilities", [])
        if not isinstance(given, list) or not all(isinstance(c, str) for c in given):
            raise self.fail("capabilities", "expected a list of strings")
        unknown = [c for c in given if c.lower() not in ALL]
        if unknown:
            raise self.fail("capabilities", f"unknown capability {unknown[0]!r}")
        return frozenset(c.lower() for c in given) or ALL

    def paths(self, name: str) -> list[str]:
        value = self.table.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise self.fail(name, "expected a path or a list of paths")

    def path(self, value: str) -> Path:
        """Absolute, or relative to the hosts.toml (containerd's `makeAbsPath`)."""
        return Path(value) if Path(value).is_absolute() else self.file.parent / value

    def client(self) -> tuple[tuple[Path, Path | None], ...]:
        value = self.table.get("client")
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        wrong = self.fail("client", "expected a path, a list of paths or of [cert, key] pairs")
        if not isinstance(items, list):
            raise wrong
        pairs: list[tuple[Path, Path | None]] = []
        for item in items:
            if isinstance(item, str):
                pairs.append((self.path(item), None))
            elif (
                isinstance(item, list) and len(item) == 2 and all(isinstance(p, str) for p in item)
            ):
                pairs.append((self.path(item[0]), self.path(item[1]) if item[1] else None))
            else:
                raise wrong
        return tuple(pairs)

    def header(self) -> tuple[tuple[str, str], ...]:
        value = self.table.get("header")
        if value is None:
            return ()
        if not isinstance(value, dict):
            raise self.fail("header", "expected a table")
        out: list[tuple[str, str]] = []
        for name, given in value.items():
            values = [given] if isinstance(given, str) else given
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise self.fail(f"header.{name}", "expected a string or a list of strings")
            out.extend((name, v) for v in values)
        return tuple(out)

    def duration(self, name: str) -> float | None:
        """A Go duration ("1s", "500ms", "1m30s"), as containerd's `time.ParseDuration`."""
        value = self.table.get(name)
        if value is None or value == "":
            return None
        text = value if isinstance(value, str) else ""
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise self.fail(name, f"{value!r} is not a duration such as 1s or 500ms")
        return sum(float(n) * _UNITS[u] for n, u in parts)


def _split(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc, parts.path


def cert_files(directory: Path, default: Endpoint) -> Endpoint:
    """A host directory without hosts.toml: the registry itself with Docker's certificate
    layout (`*.crt` CAs, `*.cert` client certificates with their `*.key`)."""
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    ca = tuple(directory / n for n in names if n.endswith(".crt"))
    client = tuple(
        (directory / n, key if (key := directory / f"{n[:-5]}.key").is_file() else None)
        for n in names
        if n.endswith(".cert")
    )
    if not ca and not client:
        return default
    return Endpoint(default.scheme, default.host, default.path, ca=ca, client=client)


class HostsConfig:
    """The node's `config_path`: each registry's endpoints, re-read when its hosts.toml changes
    (containerd reads it on every pull, so an edit needs no restart there either)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, tuple[object, tuple[Endpoint, ...]]] = {}
        self._said: set[object] = set()

    def describe(self) -> str:
        """What an operator reads at start: which registries the directory configures."""
        try:
            hosts = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        except OSError as exc:
            return f"{self.root}: {exc.strerror or exc}; every registry is asked itself"
        if not hosts:
            return f"{self.root}: no host directory; every registry is asked itself"
        return f"{self.root}: hosts.toml directories for {', '.join(hosts)}"

    def endpoints(self, registry: str, default: Endpoint) -> tuple[Endpoint, ...]:
        """REGISTRY's endpoints in the order they are tried; DEFAULT alone when no host
        directory applies or its file cannot be followed (said once per version of the file,
        however many registries it serves: `_default`)."""
        try:
            found = directory(self.root, registry)
            if found is None:
                return (default,)
            file = found / FILE
            stat = file.stat() if file.exists() else found.stat()
        except OSError:  # a directory gone under us: as if there were none
            return (default,)
        version = (file, file.exists(), stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(registry)
        if cached is not None and cached[0] == (version, default):
            return cached[1]
        endpoints = self._load(file, default, version)
        self._cache[registry] = ((version, default), endpoints)
        return endpoints

    def _load(self, file: Path, default: Endpoint, version: object) -> tuple[Endpoint, ...]:
        try:
            text = file.read_text() if file.exists() else ""
            if not text:
                return (cert_files(file.parent, default),)
            return parse(text, file, default)
        except (OSError, UnicodeDecodeError, HostsError) as exc:
            if version not in self._said:
                self._said.add(version)
                log.error(
                    f"registry host config {exc}; the registries it configures are asked "
                    "themselves, as if there were no hosts.toml (as containerd does)",
                    extra={"fields": {"event": "hosts_config_invalid", "file": str(file)}},
                )
            return (default,)
