"""One place a registry's API is asked, as containerd's `RegistryHost`: the registry itself or
one of its mirrors from the node's hosts.toml (`hosts.py`), with its capabilities, TLS settings
and headers. The manifest requests (`client.py`) and the blob fetches build their URLs and TLS
contexts from it, so both go where the runtime's pull goes.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from jcp.model.refs import DOCKER_HUB

PULL, RESOLVE, PUSH, REFERRERS = "pull", "resolve", "push", "referrers"
ALL = frozenset({PULL, RESOLVE, PUSH, REFERRERS})


class HostsError(ValueError):
    """A hosts.toml jcp cannot follow: names the file and the key, never a header's value."""

    def __init__(self, file: Path, key: str, message: str) -> None:
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")


@dataclass(frozen=True)
class Endpoint:
    """One place a registry's API is asked: the registry itself or one of its mirrors."""

    scheme: str
    host: str
    """host[:port], as in the URL."""
    path: str = "/v2"
    """The API root ("/v2", or the URL's own path with `override_path`)."""
    capabilities: frozenset[str] = ALL
    skip_verify: bool = False
    ca: tuple[Path, ...] = ()
    client: tuple[tuple[Path, Path | None], ...] = ()
    header: tuple[tuple[str, str], ...] = ()
    dial_timeout: float | None = None
    source: Path | None = field(default=None, compare=False)
    """The hosts.toml it comes from; None: jcp's own default for the registry."""

    @property
    def root(self) -> str:
        return f"{self.scheme}://{self.host}{self.path}"

    def can(self, *capabilities: str) -> bool:
        return all(c in self.capabilities for c in capabilities)

    def is_mirror(self, registry: str) -> bool:
        """containerd's `isProxy`: another host than the registry's (Docker Hub's API host is
        Docker Hub)."""
        return self.host != registry and not (
            registry == DOCKER_HUB and self.host == "registry-1.docker.io"
        )

    def url(self, registry: str, repository: str, *parts: str) -> str:
        url = "/".join((self.root, repository, *parts))
        if not self.is_mirror(registry):
            return url
        return f"{url}?ns={quote(registry, safe=':')}"  # containerd sends %3A: the same query

    def ssl_context(self) -> ssl.SSLContext | None:
        """The endpoint's TLS settings; None: the defaults. Raises HostsError (a CA or client
        file that cannot be read)."""
        if self.scheme != "https" or not (self.skip_verify or self.ca or self.client):
            return None
        context = ssl.create_default_context()
        for key, loading in (("ca", self.ca), ("client", self.client)):
            for item in loading:
                try:
                    if isinstance(item, Path):
                        context.load_verify_locations(cafile=item)
                    else:
                        context.load_cert_chain(item[0], item[1])
                except (OSError, ssl.SSLError) as exc:
                    where = item if isinstance(item, Path) else item[0]
                    raise HostsError(self.source or where, key, f"{where}: {exc}") from None
        if self.skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
