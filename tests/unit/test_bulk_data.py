"""bulk_data's frames, read by h2's own server side: what jcp sends in bulk is, frame by frame,
what h2 would have sent, and leaves both ends' flow-control state as h2's own send_data does.
(containerd's grpc-go server reads the same bytes in every content-store test.)"""

from __future__ import annotations

import os

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, StreamEnded

from jcp.runtime.bulk_data import frames, send_bulk

HEADERS = [(":method", "POST"), (":scheme", "http"), (":path", "/x"), (":authority", "y")]


def _pair() -> tuple[H2Connection, H2Connection]:
    client = H2Connection(H2Configuration(client_side=True))
    server = H2Connection(H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())  # the SETTINGS ack
    client.send_headers(1, HEADERS)
    server.receive_data(client.data_to_send())
    return client, server


def _received(server: H2Connection, data: bytes) -> tuple[list[int], bytes, bool]:
    sizes, got, ended = [], b"", False
    for event in server.receive_data(data):
        if isinstance(event, DataReceived):
            sizes.append(len(event.data))
            got += event.data
        ended = ended or isinstance(event, StreamEnded)
    return sizes, got, ended


@pytest.mark.parametrize(("size", "end"), [(16385, False), (65535, True), (40000, True)])
def test_bulk_frames_are_what_h2_sends(size: int, end: bool) -> None:
    data = os.urandom(size)
    ours, server = _pair()
    held, bulk = send_bulk(ours, 1, data, end=end)
    sizes, got, ended = _received(server, held + bulk)
    assert got == data
    assert ended is end
    assert max(sizes) <= ours.max_outbound_frame_size

    theirs, their_server = _pair()  # h2's own way: one send_data per frame
    step = theirs.max_outbound_frame_size
    for start in range(0, size, step):
        last = start + step >= size
        theirs.send_data(1, data[start : start + step], end_stream=end and last)
    their_bytes = theirs.data_to_send()
    their_sizes, their_got, their_end = _received(their_server, their_bytes)
    assert (sizes, got, ended) == (their_sizes, their_got, their_end)
    assert bulk == their_bytes, "byte for byte"
    assert ours.local_flow_control_window(1) == theirs.local_flow_control_window(1)
    assert ours.outbound_flow_control_window == theirs.outbound_flow_control_window
    assert ours.streams[1].state_machine.state == theirs.streams[1].state_machine.state
    assert server.streams[1].state_machine.state == their_server.streams[1].state_machine.state


def test_frames_of_an_empty_body_are_none() -> None:
    assert frames(1, b"", 16384, end=False) == b""
