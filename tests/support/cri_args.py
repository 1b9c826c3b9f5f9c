"""jcp's arguments for a CRI runtime, whether the CRI holds an image, and an image pushed for it."""

from __future__ import annotations

from devstack.containerd import Containerd
from devstack.images import Layer, Pushed, RegistryClient
from jcp.model.refs import parse_reference
from jcp.runtime.cri import CriRuntime


def cri_args(containerd: Containerd) -> list[str]:
    return ["--runtime", "cri", "--runtime-endpoint", containerd.endpoint]


async def present(cri: CriRuntime, ref: str) -> bool:
    return await cri.image_status(parse_reference(ref)) is not None


def push_image(host: str, repo: str, layers: list[Layer]) -> Pushed:
    """REPO:1 of LAYERS pushed to the registry at HOST, on a client closed at once."""
    client = RegistryClient(host)
    try:
        return client.push_image(repo, "1", layers)
    finally:
        client.close()
