"""Choosing the runtime on a node: real sockets (the test containerd, the session's dockerd)
linked into a temporary node root at the paths a node has them."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.containerd import Containerd
from devstack.stack import Stack
from jcp.runtime.base import ImageRuntime
from jcp.runtime.choose import NoRuntimeError, choose, kind_of
from jcp.runtime.cri import CriRuntime
from jcp.runtime.docker import DockerRuntime

CONTAINERD = "run/containerd/containerd.sock"
CRIO = "run/crio/crio.sock"
DOCKER = "var/run/docker.sock"


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty node root with a short path (unix socket paths stay under 108 bytes)."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    root = Path(tempfile.mkdtemp(prefix="jch-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    yield root
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    root.rmdir()


def link(root: Path, rel: str, target: Path) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def stale_socket(root: Path, rel: str) -> Path:
    """A socket file nobody listens on: what a crashed runtime leaves behind."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))
    return path


async def chosen(
    kind: str, endpoint: str | None, *, root: Path, kubelet_endpoint: str | None = None
) -> tuple[ImageRuntime, str, str]:
    """(runtime, why, the name it reports), the runtime closed."""
    runtime, why = await choose(kind, endpoint, root=root, kubelet_endpoint=kubelet_endpoint)
    try:
        name = (await runtime.info()).name
    finally:
        await runtime.close()
    return runtime, why, name


async def test_nothing_answers_lists_every_path_tried(node: Path) -> None:
    stale_socket(node, CONTAINERD)
    with pytest.raises(NoRuntimeError) as caught:
        await choose("auto", None, root=node)
    message = str(caught.value)
    print(message)
    path = node / CONTAINERD
    assert f"{path}: cannot reach the CRI runtime at unix://{path}: Connection refused;" in message
    for rel in (CRIO, "run/cri-dockerd.sock", DOCKER):
        assert f"{node / rel}: absent" in message


async def test_containerd_wins_over_docker(
    node: Path, containerd: Containerd, stack: Stack
) -> None:
    link(node, CONTAINERD, containerd.socket)
    link(node, DOCKER, stack.dockerd.socket)
    runtime, why, name = await chosen("auto", None, root=node)
    assert isinstance(runtime, CriRuntime)
    assert name == "containerd"
    assert why == f"containerd answers on {node / CONTAINERD}, first in the probe order"


async def test_a_dead_runtime_socket_falls_through_in_order(
    node: Path, containerd: Containerd, stack: Stack
) -> None:
    stale_socket(node, CONTAINERD)
    link(node, DOCKER, stack.dockerd.socket)
    runtime, why, name = await chosen("auto", None, root=node)
    assert isinstance(runtime, DockerRuntime)
    assert name == "docker"
    assert why.startswith(f"Docker answers on {node / DOCKER}, first in the probe order")
    assert f"{node / CONTAINERD}: cannot reach the CRI runtime" in why
    link(node, CRIO, containerd.socket)  # CRI-O comes before Docker
    runtime, why, _ = await chosen("auto", None, root=node)
    assert isinstance(runtime, CriRuntime)
    assert why.startswith(f"CRI-O answers on {node / CRIO}")


async def test_an_explicit_kind_probes_only_its_own_sockets(
    node: Path, containerd: Containerd, stack: Stack
) -> None:
    link(node, DOCKER, stack.dockerd.socket)
    with pytest.raises(NoRuntimeError) as caught:
        await choose("cri", None, root=node)
    assert "docker.sock" not in str(caught.value)
    link(node, CONTAINERD, containerd.socket)
    runtime, _, name = await chosen("docker", None, root=node)
    assert (type(runtime), name) == (DockerRuntime, "docker")
    runtime, _, name = await chosen("cri", None, root=node)
    assert (type(runtime), name) == (CriRuntime, "containerd")


async def test_the_kubelets_endpoint_beats_probing(
    node: Path, containerd: Containerd, stack: Stack
) -> None:
    link(node, DOCKER, stack.dockerd.socket)
    runtime, why, name = await chosen(
        "auto", None, root=node, kubelet_endpoint=str(containerd.socket)
    )
    assert runtime.endpoint == containerd.endpoint
    assert name == "containerd"
    assert why == f"the kubelet's container runtime endpoint is {containerd.socket}"


async def test_named_endpoints_and_docker_host_skip_probing(
    node: Path, containerd: Containerd, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, why, name = await chosen("auto", stack.dockerd.host, root=node)
    assert (type(runtime), name) == (DockerRuntime, "docker")
    assert why == f"--runtime-endpoint {stack.dockerd.host} (docker)"
    runtime, _, name = await chosen("auto", containerd.endpoint, root=node)
    assert (type(runtime), name) == (CriRuntime, "containerd")
    monkeypatch.setenv("DOCKER_HOST", stack.dockerd.host)
    for kind in ("auto", "docker"):
        runtime, why, name = await chosen(kind, None, root=node)
        assert (runtime.endpoint, name) == (stack.dockerd.host, "docker")
        assert why == f"$DOCKER_HOST is {stack.dockerd.host}"
    with pytest.raises(NoRuntimeError):
        await choose("cri", None, root=node)  # DOCKER_HOST says nothing about the CRI


async def test_an_endpoint_names_its_kind() -> None:
    assert kind_of("unix:///var/run/docker.sock") == "docker"
    assert kind_of("/var/run/docker.sock") == "docker"
    assert kind_of("tcp://10.0.0.1:2375") == "docker"
    assert kind_of("unix:///run/cri-dockerd.sock") == "cri"
    assert kind_of("/run/containerd/containerd.sock") == "cri"
    assert kind_of("unix:///run/k3s/containerd/containerd.sock") == "cri"
    with pytest.raises(NoRuntimeError, match="unknown runtime kind 'podman'"):
        await choose("podman", None)
