"""`python -m bench.big_images`: issue 20's big-image scenarios over the paced link.

One big image, and four, each of one 200 MiB text-like layer (bench/textlayers.py), on a
registry behind devstack's paced link (each TCP connection at RATE), pulled cold into a real
containerd (1.6 and 1.7) by: the kubelet's serial CRI PullImage, its parallel one, `jcp once`
with `--fetch off`, and with `--fetch on` (skipped, with the reason, while jcp has no
`--fetch`). Each run starts with no image and no content (RemoveImage, then GC checked), and
says the blob bytes the registry sent by User-Agent, the contender's CPU and peak RSS,
containerd's CPU meanwhile (its unpigz included) and, for jcp, each image's fetch and unpack.
Beside them (bench/fetch_floors.py) the floors: the best N-range download plus unpack-only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.fetch_floors import Image, Puller, config_blob, containerd_binary, log, reset, stats
from bench.ranges import blob_url, fetch
from bench.sets import CACHE
from bench.textlayers import text_layers
from devstack.containerd import Containerd
from devstack.images import RegistryClient
from devstack.kubelet import write_volume
from devstack.paced_link import DEFAULT_RATE, PacedLink

MiB = 1 << 20
SEEDS = [2000, 2001, 2002, 2003]
PARALLEL = 8
"""The kubelet's parallel mode here: `maxParallelImagePulls` as bench/containerd.py has it."""


def _jcp_has_fetch() -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "jcp", "once", "--help"], capture_output=True, text=True, check=False
    )
    return "--fetch" in out.stdout


JCP_ARGS: list[str] = []
"""`--jcp-arg`: more options for both jcp contenders (e.g. --fetch-images=1)."""
ONLY: list[str] = []
"""`--only`: the contenders to run (all when empty)."""


def contenders(root: Path, endpoint: str, host: str, refs: list[str]) -> dict[str, Any]:
    """name -> (argv, stdin) or the reason it is skipped."""
    config = root / "config" / str(len(refs))
    entries = [{"ref": r, "registry": host} for r in refs]
    write_volume(config, {"image.config": json.dumps(entries), "interval": "3600"})
    (root / "no-secrets").mkdir(exist_ok=True)
    cri = [sys.executable, "-m", "bench.cri_pull", "--endpoint", endpoint]
    jcp = [sys.executable, "-m", "jcp", "once", "--config-dir", str(config),
           "--docker-config-root", str(root / "no-secrets"), "--progress", "never",
           "--runtime", "cri", "--runtime-endpoint", endpoint,
           "--insecure-registry", host, *JCP_ARGS]  # fmt: skip
    stdin = "\n".join(refs) + "\n"
    has_fetch = _jcp_has_fetch()
    plan = {
        "CRI serial": ([*cri, "--concurrency", "1"], stdin),
        f"CRI parallel {PARALLEL}": ([*cri, "--concurrency", str(PARALLEL)], stdin),
        "jcp --fetch off": ([*jcp, *(["--fetch", "off"] if has_fetch else [])], None),
        "jcp --fetch on": ([*jcp, "--fetch", "on"], None) if has_fetch else "jcp has no --fetch",
        "jcp --fetch auto": ([*jcp, "--fetch", "auto"], None) if has_fetch else "no --fetch",
    }
    return {k: v for k, v in plan.items() if not ONLY or k in ONLY}


PHASES = re.compile(r"Fetched \S+: [\d.]+ MB in ([\d.]+)s .*unpacked it in ([\d.]+)s")
"""jcp's line per image it fetched (jcp/fetch/runtime.py): where its time went."""


