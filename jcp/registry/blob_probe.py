"""How fast one connection of a registry is, asked once per registry before `--fetch auto`
fetches from it: one ranged GET of the start of an image's largest blob, timed.

Why: jcp's ranged fetch pays where a link paces each connection (CDNs, object stores); where it
does not (a LAN registry, an in-cluster mirror), containerd's own fetch is as fast and costs the
node less CPU: measured over an unpaced link, jcp's fetch took 1.2 to 1.5 times the runtime's
own pull (BENCHMARKS.md). Throughput during the fetch cannot tell the two apart on a small node
(jcp's CPU, not the link, then sets the pace of all connections together): one connection alone
can. The probe's bytes are not kept (at most `PROBE_BYTES`, once per registry).
"""

from __future__ import annotations

import time

import aiohttp

from jcp.model.credentials import RegistryAuth
from jcp.model.failures import RegistryFailure
from jcp.model.manifests import Blob
from jcp.model.refs import ImageRef
from jcp.registry.blobs import USER_AGENT
from jcp.registry.client import RegistryClient
from jcp.registry.hosts import HostsError

PROBE_BYTES = 4 * 1024 * 1024
_PIECE = 256 * 1024
_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)


async def one_connection_rate(
    client: RegistryClient, image: ImageRef, blob: Blob, auth: RegistryAuth | None
) -> float | None:
    """Bytes a second one connection moved for the first PROBE_BYTES of BLOB (request to last
    byte: latency counts, as it does for every range); None when the registry could not say."""
    want = min(blob.size, PROBE_BYTES)
    try:
        session = client.session(client.blob_endpoint(image))
    except HostsError:
        return None
    url = client.blob_url(image, blob.digest)
    challenge = None
    for _ in (1, 2):
        try:
            headers = await client.pull_headers(image, auth, challenge)
        except RegistryFailure:
            return None
        headers |= {"Range": f"bytes=0-{want - 1}", "User-Agent": USER_AGENT}
        started = time.monotonic()
        got = 0
        try:
            # aiohttp follows redirects and drops Authorization on one to another host.
            async with session.get(url, headers=headers, timeout=_TIMEOUT) as resp:
                if resp.status == 401 and challenge is None:
                    challenge = resp.headers.get("WWW-Authenticate") or ""
                    continue
                if resp.status not in (200, 206):
                    return None
                async for piece in resp.content.iter_chunked(_PIECE):
                    got += len(piece)
                    if got >= want:
                        break
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None
        return got / max(time.monotonic() - started, 1e-6) if got >= want else None
    return None
