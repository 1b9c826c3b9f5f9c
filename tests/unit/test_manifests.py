"""The manifest rules, as tables: media types, the platform a node pulls from a list, the
compressed size, and what is refused; and the order a sweep pulls in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jcp.engine.credentials import Credentials
from jcp.engine.gate import RegistryGate
from jcp.engine.sizing import Sizing, largest_first
from jcp.model.config import Target, build_config, decode_files
from jcp.model.failures import Failure, Reason
from jcp.model.manifests import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    Index,
    Manifest,
    ManifestError,
    RemoteImage,
    parse,
)
from jcp.settings import Inspect


def _list(*platforms: dict[str, str], media: str = DOCKER_LIST) -> bytes:
    entries = [
        {"mediaType": DOCKER_MANIFEST, "size": 1, "digest": f"sha256:{i:064x}", "platform": p}
        for i, p in enumerate(platforms)
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": media, "manifests": entries}).encode()


AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64", "variant": "v8"}
S390X = {"os": "linux", "architecture": "s390x"}
WINDOWS = {"os": "windows", "architecture": "amd64"}
ATTESTATION = {"os": "unknown", "architecture": "unknown"}


@pytest.mark.parametrize(
    ("body", "arch", "picked", "platforms"),
    [
        (_list(AMD64, ARM64), "amd64", 0, ["linux/amd64", "linux/arm64/v8"]),
        (_list(AMD64, ARM64), "arm64", 1, ["linux/amd64", "linux/arm64/v8"]),
        (_list(AMD64, ARM64, media=OCI_INDEX), "arm64", 1, ["linux/amd64", "linux/arm64/v8"]),
        (_list(AMD64, S390X), "arm64", None, ["linux/amd64", "linux/s390x"]),
        (_list(WINDOWS, AMD64), "amd64", 1, ["linux/amd64", "windows/amd64"]),
        (_list(WINDOWS), "amd64", None, ["windows/amd64"]),
        (_list(AMD64, ATTESTATION), "amd64", 0, ["linux/amd64"]),
        (_list({"os": "linux", "architecture": "x86_64"}), "amd64", 0, ["linux/x86_64"]),
        (_list(), "amd64", None, []),
    ],
)
def test_the_platform_a_node_pulls(
    body: bytes, arch: str, picked: int | None, platforms: list[str]
) -> None:
    index = parse(body, None)
    assert isinstance(index, Index)
    entry = index.pick(arch)
    assert (None if entry is None else index.entries.index(entry)) == picked
    assert index.platforms() == platforms


@pytest.mark.parametrize("media", [DOCKER_MANIFEST, OCI_MANIFEST])
def test_a_manifest_size_is_its_config_and_layers(media: str) -> None:
    doc = {
        "schemaVersion": 2,
        "config": {"size": 1234, "digest": "sha256:" + "c" * 64},
        "layers": [{"size": 10_000_000}, {"size": 5}],
    }
    # The media type from the document, or else from the Content-Type header.
    assert parse(json.dumps({**doc, "mediaType": media}).encode(), None) == Manifest(10_001_239, 2)
    assert parse(json.dumps(doc).encode(), f"{media}; charset=utf-8") == Manifest(10_001_239, 2)


C, L1, L2 = ("sha256:" + c * 64 for c in "cde")


@pytest.mark.parametrize(
    ("config", "layers", "blobs"),
    [
        (  # config first, then the layers in order, each with its media type
            {"size": 3, "digest": C, "mediaType": "application/vnd.oci.image.config.v1+json"},
            [{"size": 7, "digest": L1, "mediaType": "l"}, {"size": 0, "digest": L2}],
            (
                Blob(C, 3, "application/vnd.oci.image.config.v1+json"),
                Blob(L1, 7, "l"),
                Blob(L2, 0, ""),
            ),
        ),
        ({"size": 3, "digest": C}, [], (Blob(C, 3, ""),)),
        # a descriptor without a usable digest: sized, but nothing to fetch blob by blob
        ({"size": 3, "digest": C}, [{"size": 7}], ()),
        ({"size": 3, "digest": "sha256:abc"}, [], ()),
        ({"size": 3, "digest": "md5:" + "c" * 32}, [], ()),
        ({"size": 3, "digest": C.upper()}, [], ()),
        ({"size": 3, "digest": 5}, [], ()),
    ],
)
def test_a_manifest_names_its_blobs(
    config: dict[str, object], layers: list[dict[str, object]], blobs: tuple[Blob, ...]
) -> None:
    doc = {"mediaType": OCI_MANIFEST, "config": config, "layers": layers}
    got = parse(json.dumps(doc).encode(), None)
    assert isinstance(got, Manifest)
    assert got.blobs == blobs
    assert got.layers == len(layers)
    assert got.size == sum(int(str(b["size"])) for b in [config, *layers])


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"{", None, "not JSON"),
        (b"[]", None, "not a JSON object"),
        (b'{"schemaVersion": 1, "fsLayers": []}', None, "unsupported manifest media type 'none'"),
        (
            b'{"schemaVersion": 1}',
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "unsupported manifest media type 'application/vnd.docker.distribution.manifest.v1",
        ),
        (json.dumps({"mediaType": DOCKER_MANIFEST}).encode(), None, "no list of layers"),
        (
            json.dumps({"mediaType": OCI_MANIFEST, "config": {}, "layers": []}).encode(),
            None,
            "no valid size",
        ),
        (
            json.dumps(
                {"mediaType": OCI_MANIFEST, "config": {"size": True}, "layers": []}
            ).encode(),
            None,
            "no valid size",
        ),
        (
            json.dumps(
                {"mediaType": OCI_MANIFEST, "config": {"size": 1}, "layers": [{"size": -1}]}
            ).encode(),
            None,
            "no valid size",
        ),
        (json.dumps({"mediaType": OCI_INDEX}).encode(), None, "no list of manifests"),
        (json.dumps({"mediaType": OCI_INDEX, "manifests": [{}]}).encode(), None, "digest"),
        (b"\xff\xfe", None, "not JSON"),
    ],
)
def test_what_is_not_a_manifest_is_said(body: bytes, content_type: str | None, says: str) -> None:
    with pytest.raises(ManifestError, match=says):
        parse(body, content_type)


def test_priority_goes_before_size() -> None:
    """The site's order first: a small image of priority 10 starts before a big one of 0, and
    the big one before a small one of the same priority; unknown sizes lead their priority."""
    entries = [
        {"ref": "r.example/big:1", "registry": "r.example"},
        {"ref": "r.example/urgent:1", "registry": "r.example", "priority": 10},
        {"ref": "r.example/small:1", "registry": "r.example"},
        {"ref": "r.example/unsized:1", "registry": "r.example"},
        {"ref": "r.example/last:1", "registry": "r.example", "priority": -5},
    ]
    text = json.dumps(entries).encode()
    targets = list(
        build_config(decode_files("image.config", text, None, None)).select("amd64").targets
    )
    sizes = {"big": 10_000, "urgent": 10, "small": 20, "last": 99_999}
    known: dict[object, object] = {
        t.key: RemoteImage("d", sizes[t.image.repository])
        for t in targets
        if t.image.repository in sizes
    }
    order = [t.image.repository for t in largest_first(targets, known)]  # type: ignore[arg-type]
    assert order == ["urgent", "unsized", "big", "small", "last"]


def _targets(*refs: str) -> list[Target]:
    text = json.dumps([{"ref": r, "registry": r.split("/")[0]} for r in refs]).encode()
    config = build_config(decode_files("image.config", text, None, None))
    return list(config.select("amd64").targets)


def test_largest_first_with_unknown_sizes_ahead() -> None:
    names = ("small", "unknown", "big", "gone", "medium", "also-unknown")
    targets = _targets(*(f"r.example/{name}:1" for name in names))
    order_in_config = [t.image.repository for t in targets]
    known: dict[object, object] = {
        targets[order_in_config.index("small")].key: RemoteImage("d", 10),
        targets[order_in_config.index("big")].key: RemoteImage("d", 10_000),
        targets[order_in_config.index("medium")].key: RemoteImage("d", 500),
        targets[order_in_config.index("gone")].key: Failure(Reason.PLATFORM, "not built"),
    }
    order = [t.image.repository for t in largest_first(targets, known)]  # type: ignore[arg-type]
    assert order == ["unknown", "gone", "also-unknown", "big", "medium", "small"]


@pytest.mark.parametrize(
    ("mode", "registry", "asked"),
    [
        (Inspect.AUTO, "r.example", True),
        (Inspect.AUTO, "docker.io", False),  # Hub counts manifest GETs as pulls
        (Inspect.ALWAYS, "docker.io", True),
        (Inspect.NEVER, "r.example", False),
        (Inspect.AUTO, "fallen.example", False),  # a registry that cannot be asked
        (Inspect.AUTO, "metered.example", False),  # it sent RateLimit headers
        (Inspect.ALWAYS, "metered.example", True),
    ],
)
def test_which_registries_are_inspected(mode: Inspect, registry: str, asked: bool) -> None:
    [target] = _targets(f"{registry}/a/b:1")

    class Remote:
        """`asks` decides without the network, from what earlier answers said."""

        def metered(self, registry: str) -> bool:
            return registry == "metered.example"

    gate = RegistryGate(60.0)
    gate.fall_back("fallen.example", "refused")
    sizing = Sizing(Remote(), mode, gate, Credentials(Path("/nonexistent")))  # type: ignore[arg-type]
    assert sizing.asks(target) is asked
