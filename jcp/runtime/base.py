"""The seam between the engine and a container runtime: what jcp asks of any image store.

The engine speaks only this protocol; Docker (`docker.py`, over aiodocker) and the CRI
(`cri.py`, over grpc.aio, for containerd and CRI-O) implement it, and each owns its own error
texts, headers and quirks. Every failure an adapter raises is a `RuntimeFailure` carrying the
model's `Failure` (reason class and message), so the engine never matches a runtime's words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from jcp.model.credentials import RegistryAuth
from jcp.model.errors import JcpError
from jcp.model.failures import Failure, Reason
from jcp.model.refs import ImageRef, InvalidReferenceError, parse_reference


@dataclass(frozen=True)
class RuntimeInfo:
    """Who answered, and what it can do; shown on /status and in jcp_build_info."""

    kind: str
    """`docker` or `cri`."""
    name: str
    """What runs behind the endpoint: `docker`, `containerd`, `cri-o`, ..."""
    endpoint: str
    version: str
    api_version: str
    arch: str | None
    """Canonical node architecture (amd64, arm64, ...); None when the runtime's is unknown."""
    raw_arch: str
    reports_progress: bool
    """Whether pulls report byte progress (Docker does; the CRI's PullImage does not)."""
    supports_platform: bool
    """Whether a pull can name a platform (Docker can; the CRI pulls for the node's own)."""
    image_root: str | None = None
    """A path on the image file system, for the disk guard's statvfs, when known."""


@dataclass(frozen=True)
class ImageStatus:
    """One image the runtime holds."""

    id: str
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    size: int = 0
    pinned: bool = False

    def refs(self) -> list[ImageRef]:
        """Its names, normalised; a name jcp cannot parse (the runtime's own) is left out."""
        out = []
        for name in (*self.repo_tags, *self.repo_digests):
            try:
                out.append(parse_reference(name))
            except InvalidReferenceError:
                continue
        return out


@dataclass(frozen=True)
class FsUsage:
    """The image file system as the runtime reports it (CRI ImageFsInfo, Docker's data root)."""

    mountpoint: str | None
    used_bytes: int | None
    inodes_used: int | None = None


@dataclass(frozen=True)
class PullProgress:
    """Byte counts of a pull in flight, summed over its layers."""

    current: int
    total: int
    queued: bool = False
    """Some layer waits for one of the runtime's download slots (not stalled by itself)."""


@dataclass(frozen=True)
class Pulled:
    """What a finished pull did."""

    newer: bool
    """Content was downloaded (False: the runtime already had this image)."""
    digest: str | None
    bytes: int


class RuntimeFailure(JcpError):  # noqa: N818 - it carries a Failure, and says so
    """A runtime call failed; `failure` says why, in the model's classes."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure
        super().__init__(failure.message)

    @property
    def down(self) -> bool:
        """The runtime itself did not answer (as opposed to the registry behind it)."""
        return self.failure.reason == Reason.DAEMON


ProgressCallback = Callable[[PullProgress], None]


class ImageRuntime(Protocol):
    """An image store jcp keeps warm. All methods raise only `RuntimeFailure`."""

    @property
    def endpoint(self) -> str: ...

    async def info(self) -> RuntimeInfo:
        """Ask the runtime who it is; raises RuntimeFailure (reason DAEMON) if it is down."""
        ...

    async def image_status(self, image: ImageRef) -> ImageStatus | None:
        """The image if present, else None."""
        ...

    async def list_images(self) -> list[ImageStatus]: ...

    async def pull(
        self,
        image: ImageRef,
        *,
        auth: RegistryAuth | None,
        platform: str | None,
        on_progress: ProgressCallback | None,
    ) -> Pulled:
        """Pull IMAGE. Cancelling the call abandons the pull in the runtime."""
        ...

    async def remove(self, image: ImageRef) -> None: ...

    async def images_in_use(self) -> set[str]:
        """Image ids that containers (running or not) use: never purged."""
        ...

    async def fs_usage(self) -> FsUsage | None: ...

    async def close(self) -> None: ...
