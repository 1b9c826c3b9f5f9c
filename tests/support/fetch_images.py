"""What the blob-fetch tests share besides fixtures (tests/support/fetch_fixtures.py): a
pushed image as jcp's client reads it through a proxy, and the leases jcp left."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from devstack.images import RegistryClient as Pusher
from devstack.images import make_layer
from jcp.model.arch import canonical_arch
from jcp.model.credentials import RegistryAuth
from jcp.model.manifests import Blob
from jcp.model.refs import ImageRef
from jcp.registry.client import RegistryClient
from jcp.runtime.content_store import ContentStore
from tests.support.blob_proxy import BlobProxy

MiB = 1024 * 1024
ARCH = canonical_arch(platform.machine()) or "amd64"


@dataclass(frozen=True)
class Image:
    ref: ImageRef
    blobs: tuple[Blob, ...]

    @property
    def layer(self) -> Blob:
        return max(self.blobs, key=lambda b: b.size)


async def pushed(
    pusher: Pusher, repo: str, proxy: BlobProxy, size: int, auth: RegistryAuth | None = None
) -> Image:
    """A one-layer image of about SIZE bytes, its blobs as jcp's client reads them through
    PROXY (RegistryClient.inspect)."""
    pusher.push_image(repo, "1", [make_layer(size)], ARCH)
    ref = ImageRef(proxy.host, repo, "1")
    client = RegistryClient()
    try:
        remote = await client.inspect(ref, auth, ARCH)
    finally:
        await client.close()
    assert len(remote.blobs) == 2
    assert sum(b.size for b in remote.blobs) == remote.size
    return Image(ref, remote.blobs)


async def no_jcp_leases(store: ContentStore) -> bool:
    return not [lease for lease in await store.leases() if lease.startswith("jcp-fetch-")]
