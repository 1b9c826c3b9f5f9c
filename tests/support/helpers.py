"""Helpers the tests share: config entries, volumes written as the kubelet writes them, and
polling with a deadline (never a sleep as synchronisation)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import aiodocker
import pytest

from devstack.images import RegistryClient, push_synthetic
from devstack.kubelet import write_volume
from devstack.proxy import ThrottleProxy


async def wait_for(predicate: Callable[[], object], timeout: float = 20, what: str = "") -> None:
    """Poll PREDICATE (sync or async) until true; fail with WHAT after TIMEOUT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.05)


async def image_present(docker: aiodocker.Docker, ref: str) -> bool:
    try:
        await docker.images.inspect(ref)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def image_config(entries: list[dict[str, object]]) -> str:
    return json.dumps(entries, indent=1)


def entry(reference: str, **extra: object) -> dict[str, object]:
    """An entry without `arch`, pulling REFERENCE (which names its registry)."""
    host = reference.split("/", 1)[0]
    return {"ref": reference, "registry": host, **extra}


def publish(d: Path, entries: list[dict[str, object]], interval: str = "300") -> Path:
    """Write a config directory the way kubelet updates a ConfigMap volume."""
    write_volume(d, {"image.config": image_config(entries), "interval": interval})
    return d


def push_via(client: RegistryClient, proxy: ThrottleProxy, repo: str, size: int) -> str:
    """Push a one-layer image of SIZE bytes; return its reference through PROXY."""
    push_synthetic(client, repo, "1", layers=1, layer_size=size)
    return f"{proxy.host}/{repo}:1"
