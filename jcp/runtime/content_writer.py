"""One Content.Write stream into containerd's content store (content_store.py opens it), and
the errors of both in words.

containerd's Write is a bidirectional stream: STAT says where containerd's ingest of the ref
is (a resumed one holds a prefix), WRITEs append at that offset, COMMIT has containerd verify
the whole blob against the expected digest and size. The stream holds the ingest's lock until
it ends; a writer ended without COMMIT keeps the ingest (close) or drops it (abort).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from jcp.model.errors import JcpError
from jcp.runtime.containerd_api import content_pb2 as cpb
from jcp.runtime.grpc_transport import CallError, Stream

MESSAGE = 1024 * 1024
"""Bytes per WRITE message: containerd's gRPC server takes up to 16 MiB; 1 MiB is what
containerd's own client sends, and what bench/transport.py measured (172 MB/s)."""
AHEAD = 8
"""WRITE messages sent before their answers are read: lock step costs one round trip per
message; a few ahead keep containerd busy while the answers come back in order (measured,
8 x 4 MiB ranges of a 200 MiB blob: 83-91 MB/s against 77-84 in lock step)."""
_SETTLE = 5.0
"""Seconds close() waits for the answers to what was sent."""

WORDS = {
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
def said(what: str) -> Iterator[None]:
    try:
        yield
    except CallError as exc:
        words = WORDS.get(exc.code, "containerd failed")
        detail = f": {exc.details}" if exc.details else ""
        raise ContentError(f"{what}: {words}{detail}", exc.code) from None


class Writer:
    """One Content.Write stream. write() appends in order from `offset`; commit() has
    containerd check the whole blob against the expected digest and size; abort() drops the
    ingest. After either, the writer is closed."""

    def __init__(
        self,
        drop: Callable[[str], Awaitable[None]],
        opened: AbstractAsyncContextManager[
            Stream[cpb.WriteContentRequest, cpb.WriteContentResponse]
        ],
        ref: str,
        digest: str,
        size: int,
    ) -> None:
        self._drop, self._opened = drop, opened
        self.ref, self.digest, self.size = ref, digest, size
        self.offset = 0
        """Where the next write lands: containerd's offset when opened, then what was sent."""
        self._stream: Stream[cpb.WriteContentRequest, cpb.WriteContentResponse] | None = None
        self._pending = 0
        self._acked = 0

    def _what(self) -> str:
        return f"writing {self.digest} into containerd"

    async def _open(self) -> None:
        with said(self._what()):
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
        with said(self._what()):
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
            with said(self._what()):
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
                    await self._drop(self.ref)
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
        await self._drop(self.ref)

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
