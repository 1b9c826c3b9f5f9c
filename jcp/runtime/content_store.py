"""containerd's content store and leases, for jcp's own blob fetch (jcp/registry/blobs.py).

Blobs written here before CRI PullImage are blobs containerd does not fetch: its fetch treats
a digest the store has as done, so the runtime only unpacks. Every write runs under a lease
(gRPC metadata `containerd-lease`), so containerd's GC cannot take an ingest or a committed
blob before the image record holds it; the lease carries `containerd.io/gc.expire`, so a lease
left by a crashed jcp expires by itself. containerd keeps an interrupted ingest under its ref:
a writer opened again on the same ref resumes at the offset containerd holds (STAT first), and
containerd re-hashes what it holds, so COMMIT verifies the whole blob's digest.

Works on containerd 1.6 and 1.7 (the content and leases services are unchanged since 1.5).
Errors are `ContentError`, in words, with the gRPC code kept for the caller's classification.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

from google.protobuf.empty_pb2 import Empty

from jcp.runtime.containerd_api import content_pb2 as cpb
from jcp.runtime.containerd_api import leases_pb2 as lpb
from jcp.runtime.content_writer import WORDS, ContentError, Writer, said
from jcp.runtime.grpc_transport import CallError, Channel, Metadata, open_channel

__all__ = ["EXPIRE_LABEL", "ContentError", "ContentStore", "Writer"]

CONTENT = "/containerd.services.content.v1.Content/"
LEASES = "/containerd.services.leases.v1.Leases/"
EXPIRE_LABEL = "containerd.io/gc.expire"
_DEADLINE = 30.0
_LOCKED_TRIES = 20
"""About 10 s of waiting, in all, for a cut-off ingest's lock to go."""
_PROBE = "sha256:" + "0" * 64


class ContentStore:
    """One channel to containerd's content and leases services, in NAMESPACE."""

    def __init__(self, endpoint: str, namespace: str = "k8s.io") -> None:
        self.endpoint = endpoint
        self.namespace = namespace
        self._channel: Channel = open_channel(endpoint)

    def _meta(self, lease: str | None = None) -> Metadata:
        ns = (("containerd-namespace", self.namespace),)
        return ns if lease is None else (*ns, ("containerd-lease", lease))

    async def available(self) -> str | None:
        """None when containerd's content and leases APIs answer on the socket; else why not
        (CRI-O and cri-dockerd serve the CRI only), for the caller's one fallback message."""
        info = self._channel.unary(CONTENT + "Info", cpb.InfoRequest, cpb.InfoResponse)
        leases = self._channel.unary(LEASES + "List", lpb.ListRequest, lpb.ListResponse)
        try:
            try:
                await info(cpb.InfoRequest(digest=_PROBE), deadline=10, metadata=self._meta())
            except CallError as exc:
                if exc.code != "NOT_FOUND":
                    raise
            await leases(
                lpb.ListRequest(filters=["id==jcp-probe"]), deadline=10, metadata=self._meta()
            )
        except CallError as exc:
            if exc.code == "UNIMPLEMENTED":
                return f"{self.endpoint} has no containerd content API (CRI-O or cri-dockerd?)"
            return f"containerd's content API on {self.endpoint}: {WORDS.get(exc.code, exc.code)}"
        return None

    async def info(self, digest: str) -> int | None:
        """The size of the blob DIGEST in the store, None if it is absent."""
        call = self._channel.unary(CONTENT + "Info", cpb.InfoRequest, cpb.InfoResponse)
        try:
            got = await call(
                cpb.InfoRequest(digest=digest), deadline=_DEADLINE, metadata=self._meta()
            )
        except CallError as exc:
            if exc.code == "NOT_FOUND":
                return None
            with said(f"content {digest}"):
                raise
        return int(got.info.size)

    async def status(self, ref: str) -> int | None:
        """The offset containerd holds for the ingest REF, None if there is none."""
        call = self._channel.unary(CONTENT + "Status", cpb.StatusRequest, cpb.StatusResponse)
        try:
            got = await call(cpb.StatusRequest(ref=ref), deadline=_DEADLINE, metadata=self._meta())
        except CallError as exc:
            if exc.code == "NOT_FOUND":
                return None
            with said(f"ingest {ref}"):
                raise
        return int(got.status.offset)

    async def lease(self, ttl: float) -> str:
        """A new lease that containerd's GC drops by itself TTL seconds from now (a crashed
        jcp leaves nothing held for ever); returns its id."""
        expire = (datetime.now(UTC) + timedelta(seconds=ttl)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lease_id = f"jcp-fetch-{secrets.token_hex(6)}"
        call = self._channel.unary(LEASES + "Create", lpb.CreateRequest, lpb.CreateResponse)
        with said("creating a lease"):
            got = await call(
                lpb.CreateRequest(id=lease_id, labels={EXPIRE_LABEL: expire}),
                deadline=_DEADLINE,
                metadata=self._meta(),
            )
        return str(got.lease.id)

    async def drop_lease(self, lease: str, *, sync: bool = False) -> None:
        """Delete LEASE (absent already: nothing to do). The content it held stays while an
        image record refers to it; GC takes the rest on its next pass, or before this returns
        with SYNC (which also collects every expired lease)."""
        call = self._channel.unary(LEASES + "Delete", lpb.DeleteRequest, Empty)
        try:
            request = lpb.DeleteRequest(id=lease, sync=sync)
            await call(request, deadline=_DEADLINE, metadata=self._meta())
        except CallError as exc:
            if exc.code != "NOT_FOUND":
                with said(f"deleting lease {lease}"):
                    raise

    async def leases(self) -> dict[str, dict[str, str]]:
        """Every lease in the namespace with its labels (what `ctr leases ls` shows)."""
        call = self._channel.unary(LEASES + "List", lpb.ListRequest, lpb.ListResponse)
        with said("listing leases"):
            got = await call(lpb.ListRequest(), deadline=_DEADLINE, metadata=self._meta())
        return {lease.id: dict(lease.labels) for lease in got.leases}

    async def abort(self, ref: str) -> None:
        """Drop the ingest REF and what it holds (none: nothing to do)."""
        call = self._channel.unary(CONTENT + "Abort", cpb.AbortRequest, Empty)
        try:
            await call(cpb.AbortRequest(ref=ref), deadline=_DEADLINE, metadata=self._meta())
        except CallError as exc:
            if exc.code != "NOT_FOUND":
                with said(f"aborting ingest {ref}"):
                    raise

    async def writer(self, ref: str, digest: str, size: int, lease: str) -> Writer:
        """A writer of blob DIGEST (SIZE bytes) into the ingest REF under LEASE, positioned
        where containerd's ingest is (`Writer.offset`: 0 for a new one). A blob the store
        has already is `ContentError` with code ALREADY_EXISTS."""
        for attempt in range(_LOCKED_TRIES):
            opened = self._channel.stream(
                CONTENT + "Write",
                cpb.WriteContentRequest,
                cpb.WriteContentResponse,
                metadata=self._meta(lease),
            )
            writer = Writer(self.abort, opened, ref, digest, size)
            try:
                await writer._open()  # noqa: SLF001 (its own constructor's second half)
            except ContentError as exc:
                # An ingest cut off a moment ago stays locked until containerd sees its
                # stream end: wait for that rather than fail the resume.
                if exc.code != "UNAVAILABLE" or "locked" not in str(exc):
                    raise
                if attempt == _LOCKED_TRIES - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            return writer
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self._channel.close()
