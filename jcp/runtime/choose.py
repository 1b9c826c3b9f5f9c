"""Which image store to warm: the one the kubelet uses, said in the log with the reason.

`auto` takes the kubelet's own endpoint when it is known ($KUBELET_RUNTIME_ENDPOINT, the
kubelet's --container-runtime-endpoint), then probes the usual sockets in this order:
containerd, CRI-O, cri-dockerd (all three through the CRI), Docker. A socket that exists and
answers wins. A node running both Docker and containerd thus warms containerd, which is what
a kubelet >= 1.24 uses unless it was pointed at cri-dockerd.
"""

from __future__ import annotations

from pathlib import Path

from jcp.model.errors import JcpError
from jcp.runtime.base import ImageRuntime, RuntimeFailure
from jcp.runtime.cri import CriRuntime
from jcp.runtime.docker import NODE_SOCKET, DockerRuntime

PROBES: tuple[tuple[str, str, str], ...] = (
    ("cri", "containerd", "run/containerd/containerd.sock"),
    ("cri", "CRI-O", "run/crio/crio.sock"),
    ("cri", "cri-dockerd", "run/cri-dockerd.sock"),
    ("docker", "Docker", "var/run/docker.sock"),
)


class NoRuntimeError(JcpError):
    """No runtime answered; the message lists what was tried."""


def _make(kind: str, endpoint: str) -> ImageRuntime:
    return DockerRuntime(endpoint) if kind == "docker" else CriRuntime(endpoint)


def _kind_of(endpoint: str) -> str:
    return "docker" if endpoint.rstrip("/").endswith("docker.sock") else "cri"


async def _answers(runtime: ImageRuntime) -> str | None:
    """None when it answers, else why not."""
    try:
        await runtime.info()
    except RuntimeFailure as exc:
        return exc.failure.message
    return None


async def choose(
    kind: str,
    endpoint: str | None,
    *,
    root: Path = Path("/"),
    kubelet_endpoint: str | None = None,
) -> tuple[ImageRuntime, str]:
    """The runtime to warm and a sentence saying why it was chosen."""
    if kind in ("docker", "cri"):
        chosen = endpoint or (NODE_SOCKET if kind == "docker" else None)
        if chosen is None:
            chosen = f"unix://{root / PROBES[0][2]}"
        return _make(kind, chosen), f"--runtime {kind}"
    if endpoint is not None:
        return _make(_kind_of(endpoint), endpoint), "--runtime-endpoint"
    if kubelet_endpoint:
        ep = kubelet_endpoint if "://" in kubelet_endpoint else f"unix://{kubelet_endpoint}"
        return _make(_kind_of(ep), ep), "the kubelet's endpoint ($KUBELET_RUNTIME_ENDPOINT)"
    tried: list[str] = []
    for probe_kind, name, rel in PROBES:
        path = root / rel
        if not path.exists():
            tried.append(f"{path}: absent")
            continue
        runtime = _make(probe_kind, f"unix://{path}")
        why_not = await _answers(runtime)
        if why_not is None:
            skipped = f" ({'; '.join(tried)})" if tried else ""
            return runtime, f"{name} socket {path} answers; first in the probe order{skipped}"
        await runtime.close()
        tried.append(f"{path}: {why_not}")
    raise NoRuntimeError(
        "no container runtime found; tried " + "; ".join(tried) + ". Mount the runtime's socket "
        "or pass --runtime and --runtime-endpoint"
    )
