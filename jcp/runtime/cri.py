"""The CRI v1 `ImageService` as an `ImageRuntime`: containerd, CRI-O, cri-dockerd.

This is the image store the kubelet uses since Kubernetes 1.24. Credentials from the mounted
dockerconfigjson secrets go into each PullImage's `AuthConfig` and nowhere else. The CRI has no
platform field and reports no progress: the runtime pulls for the node's own platform, and the
bytes of a pull are the image's size once it is there. Error texts are mapped in cri_errors.py.
The calls go through `grpc_transport` (grpclib, on every platform).
"""

from __future__ import annotations

import asyncio
import platform
import re
from collections.abc import Awaitable
from typing import TypeVar

from jcp.model.arch import canonical_arch
from jcp.model.credentials import RegistryAuth
from jcp.model.failures import Reason
from jcp.model.refs import ImageRef
from jcp.runtime.base import (
    FsUsage,
    ImageStatus,
    ProgressCallback,
    Pulled,
    RuntimeFailure,
    RuntimeInfo,
)
from jcp.runtime.cri_api import api_pb2 as pb
from jcp.runtime.cri_config import RuntimeTuning
from jcp.runtime.cri_config import parse as parse_tuning
from jcp.runtime.cri_errors import classify
from jcp.runtime.grpc_transport import open_channel

_IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
_CALL_TIMEOUT = 30.0
"""Every call but PullImage, whose bound is the engine's per-pull timeout (it cancels)."""

_T = TypeVar("_T")
_V1 = "/runtime.v1."


def auth_config(auth: RegistryAuth) -> pb.AuthConfig:
    """No server_address: containerd parses it as a URL and drops the credentials when its host
    differs from the host it resolves (`docker.io` is `registry-1.docker.io` there), and a
    `host:port` without a scheme fails the whole pull ("first path segment in URL cannot contain
    colon"); jcp already picked these credentials for the host of this very pull."""
    if auth.identitytoken:
        return pb.AuthConfig(identity_token=auth.identitytoken)
    return pb.AuthConfig(username=auth.username or "", password=auth.password or "")


def _status(image: pb.Image) -> ImageStatus:
    return ImageStatus(
        id=image.id,
        repo_tags=tuple(image.repo_tags),
        repo_digests=tuple(image.repo_digests),
        size=int(image.size),
        pinned=bool(image.pinned),
    )


def _spec(image: ImageRef) -> pb.ImageSpec:
    """What the CRI is asked for: registry/repository with the tag or the digest."""
    return pb.ImageSpec(image=str(image))


def _digest(status: ImageStatus, image: ImageRef) -> str | None:
    """The manifest digest the runtime recorded for IMAGE's repository."""
    for ref in status.repo_digests:
        name, _, digest = ref.partition("@")
        if name == image.name and digest:
            return digest
    return None


