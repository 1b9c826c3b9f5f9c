"""`python -m bench.fetch_floors`: the floors of issue 20, over the paced link (BENCHMARKS.md).

One image with one big text-like layer (bench/textlayers.py: 200 MiB of tar, gzip'd at the
default level, compressing like real layers) on a registry behind devstack's paced link, where
each TCP connection runs at RATE. Measured, in one run:
- the blob's bytes over one connection and over N range requests at once (aiohttp,
  bench/ranges.py): what any fetcher can reach, and which N is enough;
- CRI PullImage of the image, cold (nothing of it in containerd), on each containerd: what the
  kubelet's pull costs today (containerd fetches a layer over one connection);
- "unpack-only": PullImage when the config and layer are already in containerd's content store
  (bench/prefill.py): what is left for the runtime after a fetch of jcp's own;
- both with unpigz on containerd's PATH and without (CONTAINERD_DISABLE_PIGZ=1).
The floor of "fetch, then PullImage" is the best N-range time plus unpack-only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import prefill
from bench.cri_pull import run as cri_pull
from bench.ranges import blob_url, fetch
from bench.sets import CACHE
from bench.textlayers import text_layers
from devstack.containerd import Containerd
from devstack.images import Layer, RegistryClient
from devstack.paced_link import DEFAULT_RATE, PacedLink
from jcp.runtime.grpc_transport import open_channel

MiB = 1 << 20
REPO = "bench/floor"
SEED = 2000
"""The layer's seed: its own bytes, not the big set's (bench/sets.py uses 1000+)."""
VERSIONS = {"1.6": "/usr/bin/containerd"}


def log(message: str) -> None:
    print(f"[floors {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stats(values: list[float], size: int) -> dict[str, Any]:
    best = min(values)
    return {
        "median_s": round(statistics.median(values), 3),
        "min_s": round(best, 3),
        "runs_s": [round(v, 3) for v in values],
        "best_MBps": round(size / best / 1e6, 1),
    }


def containerd_binary(version: str) -> str:
    if version in VERSIONS:
        return VERSIONS[version]
    script = (
        Path(__file__).resolve().parent.parent
        / "scripts"
        / f"install-containerd{version.replace('.', '')}.sh"
    )
    return subprocess.run([str(script)], capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def env(name: str, value: str | None) -> Iterator[None]:
    """NAME set to VALUE (None: unset) for the daemons started inside (they inherit it)."""
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def config_blob(host: str, repo: str) -> bytes:
    """The pushed image's config, read back (push_image builds it and keeps only its digest)."""
    conn = http.client.HTTPConnection(host, timeout=30)
    try:
        accept = "application/vnd.docker.distribution.manifest.v2+json"
        conn.request("GET", f"/v2/{repo}/manifests/1", headers={"Accept": accept})
        manifest = json.loads(conn.getresponse().read())
        conn.request("GET", f"/v2/{repo}/blobs/{manifest['config']['digest']}")
        return conn.getresponse().read()
    finally:
        conn.close()


async def ranges(url: str, size: int, streams: list[int], repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in streams:
        runs = [await fetch(url, size, n) for _ in range(repeats)]
        out[str(n)] = stats(runs, size)
        log(f"{n} stream(s): {out[str(n)]}")
    return out


async def reset(endpoint: str, refs: list[str], digests: list[str]) -> None:
    """No image of REFS, and none of the DIGESTS' blobs in the store (containerd's GC ran)."""
    await cri_pull(endpoint, refs, 1, remove=True)
    channel = open_channel(endpoint)
    try:
        deadline = time.monotonic() + 60
        for digest in digests:
            while await prefill.present(channel, digest):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"containerd kept {digest} after RemoveImage")
                await asyncio.sleep(0.1)
    finally:
        await channel.close()


@dataclass(frozen=True)
class Image:
    ref: str
    layer: Layer
    blobs: list[bytes]
    """The config and the layer: what a prefill writes."""