def process_cpu(pid: int) -> float:
    """PID's CPU seconds, its reaped children's included (containerd's unpigz)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def run(cmd: list[str], stdin: str | None, scratch: Path) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS bytes, stderr) of CMD, which must exit 0. GNU time
    reports the CPU and peak RSS: a child forked from this (large) process would count this
    process's pages in its own peak until it execs, so the fork must come from a small one."""
    usage = scratch / "usage"
    t0 = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-o", str(usage), "-f", "%U %S %M", *cmd],
        input=(stdin or "").encode(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({done.returncode}): {done.stderr[-1500:]!r}")
    user, system, rss_kib = usage.read_text().split()[-3:]
    return wall, float(user) + float(system), int(rss_kib) * 1024, done.stderr.decode()


def scenario(
    link: PacedLink, daemon: Containerd, images: list[Image], root: Path, repeats: int
) -> dict[str, Any]:
    refs = [i.ref for i in images]
    digests = [i.layer.digest for i in images]
    size = sum(i.layer.size for i in images)
    out: dict[str, Any] = {"images": len(images), "compressed_bytes": size}
    runs: dict[str, list[tuple[float, float, int, dict[str, int], list[list[float]], float]]] = {}
    assert daemon.proc is not None
    plan = contenders(root, daemon.endpoint, link.host, refs)
    for rep in range(repeats):
        for name, how in plan.items():
            if isinstance(how, str):
                out[name] = {"skipped": how}
                continue
            asyncio.run(reset(daemon.endpoint, refs, digests))
            requests = link.requests()
            requests.mark()
            cmd, stdin = how
            before = process_cpu(daemon.proc.pid)
            wall, cpu, rss, said = run(cmd, stdin, root)
            runtime_cpu = process_cpu(daemon.proc.pid) - before
            phases = [[float(a), float(b)] for a, b in PHASES.findall(said)]
            sent: Counter[str] = Counter()
            for r in requests.settled(link.host):
                if r.blob_get:
                    sent[r.product] += r.written
            runs.setdefault(name, []).append((wall, cpu, rss, dict(sent), phases, runtime_cpu))
            each = f" fetch/unpack per image {phases}" if phases else ""
            log(
                f"{len(images)} image(s) {name} run {rep + 1}: {wall:.2f}s cpu {cpu:.2f}s "
                f"containerd's cpu {runtime_cpu:.2f}s{each}"
            )
    for name, got in runs.items():
        out[name] = {
            **stats([g[0] for g in got], size),
            "cpu_s": [round(g[1], 2) for g in got],
            "containerd_cpu_s": [round(g[5], 2) for g in got],
            "cpu_s_per_GB": round(min(g[1] for g in got) / (size / 1e9), 2),
            "peak_rss_MiB": round(max(g[2] for g in got) / MiB, 1),
            "registry_blob_bytes_by_agent": got[-1][3],
            **({"fetch_unpack_s_per_image": [g[4] for g in got]} if got[-1][4] else {}),
        }
    return out


def ratios(result: dict[str, Any], floor: float) -> dict[str, float | None]:
    def median(name: str) -> float | None:
        seconds = result.get(name, {}).get("median_s")
        return float(seconds) if seconds is not None else None

    out: dict[str, float | None] = {}
    on, off = median("jcp --fetch on"), median("jcp --fetch off")
    for label, a, b in (
        ("jcp on / CRI serial", on, median("CRI serial")),
        (f"jcp on / CRI parallel {PARALLEL}", on, median(f"CRI parallel {PARALLEL}")),
        ("jcp off / CRI serial", off, median("CRI serial")),
        (f"jcp off / CRI parallel {PARALLEL}", off, median(f"CRI parallel {PARALLEL}")),
        ("jcp on / (N-range + unpack-only) x images", on, floor),
    ):
        out[label] = round(a / b, 3) if a is not None and b else None
    return out


def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    layers = text_layers(args.size_mib * MiB, SEEDS, CACHE, workers=2)
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load": os.getloadavg()}
    with PacedLink(root / "link", rate=args.rate_mbps * 1e6) as link:
        result["link"] = {"rate_MBps": args.rate_mbps, "classes": link.classes}
        client = RegistryClient(link.host)
        images = []
        for i, layer in enumerate(layers):
            repo = f"bench/big-{i}"
            pushed = client.push_image(repo, "1", [layer])
            images.append(
                Image(pushed.reference, layer, [config_blob(link.host, repo), layer.blob])
            )
        client.close()
        one = images[0]
        url = blob_url(link.url, "bench/big-0", one.layer.digest)
        n_range = min(asyncio.run(fetch(url, one.layer.size, args.streams)) for _ in range(3))
        result["n_range"] = {"streams": args.streams, "min_s": round(n_range, 3)}
        for version in args.containerd:
            daemon = Containerd(
                root / f"cd-{version}", registries=[link.host], binary=containerd_binary(version)
            )
            daemon.start()
            try:
                puller = Puller(daemon, link, one)
                unpack = min(asyncio.run(puller.unpack_only()) for _ in range(args.repeats))
                floor = n_range + unpack
                got: dict[str, Any] = {"unpack_only_min_s": round(unpack, 3),
                                       "floor_one_s": round(floor, 3)}  # fmt: skip
                for label, subset in (("one", images[:1]), ("four", images)):
                    r = scenario(link, daemon, subset, root, args.repeats)
                    r["ratios"] = ratios(r, floor * len(subset))
                    got[label] = r
                result[version] = got
            finally:
                daemon.stop()
                shutil.rmtree(daemon.root, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.big_images")
    parser.add_argument("--size-mib", type=int, default=200, help="each layer's tar size")
    parser.add_argument("--rate-mbps", type=float, default=DEFAULT_RATE / 1e6)
    parser.add_argument("--streams", type=int, default=8, help="ranges of the N-range floor")
    parser.add_argument("--containerd", nargs="+", default=["1.6", "1.7"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--jcp-arg", action="append", default=[], help="more jcp options")
    parser.add_argument("--only", action="append", default=[], help="a contender to run")
    args = parser.parse_args(argv)
    JCP_ARGS[:] = args.jcp_arg
    ONLY[:] = args.only
    tmp = os.environ.get("JCP_TEST_TMP", tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix="jcpbi-", dir=tmp))
    try:
        result = measure(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
