"""`python -m bench.cri_pull --endpoint unix:///... [--concurrency N] [--remove] < refs`

The kubelet's own behaviour as a baseline: CRI PullImage calls, one image after another
(`serializeImagePulls: true`, the kubelet's default) or N at a time (`serializeImagePulls:
false` with `maxParallelImagePulls: N`), over jcp's generated CRI stubs, with no credentials
and no decisions, which is what the kubelet does for `imagePullPolicy: Always`. `--remove`
removes the images instead (the cold scenarios' reset).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from typing import Any

# Imported by name: grpc ships no type information, and the stubs are generated code.
grpc: Any = importlib.import_module("grpc")


def stubs() -> tuple[Any, Any]:
    """(messages module, services module) of the generated CRI v1 API."""
    package = "jcp.runtime.cri_api"
    return (
        importlib.import_module(f"{package}.api_pb2"),
        importlib.import_module(f"{package}.api_pb2_grpc"),
    )


async def run(endpoint: str, refs: list[str], concurrency: int, *, remove: bool) -> int:
    pb, services = stubs()
    target = endpoint if endpoint.startswith("unix:") else f"unix://{endpoint}"
    async with grpc.aio.insecure_channel(
        target, options=[("grpc.max_receive_message_length", 64 << 20)]
    ) as channel:
        images = services.ImageServiceStub(channel)
        bound = asyncio.Semaphore(concurrency)
        failed = 0

        async def one(ref: str) -> None:
            nonlocal failed
            async with bound:
                spec = pb.ImageSpec(image=ref)
                try:
                    if remove:
                        await images.RemoveImage(pb.RemoveImageRequest(image=spec), timeout=120)
                    else:
                        await images.PullImage(pb.PullImageRequest(image=spec), timeout=900)
                except grpc.aio.AioRpcError as exc:
                    if remove and exc.code() == grpc.StatusCode.NOT_FOUND:
                        return
                    failed += 1
                    print(f"{ref}: {exc.code().name}: {exc.details()}", file=sys.stderr)

        await asyncio.gather(*(one(r) for r in refs))
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cri_pull")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--remove", action="store_true")
    args = parser.parse_args()
    refs = sys.stdin.read().split()
    return asyncio.run(run(args.endpoint, refs, args.concurrency, remove=args.remove))


if __name__ == "__main__":
    sys.exit(main())