class Puller:
    """One containerd, PullImage of one image: cold, or with its blobs already present. Each
    pull also says which blob bytes the registry sent, by User-Agent (its own log)."""

    def __init__(self, daemon: Containerd, link: PacedLink, image: Image) -> None:
        self.daemon, self.link, self.image = daemon, link, image
        self.ref, self.blobs, self.layer = image.ref, image.blobs, image.layer
        self.blob_bytes: list[dict[str, int]] = []

    async def _reset(self) -> None:
        await reset(self.daemon.endpoint, [self.ref], [self.layer.digest])

    async def _pull(self) -> float:
        requests = self.link.requests()
        requests.mark()
        t0 = time.perf_counter()
        if await cri_pull(self.daemon.endpoint, [self.ref], 1, remove=False):
            raise RuntimeError(f"PullImage {self.ref} failed")
        seconds = time.perf_counter() - t0
        sent: Counter[str] = Counter()
        for r in await asyncio.to_thread(requests.settled, self.link.host):
            if r.blob_get:
                sent[r.product] += r.written
        self.blob_bytes.append(dict(sent))
        return seconds

    async def cold(self) -> float:
        await self._reset()
        return await self._pull()

    async def unpack_only(self) -> float:
        await self._reset()
        channel = open_channel(self.daemon.endpoint)
        try:
            lease = await prefill.create_lease(channel)
            for blob in self.blobs:
                await prefill.write(channel, blob, lease)
            seconds = await self._pull()
            await prefill.delete_lease(channel, lease)
        finally:
            await channel.close()
        return seconds


def pulls(root: Path, link: PacedLink, image: Image, version: str, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pigz in (True, False):
        tag = "unpigz" if pigz else "no unpigz"
        with env("CONTAINERD_DISABLE_PIGZ", None if pigz else "1"):
            daemon = Containerd(
                root / f"containerd-{version}-{int(pigz)}",
                registries=[link.host],
                binary=containerd_binary(version),
            )
            daemon.start()
        try:
            puller = Puller(daemon, link, image)
            for name, how in (("pull", puller.cold), ("unpack_only", puller.unpack_only)):
                puller.blob_bytes.clear()
                runs = [asyncio.run(how()) for _ in range(repeats)]
                out[f"{name} ({tag})"] = {
                    **stats(runs, image.layer.size),
                    "registry_blob_bytes_by_agent": puller.blob_bytes[:],
                }
                log(f"containerd {version} {name} ({tag}): {out[f'{name} ({tag})']}")
        finally:
            daemon.stop()
            shutil.rmtree(daemon.root, ignore_errors=True)
    return out


def floors(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's floors from the measured figures: best N-range plus unpack-only, beside
    the serial PullImage (both with unpigz, what a node should have)."""
    best_n, best = min(result["ranges"].items(), key=lambda kv: kv[1]["median_s"])
    out: dict[str, Any] = {"best_streams": int(best_n), "best_ranges_s": best["median_s"]}
    for version, figures in result["containerd"].items():
        unpack = figures["unpack_only (unpigz)"]["median_s"]
        pull = figures["pull (unpigz)"]["median_s"]
        floor = best["median_s"] + unpack
        out[version] = {
            "n_range_plus_unpack_only_s": round(floor, 3),
            "serial_pull_s": pull,
            "floor_vs_serial_pull": round(floor / pull, 3),
        }
    return out


def measure(
    args: argparse.Namespace, root: Path, progress: Callable[[str], None]
) -> dict[str, Any]:
    layer = text_layers(args.size_mib * MiB, [SEED], CACHE, workers=1)[0]
    result: dict[str, Any] = {
        "layer": {"tar_MiB": args.size_mib, "compressed_bytes": layer.size},
        "cpus": os.cpu_count(),
        "load": Path("/proc/loadavg").read_text().split()[:3],
    }
    with PacedLink(root / "link", rate=args.rate_mbps * 1e6) as link:
        result["link"] = {"rate_MBps": args.rate_mbps, "classes": link.classes, "url": link.url}
        client = RegistryClient(link.host)
        pushed = client.push_image(REPO, "1", [layer])
        client.close()
        image = Image(pushed.reference, layer, [config_blob(link.host, REPO), layer.blob])
        progress(f"pushed {pushed.reference}: {layer.size} bytes")
        url = blob_url(link.url, REPO, layer.digest)
        result["ranges"] = asyncio.run(ranges(url, layer.size, args.streams, args.repeats))
        result["containerd"] = {
            v: pulls(root, link, image, v, args.repeats) for v in args.containerd
        }
    result["floors"] = floors(result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fetch_floors")
    parser.add_argument("--size-mib", type=int, default=200, help="the layer's tar size")
    parser.add_argument("--rate-mbps", type=float, default=DEFAULT_RATE / 1e6,
                        help="each connection's rate, MB/s on the wire")  # fmt: skip
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--containerd", nargs="+", default=["1.6", "1.7"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    tmp = os.environ.get("JCP_TEST_TMP", tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix="jcpff-", dir=tmp))
    try:
        result = measure(args, root, log)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
