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
sockets (and for `docker` takes $DOCKER_HOST first, as the Docker CLI does).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from jcp.model.errors import JcpError
from jcp.runtime.base import ImageRuntime, RuntimeFailure
from jcp.runtime.cri import CriRuntime
from jcp.runtime.docker import DockerRuntime

KINDS = ("auto", "docker", "cri")

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
    if endpoint:
        chosen = kind if kind != "auto" else kind_of(endpoint)
        return _make(chosen, _url(endpoint)), f"--runtime-endpoint {endpoint} ({chosen})"
    if kubelet_endpoint and kind in ("auto", "cri"):
        return (
            CriRuntime(_url(kubelet_endpoint)),
            f"the kubelet's container runtime endpoint is {kubelet_endpoint}",
        )
    docker_host = os.environ.get("DOCKER_HOST")
    if docker_host and kind in ("auto", "docker"):
        return DockerRuntime(docker_host), f"$DOCKER_HOST is {docker_host}"
    return await _probe(kind, root)
