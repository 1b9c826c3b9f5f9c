"""What the blob fetch (blobs.py) hands out and takes in: its report, its error, and the
protocol of the store it writes into (containerd's content store satisfies it structurally:
this layer imports no runtime)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from jcp.model.credentials import RegistryAuth
from jcp.model.errors import JcpError
from jcp.model.manifests import Blob
from jcp.model.refs import ImageRef


class FetchError(JcpError):
    """A blob could not be fetched or did not verify: nothing of it was committed."""

    def __init__(self, message: str, *, registry: str, digest: str, corrupt: bool = False) -> None:
        super().__init__(message)
        self.registry = registry
        self.digest = digest
        self.corrupt = corrupt
        """The bytes were wrong (the digest did not match): their ingest was dropped. Other
        failures keep the ingest, so that the next fetch resumes it."""


class BlobWriter(Protocol):
    @property
    def offset(self) -> int: ...

    async def write(self, data: bytes) -> None: ...

    async def commit(self) -> None:
        """Verify the bytes written (the whole blob) against the digest and size, and keep
        them; a mismatch raises JcpError with `code` FAILED_PRECONDITION."""

    async def abort(self) -> None: ...

    async def close(self) -> None:
        """Stop, keeping what was written for a later writer on the same ref."""


class ContentSink(Protocol):
    """Raises JcpError; one whose `code` is ALREADY_EXISTS means the blob is there."""

    async def info(self, digest: str) -> int | None: ...

    async def writer(self, ref: str, digest: str, size: int, lease: str) -> BlobWriter: ...


@dataclass
class FetchReport:
    bytes_fetched: int = 0
    """Body bytes received from the registry (a resumed blob's discarded prefix included)."""
    blobs_fetched: int = 0
    blobs_present: int = 0
    ranges: int = 0
    """Range requests answered (retries included)."""
    resumed_bytes: int = 0
    """Bytes the sink already held for an ingest this fetch resumed."""
    range_supported: bool = True
    """False once the registry answered a partial Range request with the whole blob."""
    seconds: float = 0.0


@dataclass
class Job:
    """One blob of one fetch."""

    image: ImageRef
    blob: Blob
    url: str
    auth: RegistryAuth | None
    report: FetchReport
    on_bytes: Callable[[int], None]
    tls: ssl.SSLContext | None = None
    """The endpoint's TLS settings (hosts.toml `ca`, `skip_verify`); not for other hosts."""
    headers: dict[str, str] = field(default_factory=dict)
    challenged: str | None = None
    """The 401 challenge the headers were made for: a second 401 means refused credentials."""
    error: BaseException | None = None

    @property
    def host(self) -> str:
        """The host blobs are asked from: the registry's, or a mirror's (hosts.toml)."""
        return urlsplit(self.url).netloc

    def fail(self, message: str, *, corrupt: bool = False) -> FetchError:
        via = "" if self.host == self.image.registry else f" (mirror {self.host})"
        what = f"blob {self.blob.digest} of {self.image} from {self.image.registry}{via}"
        return FetchError(
            f"{what}: {message}",
            registry=self.image.registry,
            digest=self.blob.digest,
            corrupt=corrupt,
        )
