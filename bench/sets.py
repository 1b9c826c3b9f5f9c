"""The image sets the scenarios pull, pushed through the registry API.

- small: COUNT images of a few unique random layers on one shared base (the cold warm-up);
- steady: multi-arch images (amd64 and arm64 manifest lists, as real images are), each under
  many tags, ordered tag by tag so that the first N references are N distinct images while
  N is at most the number of repositories;
- big: a few images of two layers of compressible pseudo-text each (`textlayers`).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from bench.textlayers import text_layers
from devstack.images import MANIFEST_LIST, Layer, RegistryClient, make_layer, push_synthetic


def _seed(name: str) -> int:
    """A seed that is the same in every run (`hash()` of a str is salted per process)."""
    return zlib.crc32(name.encode())


def push_small(
    client: RegistryClient, name: str, count: int, *, layers: int, layer_size: int, base_size: int
) -> list[str]:
    """COUNT images of LAYERS unique layers each on one shared base layer."""
    base = make_layer(base_size, seed=_seed(name), name="base")
    return [
        push_synthetic(
            client, f"bench/{name}-{i}", "1", layers=layers, layer_size=layer_size, base=base
        ).reference
        for i in range(count)
    ]


def push_steady(client: RegistryClient, name: str, count: int, repos: int) -> list[str]:
    """COUNT references: REPOS small multi-arch images, each tagged COUNT/REPOS times."""
    repos = min(repos, count)
    tags = -(-count // repos)
    by_repo = []
    for i in range(repos):
        repo = f"bench/{name}-{i}"
        pushed = client.push_multiarch(
            repo, "t0", {a: [make_layer(4096)] for a in ("amd64", "arm64")}
        )
        status, _, body = client._request(  # noqa: SLF001 - re-tagging needs the raw list
            "GET", f"/v2/{repo}/manifests/t0", headers={"Accept": MANIFEST_LIST}
        )
        if status != 200:
            raise RuntimeError(f"reading back {repo}:t0: HTTP {status}")
        index = json.loads(body)
        refs = [pushed.reference]
        for t in range(1, tags):
            client.put_manifest(repo, f"t{t}", index, MANIFEST_LIST)
            refs.append(f"{client.host}/{repo}:t{t}")
        by_repo.append(refs)
    return [by_repo[i][t] for t in range(tags) for i in range(repos)][:count]


CACHE = Path(__file__).resolve().parent / "results" / "cache"
"""Built big layers, kept between runs (`bench/results/` is not committed)."""


def big_layers(count: int, layer_size: int) -> list[Layer]:
    """The big set's layers: 2 per image, pseudo-text, the same bytes in every run."""
    return text_layers(layer_size, [1000 + i for i in range(2 * count)], CACHE)


def push_big(client: RegistryClient, name: str, layers: list[Layer]) -> list[str]:
    refs = []
    for i in range(len(layers) // 2):
        pushed = client.push_image(f"bench/{name}-{i}", "1", layers[2 * i : 2 * i + 2])
        refs.append(pushed.reference)
    return refs
