"""`python -m bench.transport`: grpcio vs grpclib against a real containerd (BENCHMARKS.md).

What chose grpclib as jcp's one gRPC transport (jcp/runtime/grpc_transport.py).

Per transport, on one channel each, against the same containerd (its root on a tmpfs when one
can be mounted, so the disk does not set the pace): the latency of sequential CRI calls
(RuntimeService/Version, ImageService/ImageStatus of an absent image) as p50/p99 over N calls
after a warm-up, and the throughput of streaming a random blob into containerd's content store
through Content.Write (lock step, one WRITE and its answer per chunk, as containerd's own
client does; the last chunk with COMMIT and the expected digest) under a lease, which is then
deleted with sync=true, so containerd's GC removes the blob at once (Content.Info says NOT_FOUND).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from google.protobuf.empty_pb2 import Empty

from devstack.containerd import Containerd
from jcp.cli import malloc
from jcp.runtime.containerd_api import content_pb2 as cpb
from jcp.runtime.containerd_api import leases_pb2 as lpb
from jcp.runtime.cri_api import api_pb2 as pb
from jcp.runtime.grpc_transport import CallError, Channel, Unary, open_channel

NAMESPACE = "jcp-bench"
CONTENT = "/containerd.services.content.v1.Content/"
LEASES = "/containerd.services.leases.v1.Leases/"
NS = (("containerd-namespace", NAMESPACE),)


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def latency(channel: Channel, calls: int) -> dict[str, dict[str, float]]:
    version = channel.unary(
        "/runtime.v1.RuntimeService/Version", pb.VersionRequest, pb.VersionResponse
    )
    status = channel.unary(
        "/runtime.v1.ImageService/ImageStatus", pb.ImageStatusRequest, pb.ImageStatusResponse
    )
    absent = pb.ImageStatusRequest(image=pb.ImageSpec(image="127.0.0.1:1/absent:1"))
    out: dict[str, dict[str, float]] = {}
    for name, call in (
        ("Version", lambda: version(pb.VersionRequest(), deadline=10)),
        ("ImageStatus", lambda: status(absent, deadline=10)),
    ):
        for _ in range(max(10, calls // 20)):  # warm-up: connection, caches
            await call()
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - t0) * 1e6)
        out[name] = {
            "p50_us": round(_pct(samples, 50), 1),
            "p99_us": round(_pct(samples, 99), 1),
            "mean_us": round(statistics.fmean(samples), 1),
        }
    return out


async def write_blob(channel: Channel, blob: bytes, chunk: int, lease: str) -> float:
    """Seconds to stream BLOB into the content store under LEASE (from the first WRITE to the
    COMMIT's answer)."""
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    meta = (("containerd-namespace", NAMESPACE), ("containerd-lease", lease))
    ref = f"bench-{lease}"
    t0 = time.perf_counter()
    async with channel.stream(
        CONTENT + "Write", cpb.WriteContentRequest, cpb.WriteContentResponse, metadata=meta
    ) as stream:
        offset = 0
        while offset < len(blob):
            data = blob[offset : offset + chunk]
            last = offset + len(data) == len(blob)
            await stream.send(
                cpb.WriteContentRequest(
                    action=cpb.COMMIT if last else cpb.WRITE,
                    ref=ref,
                    total=len(blob),
                    expected=digest if last else "",
                    offset=offset,
                    data=data,
                ),
                last=last,
            )
            got = await stream.recv()
            offset += len(data)
            if not last and got.offset != offset:
                raise CallError("DATA_LOSS", f"containerd is at {got.offset}, we sent {offset}")
        if got.digest != digest:
            raise CallError("DATA_LOSS", f"committed {got.digest}, expected {digest}")
    return time.perf_counter() - t0


async def _present(info: Unary[cpb.InfoRequest, cpb.InfoResponse], digest: str) -> bool:
    try:
        await info(cpb.InfoRequest(digest=digest), deadline=10, metadata=NS)
    except CallError as exc:
        if exc.code == "NOT_FOUND":
            return False
        raise
    return True


async def streaming(channel: Channel, blob: bytes, chunk: int, reps: int) -> dict[str, Any]:
    create = channel.unary(LEASES + "Create", lpb.CreateRequest, lpb.CreateResponse)
    delete = channel.unary(LEASES + "Delete", lpb.DeleteRequest, Empty)
    info = channel.unary(CONTENT + "Info", cpb.InfoRequest, cpb.InfoResponse)
    ns = NS
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    rates: list[float] = []
    cpu: list[float] = []
    """This process's CPU seconds per GB streamed (the client side of the transport)."""
    for rep in range(reps):
        lease = f"{channel.name}-{rep}-{os.getpid()}"
        await create(lpb.CreateRequest(id=lease), deadline=10, metadata=ns)
        cpu0 = time.process_time()
        seconds = await write_blob(channel, blob, chunk, lease)
        cpu.append((time.process_time() - cpu0) / (len(blob) / 1e9))
        assert (await info(cpb.InfoRequest(digest=digest), deadline=10, metadata=ns)).info.size
        await delete(lpb.DeleteRequest(id=lease, sync=True), deadline=60, metadata=ns)
        if await _present(info, digest):
            raise AssertionError("the blob outlived its lease")
        rates.append(len(blob) / seconds / 1e6)
    return {
        "MBps": [round(r, 1) for r in rates],
        "median_MBps": round(statistics.median(rates), 1),
        "cpu_s_per_GB": [round(c, 2) for c in cpu],
    }


async def measure(endpoint: str, transport: str, args: argparse.Namespace) -> dict[str, Any]:
    blob = os.urandom(args.blob_mib * 1024 * 1024)
    channel = _channel(endpoint, transport)
    try:
        return {
            "latency": await latency(channel, args.calls),
            "stream": {
                "blob_MiB": args.blob_mib,
                "chunk_KiB": args.chunk_kib,
                **await streaming(channel, blob, args.chunk_kib * 1024, args.reps),
            },
        }
    finally:
        await channel.close()


def _channel(endpoint: str, transport: str) -> Channel:
    """jcp's own (grpclib), or grpcio's for the comparison (bench/grpcio_channel.py)."""
    if transport == "grpcio":
        from bench.grpcio_channel import GrpcioChannel  # noqa: PLC0415 (needs grpcio)

        return GrpcioChannel(endpoint)
    return open_channel(endpoint)


def _available() -> list[str]:
    return [t for t in ("grpcio", "grpclib") if importlib.util.find_spec(t.replace("io", ""))]


def _tmpfs(root: Path) -> bool:
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", str(root)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds (the machine is shared: rounds alternate the transports)."""
    lat = {
        m: {k: round(statistics.median(r["latency"][m][k] for r in rounds), 1) for k in v}
        for m, v in rounds[0]["latency"].items()
    }
    rates = [x for r in rounds for x in r["stream"]["MBps"]]
    cpu = [x for r in rounds for x in r["stream"]["cpu_s_per_GB"]]
    return {
        "latency": lat,
        "MBps": rates,
        "median_MBps": round(statistics.median(rates), 1),
        "median_cpu_s_per_GB": round(statistics.median(cpu), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transport")
    parser.add_argument("--calls", type=int, default=2000, help="unary calls per method")
    parser.add_argument("--blob-mib", type=int, default=256, help="size of the streamed blob")
    parser.add_argument("--chunk-kib", type=int, default=1024, help="bytes per WRITE message")
    parser.add_argument("--reps", type=int, default=2, help="blobs streamed per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, transports alternating")
    parser.add_argument("--transport", action="append", choices=["grpcio", "grpclib"])
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--malloc", choices=["jcp", "default"], default="jcp",
        help="glibc's malloc tuned as jcp tunes it (jcp/cli/malloc.py), or as it comes",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.malloc == "jcp":
        malloc.tune()
    tmp = os.environ.get("JCP_TEST_TMP", tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix="jcpbt-", dir=tmp))
    on_tmpfs = _tmpfs(root)
    daemon = Containerd(root)
    daemon.start()
    transports = args.transport or _available()
    rounds: dict[str, list[dict[str, Any]]] = {t: [] for t in transports}
    try:
        for n in range(args.rounds):
            for transport in transports if n % 2 == 0 else reversed(transports):
                got = asyncio.run(measure(daemon.endpoint, transport, args))
                rounds[transport].append(got)
                print(f"round {n + 1} {transport}: {json.dumps(got)}", flush=True)
    finally:
        daemon.stop()
        if on_tmpfs:
            subprocess.run(["umount", "-l", str(root)], check=False)
        shutil.rmtree(root, ignore_errors=True)
    results = {
        "containerd_root_on_tmpfs": on_tmpfs,
        "cpus": os.cpu_count(),
        "load": Path("/proc/loadavg").read_text().split()[:3],
        **{t: summary(r) for t, r in rounds.items()},
    }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
