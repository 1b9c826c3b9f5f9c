"""`--pin` on real containerds: 1.7 (Debian trixie's binary, fetched by
scripts/install-containerd17.sh) honours the pin label jcp sets, 1.6 (Debian 12's) ignores it,
one without containerd's Images API (as CRI-O) cannot be asked, Docker has no pins, and jcp
says which. Pins are read back through our own CRI and containerd clients, never through jcp's
view. Also: the vendored containerd API and its stubs are what scripts/gen-containerd-api.sh
says they are."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from devstack.containerd import Containerd
from devstack.images import RegistryClient, push_synthetic
from devstack.stack import Stack
from jcp.runtime.containerd_api import images_pb2 as pb
from jcp.runtime.containerd_api import images_pb2_grpc as pb_grpc
from jcp.runtime.cri_api import api_pb2, api_pb2_grpc
from jcp.runtime.pins import JCP_LABEL, NAMESPACE, PIN_LABEL
from tests.support.containerd17 import containerd17_binary
from tests.support.cri_args import cri_args
from tests.support.helpers import entry, publish, wait_for
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]
ROOT = Path(__file__).resolve().parents[2]
API = Path("jcp") / "runtime" / "containerd_api"


def own_containerd(stack: Stack, prefix: str, **kw: object) -> Iterator[Containerd]:
    # Short paths: the unix socket path must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    c = Containerd(root, registries=[stack.open_registry.host], **kw)  # type: ignore[arg-type]
    c.start()
    yield c
    c.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def containerd17(stack: Stack) -> Iterator[Containerd]:
    binary = containerd17_binary()
    yield from own_containerd(stack, "jcpc7-", binary=binary)


@pytest.fixture
def no_images_api(stack: Stack) -> Iterator[Containerd]:
    """A containerd whose socket serves the CRI but not containerd's own Images API: what jcp
    meets on CRI-O, produced for real (the CRI plugin uses the images service in-process)."""
    yield from own_containerd(stack, "jcpcn-", disabled=("io.containerd.grpc.v1.images",))


async def cri_pinned(endpoint: str, ref: str) -> bool:
    """CRI ImageStatus `pinned`, asked on a channel of our own."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = api_pb2_grpc.ImageServiceStub(channel)  # type: ignore[no-untyped-call]
        request = api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref))
        got = await stub.ImageStatus(request, timeout=10)
    assert got.HasField("image"), f"{ref} is not present"
    return bool(got.image.pinned)


async def records(endpoint: str) -> dict[str, dict[str, str]]:
    """Every image record in namespace k8s.io, with its labels (containerd's own view)."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        images = pb_grpc.ImagesStub(channel)  # type: ignore[no-untyped-call]
        found = await images.List(pb.ListImagesRequest(), metadata=NAMESPACE, timeout=10)
    return {i.name: dict(i.labels) for i in found.images}


async def label_like_ctr(endpoint: str, ref: str) -> None:
    """What `ctr -n k8s.io images label NAME io.cri-containerd.pinned=pinned` does, on every
    record of REF's image."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        cri = api_pb2_grpc.ImageServiceStub(channel)  # type: ignore[no-untyped-call]
        spec = api_pb2.ImageSpec(image=ref)
        await cri.PullImage(api_pb2.PullImageRequest(image=spec), timeout=60)
        status = await cri.ImageStatus(api_pb2.ImageStatusRequest(image=spec), timeout=10)
        images = pb_grpc.ImagesStub(channel)  # type: ignore[no-untyped-call]
        for name in [*status.image.repo_tags, *status.image.repo_digests]:
            got = await images.Get(pb.GetImageRequest(name=name), metadata=NAMESPACE)
            got.image.labels[PIN_LABEL] = "pinned"
            mask = FieldMask(paths=[f"labels.{PIN_LABEL}"])
            request = pb.UpdateImageRequest(image=got.image, update_mask=mask)
            await images.Update(request, metadata=NAMESPACE)


async def metric(run: JcpProcess, name: str) -> str:
    assert run.http is not None
    async with aiohttp.ClientSession() as s, s.get(run.http + "/metrics") as resp:
        found = re.search(rf"^{name} (\S+)$", await resp.text(), re.MULTILINE)
    assert found is not None, f"no {name}"
    return found.group(1)


