"""What a registry's manifest says before anything is pulled: which platforms a manifest list
was built for, and how many compressed bytes the node's platform needs.

Pure: the registry client hands the bytes and the Content-Type over, so every rule (media
types, the platform match, sizes) is a row in a table test. Formats: Docker's v2 manifest and
manifest list, OCI's manifest and index. Schema 1 and anything else is `ManifestError`: jcp
then knows nothing in advance and the runtime's own pull decides, as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jcp.model import jsonsafe
from jcp.model.arch import canonical_arch
from jcp.model.errors import JcpError

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEXES = frozenset({DOCKER_LIST, OCI_INDEX})
MANIFESTS = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""distribution refuses manifests over 4 MiB; a larger answer is not a manifest."""


class ManifestError(JcpError):
    """The registry's answer is not a manifest jcp can read."""


@dataclass(frozen=True)
class Entry:
    """One platform's manifest in a list."""

    digest: str
    os: str
    arch: str | None
    """Canonical architecture (`amd64`, `arm64`...), None for one jcp does not know."""
    raw_arch: str
    variant: str

    @property
    def platform(self) -> str:
        variant = f"/{self.variant}" if self.variant else ""
        return f"{self.os}/{self.raw_arch}{variant}"


@dataclass(frozen=True)
class Index:
    entries: tuple[Entry, ...]

    def pick(self, arch: str) -> Entry | None:
        """The entry a Linux node of ARCH pulls, as the runtimes choose: os linux and the same
        architecture (any arm64 variant: v8 is the only one in use)."""
        for entry in self.entries:
            if entry.os == "linux" and entry.arch == arch:
                return entry
        return None

    def platforms(self) -> list[str]:
        """What the list was built for, attestation entries (`unknown/unknown`) left out."""
        return sorted({e.platform for e in self.entries if e.os != "unknown"})


@dataclass(frozen=True)
class Blob:
    """One content-addressed blob a manifest names: what a fetch asks the registry for."""

    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class Manifest:
    size: int
    """Compressed bytes: the config blob and every layer."""
    layers: int
    blobs: tuple[Blob, ...] = ()
    """The config first, then the layers in order. Empty when any descriptor lacks a valid
    digest: such a manifest can be sized but not fetched blob by blob (the runtime pulls)."""


def media_type(content_type: str | None, doc: dict[str, jsonsafe.JsonValue]) -> str:
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    return (content_type or "").split(";")[0].strip()


def parse(body: bytes, content_type: str | None) -> Index | Manifest:
    """An index (list) or a manifest; raises ManifestError naming what is wrong."""
    try:
        doc = jsonsafe.loads(body, limit=MAX_MANIFEST_BYTES)
    except jsonsafe.JsonError as exc:
        raise ManifestError(f"manifest is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    kind = media_type(content_type, doc)
    if kind in INDEXES:
        return Index(tuple(_entries(doc)))
    if kind in MANIFESTS:
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ManifestError("manifest has no list of layers")
        descriptors = [doc.get("config"), *layers]
        sizes = [_size(b) for b in descriptors]
        return Manifest(sum(sizes), len(layers), _blobs(descriptors, sizes))
    raise ManifestError(f"unsupported manifest media type {kind or 'none'!r}")


def _entries(doc: dict[str, jsonsafe.JsonValue]) -> list[Entry]:
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise ManifestError("manifest list has no list of manifests")
    out = []
    for item in manifests:
        if not isinstance(item, dict) or not isinstance(item.get("digest"), str):
            raise ManifestError("manifest list entry without a digest")
        platform = item.get("platform")
        platform = platform if isinstance(platform, dict) else {}
        os_, arch, variant = (platform.get(k) for k in ("os", "architecture", "variant"))
        raw = arch if isinstance(arch, str) else "unknown"
        out.append(
            Entry(
                digest=str(item["digest"]),
                os=os_ if isinstance(os_, str) else "unknown",
                arch=canonical_arch(raw),
                raw_arch=raw,
                variant=variant if isinstance(variant, str) else "",
            )
        )
    return out


def _blobs(descriptors: list[jsonsafe.JsonValue], sizes: list[int]) -> tuple[Blob, ...]:
    out = []
    for descriptor, size in zip(descriptors, sizes, strict=True):
        assert isinstance(descriptor, dict)  # _size checked it
        digest, media = descriptor.get("digest"), descriptor.get("mediaType")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            return ()
        out.append(Blob(digest, size, media if isinstance(media, str) else ""))
    return tuple(out)


def _size(blob: jsonsafe.JsonValue) -> int:
    if not isinstance(blob, dict):
        raise ManifestError("manifest blob descriptor is not an object")
    size = blob.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError("manifest blob descriptor has no valid size")
    return size


@dataclass(frozen=True)
class RemoteImage:
    """What the registry says about a tag for this node, before the runtime pulls it."""

    digest: str
    """The digest the reference names (the list's, for a multi-arch image)."""
    size: int
    """Compressed bytes of the node's platform (config + layers)."""
    platforms: tuple[str, ...] = ()
    """The list's platforms; empty for a single-platform manifest."""
    blobs: tuple[Blob, ...] = ()
    """The node's platform's config and layers (`Manifest.blobs`): what a fetch asks for."""
