"""Registry auth from `WWW-Authenticate` challenges: Basic, or the Bearer token flow (realm,
service, scope) with tokens cached per registry, scope and credentials until they expire.

Credentials and tokens live only in request headers: never in an error, a log line or a repr.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass, field

from jcp.model.credentials import RegistryAuth

_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(header: str | None) -> Challenge | None:
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    return Challenge(scheme.lower(), dict(_PARAM.findall(rest)))


def basic(auth: RegistryAuth | None) -> str | None:
    if auth is None or auth.username is None:
        return None
    raw = f"{auth.username}:{auth.password or ''}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def fingerprint(auth: RegistryAuth | None) -> str:
    """Tells credentials apart in a cache key without keeping them there."""
    if auth is None:
        return "anonymous"
    raw = f"{auth.username}\0{auth.password}\0{auth.identitytoken}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class TokenCache:
    """Bearer tokens by (registry, scope, credentials), until shortly before they expire."""

    tokens: dict[tuple[str, str, str], tuple[str, float]] = field(default_factory=dict)

    def get(self, key: tuple[str, str, str]) -> str | None:
        found = self.tokens.get(key)
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    def put(self, key: tuple[str, str, str], token: str, expires_in: float) -> None:
        # Refresh 10 % early (at least 5 s): a token must not expire between cache and use.
        margin = max(5.0, expires_in * 0.1)
        self.tokens[key] = (token, time.monotonic() + max(1.0, expires_in - margin))
