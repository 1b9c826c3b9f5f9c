"""What the engine asks of a registry: a tag's current digest, so that a present image whose
tag has not moved costs one HEAD and no runtime call at all; and, for an image to pull, its
size and whether it was built for the node (`sizing.py`).

A protocol, so that the engine never imports the registry client; the composition root plugs
`jcp.registry` in. Registries that cannot be asked (air-gapped nodes pulling through a daemon
mirror, a proxy, a HEAD refused) fall back to the runtime's own pull, said once per registry.
"""

from __future__ import annotations

from typing import Protocol

from jcp.model.credentials import RegistryAuth
from jcp.model.failures import RegistryFailure
from jcp.model.manifests import RemoteImage
from jcp.model.refs import ImageRef

RemoteError = RegistryFailure


class Remote(Protocol):
    async def digest(self, image: ImageRef, auth: RegistryAuth | None) -> str:
        """The digest the registry serves for IMAGE's tag now; raises RemoteError."""
        ...

    async def inspect(self, image: ImageRef, auth: RegistryAuth | None, arch: str) -> RemoteImage:
        """IMAGE's compressed size for a Linux node of ARCH; raises RemoteError (reason
        `platform` when its manifest list was not built for ARCH)."""
        ...

    def metered(self, registry: str) -> bool:
        """REGISTRY said it rate-limits pulls (RateLimit headers): its GETs are counted."""
        ...

    async def close(self) -> None: ...
