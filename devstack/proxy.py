"""A TCP proxy on loopback in front of a registry: added latency, a bandwidth cap, a pause.

It makes real network conditions for tests and benchmarks: a slow link (latency per request,
shared bandwidth), a registry that hangs mid-transfer (pause: bytes stop flowing, connections
stay open), all through the real daemon's real HTTP client. It runs its own event loop in a
thread so that synchronous and asynchronous callers can both use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class ThrottleProxy:
    def __init__(self, upstream: str, *, latency: float = 0.0, rate: float | None = None) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.latency = latency
        self.rate = rate
        self.port = 0
        self.requests = 0
        self.sent_down = 0
        """Bytes written to clients so far (a cancelled pull stops them growing)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._flowing: asyncio.Event | None = None
        self._next_free = 0.0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ThrottleProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def pause(self) -> None:
        """Stop forwarding bytes (connections stay open): a registry that hangs."""
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.set)

    def stop(self) -> None:
        async def _close() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    async def _throttle(self, n: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        self._next_free = max(now, self._next_free) + n / self.rate
        delay = self._next_free - now
        if delay > 0.001:
            await asyncio.sleep(delay)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, down: bool
    ) -> None:
        assert self._flowing is not None
        try:
            while True:
                chunk = await reader.read(64 * 1024)
                if not chunk:
                    break
                await self._flowing.wait()
                if down:
                    await self._throttle(len(chunk))
                else:
                    self.requests += 1
                    if self.latency:
                        await asyncio.sleep(self.latency)
                writer.write(chunk)
                await writer.drain()
                if down:
                    self.sent_down += len(chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(
                self._pump(client_r, up_w, down=False), self._pump(up_r, client_w, down=True)
            )
        except asyncio.CancelledError:
            return  # stop() cancels connections; nothing to report
        finally:
            self._tasks.discard(task)
