"""Pinning images on containerd, so that the kubelet's image GC leaves what jcp warmed.

The CRI has no call to pin: an image is pinned when its containerd record (namespace `k8s.io`,
the CRI plugin's) carries the label `io.cri-containerd.pinned=pinned`, which is what
`ctr -n k8s.io images label NAME io.cri-containerd.pinned=pinned` sets. containerd 1.7 and newer
read it into the CRI image store (on the image update event, at once: CRI ImageStatus then
reports `pinned: true`, and the kubelet's GC skips pinned images); containerd 1.6 has no such
field and ignores it, which the read-back tells. jcp labels every record of the image (its tag,
its `repo@digest` and its id: the CRI plugin keeps one per name) and marks them with
`JCP_LABEL` too, so that it only ever unpins what it pinned itself, across restarts.

Every Update carries the record's target as Get returned it: containerd 1.7.24 dereferences
the target unchecked and panics (the whole daemon exits) on an Update without one.
A runtime without containerd's API (CRI-O) answers UNIMPLEMENTED: `PinError`, said by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from grpc import aio

from jcp.model.errors import JcpError
from jcp.runtime.cri_api import containerd_images_pb2 as pb
from jcp.runtime.cri_api import containerd_images_pb2_grpc as pb_grpc

PIN_LABEL = "io.cri-containerd.pinned"
PIN_VALUE = "pinned"
JCP_LABEL = "jcp.nimbix.net/pinned"
"""Set beside the pin: this record was pinned by jcp, so jcp may unpin it."""
NAMESPACE = (("containerd-namespace", "k8s.io"),)
_TIMEOUT = 10.0


class PinError(JcpError):
    """The runtime cannot be asked to pin (no containerd API, down, or refused)."""


class ContainerdPins:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        target = endpoint.removeprefix("unix://")
        self._channel = aio.insecure_channel(f"unix://{target}")
        self._images = pb_grpc.ImagesStub(self._channel)  # type: ignore[no-untyped-call]

    async def apply(self, names: Iterable[str], *, pinned: bool) -> int:
        """Pin (or unpin) the records NAMES; returns how many changed. Unpinning touches only
        records jcp pinned. Raises PinError."""
        changed = 0
        for name in names:
            try:
                got = await self._images.Get(
                    pb.GetImageRequest(name=name), metadata=NAMESPACE, timeout=_TIMEOUT
                )
            except aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    continue  # the CRI keeps no record under this name
                raise _error(exc, self.endpoint) from None
            image = got.image
            labels = image.labels
            if pinned == (labels.get(PIN_LABEL) == PIN_VALUE) and (
                not pinned or JCP_LABEL in labels
            ):
                continue
            if not pinned and JCP_LABEL not in labels:
                continue  # pinned by someone else: theirs to unpin
            if pinned:
                labels[PIN_LABEL] = PIN_VALUE
                labels[JCP_LABEL] = "true"
            else:
                labels.pop(PIN_LABEL, None)
                labels.pop(JCP_LABEL, None)
            mask = FieldMask(paths=[f"labels.{PIN_LABEL}", f"labels.{JCP_LABEL}"])
            try:
                await self._images.Update(
                    pb.UpdateImageRequest(image=image, update_mask=mask),
                    metadata=NAMESPACE,
                    timeout=_TIMEOUT,
                )
            except aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    continue  # removed meanwhile
                raise _error(exc, self.endpoint) from None
            changed += 1
        return changed

    async def ours(self) -> set[str]:
        """Names of the records jcp pinned (its label), whoever runs now."""
        try:
            found = await self._images.List(
                pb.ListImagesRequest(filters=[f'labels."{JCP_LABEL}"']),
                metadata=NAMESPACE,
                timeout=_TIMEOUT,
            )
        except aio.AioRpcError as exc:
            raise _error(exc, self.endpoint) from None
        return {i.name for i in found.images}

    async def close(self) -> None:
        await self._channel.close()


def _error(exc: aio.AioRpcError, endpoint: str) -> PinError:
    if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
        return PinError(f"{endpoint} has no containerd images API (CRI-O?): cannot pin")
    return PinError(f"pinning through {endpoint}: {exc.code().name}: {exc.details()}")
