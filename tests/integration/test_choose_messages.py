"""What the log says when the runtime named is not the one that answers, on the real sockets the
session starts (its dockerd and its containerd)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.containerd import Containerd
from devstack.stack import Stack
from jcp.runtime.choose import NoRuntimeError, choose, speaks_docker
from tests.support.helpers import publish
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]


async def test_only_dockers_socket_speaks_docker(stack: Stack, containerd: Containerd) -> None:
    assert await speaks_docker(stack.dockerd.host)
    assert not await speaks_docker(containerd.endpoint)
    assert not await speaks_docker("unix:///nonexistent/docker.sock")
    assert not await speaks_docker("tcp://127.0.0.1:1")


async def test_the_cri_at_dockers_socket_says_use_runtime_docker(
    tmp_path: Path, stack: Stack, jcp: Start
) -> None:
    with pytest.raises(NoRuntimeError, match="speaks Docker's API, use --runtime docker"):
        await choose("cri", stack.dockerd.host)
    with pytest.raises(NoRuntimeError, match="speaks Docker's API, use --runtime docker"):
        await choose("auto", None, kubelet_endpoint=str(stack.dockerd.socket))
    cfg = publish(tmp_path / "config", [])
    once = jcp(
        "once",
        engine_args(
            cfg, tmp_path, extra=["--runtime", "cri", "--runtime-endpoint", stack.dockerd.host]
        ),
    )
    assert await once.wait_exit() == 1
    assert once.count(r"ERROR: .* this endpoint speaks Docker's API, use --runtime docker") == 1
    assert "HTTP/2" not in once.text()
    assert "grpc" not in once.text().lower()


async def test_the_kubelets_endpoint_says_docker_host_was_set_aside(
    tmp_path: Path, stack: Stack, containerd: Containerd, jcp: Start
) -> None:
    cfg = publish(tmp_path / "config", [])
    once = jcp(
        "once",
        engine_args(cfg, tmp_path),
        env={"KUBELET_RUNTIME_ENDPOINT": str(containerd.socket), "DOCKER_HOST": stack.dockerd.host},
    )
    await once.wait_exit()
    line = await once.wait_line(r"runtime: CRI runtime at")
    assert f"the kubelet's container runtime endpoint is {containerd.socket}" in line
    assert f"$DOCKER_HOST ({stack.dockerd.host}) set aside" in line
