"""grpcio's channel (`grpc.aio`, C core) behind jcp's transport seam, for bench.transport only.

jcp itself runs on grpclib (jcp/runtime/grpc_transport.py says why): this is what it was measured
against, kept so that the measurement can be made again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, cast

from grpc import aio

from jcp.runtime.grpc_transport import MAX_MESSAGE, CallError, Metadata, Req, Resp, Stream

_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.enable_retries", 0),  # the engine decides about retries, with its own backoff
    # Keepalive pings stay off (the client default): a local unix socket needs none.
    # A restarted runtime must be seen within seconds, not after gRPC's 120 s backoff cap; and
    # a channel of our own must not inherit another channel's backoff through a shared pool.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.use_local_subchannel_pool", 1),
)


def _error(exc: aio.AioRpcError) -> CallError:
    return CallError(exc.code().name, exc.details() or "")


class _Unary(Generic[Req, Resp]):
    def __init__(self, call: aio.UnaryUnaryMultiCallable[Req, Resp]) -> None:
        self._call = call

    async def __call__(
        self, request: Req, *, deadline: float | None = None, metadata: Metadata = ()
    ) -> Resp:
        # Cancelling the awaiting task cancels the call (grpc.aio's __await__ does): containerd
        # abandons a pull whose caller went away.
        try:
            return await self._call(request, timeout=deadline, metadata=tuple(metadata) or None)
        except aio.AioRpcError as exc:
            raise _error(exc) from None


class _Stream(Generic[Req, Resp]):
    def __init__(self, call: aio.StreamStreamCall[Req, Resp]) -> None:
        self._call = call

    async def send(self, message: Req, *, last: bool = False) -> None:
        try:
            await self._call.write(message)
            if last:
                await self._call.done_writing()
        except aio.AioRpcError as exc:
            raise _error(exc) from None

    async def recv(self) -> Resp:
        try:
            got = await self._call.read()
        except aio.AioRpcError as exc:
            raise _error(exc) from None
        if got is aio.EOF:
            code = await self._call.code()
            raise CallError(code.name, await self._call.details() or "")
        return cast("Resp", got)


class GrpcioChannel:
    name = "grpcio"

    def __init__(self, endpoint: str) -> None:
        self._channel = aio.insecure_channel(endpoint, options=_OPTIONS)

    def unary(self, path: str, request: type[Req], response: type[Resp]) -> _Unary[Req, Resp]:
        return _Unary(
            self._channel.unary_unary(
                path,
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )
        )

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        request: type[Req],
        response: type[Resp],
        *,
        deadline: float | None = None,
        metadata: Metadata = (),
    ) -> AsyncIterator[Stream[Req, Resp]]:
        make: Callable[..., Any] = self._channel.stream_stream(
            path,
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
        )
        call: aio.StreamStreamCall[Req, Resp] = make(
            timeout=deadline, metadata=tuple(metadata) or None
        )
        try:
            yield _Stream(call)
        finally:
            call.cancel()  # a no-op once the call ended; ends it if the caller left early

    async def server_stream(
        self,
        path: str,
        request: Req,
        response: type[Resp],
        *,
        deadline: float | None = None,
        metadata: Metadata = (),
    ) -> AsyncIterator[Resp]:
        make: Callable[..., Any] = self._channel.unary_stream(
            path,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        call: aio.UnaryStreamCall[Req, Resp] = make(
            request, timeout=deadline, metadata=tuple(metadata) or None
        )
        try:
            async for message in call:
                yield message
        except aio.AioRpcError as exc:
            raise _error(exc) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        await self._channel.close()
