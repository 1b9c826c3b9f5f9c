"""Bounds on jcp's HTTP server, so that no client can stall the agent or flood its log.

Everything that reaches `:8080` shares one event loop with the pulls. Three limits keep a busy
Prometheus, a curious user or a port scanner from costing more than a small, fixed share of it:

- **connections**: at most `max_connections` at once per listener; the next is answered with a
  fixed `503` and closed before a byte of it is read (`BoundedSite`). Idle and half-sent
  connections are closed by aiohttp's keep-alive timer, which (aiohttp >= 3.10) runs from the
  connection's start and is not moved by partial data, so it is the header-read timeout too
  (aiohttp `web_protocol.py`, `RequestHandler.connection_made`);
- **data requests** (`/status`, `/metrics`) are paced (`Pacer`): at most `data_rate` a second
  are answered, later ones wait their turn instead of spinning; the probes are never paced;
- **bad requests** (not HTTP, lines too long, broken headers) are logged at most once per kind
  a minute, in one line, without the request's bytes or a traceback (`TamedLog`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("jcp.observe.http")

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 32\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\ntoo many connections; try again\n"
)


class _Busy(asyncio.Protocol):
    """A connection over the cap: one fixed answer, then closed; its bytes are never read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(BUSY)
        transport.close()


class BoundedSite(web.BaseSite):
    """A TCP listener like aiohttp's `TCPSite` that refuses connections over MAX_CONNECTIONS."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int
    ) -> None:
        super().__init__(runner)
        self._host, self._port = host, port
        self.max_connections = max_connections
        self.refused = 0
        """Connections refused because the listener was full (for tests and a metric)."""

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None

        loop = asyncio.get_running_loop()
        fresh: set[asyncio.BaseProtocol] = set()
        # A batch of accepts makes its protocols before any `connection_made` (call_soon) has
        # registered them with the server: count those too, until their turn has come.

        def protocol() -> asyncio.Protocol:
            if len(server.connections) + len(fresh) >= self.max_connections:
                self.refused += 1
                return _Busy()
            handler = server()
            fresh.add(handler)
            loop.call_soon(fresh.discard, handler)
            return handler

        self._server = await loop.create_server(protocol, self._host, self._port)


class Pacer:
    """Spaces answers at least 1/RATE seconds apart; a caller learns how long to wait first.

    A refusal would be answered at once, and a client that loops on it would spin the event
    loop; waiting costs nothing but a timer. None only when the wait would exceed MAX_WAIT.
    """

    def __init__(self, rate: float, max_wait: float) -> None:
        self._gap = 1 / rate
        self._max_wait = max_wait
        self._next = 0.0

    def reserve(self, now: float) -> float | None:
        slot = max(now, self._next)
        if slot - now > self._max_wait:
            return None
        self._next = slot + self._gap
        return slot - now


@dataclass
class _Kind:
    said_at: float
    unsaid: int = 0


class TamedLog(logging.Filter):
    """The filter of the logger aiohttp's request handlers log through (`logger=` of the
    server): one line per kind of failure per WINDOW seconds, never the request's bytes.

    aiohttp logs a malformed request as an ERROR with a traceback whose text quotes the bytes
    received (about 11 lines each): 500 such requests wrote 5,501 lines. A protocol error here
    is the client's fault, so it becomes a WARNING naming its kind and peer; any other error (a
    bug in a handler) keeps its traceback, also once per kind per window.
    """

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        kind = type(exc).__name__ if exc is not None else "other"
        now = self._clock()
        seen = self._kinds.get(kind)
        if seen is not None and now - seen.said_at < self.window:
            seen.unsaid += 1
            return False
        unsaid = seen.unsaid if seen is not None else 0
        self._kinds[kind] = _Kind(now)
        more = f"; {unsaid} more since the last line of this kind" if unsaid else ""
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = (
                f"HTTP: bad request from {peer} ({kind}, answered {exc.code}){more}; the next "
                f"ones of this kind are not logged for {self.window:g}s"
            )
            record.args = ()
            record.exc_info, record.exc_text = None, None
        elif more:
            record.msg = f"{record.msg}{more}"
        return True


def tamed_logger(window: float = 60.0) -> logging.Logger:
    """The logger handed to aiohttp's server instead of `aiohttp.server` (one per process)."""
    logger = logging.getLogger("jcp.observe.http.requests")
    if not any(isinstance(f, TamedLog) for f in logger.filters):
        logger.addFilter(TamedLog(window))
    return logger