class CriRuntime:
    """An `ImageRuntime` over one CRI endpoint (unix:///path/to.sock). One channel for its
    life: it reconnects when the runtime restarts."""

    def __init__(self, endpoint: str, name: str = "cri") -> None:
        self._endpoint = endpoint
        self._name = name
        ch = self._channel = open_channel(endpoint)
        runtime, images = _V1 + "RuntimeService/", _V1 + "ImageService/"
        self._version = ch.unary(runtime + "Version", pb.VersionRequest, pb.VersionResponse)
        self._runtime_status = ch.unary(runtime + "Status", pb.StatusRequest, pb.StatusResponse)
        self._containers = ch.unary(
            runtime + "ListContainers", pb.ListContainersRequest, pb.ListContainersResponse
        )
        self._fs_info = ch.unary(
            images + "ImageFsInfo", pb.ImageFsInfoRequest, pb.ImageFsInfoResponse
        )
        self._status = ch.unary(
            images + "ImageStatus", pb.ImageStatusRequest, pb.ImageStatusResponse
        )
        self._list = ch.unary(images + "ListImages", pb.ListImagesRequest, pb.ListImagesResponse)
        self._pull = ch.unary(images + "PullImage", pb.PullImageRequest, pb.PullImageResponse)
        self._remove = ch.unary(
            images + "RemoveImage", pb.RemoveImageRequest, pb.RemoveImageResponse
        )

    @property
    def endpoint(self) -> str:
        return self._endpoint

    async def _call(self, call: Awaitable[_T]) -> _T:
        """Await one call; whatever goes wrong leaves as a RuntimeFailure."""
        try:
            return await call
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise RuntimeFailure(classify(exc, self._endpoint)) from None

    async def info(self) -> RuntimeInfo:
        version = await self._call(self._version(pb.VersionRequest(), deadline=_CALL_TIMEOUT))
        fs = await self._call(self._fs_info(pb.ImageFsInfoRequest(), deadline=_CALL_TIMEOUT))
        raw = platform.machine()  # the CRI has no arch field; the agent runs on the node
        mounts = [f.fs_id.mountpoint for f in fs.image_filesystems if f.fs_id.mountpoint]
        return RuntimeInfo(
            kind="cri",
            name=version.runtime_name or self._name,
            endpoint=self._endpoint,
            version=version.runtime_version,
            api_version=version.runtime_api_version,
            arch=canonical_arch(raw),
            raw_arch=raw,
            reports_progress=False,
            supports_platform=False,
            image_root=mounts[0] if mounts else None,
        )

    async def tuning(self) -> RuntimeTuning:
        """containerd's settings that bear on pulls (cri_config.py); empty for other runtimes
        or when the runtime does not say."""
        request = pb.StatusRequest(verbose=True)
        response = await self._call(self._runtime_status(request, deadline=_CALL_TIMEOUT))
        return parse_tuning(dict(response.info))

    async def image_status(self, image: ImageRef) -> ImageStatus | None:
        request = pb.ImageStatusRequest(image=_spec(image))
        response = await self._call(self._status(request, deadline=_CALL_TIMEOUT))
        if not response.HasField("image") or not response.image.id:
            return None  # the CRI answers an absent image with an empty status, not an error
        return _status(response.image)

    async def list_images(self) -> list[ImageStatus]:
        response = await self._call(self._list(pb.ListImagesRequest(), deadline=_CALL_TIMEOUT))
        return [_status(i) for i in response.images]

    async def pull(
        self,
        image: ImageRef,
        *,
        auth: RegistryAuth | None,
        platform: str | None,  # unused: the CRI pulls for the node's own platform
        on_progress: ProgressCallback | None,  # unused: the CRI reports no progress
    ) -> Pulled:
        before = await self.image_status(image)
        request = pb.PullImageRequest(image=_spec(image))
        if auth is not None:
            request.auth.CopyFrom(auth_config(auth))
        # No deadline: the engine's per-pull timeout cancels this task, and cancelling it ends
        # the RPC: containerd abandons the pull.
        await self._call(self._pull(request))
        after = await self.image_status(image)
        if after is None:  # removed between the pull and the look; it was pulled all the same
            return Pulled(newer=True, digest=None, bytes=0)
        newer = before is None or before.id != after.id
        return Pulled(newer=newer, digest=_digest(after, image), bytes=after.size if newer else 0)

    async def remove(self, image: ImageRef) -> None:
        request = pb.RemoveImageRequest(image=_spec(image))
        try:
            await self._call(self._remove(request, deadline=_CALL_TIMEOUT))
        except RuntimeFailure as exc:
            # containerd answers OK for an absent image; other runtimes may say "not found".
            if exc.failure.reason != Reason.NOT_FOUND:
                raise

    async def images_in_use(self) -> set[str]:
        response = await self._call(
            self._containers(pb.ListContainersRequest(), deadline=_CALL_TIMEOUT)
        )
        used: set[str] = set()
        for c in response.containers:
            used.add(c.image_ref)
            used.add(c.image.image)
        used.discard("")
        # containerd reports image_ref as the image id; some CRI-O versions report a
        # `repo@digest` instead: resolve every name to its id too, so purge can never miss one.
        for name in [u for u in used if not _IMAGE_ID.match(u)]:
            request = pb.ImageStatusRequest(image=pb.ImageSpec(image=name))
            status = await self._call(self._status(request, deadline=_CALL_TIMEOUT))
            if status.HasField("image") and status.image.id:
                used.add(status.image.id)
        return used

    async def fs_usage(self) -> FsUsage | None:
        fs = await self._call(self._fs_info(pb.ImageFsInfoRequest(), deadline=_CALL_TIMEOUT))
        if not fs.image_filesystems:
            return None
        f = fs.image_filesystems[0]
        return FsUsage(
            mountpoint=f.fs_id.mountpoint or None,
            used_bytes=int(f.used_bytes.value) if f.HasField("used_bytes") else None,
            inodes_used=int(f.inodes_used.value) if f.HasField("inodes_used") else None,
        )

    async def close(self) -> None:
        await self._channel.close()
