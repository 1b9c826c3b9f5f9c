"""The grpclib transport (pure Python, over h2): see grpc_transport.py for why two.

grpclib reconnects on the next call once the connection is lost (no backoff to wait out: a
restarted runtime answers the very next call), has no limit on message size, and raises its own
exceptions, turned here into CallError with the texts grpcio gives for the same cases (a refused
connection is `Connection refused`, the call's deadline `Deadline Exceeded`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Generic

import h2.exceptions
from grpclib.client import (
    Channel,
    Handler,
    Stream,
    StreamStreamMethod,
    UnaryStreamMethod,
    UnaryUnaryMethod,
)
from grpclib.config import Configuration
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
from grpclib.protocol import H2Protocol

from jcp.runtime import grpc_transport
from jcp.runtime.batched_writes import BatchedTransport
from jcp.runtime.bulk_data import BulkConnection
from jcp.runtime.grpc_transport import CallError, Metadata, Req, Resp

_WINDOW = 16 * 1024 * 1024
"""HTTP/2 receive windows (grpclib's default 4 MiB): room for a whole ListImages answer."""


@contextmanager
def _mapped() -> Iterator[None]:
    """grpclib's and the socket's exceptions as CallError (cancellation passes through)."""
    try:
        yield
    except GRPCError as exc:
        raise CallError(exc.status.name, exc.message or "") from None
    except TimeoutError:
        raise CallError("DEADLINE_EXCEEDED", "Deadline Exceeded") from None
    except (StreamTerminatedError, ProtocolError, h2.exceptions.H2Error) as exc:
        raise CallError("UNAVAILABLE", str(exc) or type(exc).__name__) from None
    except OSError as exc:  # connect: refused, no such socket, permission denied
        raise CallError("UNAVAILABLE", exc.strerror or str(exc)) from None


class _Protocol(H2Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        super().connection_made(BatchedTransport(transport))
        # The Connection grpclib just made, with the one method BulkConnection overrides (it
        # holds no state of its own): its streams send large messages in bulk.
        self.connection.__class__ = BulkConnection


class _Channel(Channel):
    """grpclib's Channel with fewer Python steps per byte written: its connections write
    through a BatchedTransport (one send per loop turn, not one per 16 KiB frame) and send large
    messages' frames in bulk (bulk_data.py): measured in a scratch harness (not kept),
    Content.Write's client CPU 3.9-4.1 s per GB frame by frame, 2.3-2.9 s in bulk (jcp's malloc
    tuning on in both)."""

    def _protocol_factory(self) -> H2Protocol:
        return _Protocol(Handler(), self._config, self._h2_config)


class _Unary(Generic[Req, Resp]):
    def __init__(self, owner: GrpclibChannel, path: str, req: type[Req], resp: type[Resp]) -> None:
        self._owner, self._path, self._req, self._resp = owner, path, req, resp

    async def __call__(
        self, request: Req, *, deadline: float | None = None, metadata: Metadata = ()
    ) -> Resp:
        method = UnaryUnaryMethod(self._owner.channel(), self._path, self._req, self._resp)
        # Cancelling the awaiting task resets the HTTP/2 stream: the server abandons the call.
        with _mapped():
            return await method(request, timeout=deadline, metadata=list(metadata))


class _Stream(Generic[Req, Resp]):
    def __init__(self, stream: Stream[Req, Resp]) -> None:
        self._stream = stream

    @contextmanager
    def _status(self) -> Iterator[None]:
        """A server that ends the call early (an error status, then RST_STREAM(NO_ERROR), as
        grpc-go does) shows first as a reset stream: its status, when it sent one, is the
        error (what grpclib's own context exit does, `_maybe_raise`)."""
        with _mapped():
            try:
                yield
            except StreamTerminatedError:
                self._stream._maybe_raise()  # noqa: SLF001 (raises GRPCError from the trailers)
                raise

    async def send(self, message: Req, *, last: bool = False) -> None:
        with self._status():
            await self._stream.send_message(message, end=last)

    async def recv(self) -> Resp:
        with self._status():
            got = await self._stream.recv_message()
            if got is None:
                await self._stream.recv_trailing_metadata()  # raises the status, if not OK
                raise CallError("UNKNOWN", "the stream ended")
        return got


class GrpclibChannel:
    name = "grpclib"

    def __init__(self, endpoint: str) -> None:
        self._path = endpoint.removeprefix("unix://")
        self._channel: Channel | None = None

    def channel(self) -> Channel:
        """Made at the first call, inside the running loop (grpclib binds to it)."""
        if self._channel is None:
            config = Configuration(
                http2_connection_window_size=_WINDOW, http2_stream_window_size=_WINDOW
            )
            self._channel = _Channel(path=self._path, config=config)
        return self._channel

    def unary(self, path: str, request: type[Req], response: type[Resp]) -> _Unary[Req, Resp]:
        return _Unary(self, path, request, response)

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        request: type[Req],
        response: type[Resp],
        *,
        deadline: float | None = None,
        metadata: Metadata = (),
    ) -> AsyncIterator[grpc_transport.Stream[Req, Resp]]:
        method = StreamStreamMethod(self.channel(), path, request, response)
        with _mapped():
            async with method.open(timeout=deadline, metadata=list(metadata)) as stream:
                await stream.send_request()
                yield _Stream(stream)

    async def server_stream(
        self,
        path: str,
        request: Req,
        response: type[Resp],
        *,
        deadline: float | None = None,
        metadata: Metadata = (),
    ) -> AsyncIterator[Resp]:
        method = UnaryStreamMethod(self.channel(), path, type(request), response)
        with _mapped():
            async with method.open(timeout=deadline, metadata=list(metadata)) as stream:
                await stream.send_message(request, end=True)
                async for message in stream:
                    yield message

    async def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
