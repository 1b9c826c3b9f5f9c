"""An HTTP reverse proxy in front of a registry that answers 429 like Docker Hub, and can die.

Why a stand-in: Debian's `docker-registry` (distribution) has no rate limiting, and the tests
have no internet, so Docker Hub's `429 Too Many Requests` cannot be produced for real here.
This proxy forwards everything to the real registry and, once `allow` manifest requests have
gone through, answers manifest requests with Docker Hub's status, headers and body
(`{"errors":[{"code":"TOOMANYREQUESTS",...}]}`), optionally with `Retry-After`. The daemon's
own registry client reads that answer and reports it in its own words, which is what jcp sees:
only the registry is stood in for. It also records every request (to prove a paused registry is
not hammered) and counts body bytes it sent, with an optional bandwidth cap, so a test can kill
it mid-pull and compare what the daemon got with what jcp reports.

It runs its own event loop in a thread, so synchronous and asynchronous callers can both use it.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

HUB_MESSAGE = (
    "You have reached your pull rate limit. You may increase the limit by authenticating and "
    "upgrading: https://www.docker.com/increase-rate-limit"
)
HUB_BODY = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": HUB_MESSAGE}]})
_MANIFEST = re.compile(r"^/v2/.+/manifests/[^/]+$")
# Hop-by-hop headers (RFC 9110 7.6.1) and those aiohttp sets itself.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "date",
        "server",
    }
)


@dataclass(frozen=True)
class Seen:
    """One request the proxy received."""

    at: float
    method: str
    path: str
    status: int
    agent: str = ""
    """The client's User-Agent (`docker/20.10...`, `containerd/1.6...`, jcp's `aiohttp/...`)."""


class RateLimitedRegistry:
    def __init__(
        self,
        upstream: str,
        *,
        allow: int | None = None,
        retry_after: int | None = None,
        rate: float | None = None,
        refuse_head_from: str | None = None,
    ) -> None:
        """ALLOW: manifest GETs (about one per pull) let through before every further manifest
        request gets a 429 (None: never). RETRY_AFTER: seconds sent in `Retry-After` with each
        429. RATE: a cap on body bytes per second, shared by all connections.
        REFUSE_HEAD_FROM: clients whose User-Agent starts with this get 405 to a manifest HEAD, as
        some proxies answer (the runtimes' own HEADs go through)."""
        self.upstream = f"http://{upstream}"
        self.allow = allow
        self.retry_after = retry_after
        self.rate = rate
        self.refuse_head_from = refuse_head_from
        self.port = 0
        self.seen: list[Seen] = []
        self.bytes_sent = 0
        self._manifest_gets = 0
        self._next_free = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._transports: set[asyncio.Transport] = set()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def limited(self) -> list[Seen]:
        """The requests answered 429."""
        return [s for s in self.seen if s.status == 429]

    def start(self) -> RateLimitedRegistry:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # noqa: SLF001 - aiohttp exposes no bound port otherwise
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Drop every connection at once (a registry killed mid-transfer), then shut down."""

        async def _stop() -> None:
            for transport in list(self._transports):
                transport.abort()
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    async def _throttle(self, n: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        self._next_free = max(now, self._next_free) + n / self.rate
        if self._next_free - now > 0.001:
            await asyncio.sleep(self._next_free - now)

    def _too_many(self, request: web.Request) -> web.Response:
        headers = {
            "Docker-Distribution-Api-Version": "registry/2.0",
            "RateLimit-Limit": f"{self.allow};w=21600",
            "RateLimit-Remaining": "0;w=21600",
        }
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        body = None if request.method == "HEAD" else HUB_BODY
        return web.Response(status=429, text=body, content_type="application/json", headers=headers)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if isinstance(transport, asyncio.Transport):
            self._transports.add(transport)
        path = request.rel_url.path
        agent = request.headers.get("User-Agent", "")
        refuse = self.refuse_head_from
        if (
            refuse
            and request.method == "HEAD"
            and agent.startswith(refuse)
            and _MANIFEST.match(path)
        ):
            self.seen.append(Seen(time.monotonic(), request.method, path, 405, agent))
            return web.Response(status=405)
        if _MANIFEST.match(path):
            # Docker Hub counts GETs (a pull's HEAD is free) and refuses both once over.
            if self.allow is not None and self._manifest_gets >= self.allow:
                self.seen.append(Seen(time.monotonic(), request.method, path, 429, agent))
                return self._too_many(request)
            self._manifest_gets += request.method == "GET"
        assert self._session is not None
        # A multidict: the daemon sends one `Accept` per manifest type it takes.
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP)
        body = await request.read() if request.can_read_body else None
        async with self._session.request(
            request.method,
            self.upstream + str(request.rel_url),
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as up:
            self.seen.append(Seen(time.monotonic(), request.method, path, up.status, agent))
            out = web.StreamResponse(status=up.status, reason=up.reason)
            for name, value in up.headers.items():
                if name.lower() not in _HOP:
                    out.headers.add(name, value)
            if self.allow is not None and _MANIFEST.match(path):  # as Docker Hub does
                left = max(0, self.allow - self._manifest_gets)
                out.headers["RateLimit-Limit"] = f"{self.allow};w=21600"
                out.headers["RateLimit-Remaining"] = f"{left};w=21600"
            await out.prepare(request)
            try:
                if request.method != "HEAD":
                    async for chunk in up.content.iter_chunked(64 * 1024):
                        await self._throttle(len(chunk))
                        await out.write(chunk)
                        self.bytes_sent += len(chunk)
                await out.write_eof()
            except (ConnectionError, aiohttp.ClientError):
                pass  # the daemon hung up, or stop() cut the connection: nothing to tell
            return out
