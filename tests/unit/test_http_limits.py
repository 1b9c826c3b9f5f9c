"""The HTTP server's bounds, without a daemon: pacing, the tamed aiohttp log, the render cache and
the split listeners (real sockets on loopback, a snapshot built by hand)."""

from __future__ import annotations

import dataclasses
import logging

import aiohttp
import pytest
from aiohttp.http_exceptions import BadStatusLine, LineTooLong

from jcp.engine.state import Snapshot
from jcp.observe import http
from jcp.observe.http_limits import Pacer, TamedLog
from jcp.settings import HttpLimits
from tests.support.snapshots import empty_snapshot


def test_the_pacer_spaces_answers_and_refuses_only_beyond_its_wait() -> None:
    pacer = Pacer(rate=10, max_wait=0.25)
    assert [pacer.reserve(100.0) for _ in range(3)] == pytest.approx([0, 0.1, 0.2])
    assert pacer.reserve(100.0) is None, "a fourth would wait 0.3 s"
    assert pacer.reserve(101.0) == 0


def _record(exc: BaseException, peer: str = "10.0.0.9") -> logging.LogRecord:
    return logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        "Error handling request from %s",
        (peer,),
        (type(exc), exc, None),
    )


def test_a_bad_request_is_one_warning_per_kind_per_window_without_its_bytes() -> None:
    now = [0.0]
    tamed = TamedLog(60, clock=lambda: now[0])
    first = _record(BadStatusLine("GARBAGE / HTTP/1.1 secret-token"))
    assert tamed.filter(first)
    assert first.levelno == logging.WARNING
    assert first.exc_info is None, "no traceback"
    text = first.getMessage()
    assert "secret-token" not in text
    assert "bad request from 10.0.0.9 (BadStatusLine, answered 400)" in text
    assert not any(tamed.filter(_record(BadStatusLine("x"))) for _ in range(99))
    assert tamed.filter(_record(LineTooLong("line", "8190"))), "another kind is said once"
    now[0] = 61
    again = _record(BadStatusLine("x"))
    assert tamed.filter(again)
    assert "99 more since the last line of this kind" in again.getMessage()


async def test_many_reads_render_once_and_data_can_listen_apart() -> None:
    reads = [0]
    snap = empty_snapshot()  # the engine's read model hands back the same object until a change

    def source() -> Snapshot:
        reads[0] += 1
        return snap

    surface = http.make_app(
        source,
        lambda _: (b"jcp_up 1\n", "text/plain"),
        alive=lambda: True,
        extra=lambda: {"ledger": {"write_ok": False}},
        limits=dataclasses.replace(HttpLimits(), render_share=0.000001, data_rate=1000),
    )
    runner = await http.serve(surface, "127.0.0.1", 0, data=("127.0.0.1", 0))
    try:
        probes, data = surface.listening["probes"][1], surface.listening["data"][1]
        async with aiohttp.ClientSession() as s:
            for path in ("/healthz", "/metrics", "/status"):
                async with s.get(f"http://127.0.0.1:{probes}{path}") as r:
                    assert r.status == (200 if path == "/healthz" else 404), path
            for _ in range(20):
                async with s.get(f"http://127.0.0.1:{data}/status") as r:
                    doc = await r.json()
            async with s.get(f"http://127.0.0.1:{data}/healthz") as r:
                assert r.status == 404, "the probes are not on the data address"
    finally:
        await runner.cleanup()
    assert doc["ledger"] == {"write_ok": False}
    assert surface.renders == 1  # 20 reads of an unchanged snapshot: one render
    assert reads[0] >= 2
