"""A real HTTP proxy in front of a test registry, for what `docker-registry` cannot be made to
do: flip a byte of a blob (a corrupting cache), ignore Range (a registry without range
support), redirect blob GETs to a second host (object storage behind a CDN), hold back the
first range of a blob (ranges finishing out of order). It forwards everything else as it is
and records every request, with its Range, User-Agent and whether it carried credentials, and
the blob body bytes it sent: the registry-side count the tests compare with jcp's own.

The redirect target listens on 127.0.0.2 (another host name to the client) and fetches from
the registry with credentials of its own, as a presigned object-store URL needs none.

It runs its own event loop in a thread, so a test's loop (jcp's code) and the proxy never
wait for each other.
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

_BLOB = re.compile(r"^/v2/.+/blobs/sha256:[a-f0-9]{64}$")
_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "host", "date", "server"}
)  # fmt: skip
OTHER_HOST = "127.0.0.2"


@dataclass(frozen=True)
class Seen:
    host: str
    method: str
    path: str
    range: str
    agent: str
    authorized: bool
    status: int

    @property
    def blob(self) -> bool:
        return self.method == "GET" and bool(_BLOB.match(self.path))


class BlobProxy:
    def __init__(
        self,
        upstream: str,
        *,
        flip_at: int | None = None,
        strip_range: bool = False,
        redirect: bool = False,
        upstream_auth: tuple[str, str] | None = None,
        hold_head: bool = False,
        reset_after: int | None = None,
        resets: int = 0,
        rate: float | None = None,
    ) -> None:
        """FLIP_AT: invert the blob byte at this offset in every blob answer that holds it.
        STRIP_RANGE: drop the Range header (the registry then answers 200, the whole blob).
        REDIRECT: answer an authorized blob GET with 307 to OTHER_HOST, which fetches it with
        UPSTREAM_AUTH. HOLD_HEAD: hold each blob GET whose range starts at 0 until released.
        RESET_AFTER: cut the connection of a blob answer once it has sent this many bytes, for
        the first RESETS answers of that size (a connection reset mid-transfer). RATE: pace
        each blob answer to this many bytes per second (a slow link, so a test can act
        mid-fetch)."""
        self.upstream = f"http://{upstream}"
        self.flip_at, self.strip_range, self.redirect = flip_at, strip_range, redirect
        self.upstream_auth = upstream_auth
        self._hold = threading.Event()
        self.holding = hold_head
        self.reset_after, self.resets = reset_after, resets
        self.rate = rate
        self.seen: list[Seen] = []
        self.bytes_sent = 0
        self.held = 0
        """Requests held back (HOLD_HEAD) so far; they are in `seen` once answered."""
        self.port = self.other_port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runners: list[web.AppRunner] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def release(self) -> None:
        """Let the held first ranges go."""
        self._hold.set()

    def blob_gets(self, since: int = 0) -> list[Seen]:
        return [s for s in self.seen[since:] if s.blob]

    def start(self) -> BlobProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _site(self, address: str, handler: object) -> int:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", handler)  # type: ignore[arg-type]
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, address, 0)
        await site.start()
        self._runners.append(runner)
        server = site._server
        assert isinstance(server, asyncio.Server)
        return int(server.sockets[0].getsockname()[1])

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self.port = await self._site("127.0.0.1", self._registry)
        self.other_port = await self._site(OTHER_HOST, self._storage)

    def stop(self) -> None:
        async def _stop() -> None:
            for runner in self._runners:
                await runner.cleanup()
            if self._session is not None:
                await self._session.close()

        self._hold.set()
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    async def _registry(self, request: web.Request) -> web.StreamResponse:
        authorized = "Authorization" in request.headers
        if self.redirect and authorized and _BLOB.match(request.rel_url.path):
            self._note(request, 307)
            location = f"http://{OTHER_HOST}:{self.other_port}{request.rel_url.path}?sig=x"
            return web.Response(status=307, headers={"Location": location})
        return await self._forward(request, dict(request.headers))

    async def _storage(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        if self.upstream_auth is not None:
            raw = ":".join(self.upstream_auth).encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        return await self._forward(request, headers)

    def _note(self, request: web.Request, status: int) -> None:
        self.seen.append(
            Seen(
                request.host, request.method, request.rel_url.path,
                request.headers.get("Range", ""), request.headers.get("User-Agent", ""),
                "Authorization" in request.headers, status,
            )
        )  # fmt: skip

    async def _forward(self, request: web.Request, sent: dict[str, str]) -> web.StreamResponse:
        assert self._session is not None
        path = request.rel_url.path
        blob = bool(_BLOB.match(path))
        headers = CIMultiDict((k, v) for k, v in sent.items() if k.lower() not in _HOP)
        if self.strip_range:
            headers.popall("Range", None)
        if blob and self.holding and headers.get("Range", "").startswith("bytes=0-"):
            self.held += 1
            await asyncio.get_running_loop().run_in_executor(None, self._hold.wait, 30)
        body = await request.read() if request.can_read_body else None
        async with self._session.request(
            request.method, self.upstream + path, params=request.rel_url.query,
            headers=headers, data=body, allow_redirects=False,
        ) as up:  # fmt: skip
            self._note(request, up.status)
            out = web.StreamResponse(status=up.status, reason=up.reason)
            for name, value in up.headers.items():
                if name.lower() not in _HOP:
                    out.headers.add(name, value)
            await out.prepare(request)
            at = _first_byte(up.headers.get("Content-Range"))
            try:
                if request.method != "HEAD":
                    done = 0
                    began = asyncio.get_running_loop().time()
                    async for chunk in up.content.iter_chunked(64 * 1024):
                        await out.write(self._flipped(chunk, at) if blob else chunk)
                        at += len(chunk)
                        done += len(chunk)
                        self.bytes_sent += len(chunk) if blob else 0
                        if blob and self._cut(done) and request.transport is not None:
                            request.transport.abort()
                            return out
                        if blob and self.rate:
                            ahead = began + done / self.rate - asyncio.get_running_loop().time()
                            await asyncio.sleep(max(0.0, ahead))
                await out.write_eof()
            except (ConnectionError, aiohttp.ClientError):
                pass  # the client hung up (a cancelled fetch): nothing to tell
            return out

    def _cut(self, sent: int) -> bool:
        if self.reset_after is None or self.resets <= 0 or sent < self.reset_after:
            return False
        self.resets -= 1
        return True

    def _flipped(self, chunk: bytes, at: int) -> bytes:
        if self.flip_at is None or not at <= self.flip_at < at + len(chunk):
            return chunk
        i = self.flip_at - at
        return chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]


def _first_byte(content_range: str | None) -> int:
    found = re.match(r"bytes (\d+)-", content_range or "")
    return int(found.group(1)) if found else 0
