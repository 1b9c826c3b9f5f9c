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
import contextlib
import secrets
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.empty_pb2 import Empty

from jcp.model.errors import JcpError
from jcp.runtime.containerd_api import content_pb2 as cpb
from jcp.runtime.containerd_api import leases_pb2 as lpb
from jcp.runtime.grpc_transport import CallError, Channel, Metadata, Stream, open_channel

CONTENT = "/containerd.services.content.v1.Content/"
LEASES = "/containerd.services.leases.v1.Leases/"
EXPIRE_LABEL = "containerd.io/gc.expire"
MESSAGE = 1024 * 1024
"""Bytes per WRITE message: containerd's gRPC server takes up to 16 MiB; 1 MiB is what
containerd's own client sends, and what bench/transport.py measured (172 MB/s)."""
AHEAD = 8
"""WRITE messages sent before their answers are read: lock step costs one round trip per
message; a few ahead keep containerd busy while the answers come back in order."""
_DEADLINE = 30.0
_SETTLE = 5.0
_LOCKED_TRIES = 20
"""About 10 s of waiting, in all, for a cut-off ingest's lock to go."""
_PROBE = "sha256:" + "0" * 64

_WORDS = {
    "UNAVAILABLE": "containerd does not answer",
    "UNIMPLEMENTED": "the runtime's socket has no containerd content API",
    "NOT_FOUND": "not found in containerd",
    "ALREADY_EXISTS": "already in containerd",
    "FAILED_PRECONDITION": "containerd refused it",
    "OUT_OF_RANGE": "containerd holds a different offset",
    "DEADLINE_EXCEEDED": "containerd did not answer in time",
}


