"""Registry credentials as data, parsed from the bytes of a `kubernetes.io/dockerconfigjson`.

The original copied the secret over `/root/.docker/config.json` and left it there, so every later
public pull ran with the last private credentials. Here credentials are resolved per pull, for
the host actually pulled, and handed to the runtime as data: each runtime adapter turns them
into its own wire form (Docker's X-Registry-Auth header, the CRI's AuthConfig).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jcp.model.errors import JcpError
from jcp.model.refs import normalise_host

DEFAULT_ROOT = Path("/root/.docker")
# `config.json` is what a volume with `items: [{key: .dockerconfigjson, path: config.json}]`
# holds; `.dockerconfigjson` is what a plain secret volume holds.
SECRET_FILES = ("config.json", ".dockerconfigjson")


class CredentialError(JcpError):
    """No usable credentials for one image; names the secret and host, never a value."""

    def __init__(self, secret: str, host: str, reason: str) -> None:
        self.secret = secret
        self.host = host
        self.reason = reason
        super().__init__(f"secret '{secret}' for registry {host}: {reason}")


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
    """Credentials for HOST from the bytes of a docker config; raises CredentialError."""
    try:
        doc: Any = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise CredentialError(secret, host, "file is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise CredentialError(
            secret, host, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(doc, dict):
        raise CredentialError(secret, host, "expected a JSON object with an 'auths' object")
    auths = doc.get("auths")
    if auths is None and doc and all(isinstance(v, dict) and "auth" in v for v in doc.values()):
        auths = doc  # legacy `.dockercfg` layout: hosts at the top level
    if not isinstance(auths, dict):
        helper = doc.get("credsStore") or doc.get("credHelpers")
        if helper:
            raise CredentialError(
                secret, host, "uses a credential helper, which jcp cannot run; put 'auths' in it"
            )
        raise CredentialError(secret, host, "no 'auths' object")
    matches = [v for k, v in auths.items() if normalise_host(str(k)) == host]
    if not matches:
        known = sorted({normalise_host(str(k)) for k in auths})
        raise CredentialError(
            secret, host, f"no entry for this host (it has: {', '.join(known) or 'none'})"
        )
    entry = matches[0]
    if not isinstance(entry, dict):
        raise CredentialError(secret, host, "the host's entry is not an object")
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
            raise CredentialError(secret, host, str(exc)) from None
        return RegistryAuth(host=host, username=user, password=password)
    raise CredentialError(
        secret, host, "the host's entry has none of 'auth', 'username'/'password', 'identitytoken'"
    )
