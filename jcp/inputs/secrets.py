"""Reading mounted dockerconfigjson secrets: fresh at every pull, so rotation needs no restart.

Whatever is mounted (a directory or a FIFO where the file should be, an unreadable or huge
file), the result is credentials or a CredentialError naming the secret, host and path. A read
never blocks (a FIFO is refused, not opened for reading) and never takes more than a Secret can
hold (1 MiB) into memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from jcp.model.credentials import CredentialError, RegistryAuth, parse_docker_config, secret_paths
from jcp.model.jsonsafe import MAX_BYTES


@dataclass(frozen=True)
class SecretFile:
    path: Path
    data: bytes

    @property
    def fingerprint(self) -> str:
        """Changes when the secret is rotated; a hash, so no value is ever kept or shown."""
        return hashlib.sha256(self.data).hexdigest()[:16]


def _read_bounded(path: Path, secret: str, host: str) -> bytes | None:
    """The file's bytes, or None if there is no such file. O_NONBLOCK: a FIFO must not hang us."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialError(secret, host, f"cannot read {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CredentialError(secret, host, f"cannot read {path}: not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, min(1 << 16, MAX_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise CredentialError(secret, host, f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        raise CredentialError(
            secret, host, f"{path} is larger than 1 MiB, the most a Secret can hold", invalid=True
        )
    return b"".join(chunks)


def _read_secret(root: Path, secret: str, host: str) -> SecretFile:
    for path in secret_paths(root, secret):
        data = _read_bounded(path, secret, host)
        if data is not None:
            return SecretFile(path, data)
    tried = " or ".join(str(p) for p in secret_paths(root, secret))
    raise CredentialError(secret, host, f"secret not mounted: no {tried}")


async def read_secret(root: Path, secret: str, host: str) -> SecretFile:
    return await asyncio.to_thread(_read_secret, root, secret, host)


async def resolve(root: Path, secret: str, host: str) -> tuple[RegistryAuth, str]:
    """Credentials for HOST from secret SECRET, and the secret's fingerprint."""
    found = await read_secret(root, secret, host)
    return parse_docker_config(found.data, secret, host), found.fingerprint
