"""Registry credentials as data, parsed from the bytes of a `kubernetes.io/dockerconfigjson`.

The original copied the secret over `/root/.docker/config.json` and left it there, so every later
public pull ran with the last private credentials. Here credentials are resolved per pull, for
the host actually pulled, and handed to the runtime as data: each runtime adapter turns them
into its own wire form (Docker's X-Registry-Auth header, the CRI's AuthConfig).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from pathlib import Path

from jcp.model import jsonsafe
from jcp.model.errors import JcpError
from jcp.model.refs import normalise_host

DEFAULT_ROOT = Path("/root/.docker")
# `config.json` is what a volume with `items: [{key: .dockerconfigjson, path: config.json}]`
# holds; `.dockerconfigjson` is what a plain secret volume holds.
SECRET_FILES = ("config.json", ".dockerconfigjson")
# Only keys that look like registry hosts (a dot, a port or localhost, as in docker's reference
# grammar) are named in an error; anything else might be a value put in the wrong place.
_HOST_LIKE = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+(:[0-9]{1,5})?|[a-z0-9-]+:[0-9]{1,5}|localhost")


class CredentialError(JcpError):
    """No usable credentials for one image; names the secret and host, never a value.

    INVALID: the secret's content is at fault (not its absence or a read error).
    """

    def __init__(self, secret: str, host: str, reason: str, *, invalid: bool = False) -> None:
        self.secret = secret
        self.host = host
        self.reason = reason
        self.invalid = invalid
        verb = " is invalid" if invalid else ""
        super().__init__(f"secret '{secret}' for registry {host}{verb}: {reason}")


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for one registry host. repr and str never show the values."""

    host: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    identitytoken: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"<credentials for {self.host}>"


def secret_paths(root: Path, secret: str) -> list[Path]:
    return [root / secret / name for name in SECRET_FILES]


def _decode_auth(value: str) -> tuple[str, str]:
    raw = value.strip()
    raw += "=" * (-len(raw) % 4)
    try:
        decoded = base64.b64decode(raw, altchars=b"-_" if ("-" in raw or "_" in raw) else None)
        text = decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("'auth' is not base64 of 'user:password'") from None
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise ValueError("'auth' does not decode to 'user:password'")
    return user, password


def parse_docker_config(data: bytes, secret: str, host: str) -> RegistryAuth:
    """Credentials for HOST from the bytes of a docker config; raises only CredentialError."""

    def invalid(reason: str) -> CredentialError:
        return CredentialError(secret, host, reason, invalid=True)

    try:
        doc = jsonsafe.loads(data)
    except jsonsafe.JsonError as exc:
        raise invalid(exc.redacted()) from None
    if not isinstance(doc, dict):
        raise invalid("expected a JSON object with an 'auths' object")
    auths = doc.get("auths")
    if auths is None and doc and all(isinstance(v, dict) and "auth" in v for v in doc.values()):
        auths = doc  # legacy `.dockercfg` layout: hosts at the top level
    if not isinstance(auths, dict):
        if doc.get("credsStore") or doc.get("credHelpers"):
            raise invalid("uses a credential helper, which jcp cannot run; put 'auths' in it")
        raise invalid("no 'auths' object")
    matches = [v for k, v in auths.items() if normalise_host(k) == host]
    if not matches:
        raise invalid(f"no entry for this host (it has: {_hosts(auths)})")
    entry = matches[0]
    if not isinstance(entry, dict):
        raise invalid("the host's entry is not an object")
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return RegistryAuth(host=host, identitytoken=token)
    user, password = entry.get("username"), entry.get("password")
    if isinstance(user, str) and user and isinstance(password, str):
        return RegistryAuth(host=host, username=user, password=password)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, password = _decode_auth(auth)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        return RegistryAuth(host=host, username=user, password=password)
    raise invalid("the host's entry has none of 'auth', 'username'/'password', 'identitytoken'")


def _hosts(auths: dict[str, jsonsafe.JsonValue]) -> str:
    """The hosts a secret has, to spot a typo; keys that do not look like hosts are counted."""
    hosts = sorted({h for h in map(normalise_host, auths) if _HOST_LIKE.fullmatch(h)})
    others = len(auths) - sum(1 for k in auths if _HOST_LIKE.fullmatch(normalise_host(k)))
    text = ", ".join(hosts[:10]) or "none"
    if len(hosts) > 10:
        text += f", ... ({len(hosts)} hosts)"
    if others:
        text += f"; {others} other key(s)"
    return text
