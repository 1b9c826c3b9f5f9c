"""The blob fetch's counts, as /metrics and /status show them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from jcp.model.fetch import FetchCounts
from jcp.observe.fetch_metrics import FetchMetrics


def test_a_fallback_is_said_the_first_time_only_and_counted_every_time() -> None:
    counts = FetchCounts()
    assert counts.fell_back("r.example:5000", "no Range support")
    assert not counts.fell_back("r.example:5000", "no Range support")
    assert counts.fell_back("r.example:5000", "FetchError")
    assert counts.fallbacks == {
        ("r.example:5000", "no Range support"): 2,
        ("r.example:5000", "FetchError"): 1,
    }


def test_metrics_and_status_show_the_counts_once_a_runtime_is_chosen() -> None:
    registry = CollectorRegistry()
    fetch = FetchMetrics(registry)
    assert b"jcp_fetch" not in generate_latest(registry)  # Docker, or no runtime yet
    assert fetch.status() == {}
    counts = FetchCounts(mode="on", bytes_fetched=300, bytes_present=20, ranges=7, images=1)
    counts.fell_back("unix:///run/crio.sock", "no content API")
    fetch.watch(counts)
    text = generate_latest(registry).decode()
    assert "jcp_fetch_enabled 1.0" in text
    assert 'jcp_fetch_bytes_total{kind="fetched"} 300.0' in text
    assert 'jcp_fetch_bytes_total{kind="present"} 20.0' in text
    assert "jcp_fetch_ranges_total 7.0" in text
    assert (
        'jcp_fetch_fallbacks_total{reason="no content API",where="unix:///run/crio.sock"} 1.0'
        in text
    )
    doc = fetch.status()["fetch"]
    assert isinstance(doc, dict)
    assert doc["bytesFetched"] == 300
    assert doc["fallbacks"] == [
        {"where": "unix:///run/crio.sock", "reason": "no content API", "count": 1}
    ]
