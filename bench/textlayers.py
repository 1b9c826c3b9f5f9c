"""Big layers shaped like real application layers, and the machine's floor for unpacking them.

Random bytes do not compress, so the devstack's layers make gzip a no-op and leave the
daemon's decompression out of the picture. Real layers are code, text and libraries that
compress 2-4x, and gunzip is then a large part of a pull. These layers are deterministic
pseudo-text (lines drawn from a fixed pool of words): the same bytes in every run, compressed
at gzip's default level as `docker push` does, split into files of a few hundred KB so that
extraction creates files as it would for an application.

The floor is what any puller must spend on those bytes on this machine: the sha256 of the
compressed blob (its digest), gunzip, and the sha256 of the tar (its diff id).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from devstack.images import Layer

_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
_WEIGHTS = (12, 9, 8, 8, 7, 6, 6, 6, 4, 4, 3, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1)
FILE_SIZE = 256 * 1024


def _pool(rng: random.Random) -> list[str]:
    vocab = ["".join(rng.choices(_LETTERS, _WEIGHTS, k=rng.randint(2, 10))) for _ in range(3000)]
    return [" ".join(rng.choices(vocab, k=rng.randint(4, 14))) for _ in range(40000)]


def _text(rng: random.Random, pool: list[str], size: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while total < size:
        chunk = ("\n".join(rng.choices(pool, k=2000)) + "\n").encode()
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)[:size]


def _build(size: int, seed: int) -> tuple[bytes, str, str]:
    """One layer: (gzip blob, digest, diff id). Top level so a process pool can run it."""
    rng = random.Random(seed)  # test content, not key material: the same bytes every run
    pool = _pool(rng)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(max(1, size // FILE_SIZE)):
            content = _text(rng, pool, FILE_SIZE)
            info = tarfile.TarInfo(f"app-{seed}/share/doc-{i:04d}.txt")
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    raw = buf.getvalue()
    blob = gzip.compress(raw, compresslevel=6, mtime=0)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    return blob, digest, "sha256:" + hashlib.sha256(raw).hexdigest()


def text_layers(
    size: int, seeds: list[int], cache: Path | None = None, workers: int = 2
) -> list[Layer]:
    """Layers of SIZE bytes of pseudo-text (before compression), one per seed, built in
    parallel. The bytes depend only on SIZE and the seed, so built layers are kept in CACHE
    (compressing 400 MB takes most of a minute on a busy machine); a cached blob is used
    only if its digest still matches."""
    layers: dict[int, Layer] = {}
    if cache is not None:
        for seed in seeds:
            layer = _cached(cache, size, seed)
            if layer is not None:
                layers[seed] = layer
    todo = [s for s in seeds if s not in layers]
    if todo:
        with ProcessPoolExecutor(workers) as pool:
            built = list(pool.map(_build, [size] * len(todo), todo))
        for seed, (blob, digest, diff_id) in zip(todo, built, strict=True):
            layers[seed] = Layer(blob=blob, digest=digest, diff_id=diff_id)
            if cache is not None:
                cache.mkdir(parents=True, exist_ok=True)
                (cache / f"text-{size}-{seed}.gz").write_bytes(blob)
                (cache / f"text-{size}-{seed}.json").write_text(
                    json.dumps({"digest": digest, "diff_id": diff_id})
                )
    return [layers[s] for s in seeds]


def _cached(cache: Path, size: int, seed: int) -> Layer | None:
    try:
        blob = (cache / f"text-{size}-{seed}.gz").read_bytes()
        meta = json.loads((cache / f"text-{size}-{seed}.json").read_text())
    except (OSError, ValueError):
        return None
    if "sha256:" + hashlib.sha256(blob).hexdigest() != meta.get("digest"):
        return None
    return Layer(blob=blob, digest=meta["digest"], diff_id=meta["diff_id"])


def _unpack_cost(path: str) -> int:
    """What every puller must do with one blob: digest it, gunzip it, digest the tar."""
    data = Path(path).read_bytes()
    hashlib.sha256(data).hexdigest()
    tar = hashlib.sha256()
    inflate = zlib.decompressobj(wbits=31)
    view = memoryview(data)
    raw = 0
    for at in range(0, len(data), 1 << 20):
        chunk = inflate.decompress(view[at : at + (1 << 20)])
        raw += len(chunk)
        tar.update(chunk)
    tail = inflate.flush()
    tar.update(tail)
    return raw + len(tail)


@dataclass(frozen=True)
class Floor:
    one_core: float
    two_cores: float
    compressed_bytes: int
    uncompressed_bytes: int


def floor(layers: list[Layer], scratch: Path, repeats: int = 3) -> Floor:
    """Seconds to verify and gunzip LAYERS from the page cache with Python's zlib and hashlib
    (the same zlib the system's gzip uses): in one process, and in two processes at once.
    The fastest of REPEATS runs: a floor is a minimum, and the machine is shared."""
    scratch.mkdir(parents=True, exist_ok=True)
    paths = []
    for layer in layers:
        path = scratch / layer.digest.removeprefix("sha256:")
        path.write_bytes(layer.blob)
        paths.append(str(path))
    ones, twos, raw = [], [], 0
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_unpack_cost, paths[:2]))  # start the workers outside the timing
        for _ in range(repeats):
            t0 = time.perf_counter()
            raw = sum(_unpack_cost(p) for p in paths)
            ones.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            list(pool.map(_unpack_cost, paths))
            twos.append(time.perf_counter() - t0)
    return Floor(min(ones), min(twos), sum(layer.size for layer in layers), raw)
