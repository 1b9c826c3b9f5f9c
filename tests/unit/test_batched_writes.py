"""BatchedTransport over a real socket pair: what one loop turn writes leaves as one send, in
order, and nothing written is lost on close."""

from __future__ import annotations

import asyncio
import os
import socket

from jcp.runtime.batched_writes import _FLUSH_AT, BatchedTransport
from tests.support.helpers import wait_for


class _Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.got = bytearray()
        self.closed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.got += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


async def _pair() -> tuple[BatchedTransport, _Sink]:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    inner, _ = await loop.create_unix_connection(asyncio.Protocol, sock=a)
    _, sink = await loop.create_unix_connection(_Sink, sock=b)
    return BatchedTransport(inner), sink


async def test_one_turns_frames_leave_as_one_send_in_order() -> None:
    transport, sink = await _pair()
    frames = [os.urandom(16 * 1024 + 9) for _ in range(64)]  # one 1 MiB gRPC message
    for frame in frames:
        transport.write(frame)
    assert transport.flushes == 0, "nothing is sent before the turn ends"
    expected = b"".join(frames)
    await wait_for(lambda: len(sink.got) >= len(expected), what="all bytes")
    assert bytes(sink.got) == expected
    assert transport.flushes == 1
    transport.close()
    await wait_for(sink.closed.is_set, what="closed")


async def test_a_big_turn_is_flushed_as_it_grows_and_close_sends_the_rest() -> None:
    transport, sink = await _pair()
    chunks = [os.urandom(100_000) for _ in range(30)]  # 3 MB in one turn
    for chunk in chunks:
        transport.write(chunk)
    assert 1 <= transport.flushes <= len(chunks) * 100_000 // _FLUSH_AT
    transport.write(b"tail")
    transport.close()  # before the turn ends: the pending bytes go first
    expected = b"".join(chunks) + b"tail"
    await wait_for(sink.closed.is_set, what="closed")
    assert bytes(sink.got) == expected


async def test_abort_drops_what_is_pending() -> None:
    transport, sink = await _pair()
    transport.write(b"never sent")
    transport.abort()
    await wait_for(sink.closed.is_set, what="closed")
    assert bytes(sink.got) == b""
