"""Which image store to warm: the one the kubelet uses, said in the log with the reason.

`auto` decides in this documented order:

1. the kubelet's own endpoint when it is known (`kubelet_endpoint`, from the kubelet's
   `--container-runtime-endpoint`, e.g. $KUBELET_RUNTIME_ENDPOINT): always a CRI endpoint;
2. $DOCKER_HOST when it is set: an operator who sets it means Docker;
3. the usual sockets under ROOT, probed in `PROBES` order: containerd, CRI-O, cri-dockerd (all
   three through the CRI), Docker. A socket that exists and answers (CRI Version, Docker ping)
   wins. A node with both Docker and containerd thus warms containerd, which is what a kubelet
   >= 1.24 uses unless it was pointed at cri-dockerd (then step 1 says so).

An explicit endpoint skips probing; an explicit kind without an endpoint probes only that kind's
sockets (and for `docker` takes $DOCKER_HOST first, as the Docker CLI does). When step 1 wins
while $DOCKER_HOST is set, the reason says that $DOCKER_HOST was set aside.

A CRI endpoint that turns out to be Docker's own API (`--runtime cri` at
/var/run/docker.sock) would fail deep in gRPC with HTTP/2 jargon; one `GET /_ping` over the
socket tells it apart first (Docker answers with an `Api-Version` header), and the error says
to use `--runtime docker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from urllib.parse import urlsplit

from jcp.model.errors import JcpError
from jcp.runtime.base import ImageRuntime, RuntimeFailure
from jcp.runtime.cri import CriRuntime
from jcp.runtime.docker import DockerRuntime

KINDS = ("auto", "docker", "cri")
PING_TIMEOUT = 2.0
"""Seconds one Docker `/_ping` over a CRI socket may take (a gRPC server closes at once)."""

PROBES: tuple[tuple[str, str, str], ...] = (
    ("cri", "containerd", "run/containerd/containerd.sock"),
    ("cri", "CRI-O", "run/crio/crio.sock"),
    ("cri", "cri-dockerd", "run/cri-dockerd.sock"),
    ("docker", "Docker", "var/run/docker.sock"),
)
"""(kind, what runs there, socket path relative to the node's root), in probe order."""


class NoRuntimeError(JcpError):
    """No runtime could be chosen; the message lists what was tried and why each failed."""


def _make(kind: str, endpoint: str) -> ImageRuntime:
    return DockerRuntime(endpoint) if kind == "docker" else CriRuntime(endpoint)


def _url(endpoint: str) -> str:
    """Endpoints as the kubelet writes them: `/run/x.sock` means `unix:///run/x.sock`."""
    return endpoint if "://" in endpoint else f"unix://{endpoint}"


def kind_of(endpoint: str) -> str:
    """The kind an explicit endpoint names: TCP/HTTP and `.../docker.sock` are Docker's; the
    CRI is served on unix sockets only (cri-dockerd's is `cri-dockerd.sock`)."""
    parts = urlsplit(_url(endpoint))
    if parts.scheme in ("tcp", "http", "https"):
        return "docker"
    return "docker" if Path(parts.path).name == "docker.sock" else "cri"


async def speaks_docker(endpoint: str) -> bool:
    """Whether the unix socket ENDPOINT answers Docker's `GET /_ping` (not the CRI's gRPC)."""
    parts = urlsplit(_url(endpoint))
    if parts.scheme != "unix":
        return False
    try:
        async with asyncio.timeout(PING_TIMEOUT):
            reader, writer = await asyncio.open_unix_connection(parts.path)
            try:
                writer.write(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                head = await reader.read(4096)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return False
    return head.startswith(b"HTTP/1.") and b"\napi-version:" in head.lower()


def _docker_not_cri(endpoint: str) -> NoRuntimeError:
    return NoRuntimeError(
        f"{endpoint} is not a CRI endpoint: this endpoint speaks Docker's API, use --runtime "
        "docker (or --runtime auto, which tells them apart)"
    )


async def _answers(runtime: ImageRuntime) -> str | None:
    """None when it answers, else why not."""
    try:
        await runtime.info()
    except RuntimeFailure as exc:
        return exc.failure.message
    return None


async def _probe(kind: str, root: Path) -> tuple[ImageRuntime, str]:
    tried: list[str] = []
    for probe_kind, name, rel in PROBES:
        if kind not in ("auto", probe_kind):
            continue
        path = root / rel
        if not path.exists():
            tried.append(f"{path}: absent")
            continue
        runtime = _make(probe_kind, f"unix://{path}")
        why_not = await _answers(runtime)
        if why_not is not None and probe_kind == "cri" and await speaks_docker(str(path)):
            why_not = "speaks Docker's API, not the CRI"
        if why_not is None:
            before = f" (before it: {'; '.join(tried)})" if tried else ""
            return runtime, f"{name} answers on {path}, first in the probe order{before}"
        await runtime.close()
        tried.append(f"{path}: {why_not}")
    raise NoRuntimeError(
        f"no container runtime answers (--runtime {kind}); tried: {'; '.join(tried)}. Mount "
        "the runtime's socket, or pass --runtime and --runtime-endpoint"
    )


async def choose(
    kind: str,
    endpoint: str | None,
    *,
    root: Path = Path("/"),
    kubelet_endpoint: str | None = None,
) -> tuple[ImageRuntime, str]:
    """The runtime to warm and a sentence saying why it was chosen; see the module's order.

    Raises NoRuntimeError when nothing answers (only when probing: an endpoint that was named
    is used as given, and a runtime that is down is waited for by the engine).
    """
    if kind not in KINDS:
        raise NoRuntimeError(f"unknown runtime kind {kind!r}; expected one of {', '.join(KINDS)}")
    docker_host = os.environ.get("DOCKER_HOST")
    if endpoint:
        chosen = kind if kind != "auto" else kind_of(endpoint)
        if chosen == "cri" and await speaks_docker(endpoint):
            raise _docker_not_cri(endpoint)
        return _make(chosen, _url(endpoint)), f"--runtime-endpoint {endpoint} ({chosen})"
    if kubelet_endpoint and kind in ("auto", "cri"):
        if await speaks_docker(kubelet_endpoint):
            raise _docker_not_cri(kubelet_endpoint)
        aside = (
            f"; $DOCKER_HOST ({docker_host}) set aside: the kubelet's runtime comes first"
            if docker_host and kind == "auto"
            else ""
        )
        return (
            CriRuntime(_url(kubelet_endpoint)),
            f"the kubelet's container runtime endpoint is {kubelet_endpoint}{aside}",
        )
    if docker_host and kind in ("auto", "docker"):
        return DockerRuntime(docker_host), f"$DOCKER_HOST is {docker_host}"
    return await _probe(kind, root)
