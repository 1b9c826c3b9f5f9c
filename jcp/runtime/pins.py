"""Pinning images on containerd, so that the kubelet's image GC leaves what jcp warmed.

The CRI has no call to pin: an image is pinned when one of its containerd image records, in
the CRI plugin's namespace `k8s.io`, carries the label `io.cri-containerd.pinned=pinned`
(what `ctr -n k8s.io images label NAME io.cri-containerd.pinned=pinned` sets). jcp sets it
through containerd's own Images API (stubs vendored from containerd v1.7.24 in
`containerd_api`) on the CRI endpoint's socket: Images.Get, then Images.Update of the record
with the field mask `labels.<key>`, through `grpc_transport` like the CRI adapter.

How the CRI plugin decides `pinned`, read in containerd v1.7.24:
- pkg/cri/store/image/image.go `getImage`: `Pinned` is the record's label
  `labels.PinnedImageLabelKey` (pkg/cri/labels: `io.cri-containerd.pinned`) == `"pinned"`;
  `store.pin`/`unpin` keep a set of pinned references per image id, and the image (what
  ImageStatus and ListImages report, `image_status.go` `toCRIImage`) is pinned while any of its
  records is. So jcp labels every record of the image (tag, `repo@digest` and the id record the
  CRI keeps), and unpinning needs all of them cleared.
- pkg/cri/server/events.go: the CRI subscribes to `topic~="/images/"`, keeps the events of
  namespace `k8s.io`, and on `ImageUpdate` calls `updateImage` -> `imageStore.Update(ref)`,
  which re-reads the record and pins or unpins that reference: the cache follows our Update at
  once (ImageStatus says so within the event's delivery), no restart or re-pull needed.
- pkg/cri/server/image_pull.go `createImageReference`: a later CRI pull of the same name updates
  `target` (and adds the pin only for the sandbox image), never removes a pin label.
containerd 1.6 (v1.6.20's store has no `Pinned`) keeps the label and ignores it: the read-back
through CRI ImageStatus tells, and `jcp.lifecycle.pinning` says so.

Every Update carries the record's target as Get returned it: containerd 1.7.24's
services/images/helpers.go `descFromProto` dereferences `Image.target` unchecked, so an Update
without one panics and the whole daemon exits. jcp also sets `JCP_LABEL` beside the pin, so that
it only ever unpins what it pinned itself, across restarts. A runtime without containerd's API
(CRI-O) answers UNIMPLEMENTED: `PinError`, said once by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.field_mask_pb2 import FieldMask

from jcp.model.errors import JcpError
from jcp.runtime.containerd_api import images_pb2 as pb
from jcp.runtime.grpc_transport import CallError, open_channel

PIN_LABEL = "io.cri-containerd.pinned"
PIN_VALUE = "pinned"
JCP_LABEL = "jcp.nimbix.net/pinned"
"""Set beside the pin: this record was pinned by jcp, so jcp may unpin it."""
NAMESPACE = (("containerd-namespace", "k8s.io"),)
_TIMEOUT = 10.0
_IMAGES = "/containerd.services.images.v1.Images/"


class PinError(JcpError):
    """The runtime cannot be asked to pin (no containerd API, down, or refused)."""


class ContainerdPins:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        target = endpoint.removeprefix("unix://")
        ch = self._channel = open_channel(f"unix://{target}")
        self._get = ch.unary(_IMAGES + "Get", pb.GetImageRequest, pb.GetImageResponse)
        self._update = ch.unary(_IMAGES + "Update", pb.UpdateImageRequest, pb.UpdateImageResponse)
        self._list = ch.unary(_IMAGES + "List", pb.ListImagesRequest, pb.ListImagesResponse)

    async def apply(self, names: Iterable[str], *, pinned: bool) -> int:
        """Pin (or unpin) the records NAMES. Pinning returns how many records carry the pin label
        afterwards (set now or before: a runtime that still reports the image unpinned ignores
        it); unpinning touches only records jcp pinned and returns how many it cleared.
        Raises PinError."""
        count = 0
        for name in names:
            try:
                got = await self._get(
                    pb.GetImageRequest(name=name), metadata=NAMESPACE, deadline=_TIMEOUT
                )
            except CallError as exc:
                if exc.code == "NOT_FOUND":
                    continue  # the CRI keeps no record under this name
                raise _error(exc, self.endpoint) from None
            image = got.image
            labels = image.labels
            if pinned and labels.get(PIN_LABEL) == PIN_VALUE:
                count += 1  # pinned before, by jcp or by someone else (then never claimed)
                continue
            if not pinned and JCP_LABEL not in labels:
                continue  # never pinned by jcp (someone else's pin is theirs to undo)
            if pinned:
                labels[PIN_LABEL] = PIN_VALUE
                labels[JCP_LABEL] = "true"
            else:
                labels.pop(PIN_LABEL, None)
                labels.pop(JCP_LABEL, None)
            mask = FieldMask(paths=[f"labels.{PIN_LABEL}", f"labels.{JCP_LABEL}"])
            try:
                await self._update(
                    pb.UpdateImageRequest(image=image, update_mask=mask),
                    metadata=NAMESPACE,
                    deadline=_TIMEOUT,
                )
            except CallError as exc:
                if exc.code == "NOT_FOUND":
                    continue  # removed meanwhile
                raise _error(exc, self.endpoint) from None
            count += 1
        return count

    async def ours(self) -> set[str]:
        """Names of the records jcp pinned (its label), whoever runs now."""
        try:
            found = await self._list(
                pb.ListImagesRequest(filters=[f'labels."{JCP_LABEL}"']),
                metadata=NAMESPACE,
                deadline=_TIMEOUT,
            )
        except CallError as exc:
            raise _error(exc, self.endpoint) from None
        return {i.name for i in found.images}

    async def close(self) -> None:
        await self._channel.close()


def _error(exc: CallError, endpoint: str) -> PinError:
    if exc.code == "UNIMPLEMENTED":
        return PinError(f"{endpoint} has no containerd images API (CRI-O?): cannot pin")
    return PinError(f"pinning through {endpoint}: {exc.code}: {exc.details or None}")
