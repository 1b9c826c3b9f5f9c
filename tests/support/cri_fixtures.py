"""A real containerd for the test session, sending the session's loopback registries over HTTP;
short-lived ones on a tmpfs of their own; and real pods on them (a sandbox, a created container)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from devstack.containerd import Containerd
from devstack.images import CONFIG_V1, LAYER_GZIP, MANIFEST_V2, RegistryClient
from devstack.stack import Stack
from jcp.model.arch import canonical_arch
from jcp.runtime.cri import CriRuntime
from jcp.runtime.cri_api import api_pb2 as pb
from jcp.runtime.cri_api import api_pb2_grpc


@pytest.fixture(scope="session")
def containerd(stack: Stack) -> Iterator[Containerd]:
    # Short paths: the unix socket path must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="jcpc-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    c = Containerd(root, registries=[stack.open_registry.host, stack.auth_registry.host])
    c.start()
    yield c
    c.stop()
    shutil.rmtree(root, ignore_errors=True)  # its images: unpacked snapshots of every pull


@pytest.fixture
async def cri(containerd: Containerd) -> AsyncIterator[CriRuntime]:
    """jcp's CRI runtime on the test containerd (one channel, as jcp holds it)."""
    runtime = CriRuntime(containerd.endpoint)
    yield runtime
    await runtime.close()


@contextlib.contextmanager
def stubs(endpoint: str) -> Iterator[tuple[Any, Any]]:
    """CRI ImageService and RuntimeService stubs on a channel of our own."""
    with grpc.insecure_channel(endpoint) as channel:
        yield (
            api_pb2_grpc.ImageServiceStub(channel),  # type: ignore[no-untyped-call]
            api_pb2_grpc.RuntimeServiceStub(channel),  # type: ignore[no-untyped-call]
        )


@pytest.fixture(name="own_containerd")
def own_containerd_fixture(stack: Stack) -> Iterator[Callable[..., Containerd]]:
    """Short-lived containerds whose whole root (images, snapshots, state) is a tmpfs of their
    own: a full image file system is real, and nobody else's images are in the way."""
    made: list[Containerd] = []

    def make(size: str, sandbox_image: str | None = None) -> Containerd:
        root = Path(tempfile.mkdtemp(prefix="jcpd-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
        mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(root)]
        done = subprocess.run(mount, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        c = Containerd(root, registries=[stack.open_registry.host], sandbox_image=sandbox_image)
        made.append(c)
        c.start()
        return c

    yield make
    for c in made:
        c.stop()
        subprocess.run(["umount", "-l", str(c.root)], check=False)
        shutil.rmtree(c.root, ignore_errors=True)


def push_pause(client: RegistryClient, tmp: Path) -> str:
    """A pod sandbox image that really runs: a static `pause` built here (no binary committed)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc and libc6-dev build the pod sandbox's pause binary")
    (tmp / "pause.c").write_text("#include <unistd.h>\nint main(void) { for (;;) pause(); }\n")
    cc = ["gcc", "-static", "-Os", "-s", "-o", str(tmp / "pause"), str(tmp / "pause.c")]
    subprocess.run(cc, check=True)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        tar.add(tmp / "pause", arcname="pause")
    raw = tar_bytes.getvalue()
    layer = gzip.compress(raw, mtime=0)
    config = json.dumps(
        {
            "architecture": canonical_arch(platform.machine()),
            "os": "linux",
            "config": {"Entrypoint": ["/pause"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": ""},
        "layers": [{"mediaType": LAYER_GZIP, "size": len(layer), "digest": ""}],
    }
    manifest["config"]["digest"] = client.push_blob("pause", config)  # type: ignore[index]
    manifest["layers"][0]["digest"] = client.push_blob("pause", layer)  # type: ignore[index]
    client.put_manifest("pause", "1", manifest, MANIFEST_V2)
    return f"{client.host}/pause:1"


def run_pod(endpoint: str, image: str) -> str:
    """A pod sandbox on the host network (there is no CNI here) with one container of IMAGE,
    created as the kubelet creates it and never started; returns the sandbox id."""
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="user", uid=image, namespace="jcp-test"),
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE)
            )
        ),
    )
    container = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="c"), image=pb.ImageSpec(image=image), command=["/x"]
    )
    with stubs(endpoint) as (_, runtime):
        sandbox = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=60)
        runtime.CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=sandbox.pod_sandbox_id, sandbox_config=config, config=container
            ),
            timeout=60,
        )
        return str(sandbox.pod_sandbox_id)


def remove_pod(endpoint: str, sandbox: str) -> None:
    with stubs(endpoint) as (_, runtime):
        runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox), timeout=30)
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox), timeout=30)
