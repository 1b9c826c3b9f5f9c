"""The paced link's registry log parser and the range split the floors use."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from bench.ranges import spans
from devstack.request_log import RequestLog, go_duration, parse


def _line(**fields: object) -> str:
    base = {
        "msg": "response completed",
        "http.request.method": "GET",
        "http.request.uri": "/v2/a/blobs/sha256:ab",
        "http.request.useragent": "containerd/v1.7.24",
        "http.request.remoteaddr": "198.18.0.1:40000",
        "http.response.status": 206,
        "http.response.written": 1000,
        "http.response.duration": "1m2.5s",
    }
    return json.dumps({**base, **fields})


def test_a_ranged_blob_get_is_read_with_its_agent_bytes_and_connection() -> None:
    text = "\n".join(["starting up", _line(), _line(msg="other"), "{not json"])
    (r,) = parse(text)
    assert r.blob_get
    assert r.ranged
    assert (r.product, r.written, r.remote, r.digest) == (
        "containerd", 1000, "198.18.0.1:40000", "sha256:ab",
    )  # fmt: skip
    assert r.seconds == 62.5


def test_go_durations() -> None:
    assert go_duration("629.077µs") == 629.077e-6
    assert go_duration("206.7ms") == 0.2067
    assert go_duration("1h2m") == 3720


def test_since_reads_only_whole_lines_after_the_mark(tmp_path: Path) -> None:
    path = tmp_path / "registry.log"
    path.write_text(_line() + "\n")
    log = RequestLog(path)
    log.mark()
    with path.open("a") as f:
        f.write(_line(**{"http.response.status": 200}) + "\n" + _line()[:20])
    assert [r.status for r in log.since()] == [200]


def test_spans_cover_the_blob_once() -> None:
    for size, n in ((10, 3), (7, 8), (1 << 20, 16)):
        got = spans(size, n)
        assert got[0][0] == 0
        assert got[-1][1] == size - 1
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(got))
        assert len(got) == min(n, size)
