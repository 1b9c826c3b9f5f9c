"""grpclib's HTTP/2 stream with a bulk path for large messages: a window's worth of DATA frames
per step, not one frame per step.

Why: grpc-go servers (containerd, CRI-O) take HTTP/2 frames of 16 KiB at most, and grpclib
sends each through h2's whole machinery (state machine, flow-control checks, a frame object,
its serialisation) and writes it on its own: about 50 us of Python per 16 KiB, 3.3 s of jcp's
CPU per GB streamed into containerd's content store (measured in a scratch harness writing
200 MiB through jcp's content writer, not kept; py-spy's profile of `python -m bench.fetch`
showed the same path on top). Here
a message larger than one frame goes through h2's state machine and flow-control accounting
once per window's worth (exactly what h2 does for one frame, with the length of all of them),
and its frames are built by this module: a 9-byte header (RFC 9113 section 4.1) before each
16 KiB of the message.

Kept as grpclib and h2 have it: flow control (never more than the stream's and the
connection's windows allow; waits for a WINDOW_UPDATE as grpclib does), END_STREAM on the last
frame only, writes paused while the transport is full, grpclib's statistics. No padding (grpclib
sends none). Written against grpclib 0.4.9 and h2 4.x, which pyproject bounds.
"""

from __future__ import annotations

from grpclib.protocol import Connection
from grpclib.protocol import Stream as ProtocolStream
from grpclib.utils import Wrapper
from h2.connection import ConnectionInputs, H2Connection

_DATA = b"\x00"
_END_STREAM = 0x1


def frames(stream_id: int, data: bytes | memoryview, frame_size: int, *, end: bool) -> bytes:
    """DATA as DATA frames of at most FRAME_SIZE bytes each, END_STREAM on the last if END."""
    view = memoryview(data)
    sid = stream_id.to_bytes(4, "big")
    parts: list[bytes | memoryview] = []
    for start in range(0, len(view), frame_size):
        piece = view[start : start + frame_size]
        flags = _END_STREAM if end and start + frame_size >= len(view) else 0
        parts += [len(piece).to_bytes(3, "big"), _DATA, bytes((flags,)), sid, piece]
    return b"".join(parts)


def send_bulk(
    h2: H2Connection, stream_id: int, data: bytes | memoryview, *, end: bool
) -> tuple[bytes, bytes]:
    """What h2's send_data does for one frame, done once for DATA (within the windows: the
    caller checks): what h2 held to send, then DATA's frames, to be written in that order."""
    h2.state_machine.process_input(ConnectionInputs.SEND_DATA)
    stream = h2.streams[stream_id]
    stream.send_data(b"", end)  # its state machine; the window is counted below
    stream.outbound_flow_control_window -= len(data)
    h2.outbound_flow_control_window -= len(data)
    return h2.data_to_send(), frames(stream_id, data, h2.max_outbound_frame_size, end=end)


class BulkStream(ProtocolStream):
    async def send_data(self, data: bytes, end_stream: bool = False) -> None:
        h2 = self._h2_connection
        if len(data) <= h2.max_outbound_frame_size:
            await super().send_data(data, end_stream)
            return
        assert self.id is not None
        view, pos = memoryview(data), 0
        while pos < len(view):
            await self.connection.write_ready.wait()
            window = h2.local_flow_control_window(self.id)
            if not window > 0:  # as grpclib: wait, then look again from the start
                self.window_updated.clear()
                await self.window_updated.wait()
                continue
            chunk = view[pos : pos + window]
            pos += len(chunk)
            held, bulk = send_bulk(h2, self.id, chunk, end=end_stream and pos == len(view))
            self._transport.write(held)
            self._transport.write(bulk)
            self.data_sent += len(chunk)
            self.connection.data_sent += len(chunk)
            self.connection.data_send_process()


class BulkConnection(Connection):
    """grpclib's Connection whose streams are BulkStreams (no state of its own: grpclib_channel
    sets it as the class of the Connection grpclib's protocol made)."""

    def create_stream(
        self, *, stream_id: int | None = None, wrapper: Wrapper | None = None
    ) -> ProtocolStream:
        return BulkStream(
            self, self._connection, self._transport, stream_id=stream_id, wrapper=wrapper
        )
