"""`python -m tests.support.fetch_child ENDPOINT IMAGE CHUNK`: a process that fetches IMAGE's
blobs into containerd as jcp does, printing `lease <id>` and then the bytes received so far,
so that a test can SIGKILL it mid-fetch (a crash: no cleanup of any kind runs)."""

from __future__ import annotations

import asyncio
import sys

from jcp.model.refs import parse_reference
from jcp.registry.blobs import BlobFetcher
from jcp.registry.client import RegistryClient
from jcp.runtime.content_store import ContentStore
from tests.support.fetch_images import ARCH


async def main(endpoint: str, image: str, chunk: int) -> None:
    ref = parse_reference(image)
    client = RegistryClient()
    store = ContentStore(endpoint)
    remote = await client.inspect(ref, None, ARCH)
    lease = await store.lease(ttl=120)
    print(f"lease {lease}", flush=True)
    got = [0]

    def count(n: int) -> None:
        got[0] += n
        print(got[0], flush=True)

    await BlobFetcher(client, streams=2, chunk=chunk).fetch(
        ref, remote.blobs, store, None, count, lease=lease
    )
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
