"""The Docker Engine API as an `ImageRuntime` (aiodocker): every Docker string lives here.

Pulls go through `POST /images/create` with an explicit tag or digest and `platform`, so a
manifest list resolves to the node's image; credentials go only into that pull's
X-Registry-Auth header. Closing the pull stream (on cancel) makes the daemon abandon the pull.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

import aiodocker
import aiohttp
from aiodocker.jsonstream import json_stream_stream
from aiodocker.utils import compose_auth_header

from jcp.model.arch import canonical_arch
from jcp.model.credentials import RegistryAuth
from jcp.model.refs import ImageRef
from jcp.runtime.base import (
    FsUsage,
    ImageStatus,
    ProgressCallback,
    Pulled,
    PullProgress,
    RuntimeFailure,
    RuntimeInfo,
)
from jcp.runtime.docker_errors import classify

NODE_SOCKET = "unix:///var/run/docker.sock"


def default_host() -> str:
    return os.environ.get("DOCKER_HOST") or NODE_SOCKET


_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)
"""A pull is bounded by the engine (its timeout and stall detection), not by the HTTP client."""


def auth_header(auth: RegistryAuth) -> dict[str, str]:
    """The JSON object Docker expects (base64url-encoded) in X-Registry-Auth."""
    if auth.identitytoken:
        return {"identitytoken": auth.identitytoken, "serveraddress": auth.host}
    return {
        "username": auth.username or "",
        "password": auth.password or "",
        "serveraddress": auth.host,
    }


@dataclass
class _Layers:
    """Live byte counts of one pull from Docker's per-layer progress events."""

    layers: dict[str, tuple[int, int]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    partial: dict[str, int] = field(default_factory=dict)
    """Per layer, the last count below its total: when a download breaks off, dockerd fills
    the bar to 100 % and then says "Retrying in N seconds"; the bytes did not arrive."""

    def update(self, event: dict[str, Any]) -> bool:
        layer = event.get("id")
        status = str(event.get("status", ""))
        if not isinstance(layer, str):
            return False
        detail = event.get("progressDetail") or {}
        self.status[layer] = status
        if status.startswith("Retrying"):
            _, total = self.layers.get(layer, (0, 0))
            self.layers[layer] = (self.partial.get(layer, 0), total)
        elif status == "Downloading":
            current, total = int(detail.get("current", 0)), int(detail.get("total", 0))
            if current < total:
                self.partial[layer] = current
            self.layers[layer] = (current, max(total, current))
        elif status in ("Download complete", "Verifying Checksum"):
            _, total = self.layers.get(layer, (0, 0))
            self.layers[layer] = (total, total)
        return True

    def snapshot(self) -> PullProgress:
        return PullProgress(
            current=sum(c for c, _ in self.layers.values()),
            total=sum(t for _, t in self.layers.values()),
            # The daemon downloads 3 layers at a time for all pulls (max-concurrent-downloads).
            queued=any(s in ("Waiting", "Pulling fs layer") for s in self.status.values()),
        )


def _status(doc: dict[str, Any]) -> ImageStatus:
    return ImageStatus(
        id=str(doc.get("Id", "")),
        repo_tags=tuple(doc.get("RepoTags") or ()),
        repo_digests=tuple(doc.get("RepoDigests") or ()),
        size=int(doc.get("Size") or 0),
    )


class DockerRuntime:
    """An `ImageRuntime` over one Docker daemon."""

    def __init__(self, host: str) -> None:
        self._host = host
        self._docker = aiodocker.Docker(url=host)

    @property
    def endpoint(self) -> str:
        return self._host

    async def info(self) -> RuntimeInfo:
        try:
            info, version = await asyncio.gather(self._docker.system.info(), self._docker.version())
        except Exception as exc:
            raise RuntimeFailure(classify(exc)) from None
        raw = str(info.get("Architecture", ""))
        return RuntimeInfo(
            kind="docker",
            name="docker",
            endpoint=self._host,
            version=str(version.get("Version", "")),
            api_version=str(version.get("ApiVersion", "")),
            arch=canonical_arch(raw),
            raw_arch=raw,
            reports_progress=True,
            supports_platform=True,
            image_root=str(info.get("DockerRootDir", "")) or None,
        )

    async def image_status(self, image: ImageRef) -> ImageStatus | None:
        try:
            doc = await self._docker.images.inspect(str(image))
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            raise RuntimeFailure(classify(exc)) from None
        except Exception as exc:
            raise RuntimeFailure(classify(exc)) from None
        return _status(doc)

    async def list_images(self) -> list[ImageStatus]:
        try:
            docs = await self._docker.images.list()
        except Exception as exc:
            raise RuntimeFailure(classify(exc)) from None
        return [_status(d) for d in docs]

    async def pull(
        self,
        image: ImageRef,
        *,
        auth: RegistryAuth | None,
        platform: str | None,
        on_progress: ProgressCallback | None,
    ) -> Pulled:
        from_image = image.name if image.digest is None else str(image)
        tag = image.tag if image.digest is None else None
        layers = _Layers()
        newer, digest = False, None
        params = {"fromImage": from_image, **({"tag": tag} if tag else {})}
        if platform:
            params["platform"] = platform
        headers = {}
        if auth is not None:  # what aiodocker's images.pull sends, for the image's registry
            registry = from_image.partition("/")[0]
            headers["X-Registry-Auth"] = compose_auth_header(auth_header(auth), registry)
        try:
            # Not images.pull: its stream never closes the HTTP response when the pull is
            # cancelled (aiodocker's `_query` yields it without a finally), which leaves the
            # connection to the GC. Here a cancelled pull (an entry removed, a stall) closes
            # it at once, and the daemon sees the client go.
            query = self._docker._query(  # noqa: SLF001
                "images/create", "POST", params=params, headers=headers, timeout=_NO_TIMEOUT
            )
            async with query as response:
                try:
                    async for event in json_stream_stream(response):
                        layers.update(event)
                        status = str(event.get("status", ""))
                        if status.startswith("Digest: "):
                            digest = status.removeprefix("Digest: ").strip()
                        elif status.startswith("Status: Downloaded newer image"):
                            newer = True
                        if on_progress is not None:
                            on_progress(layers.snapshot())
                finally:
                    response.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise RuntimeFailure(classify(exc)) from None
        return Pulled(newer=newer, digest=digest, bytes=layers.snapshot().current)

    async def remove(self, image: ImageRef) -> None:
        try:
            await self._docker.images.delete(str(image))
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return
            raise RuntimeFailure(classify(exc)) from None
        except Exception as exc:
            raise RuntimeFailure(classify(exc)) from None

    async def images_in_use(self) -> set[str]:
        try:
            containers = await self._docker.containers.list(all=True)
        except Exception as exc:
            raise RuntimeFailure(classify(exc)) from None
        return {str(c["ImageID"]) for c in containers if c["ImageID"]}

    async def fs_usage(self) -> FsUsage | None:
        info = await self.info()
        return FsUsage(mountpoint=info.image_root, used_bytes=None)

    async def close(self) -> None:
        await self._docker.close()
