"""containerd's effective config, as a verbose CRI Status carries it, read into what it means."""

from __future__ import annotations

import json

import pytest

from jcp.runtime.cri_config import RuntimeTuning, parse

V16 = {
    "maxConcurrentDownloads": 3,
    "discardUnpackedLayers": None,
    "registry": {"configPath": "/etc/containerd/certs.d"},
    "containerd": {"snapshotter": "overlayfs", "discardUnpackedLayers": False},
}


@pytest.mark.parametrize(
    ("config", "want"),
    [
        (
            V16,
            RuntimeTuning(3, discard_unpacked_layers=False, config_path="/etc/containerd/certs.d"),
        ),
        (
            {**V16, "containerd": {"discardUnpackedLayers": True}, "registry": None},
            RuntimeTuning(3, discard_unpacked_layers=True),
        ),
        ({"maxConcurrentDownloads": 10}, RuntimeTuning(max_concurrent_downloads=10)),
        # containerd 2.1 with ranged layer fetch configured, wherever it nests the key
        (
            {"maxConcurrentDownloads": 3, "transfer": {"concurrentLayerFetchBuffer": 1048576}},
            RuntimeTuning(max_concurrent_downloads=3, ranged_fetch=True),
        ),
        ({"images": [{"concurrent_layer_fetch_buffer": 0}]}, RuntimeTuning()),
        ({"maxConcurrentDownloads": "3", "registry": {"configPath": ""}}, RuntimeTuning()),
        ({"maxConcurrentDownloads": True}, RuntimeTuning()),
    ],
)
def test_a_verbose_status_config_is_read_into_its_meaning(
    config: dict[str, object], want: RuntimeTuning
) -> None:
    assert parse({"config": json.dumps(config)}) == want


@pytest.mark.parametrize("info", [{}, {"config": ""}, {"config": "not json"}, {"config": "[1]"}])
def test_a_runtime_that_says_nothing_readable_has_no_tuning(info: dict[str, str]) -> None:
    """CRI-O and cri-dockerd answer without containerd's config: nothing is said."""
    assert parse(info) == RuntimeTuning()
    assert RuntimeTuning().lines("cri-o") == []


def test_what_the_tuning_means_is_said_in_words() -> None:
    lines = RuntimeTuning(3, discard_unpacked_layers=True, ranged_fetch=True).lines(
        "containerd 1.7.24"
    )
    assert lines[0].startswith("containerd 1.7.24 downloads at most 3 layers at once")
    assert "discard_unpacked_layers" in lines[1]
    assert "jcp leaves the bytes to it" in lines[2]
