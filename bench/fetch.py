"""`python -m bench.fetch`: jcp's blob fetch into a real containerd on loopback, by streams and
chunk size, with jcp's peak RSS and CPU per GB (what chose the defaults in jcp/registry/blobs.py).

One random blob (incompressible, as a layer is) pushed to a `docker-registry` on 127.0.0.1;
containerd's root on a tmpfs when one can be mounted (the disk does not set the pace). Each
configuration runs in a fresh child process, so its peak RSS is its own: the figure is the
peak (VmHWM) minus the RSS just before the fetch. After each fetch the lease is deleted
with sync=true, so containerd's GC removes the blob at once and the next fetch starts cold.
The child tunes glibc's malloc as jcp does at start (jcp/cli/malloc.py);
JCP_BENCH_MALLOC=default leaves it as it comes, to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from devstack.containerd import Containerd
from devstack.images import RegistryClient as Pusher
from devstack.images import _sha256
from devstack.services import Registry
from jcp.model.manifests import Blob
from jcp.model.refs import ImageRef

MiB = 1024 * 1024


class _Null:
    """JCP_BENCH_NULL=1: a sink that drops the bytes, to tell the registry side's cost from
    containerd's."""

    offset = 0

    async def info(self, _digest: str) -> int | None:
        return None

    async def writer(self, *_args: object) -> _Null:
        return self

    async def write(self, data: bytes) -> None:
        pass

    async def commit(self) -> None:
        pass

    async def abort(self) -> None:
        pass

    async def close(self) -> None:
        pass


def _status(field: str) -> int:
    """VmRSS or VmHWM (its peak) in bytes. Not ru_maxrss: Linux keeps that across execve, so
    a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


async def one(
    endpoint: str, host: str, digest: str, size: int, *, streams: int, chunk: int
) -> dict[str, Any]:
    from jcp.cli import malloc  # noqa: PLC0415
    from jcp.registry.blobs import BlobFetcher  # noqa: PLC0415 (in the child, after the RSS base)
    from jcp.registry.client import RegistryClient  # noqa: PLC0415
    from jcp.runtime import content_store, content_writer  # noqa: PLC0415

    if os.environ.get("JCP_BENCH_MALLOC") != "default":  # =default: glibc's own, to compare
        malloc.tune()  # as jcp does at start
    if os.environ.get("JCP_BENCH_AHEAD"):
        content_writer.AHEAD = int(os.environ["JCP_BENCH_AHEAD"])
    store = content_store.ContentStore(endpoint, namespace="jcp-bench")
    sink: Any = _Null() if os.environ.get("JCP_BENCH_NULL") else store
    client = RegistryClient()
    fetcher = BlobFetcher(client, streams=streams, chunk=chunk * MiB)
    image = ImageRef(host, "bench-fetch", "1")
    blob = Blob(digest, size, "application/octet-stream")
    base = _status("VmRSS")
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    lease = await store.lease(600)
    t0 = time.perf_counter()
    report = await fetcher.fetch(image, [blob], sink, None, lambda _n: None, lease=lease)
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    peak = _status("VmHWM")
    assert report.blobs_fetched == 1, report
    await store.drop_lease(lease, sync=True)
    assert await store.info(digest) is None, "the blob outlived its lease"
    await fetcher.close()
    await client.close()
    await store.close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "streams": streams,
        "chunk_MiB": chunk,
        "MBps": round(size / seconds / 1e6, 1),
        "seconds": round(seconds, 3),
        "rss_delta_MiB": round((peak - base) / MiB, 1),
        "window_peak_MiB": round(fetcher.window.peak / MiB, 1),
        "cpu_s_per_GB": round(cpu / (size / 1e9), 2),
        "ranges": report.ranges,
    }


class PacedProxy:
    """A TCP proxy pacing each connection on its own to RATE bytes/s, as CDNs and object
    stores pace connections (the registry's answers only; requests pass as they come)."""

    def __init__(self, upstream: str, rate: float) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream, self.rate, self.port = (host, int(port)), rate, 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> PacedProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection(*self.upstream)

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, *, paced: bool) -> None:
            start, sent = time.monotonic(), 0
            with contextlib.suppress(OSError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
                    sent += len(data)
                    ahead = start + sent / self.rate - time.monotonic()
                    if paced and ahead > 0:
                        await asyncio.sleep(ahead)
            w.close()

        await asyncio.gather(pump(cr, uw, paced=False), pump(ur, cw, paced=True))

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.fetch", "--child", *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fetch")
    parser.add_argument("--blob-mib", type=int, default=200)
    parser.add_argument("--streams", type=int, nargs="*", default=[1, 4, 8])
    parser.add_argument("--chunk-mib", type=int, nargs="*", default=[4, 16, 64])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--binary", default="containerd")
    parser.add_argument("--pace-mbps", type=float, help="pace each connection to this (MB/s)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        endpoint, host, digest, size, streams, chunk = args.child
        got = asyncio.run(
            one(endpoint, host, digest, int(size), streams=int(streams), chunk=int(chunk))
        )
        print(json.dumps(got))
        return 0
    tmp = os.environ.get("JCP_TEST_TMP", tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix="jcpbf-", dir=tmp))
    (root / "c").mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3g", "tmpfs", str(root / "c")],
        capture_output=True, check=False,
    ).returncode == 0  # fmt: skip
    registry = Registry(root / "registry")
    daemon = Containerd(root / "c", binary=args.binary)
    rows: dict[tuple[int, int], list[dict[str, Any]]] = {}
    try:
        registry.start()
        daemon.start()
        blob = os.urandom(args.blob_mib * MiB)
        digest = _sha256(blob)
        Pusher(registry.host).push_blob("bench-fetch", blob)
        host = registry.host
        if args.pace_mbps:
            paced = PacedProxy(registry.host, args.pace_mbps * 1e6).start()
            host = paced.host
        size = len(blob)
        del blob
        for n in range(args.rounds):
            for streams in args.streams:
                for chunk in args.chunk_mib:
                    got = child(
                        [
                            daemon.endpoint,
                            host,
                            digest,
                            str(size),
                            str(streams),
                            str(chunk),
                        ]
                    )
                    rows.setdefault((streams, chunk), []).append(got)
                    print(f"round {n + 1}: {json.dumps(got)}", flush=True)
    finally:
        daemon.stop()
        registry.stop()
        if mounted:
            subprocess.run(["umount", "-l", str(root / "c")], check=False)
        shutil.rmtree(root, ignore_errors=True)
    table = [
        {
            "streams": s,
            "chunk_MiB": c,
            "median_MBps": statistics.median(r["MBps"] for r in runs),
            "rss_delta_MiB": max(r["rss_delta_MiB"] for r in runs),
            "cpu_s_per_GB": statistics.median(r["cpu_s_per_GB"] for r in runs),
        }
        for (s, c), runs in rows.items()
    ]
    out = {
        "blob_MiB": args.blob_mib,
        "containerd": args.binary,
        "containerd_root_on_tmpfs": mounted,
        "paced_MBps_per_connection": args.pace_mbps,
        "cpus": os.cpu_count(),
        "load": Path("/proc/loadavg").read_text().split()[:3],
        "table": table,
    }
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
