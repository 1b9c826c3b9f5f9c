"""The `ImageRuntime` protocol's promises, held for every adapter: Docker, the CRI on a real
containerd, and the in-memory fake the engine's unit tests run on (as spegel holds every store
to `storetest/conformance.go`). A fake that passes this suite answers as the real ones do, so
what the unit tests prove of the engine holds on a node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.containerd import Containerd
from devstack.images import RegistryClient, push_synthetic
from devstack.proxy import ThrottleProxy
from devstack.stack import Stack
from jcp.model.failures import Reason
from jcp.model.refs import ImageRef, parse_reference
from jcp.runtime.base import ImageRuntime, RuntimeFailure
from jcp.runtime.cri import CriRuntime
from jcp.runtime.docker import DockerRuntime
from jcp.runtime.fake import ScriptedRuntime, fail, hang
from tests.support.helpers import wait_for

SLOW_LAYER = 4 << 20
"""A layer a throttled proxy takes ~16 s to serve: a pull certainly still running at cancel."""


@dataclass
class Subject:
    """One adapter and what the suite needs of it: images a pull can bring, one it cannot, a
    slow pull and the evidence that the runtime abandoned it, and a runtime that is not there."""

    name: str
    runtime: ImageRuntime
    pullable: Callable[[], ImageRef]
    missing: Callable[[], ImageRef]
    slow: Callable[[], ImageRef]
    running: Callable[[ImageRef], bool]
    abandoned: Callable[[ImageRef], bool]
    dead: ImageRuntime


def _registry_subject(
    name: str,
    runtime: ImageRuntime,
    dead: ImageRuntime,
    client: RegistryClient,
    proxy: ThrottleProxy,
    unique: Callable[[str], str],
) -> Subject:
    def pullable() -> ImageRef:
        return parse_reference(push_synthetic(client, unique(name), "1").reference)

    def missing() -> ImageRef:
        return parse_reference(f"{client.host}/{unique('never-pushed')}:1")

    def slow() -> ImageRef:
        repo = unique(f"{name}-slow")
        push_synthetic(client, repo, "1", layers=1, layer_size=SLOW_LAYER)
        return parse_reference(f"{proxy.host}/{repo}:1")

    mark: list[tuple[int, float]] = []

    def abandoned(_: ImageRef) -> bool:
        """The runtime stopped reading the blob: in the last second, less than a chunk went
        through the proxy (a retried manifest request is not a download; 256 KiB/s is), and
        never the layer's bytes."""
        now, sent = asyncio.get_running_loop().time(), proxy.sent_down
        if not mark or sent - mark[0][0] >= 64 * 1024:
            mark[:] = [(sent, now)]
            return False
        if name == "docker":  # dockerd finishes the layer (see the test): wait for its end
            return now - mark[0][1] >= 1.0
        return now - mark[0][1] >= 1.0 and sent < SLOW_LAYER

    def running(_: ImageRef) -> bool:
        return proxy.sent_down > 0

    return Subject(name, runtime, pullable, missing, slow, running, abandoned, dead)


@pytest.fixture(params=["fake", "docker", "cri"])
async def subject(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    stack: Stack,
    open_client: RegistryClient,
    proxy: Callable[..., ThrottleProxy],
    unique: Callable[[str], str],
) -> AsyncIterator[Subject]:
    nothing = f"unix://{tmp_path}/nothing.sock"
    if request.param == "fake":
        fake, dead = ScriptedRuntime(), ScriptedRuntime()
        dead.down = True
        counter = iter(range(10**6))

        def pullable() -> ImageRef:
            return parse_reference(f"fake.example/app-{next(counter)}:1")

        def missing() -> ImageRef:
            return fake.script(f"fake.example/gone-{next(counter)}:1", fail(Reason.NOT_FOUND))

        def slow() -> ImageRef:
            return fake.script(f"fake.example/slow-{next(counter)}:1", hang(events=1))

        def running(ref: ImageRef) -> bool:
            return fake.running(ref)

        def abandoned(ref: ImageRef) -> bool:
            return [c.result for c in fake.pulls_of(ref)] == ["cancelled"]

        yield Subject("fake", fake, pullable, missing, slow, running, abandoned, dead)
        return
    slow_proxy = proxy(rate=256 * 1024)
    if request.param == "docker":
        real: ImageRuntime = DockerRuntime(stack.dockerd.host)
        dead_one: ImageRuntime = DockerRuntime(nothing)
    else:
        containerd: Containerd = request.getfixturevalue("containerd")
        containerd.add_registry(slow_proxy.host)
        real, dead_one = CriRuntime(containerd.endpoint), CriRuntime(nothing)
    try:
        yield _registry_subject(request.param, real, dead_one, open_client, slow_proxy, unique)
    finally:
        await real.close()
        await dead_one.close()


async def test_absent_image_has_no_status_and_a_pull_brings_it(subject: Subject) -> None:
    rt = subject.runtime
    image = subject.pullable()
    assert await rt.image_status(image) is None
    pulled = await rt.pull(image, auth=None, platform="linux/amd64", on_progress=None)
    assert pulled.newer
    status = await rt.image_status(image)
    assert status is not None
    assert image in status.refs()
    assert any(image in s.refs() for s in await rt.list_images())  # list_images sees the pull


async def test_remove_takes_the_image_and_absent_is_fine(subject: Subject) -> None:
    rt = subject.runtime
    image = subject.pullable()
    await rt.pull(image, auth=None, platform=None, on_progress=None)
    await rt.remove(image)
    assert await rt.image_status(image) is None
    assert all(image not in s.refs() for s in await rt.list_images())
    await rt.remove(image)  # already absent: no error


async def test_a_missing_image_is_a_runtime_failure_not_found(subject: Subject) -> None:
    with pytest.raises(RuntimeFailure) as caught:
        await subject.runtime.pull(subject.missing(), auth=None, platform=None, on_progress=None)
    assert caught.value.failure.reason == Reason.NOT_FOUND
    assert not caught.value.failure.transient
    assert not caught.value.down


async def test_a_cancelled_pull_is_abandoned_in_the_runtime(subject: Subject) -> None:
    rt = subject.runtime
    image = subject.slow()
    pulling = asyncio.ensure_future(rt.pull(image, auth=None, platform=None, on_progress=None))
    await wait_for(lambda: subject.running(image) or pulling.done(), 20, "the pull running")
    assert not pulling.done(), pulling
    pulling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pulling
    if subject.name == "docker":
        # Measured here: dockerd 20.10 does not abandon a pull whose client went away once its
        # layer download is under way: it fetched the 4 MiB layer on (256 KiB/s, 16 s) and
        # recorded the image. The engine is freed at once (the call ends, as asserted above);
        # the bytes are Docker's. Said in the README's note on runtimes. Wait for dockerd to be
        # done, so that its stream's connection is not left to the next test.
        await wait_for(lambda: subject.abandoned(image), 40, "dockerd to finish the layer")
        return
    await wait_for(lambda: subject.abandoned(image), 20, "the runtime to abandon the pull")
    assert await rt.image_status(image) is None


async def test_a_runtime_that_is_not_there_fails_as_down(subject: Subject) -> None:
    dead = subject.dead
    for call in (dead.info, dead.list_images):
        with pytest.raises(RuntimeFailure) as caught:
            await call()
        assert caught.value.down, f"{subject.name}: {call.__name__}: {caught.value}"
        assert caught.value.failure.transient
