"""Synthetic images pushed through the registry v2 HTTP API.

No Docker Hub here, and `docker push` needs images built first: pushing blobs and manifests
directly makes images of any size, layer count, shared base and architecture set in
milliseconds, which the tests and the benchmark both need.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import tarfile
import urllib.parse
from dataclasses import dataclass, field

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_VARIANTS = {"arm64": "v8"}


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Layer:
    blob: bytes = field(repr=False)
    digest: str
    diff_id: str

    @property
    def size(self) -> int:
        return len(self.blob)


def make_layer(size: int, seed: int | None = None, name: str = "data") -> Layer:
    """A gzip'd tar of one file of SIZE random bytes; SEED makes it reproducible (shared bases)."""
    # Test content, not key material: a seeded generator makes shared base layers repeatable.
    content = random.Random(seed).randbytes(size) if seed is not None else os.urandom(size)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(f"{name}-{hashlib.sha256(content[:64]).hexdigest()[:12]}")
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    raw = buf.getvalue()
    # Random bytes do not compress; level 0 keeps pushing fast and sizes exact.
    blob = gzip.compress(raw, compresslevel=0, mtime=0)
    return Layer(blob=blob, digest=_sha256(blob), diff_id=_sha256(raw))


@dataclass(frozen=True)
class Pushed:
    """What a push produced: the reference to pull and the digests to check against."""

    reference: str
    digest: str
    size: int


class RegistryError(Exception):
    pass


class RegistryClient:
    """A minimal registry v2 client over one keep-alive connection (not thread-safe)."""

    def __init__(self, host: str, user: str | None = None, password: str | None = None) -> None:
        self.host = host
        self._auth: str | None = None
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"
        self._conn: http.client.HTTPConnection | None = None
        self._blob_home: dict[str, str] = {}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        hdrs = dict(headers or {})
        if self._auth:
            hdrs["Authorization"] = self._auth
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, timeout=60)
            try:
                self._conn.request(method, path, body=body, headers=hdrs)
                resp = self._conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
                continue
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise AssertionError("unreachable")

    def push_blob(self, repo: str, blob: bytes, digest: str | None = None) -> str:
        digest = digest or _sha256(blob)
        status, _, _ = self._request("HEAD", f"/v2/{repo}/blobs/{digest}")
        if status == 200:
            return digest
        start = f"/v2/{repo}/blobs/uploads/"
        home = self._blob_home.get(digest)
        if home and home != repo:
            start += "?" + urllib.parse.urlencode({"mount": digest, "from": home})
        status, headers, body = self._request("POST", start, b"")
        if status == 201:
            return digest
        if status != 202:
            raise RegistryError(f"starting upload to {repo}: HTTP {status} {body[:200]!r}")
        location = urllib.parse.urlsplit(headers["location"])
        query = (
            location.query
            + ("&" if location.query else "")
            + urllib.parse.urlencode({"digest": digest})
        )
        status, _, body = self._request(
            "PUT",
            f"{location.path}?{query}",
            blob,
            {"Content-Type": "application/octet-stream", "Content-Length": str(len(blob))},
        )
        if status != 201:
            raise RegistryError(f"uploading blob to {repo}: HTTP {status} {body[:200]!r}")
        self._blob_home.setdefault(digest, repo)
        return digest

    def put_manifest(self, repo: str, ref: str, manifest: dict[str, object], media: str) -> str:
        body = json.dumps(manifest).encode()
        status, _, text = self._request(
            "PUT", f"/v2/{repo}/manifests/{ref}", body, {"Content-Type": media}
        )
        if status != 201:
            raise RegistryError(f"putting manifest {repo}:{ref}: HTTP {status} {text[:300]!r}")
        return _sha256(body)

    def _image_manifest(
        self, repo: str, layers: list[Layer], arch: str
    ) -> tuple[dict[str, object], int]:
        for layer in layers:
            self.push_blob(repo, layer.blob, layer.digest)
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                **({"variant": _VARIANTS[arch]} if arch in _VARIANTS else {}),
                "created": "2026-01-01T00:00:00Z",
                "config": {"Labels": {"jcp.test": repo}},
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            }
        ).encode()
        config_digest = self.push_blob(repo, config)
        manifest: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": config_digest},
            "layers": [
                {"mediaType": LAYER_GZIP, "size": layer.size, "digest": layer.digest}
                for layer in layers
            ],
        }
        return manifest, sum(layer.size for layer in layers)

    def push_image(self, repo: str, tag: str, layers: list[Layer], arch: str = "amd64") -> Pushed:
        manifest, size = self._image_manifest(repo, layers, arch)
        digest = self.put_manifest(repo, tag, manifest, MANIFEST_V2)
        return Pushed(f"{self.host}/{repo}:{tag}", digest, size)

    def push_multiarch(self, repo: str, tag: str, layers_by_arch: dict[str, list[Layer]]) -> Pushed:
        """A manifest list with one image per architecture (each with its own layers)."""
        entries = []
        total = 0
        for arch, layers in layers_by_arch.items():
            manifest, size = self._image_manifest(repo, layers, arch)
            body = json.dumps(manifest).encode()
            digest = self.put_manifest(repo, _sha256(body), manifest, MANIFEST_V2)
            platform = {"architecture": arch, "os": "linux"}
            if arch in _VARIANTS:
                platform["variant"] = _VARIANTS[arch]
            entries.append(
                {
                    "mediaType": MANIFEST_V2,
                    "size": len(body),
                    "digest": digest,
                    "platform": platform,
                }
            )
            total += size
        index = {"schemaVersion": 2, "mediaType": MANIFEST_LIST, "manifests": entries}
        digest = self.put_manifest(repo, tag, index, MANIFEST_LIST)
        return Pushed(f"{self.host}/{repo}:{tag}", digest, total)


def push_synthetic(
    client: RegistryClient,
    repo: str,
    tag: str = "latest",
    *,
    layers: int = 2,
    layer_size: int = 64 * 1024,
    base: Layer | None = None,
    arch: str = "amd64",
) -> Pushed:
    """An image of LAYERS unique random layers on top of an optional shared BASE layer."""
    stack = ([base] if base is not None else []) + [make_layer(layer_size) for _ in range(layers)]
    return client.push_image(repo, tag, stack, arch)
