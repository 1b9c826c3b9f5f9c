"""The CRI v1 `ImageService` as an `ImageRuntime` (grpc.aio): containerd, CRI-O, cri-dockerd.

This is the image store the kubelet uses since Kubernetes 1.24. Credentials from the mounted
dockerconfigjson secrets go into each PullImage's `AuthConfig` and nowhere else. The CRI has no
platform field and reports no progress: the runtime pulls for the node's own platform, and the
bytes of a pull are the image's size once it is there. Error texts are mapped in cri_errors.py.
"""

from __future__ import annotations

import asyncio
import platform

import grpc
from grpc import aio

from jcp.model.arch import canonical_arch
from jcp.model.credentials import RegistryAuth
from jcp.model.refs import ImageRef
from jcp.runtime.base import (
    FsUsage,
    ImageStatus,
    ProgressCallback,
    Pulled,
    RuntimeFailure,
    RuntimeInfo,
)
from jcp.runtime.cri_api import api_pb2, api_pb2_grpc
from jcp.runtime.cri_errors import classify

_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),  # ListImages of thousands of images
    ("grpc.enable_retries", 0),
    # A restarted runtime must be seen within seconds, not after gRPC's 120 s backoff cap; and
    # a channel of our own must not inherit another channel's backoff through a shared pool.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.use_local_subchannel_pool", 1),
)
_CALL_TIMEOUT = 30.0


def auth_config(auth: RegistryAuth) -> api_pb2.AuthConfig:
    """No server_address: containerd parses it as a URL and drops the credentials when its host
    differs from the host it resolves (`docker.io` is `registry-1.docker.io` there); jcp already
    picked these credentials for the host of this very pull."""
    if auth.identitytoken:
        return api_pb2.AuthConfig(identity_token=auth.identitytoken)
    return api_pb2.AuthConfig(username=auth.username or "", password=auth.password or "")


def _status(image: api_pb2.Image) -> ImageStatus:
    return ImageStatus(
        id=image.id,
        repo_tags=tuple(image.repo_tags),
        repo_digests=tuple(image.repo_digests),
        size=int(image.size),
        pinned=bool(image.pinned),
    )


def _target(image: ImageRef) -> str:
    """What the CRI is asked for: registry/repository with the tag or the digest."""
    return str(image)


class CriRuntime:
    """An `ImageRuntime` over one CRI endpoint (unix:///path/to.sock)."""

    def __init__(self, endpoint: str, name: str = "cri") -> None:
        self._endpoint = endpoint
        self._name = name
        self._channel = aio.insecure_channel(endpoint, options=_OPTIONS)
        # grpc_tools types the messages (.pyi), not the service stubs: their calls are Any.
        self._images = api_pb2_grpc.ImageServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._runtime = api_pb2_grpc.RuntimeServiceStub(self._channel)  # type: ignore[no-untyped-call]

    @property
    def endpoint(self) -> str:
        return self._endpoint

    async def info(self) -> RuntimeInfo:
        try:
            version = await self._runtime.Version(api_pb2.VersionRequest(), timeout=10)
            fs = await self._images.ImageFsInfo(api_pb2.ImageFsInfoRequest(), timeout=10)
        except grpc.RpcError as exc:
            raise RuntimeFailure(classify(exc, self._endpoint)) from None
        raw = platform.machine()  # the agent runs on the node: the node's architecture
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

    async def image_status(self, image: ImageRef) -> ImageStatus | None:
        request = api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=_target(image)))
        try:
            response = await self._images.ImageStatus(request, timeout=_CALL_TIMEOUT)
        except grpc.RpcError as exc:
            raise RuntimeFailure(classify(exc, self._endpoint)) from None
        if not response.HasField("image") or not response.image.id:
            return None
        return _status(response.image)

    async def list_images(self) -> list[ImageStatus]:
        try:
            response = await self._images.ListImages(
                api_pb2.ListImagesRequest(), timeout=_CALL_TIMEOUT
            )
        except grpc.RpcError as exc:
            raise RuntimeFailure(classify(exc, self._endpoint)) from None
        return [_status(i) for i in response.images]

    async def pull(
        self,
        image: ImageRef,
        *,
        auth: RegistryAuth | None,
        platform: str | None,
        on_progress: ProgressCallback | None,
    ) -> Pulled:
        before = await self.image_status(image)
        request = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=_target(image)))
        if auth is not None:
            request.auth.CopyFrom(auth_config(auth))
        call = self._images.PullImage(request)
        try:
            await call
        except asyncio.CancelledError:
            call.cancel()  # closes the stream: containerd abandons the pull
            raise
        except grpc.RpcError as exc:
            raise RuntimeFailure(classify(exc, self._endpoint)) from None
        after = await self.image_status(image)
        if after is None:
            return Pulled(newer=True, digest=None, bytes=0)
        digest = next(
            (d.split("@", 1)[1] for d in after.repo_digests if d.split("@", 1)[0] == image.name),
            None,
        )
        newer = before is None or before.id != after.id
        return Pulled(newer=newer, digest=digest, bytes=after.size if newer else 0)

    async def remove(self, image: ImageRef) -> None:
        request = api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=_target(image)))
        try:
            await self._images.RemoveImage(request, timeout=_CALL_TIMEOUT)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return
            raise RuntimeFailure(classify(exc, self._endpoint)) from None

    async def images_in_use(self) -> set[str]:
        try:
            response = await self._runtime.ListContainers(
                api_pb2.ListContainersRequest(), timeout=_CALL_TIMEOUT
            )
        except grpc.RpcError as exc:
            raise RuntimeFailure(classify(exc, self._endpoint)) from None
        used: set[str] = set()
        for c in response.containers:
            used.add(c.image_ref)
            used.add(c.image.image)
        used.discard("")
        return used

    async def fs_usage(self) -> FsUsage | None:
        try:
            fs = await self._images.ImageFsInfo(api_pb2.ImageFsInfoRequest(), timeout=10)
        except grpc.RpcError as exc:
            raise RuntimeFailure(classify(exc, self._endpoint)) from None
        if not fs.image_filesystems:
            return None
        f = fs.image_filesystems[0]
        return FsUsage(
            mountpoint=f.fs_id.mountpoint or None,
            used_bytes=int(f.used_bytes.value),
            inodes_used=int(f.inodes_used.value),
        )

    async def close(self) -> None:
        await self._channel.close()