async def test_containerd_17_pins_what_jcp_manages_and_unpins_what_it_drops(
    tmp_path: Path,
    containerd17: Containerd,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    endpoint = containerd17.endpoint
    a = push_synthetic(open_client, unique("pina"), "1").reference
    b = push_synthetic(open_client, unique("pinb"), "1").reference
    theirs = push_synthetic(open_client, unique("pinc"), "1").reference
    # An image pinned by someone else (`ctr images label ...`): jcp must never unpin it.
    await label_like_ctr(endpoint, theirs)
    assert await cri_pinned(endpoint, theirs)
    cfg = publish(tmp_path / "config", [entry(a), entry(b), entry(theirs)], interval="1")
    run = jcp("run", [*engine_args(cfg, docker_root), *cri_args(containerd17), "--pin"])
    await run.wait_line(r"pinning: 3 of 3 managed images are pinned$", timeout=40)
    assert await cri_pinned(endpoint, a)
    assert await cri_pinned(endpoint, b)
    assert await metric(run, "jcp_images_pinned") == "3.0"
    mine = {n for n, labels in (await records(endpoint)).items() if JCP_LABEL in labels}
    assert any(n.startswith(a.rsplit(":", 1)[0] + "@sha256:") for n in mine), mine
    assert a in mine
    assert b in mine
    assert theirs not in mine
    # b and theirs leave the config: jcp unpins b (it pinned it), never theirs.
    publish(cfg, [entry(a)], interval="1")
    await run.wait_line(rf"unpinned {re.escape(b)}: no longer listed", timeout=30)
    await wait_for(lambda: run.count("pinning: 1 of 1 managed") == 1, what="the new count")

    async def b_unpinned() -> bool:
        return not await cri_pinned(endpoint, b)

    await wait_for(b_unpinned, what=f"{b} unpinned in the CRI")
    assert await cri_pinned(endpoint, a)
    assert await cri_pinned(endpoint, theirs), "pinned by someone else: left as it was"
    assert not any(JCP_LABEL in labels for n, labels in (await records(endpoint)).items() if b in n)
    assert run.count(r"unpinned ") == 1
    assert run.count("ignores") == 0
    assert JCP_LABEL not in run.text()


async def test_containerd_16_keeps_the_label_ignores_it_and_jcp_says_so_after_a_restart(
    tmp_path: Path,
    containerd: Containerd,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    """The label is on containerd's records and the CRI still says pinned=false: the runtime
    ignores it. A restarted jcp finds its labels already there and still says why."""
    ref = push_synthetic(open_client, unique("pin16"), "1").reference
    cfg = publish(tmp_path / "config", [entry(ref)], interval="1")
    ignores = (
        r"pinning: 0 of 1 managed images are pinned: containerd 1\.6\.\S+ ignores the "
        r"io\.cri-containerd\.pinned label jcp set"
    )
    for _ in range(2):
        run = jcp("run", [*engine_args(cfg, docker_root), *cri_args(containerd), "--pin"])
        await run.wait_line(ignores)
        assert (await records(containerd.endpoint))[ref].get(PIN_LABEL) == "pinned"
        assert not await cri_pinned(containerd.endpoint, ref)
        assert await metric(run, "jcp_images_pinned") == "0.0"
        run.signal()
        assert await run.wait_exit() == 0
        assert run.count("pinning: ") == 1


async def test_a_runtime_without_containerds_images_api_is_said_once_and_jcp_carries_on(
    tmp_path: Path,
    no_images_api: Containerd,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    ref = push_synthetic(open_client, unique("pinn"), "1").reference
    cfg = publish(tmp_path / "config", [entry(ref)], interval="1")
    run = jcp("run", [*engine_args(cfg, docker_root), *cri_args(no_images_api), "--pin"])
    await run.wait_line(r"has no containerd images API \(CRI-O\?\): cannot pin")
    await run.wait_line(r"pinning: 0 of 1 managed images are pinned: this runtime does not pin")
    await run.wait_line(r"sweep 4 done", timeout=20)
    assert run.count("cannot pin") == 1
    assert run.count("pinning: ") == 2  # the warning and the count, each once
    assert not await cri_pinned(no_images_api.endpoint, ref)


async def test_docker_has_no_pins_and_jcp_says_so_once(
    tmp_path: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    ref = push_synthetic(open_client, unique("pind"), "1").reference
    cfg = publish(tmp_path / "config", [entry(ref)], interval="1")
    run = jcp("run", [*engine_args(cfg, docker_root), "--pin"])
    await run.wait_line(r"pinning: 0 of 1 managed images are pinned: Docker has no pins")
    await run.wait_line(r"sweep 3 done", timeout=20)
    assert run.count("pinning: ") == 1
    assert await metric(run, "jcp_images_pinned") == "0.0"


def gen(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(root / "scripts" / "gen-containerd-api.sh"), *args],
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_containerd_api_stubs_match_the_vendored_protos() -> None:
    out = gen(ROOT, "--check")
    assert out.returncode == 0, out.stderr
    assert "match containerd v1.7.24's images.proto and descriptor.proto" in out.stdout
    for name in ("images.proto", "descriptor.proto"):
        proto = (ROOT / API / name).read_text()
        assert "Licensed under the Apache License, Version 2.0" in proto
        assert "gogo" not in proto


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        ("images_pb2.pyi", "images_pb2.pyi differs from what scripts/gen-containerd-api.sh"),
        ("images.proto", "images.proto is not containerd v1.7.24's"),
    ],
)
def test_the_check_catches_drift(tmp_path: Path, edit: str, says: str) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "gen-containerd-api.sh", tmp_path / "scripts")
    shutil.copytree(ROOT / API, tmp_path / API)
    with (tmp_path / API / edit).open("a") as f:
        f.write("// edited by hand\n")
    out = gen(tmp_path, "--check")
    assert out.returncode == 1
    assert says in out.stderr
