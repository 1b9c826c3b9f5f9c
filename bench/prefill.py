"""Blobs written into containerd's content store before a pull: the "unpack-only" floor.

containerd's fetch treats a digest its content store already has as done, so a CRI PullImage
of an image whose config and layers are all present fetches only the manifest and spends the
rest unpacking: what the runtime must still do after any fetcher of jcp's own. The blobs are
written through Content.Write (lock step, as bench/transport.py does) in the CRI's namespace,
under a lease so that containerd's GC leaves them alone until the pull has referenced them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os

from google.protobuf.empty_pb2 import Empty

from jcp.runtime.containerd_api import content_pb2 as cpb
from jcp.runtime.containerd_api import leases_pb2 as lpb
from jcp.runtime.grpc_transport import CallError, Channel

CRI_NAMESPACE = "k8s.io"
CONTENT = "/containerd.services.content.v1.Content/"
LEASES = "/containerd.services.leases.v1.Leases/"
CHUNK = 1 << 20
_NS = (("containerd-namespace", CRI_NAMESPACE),)


async def write(channel: Channel, blob: bytes, lease: str) -> None:
    """Stream BLOB into the CRI namespace's content store under LEASE and commit it."""
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    meta = (*_NS, ("containerd-lease", lease))
    async with channel.stream(
        CONTENT + "Write", cpb.WriteContentRequest, cpb.WriteContentResponse, metadata=meta
    ) as stream:
        offset = 0
        while True:
            data = blob[offset : offset + CHUNK]
            last = offset + len(data) == len(blob)
            await stream.send(
                cpb.WriteContentRequest(
                    action=cpb.COMMIT if last else cpb.WRITE,
                    ref=f"bench-prefill-{digest}",
                    total=len(blob),
                    expected=digest if last else "",
                    offset=offset,
                    data=data,
                ),
                last=last,
            )
            got = await stream.recv()
            offset += len(data)
            if last:
                break
            if got.offset != offset:
                raise CallError("DATA_LOSS", f"containerd is at {got.offset}, we sent {offset}")
    if got.digest != digest:
        raise CallError("DATA_LOSS", f"committed {got.digest}, expected {digest}")


async def present(channel: Channel, digest: str) -> bool:
    info = channel.unary(CONTENT + "Info", cpb.InfoRequest, cpb.InfoResponse)
    try:
        await info(cpb.InfoRequest(digest=digest), deadline=10, metadata=_NS)
    except CallError as exc:
        if exc.code == "NOT_FOUND":
            return False
        raise
    return True


async def create_lease(channel: Channel) -> str:
    """A lease that expires by itself in an hour (a crashed bench leaves no content pinned)."""
    create = channel.unary(LEASES + "Create", lpb.CreateRequest, lpb.CreateResponse)
    lease = f"bench-prefill-{os.getpid()}-{os.urandom(4).hex()}"
    labels = {"containerd.io/gc.expire": _in_an_hour()}
    await create(lpb.CreateRequest(id=lease, labels=labels), deadline=10, metadata=_NS)
    return lease


async def delete_lease(channel: Channel, lease: str) -> None:
    delete = channel.unary(LEASES + "Delete", lpb.DeleteRequest, Empty)
    await delete(lpb.DeleteRequest(id=lease, sync=True), deadline=60, metadata=_NS)


def _in_an_hour() -> str:
    at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
