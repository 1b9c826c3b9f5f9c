"""Reading mounted dockerconfigjson secrets: fresh at every pull, so rotation needs no restart."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import aiofiles

from jcp.model.credentials import CredentialError, RegistryAuth, parse_docker_config, secret_paths


@dataclass(frozen=True)
class SecretFile:
    path: Path
    data: bytes

    @property
    def fingerprint(self) -> str:
        """Changes when the secret is rotated; a hash, so no value is ever kept or shown."""
        return hashlib.sha256(self.data).hexdigest()[:16]


async def read_secret(root: Path, secret: str, host: str) -> SecretFile:
    for path in secret_paths(root, secret):
        try:
            async with aiofiles.open(path, "rb") as f:
                return SecretFile(path, await f.read())
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise CredentialError(secret, host, f"cannot read {path}: {exc.strerror}") from None
    tried = " or ".join(str(p) for p in secret_paths(root, secret))
    raise CredentialError(secret, host, f"secret not mounted: no {tried}")


async def resolve(root: Path, secret: str, host: str) -> tuple[RegistryAuth, str]:
    """Credentials for HOST from secret SECRET, and the secret's fingerprint."""
    found = await read_secret(root, secret, host)
    return parse_docker_config(found.data, secret, host), found.fingerprint
