"""The bytes of one blob over one connection and over N range requests at once (aiohttp).

The floor of any fetcher on a link that paces connections: nothing is verified or stored,
each request runs on a fresh connection (as a fetcher's first pull of an image would), and
the clock runs from the first request to the last byte.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

AGENT = "jcp-bench-ranges/1"
READ = 1 << 20


def spans(size: int, streams: int) -> list[tuple[int, int]]:
    """STREAMS contiguous (first, last) byte ranges covering SIZE bytes, as even as can be."""
    step, extra = divmod(size, streams)
    out, at = [], 0
    for i in range(streams):
        n = step + (1 if i < extra else 0)
        out.append((at, at + n - 1))
        at += n
    return [s for s in out if s[1] >= s[0]]


async def _get(session: aiohttp.ClientSession, url: str, span: tuple[int, int] | None) -> int:
    headers = {"User-Agent": AGENT}
    if span is not None:
        headers["Range"] = f"bytes={span[0]}-{span[1]}"
    async with session.get(url, headers=headers) as resp:
        if resp.status != (206 if span is not None else 200):
            raise RuntimeError(f"GET {url} {headers.get('Range', '')}: HTTP {resp.status}")
        got = 0
        async for chunk in resp.content.iter_chunked(READ):
            got += len(chunk)
        return got


async def fetch(url: str, size: int, streams: int) -> float:
    """Seconds to read SIZE bytes of URL: one plain GET (STREAMS 1) or STREAMS ranges at once."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        if streams == 1:
            got = await _get(session, url, None)
        else:
            got = sum(await asyncio.gather(*(_get(session, url, s) for s in spans(size, streams))))
        seconds = time.perf_counter() - t0
    if got != size:
        raise RuntimeError(f"{url}: read {got} bytes, expected {size}")
    return seconds


def blob_url(base: str, repo: str, digest: str) -> str:
    return f"{base}/v2/{repo}/blobs/{digest}"