class ContentError(JcpError):
    """A content or lease operation containerd refused or could not be asked; CODE is the
    gRPC status name (`NOT_FOUND`, `UNAVAILABLE`...) for the caller's decisions."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def _said(what: str) -> Iterator[None]:
    try:
        yield
    except CallError as exc:
        words = _WORDS.get(exc.code, "containerd failed")
        detail = f": {exc.details}" if exc.details else ""
        raise ContentError(f"{what}: {words}{detail}", exc.code) from None


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
            return f"containerd's content API on {self.endpoint}: {_WORDS.get(exc.code, exc.code)}"
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
            with _said(f"content {digest}"):
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
            with _said(f"ingest {ref}"):
                raise
        return int(got.status.offset)

    async def lease(self, ttl: float) -> str:
        """A new lease that containerd's GC drops by itself TTL seconds from now (a crashed
        jcp leaves nothing held for ever); returns its id."""
        expire = (datetime.now(UTC) + timedelta(seconds=ttl)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lease_id = f"jcp-fetch-{secrets.token_hex(6)}"
        call = self._channel.unary(LEASES + "Create", lpb.CreateRequest, lpb.CreateResponse)
        with _said("creating a lease"):
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
                with _said(f"deleting lease {lease}"):
                    raise

    async def leases(self) -> dict[str, dict[str, str]]:
        """Every lease in the namespace with its labels (what `ctr leases ls` shows)."""
        call = self._channel.unary(LEASES + "List", lpb.ListRequest, lpb.ListResponse)
        with _said("listing leases"):
            got = await call(lpb.ListRequest(), deadline=_DEADLINE, metadata=self._meta())
        return {lease.id: dict(lease.labels) for lease in got.leases}

    async def abort(self, ref: str) -> None:
        """Drop the ingest REF and what it holds (none: nothing to do)."""
        call = self._channel.unary(CONTENT + "Abort", cpb.AbortRequest, Empty)
        try:
            await call(cpb.AbortRequest(ref=ref), deadline=_DEADLINE, metadata=self._meta())
        except CallError as exc:
            if exc.code != "NOT_FOUND":
                with _said(f"aborting ingest {ref}"):
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
            writer = Writer(self, opened, ref, digest, size)
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


class Writer:
    """One Content.Write stream. write() appends in order from `offset`; commit() has
    containerd check the whole blob against the expected digest and size; abort() drops the
    ingest. After either, the writer is closed."""

    def __init__(
        self,
        store: ContentStore,
        opened: AbstractAsyncContextManager[
            Stream[cpb.WriteContentRequest, cpb.WriteContentResponse]
        ],
        ref: str,
        digest: str,
        size: int,
    ) -> None:
        self._store, self._opened = store, opened
        self.ref, self.digest, self.size = ref, digest, size
        self.offset = 0
        """Where the next write lands: containerd's offset when opened, then what was sent."""
        self._stream: Stream[cpb.WriteContentRequest, cpb.WriteContentResponse] | None = None
        self._pending = 0
        self._acked = 0

    def _what(self) -> str:
        return f"writing {self.digest} into containerd"

    async def _open(self) -> None:
        with _said(self._what()):
            self._stream = await self._opened.__aenter__()
            try:
                await self._stream.send(
                    cpb.WriteContentRequest(
                        action=cpb.STAT, ref=self.ref, total=self.size, expected=self.digest
                    )
                )
                got = await self._stream.recv()
            except BaseException as exc:
                await self._close(exc)
                raise
        self.offset = self._acked = int(got.offset)
        if got.total and got.total != self.size:
            await self.abort()
            raise ContentError(
                f"{self._what()}: containerd's ingest {self.ref} is for {got.total} bytes, "
                f"not {self.size}",
                "FAILED_PRECONDITION",
            )

    async def write(self, data: bytes) -> None:
        """Append DATA at `offset` (in messages of MESSAGE bytes, up to AHEAD unanswered)."""
        stream = self._live()
        if self.offset + len(data) > self.size:
            raise ContentError(f"{self._what()}: more than {self.size} bytes", "OUT_OF_RANGE")
        view = memoryview(data)
        with _said(self._what()):
            for start in range(0, len(view), MESSAGE):
                piece = view[start : start + MESSAGE]
                await stream.send(
                    cpb.WriteContentRequest(
                        action=cpb.WRITE,
                        ref=self.ref,
                        offset=self.offset,
                        data=data if len(data) <= MESSAGE else bytes(piece),
                    )
                )
                self.offset += len(piece)
                self._pending += 1
                while self._pending > AHEAD:
                    await self._answer(stream)

    async def _answer(
        self, stream: Stream[cpb.WriteContentRequest, cpb.WriteContentResponse]
    ) -> None:
        got = await stream.recv()
        self._pending -= 1
        if got.offset <= self._acked or got.offset > self.offset:
            raise CallError("DATA_LOSS", f"containerd is at {got.offset}, jcp sent {self.offset}")
        self._acked = int(got.offset)

    async def commit(self) -> None:
        """Have containerd verify and commit the blob (a digest or size that does not match
        is `ContentError`, FAILED_PRECONDITION, and nothing is committed)."""
        stream = self._live()
        try:
            with _said(self._what()):
                while self._pending:
                    await self._answer(stream)
                await stream.send(
                    cpb.WriteContentRequest(
                        action=cpb.COMMIT,
                        ref=self.ref,
                        total=self.size,
                        expected=self.digest,
                        offset=self.offset,
                    ),
                    last=True,
                )
                got = await stream.recv()
        except ContentError as exc:
            await self._close(exc)
            if exc.code == "ALREADY_EXISTS":  # another writer committed it meanwhile: done
                return
            if exc.code == "FAILED_PRECONDITION":  # wrong bytes: resuming them cannot help
                with contextlib.suppress(ContentError):
                    await self._store.abort(self.ref)
            raise
        except BaseException as exc:
            await self._close(exc)
            raise
        await self._close(None)
        if got.digest and got.digest != self.digest:
            raise ContentError(f"{self._what()}: containerd committed {got.digest}", "DATA_LOSS")

    async def close(self) -> None:
        """End the stream and keep the ingest: a writer opened on the same ref resumes it.
        The answers to what was sent are awaited first (for a few seconds at most), so that
        containerd holds every byte written before the stream is reset."""
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(CallError, TimeoutError):
                async with asyncio.timeout(_SETTLE):
                    while self._pending:
                        await self._answer(stream)
        await self._close(ConnectionAbortedError("closed"))

    async def abort(self) -> None:
        """Close the stream and drop the ingest: nothing of this blob stays in containerd."""
        await self._close(ConnectionAbortedError("aborted"))
        await self._store.abort(self.ref)

    def _live(self) -> Stream[cpb.WriteContentRequest, cpb.WriteContentResponse]:
        if self._stream is None:
            raise ContentError(f"{self._what()}: the writer is closed", "FAILED_PRECONDITION")
        return self._stream

    async def _close(self, exc: BaseException | None) -> None:
        """End the stream: cleanly after COMMIT, else with a reset (grpclib resets a stream
        whose context exits with an exception: containerd then releases the ingest's lock)."""
        if self._stream is None:
            return
        self._stream = None
        args: tuple[Any, ...] = (None, None, None) if exc is None else (type(exc), exc, None)
        with contextlib.suppress(CallError, OSError, ContentError):
            await self._opened.__aexit__(*args)
