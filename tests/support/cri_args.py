"""jcp's arguments for a CRI runtime, and whether the CRI holds an image."""

from __future__ import annotations

from devstack.containerd import Containerd
from jcp.model.refs import parse_reference
from jcp.runtime.cri import CriRuntime


def cri_args(containerd: Containerd) -> list[str]:
    return ["--runtime", "cri", "--runtime-endpoint", containerd.endpoint]


async def present(cri: CriRuntime, ref: str) -> bool:
    return await cri.image_status(parse_reference(ref)) is not None
