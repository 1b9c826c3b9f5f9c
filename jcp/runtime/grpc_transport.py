"""The seam between jcp's gRPC clients (CRI, containerd's own API) and the gRPC library.

One implementation stands behind it: grpclib over h2 (pure Python), on every platform. grpcio's
C core publishes no wheel for ppc64le or s390x, and measured here against containerd 1.7 on amd64
(`python -m bench.transport`, BENCHMARKS.md "gRPC transports") grpclib costs about 40 us more per
unary call (p50 339 against 301 us) and streams blobs into the content store as fast (172
against 167 MB/s median): too little to carry two transports and prove both on every platform.
grpcio's channel for that measurement lives in bench/. Callers name a method by its path and its
generated message classes, and see one error type, `CallError`, carrying the gRPC status code's
name and the server's message: what `cri_errors.classify` reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from google.protobuf.message import Message

MAX_MESSAGE = 64 * 1024 * 1024
"""Largest message received: a ListImages of thousands of images (grpcio's default is 4 MiB)."""

Metadata = Sequence[tuple[str, str]]
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Req_contra = TypeVar("Req_contra", bound=Message, contravariant=True)
Resp_co = TypeVar("Resp_co", bound=Message, covariant=True)


class CallError(Exception):
    """A call that did not end OK: CODE is the gRPC status code's name (`UNAVAILABLE`,
    `NOT_FOUND`, ...), DETAILS the server's message or the transport's own words (a refused
    connection says `Connection refused`, as grpcio's last words do)."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


class Unary(Protocol[Req_contra, Resp_co]):
    """One unary method. DEADLINE is gRPC's (sent to the server, which gives up with the
    client), not only a local timeout."""

    async def __call__(
        self, request: Req_contra, *, deadline: float | None = None, metadata: Metadata = ()
    ) -> Resp_co: ...


class Stream(Protocol[Req_contra, Resp_co]):
    """One bidirectional stream, used in lock step (what containerd's own clients do)."""

    async def send(self, message: Req_contra, *, last: bool = False) -> None:
        """LAST half-closes the stream with this message: a server that ends the call once it
        has answered (containerd's Content.Write after COMMIT) then finds the client done, and
        its answer is read before the stream's end (grpclib drops data that races a reset)."""

    async def recv(self) -> Resp_co: ...


class Channel(Protocol):
    """One connection to one endpoint for the owner's life: it reconnects when the server
    restarts. Every method raises CallError, never the implementation's own exceptions."""

    name: str
    """The implementation's name (`grpclib`; the benchmark's grpcio channel says `grpcio`)."""

    def unary(self, path: str, request: type[Req], response: type[Resp]) -> Unary[Req, Resp]: ...

    def stream(
        self,
        path: str,
        request: type[Req],
        response: type[Resp],
        *,
        deadline: float | None = None,
        metadata: Metadata = (),
    ) -> AbstractAsyncContextManager[Stream[Req, Resp]]: ...

    def server_stream(
        self,
        path: str,
        request: Req,
        response: type[Resp],
        *,
        deadline: float | None = None,
        metadata: Metadata = (),
    ) -> AsyncIterator[Resp]: ...

    async def close(self) -> None: ...


def open_channel(endpoint: str) -> Channel:
    """A channel to ENDPOINT (`unix:///path.sock`)."""
    from jcp.runtime.grpclib_channel import GrpclibChannel  # noqa: PLC0415 (it imports this module)

    return GrpclibChannel(endpoint)
