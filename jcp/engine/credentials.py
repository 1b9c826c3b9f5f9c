"""Credentials for private images, read once per sweep per secret and registry.

The mounted secret is the authority and may rotate at any time, so nothing is kept across
sweeps: the memo is dropped at each sweep's start and whenever the secrets' directory changes.
Within a sweep, sizing and the pull of one image share one read and one parse.
"""

from __future__ import annotations

from pathlib import Path

from jcp.inputs import secrets
from jcp.model.config import Target
from jcp.model.credentials import RegistryAuth


class Credentials:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._memo: dict[tuple[str, str], tuple[RegistryAuth | None, str]] = {}

    def forget(self) -> None:
        """A new sweep, or the secrets changed: read them afresh."""
        self._memo.clear()

    async def of(self, target: Target) -> tuple[RegistryAuth | None, str]:
        """Credentials for TARGET (None if public), and a fingerprint of the entry and its
        secret: a permanent failure is retried only when the fingerprint changes. Raises
        CredentialError (a missing or bad secret), which is never memoised."""
        fingerprint = repr(target.key)
        if not target.entry.private:
            return None, fingerprint
        key = (target.entry.secret, target.registry)
        found = self._memo.get(key)
        if found is None:
            found = await secrets.resolve(self.root, target.entry.secret, target.registry)
            self._memo[key] = found
        auth, secret_fingerprint = found
        return auth, fingerprint + secret_fingerprint
