"""`--pin` on real containerds: 1.7 (Debian trixie's binary, fetched by
scripts/install-containerd17.sh) honours the pin label jcp sets, 1.6 (Debian 12's) ignores it,
and jcp says which. Pins are read back through our own CRI client, never through jcp's view."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from devstack.containerd import Containerd
from devstack.images import RegistryClient, push_synthetic
from devstack.stack import Stack
from jcp.model.refs import parse_reference
from jcp.runtime.cri import CriRuntime
from jcp.runtime.cri_api import containerd_images_pb2 as pb
from jcp.runtime.cri_api import containerd_images_pb2_grpc as pb_grpc
from jcp.runtime.pins import JCP_LABEL, NAMESPACE, PIN_LABEL
from tests.conftest import entry, publish, wait_for
from tests.jcp_process import JcpProcess, engine_args
from tests.test_cri_jcp import cri_args

Start = Callable[..., JcpProcess]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def containerd17(stack: Stack) -> Iterator[Containerd]:
    got = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-containerd17.sh")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if got.returncode != 0:
        pytest.skip(f"no containerd 1.7 binary: {got.stderr.strip()[-300:]}")
    root = Path(tempfile.mkdtemp(prefix="jcpc7-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    c = Containerd(root, registries=[stack.open_registry.host], binary=got.stdout.strip())
    c.start()
    yield c
    c.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def cri17(containerd17: Containerd) -> AsyncIterator[CriRuntime]:
    runtime = CriRuntime(containerd17.endpoint)
    yield runtime
    await runtime.close()


async def label_like_ctr(endpoint: str, names: list[str]) -> None:
    """What `ctr -n k8s.io images label NAME io.cri-containerd.pinned=pinned` does."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        images = pb_grpc.ImagesStub(channel)  # type: ignore[no-untyped-call]
        for name in names:
            got = await images.Get(pb.GetImageRequest(name=name), metadata=NAMESPACE)
            got.image.labels[PIN_LABEL] = "pinned"
            mask = FieldMask(paths=[f"labels.{PIN_LABEL}"])
            request = pb.UpdateImageRequest(image=got.image, update_mask=mask)
            await images.Update(request, metadata=NAMESPACE)


async def pinned(cri: CriRuntime, ref: str) -> bool:
    status = await cri.image_status(parse_reference(ref))
    assert status is not None, f"{ref} is not present"
    return status.pinned


async def test_containerd_17_pins_what_jcp_manages_and_unpins_what_it_drops(
    tmp_path: Path,
    containerd17: Containerd,
    cri17: CriRuntime,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    a = push_synthetic(open_client, unique("pina"), "1").reference
    b = push_synthetic(open_client, unique("pinb"), "1").reference
    theirs = push_synthetic(open_client, unique("pinc"), "1").reference
    # An image pinned by someone else (`ctr images label ...`): jcp must never unpin it.
    await cri17.pull(parse_reference(theirs), auth=None, platform=None, on_progress=None)
    status = await cri17.image_status(parse_reference(theirs))
    assert status is not None
    await label_like_ctr(containerd17.endpoint, [*status.repo_tags, *status.repo_digests])
    assert await pinned(cri17, theirs)
    cfg = publish(tmp_path / "config", [entry(a), entry(b), entry(theirs)], interval="1")
    run = jcp("run", [*engine_args(cfg, docker_root), *cri_args(containerd17), "--pin"])
    await run.wait_line(r"pinning: 3 of 3 managed images are pinned$", timeout=40)
    assert await pinned(cri17, a)
    assert await pinned(cri17, b)
    assert run.http is not None
    import aiohttp  # noqa: PLC0415

    async with aiohttp.ClientSession() as s, s.get(run.http + "/metrics") as resp:
        assert re.search(r"^jcp_images_pinned 3\.0$", await resp.text(), re.MULTILINE)
    # b and theirs leave the config: jcp unpins b (it pinned it), never theirs.
    publish(cfg, [entry(a)], interval="1")
    await run.wait_line(rf"unpinned {re.escape(b)}: no longer listed", timeout=30)
    await wait_for(lambda: run.count("pinning: 1 of 1 managed") == 1, what="the new count")
    assert await pinned(cri17, a)
    assert not await pinned(cri17, b)
    assert await pinned(cri17, theirs), "pinned by someone else: left as it was"
    assert run.count(r"unpinned ") == 1
    assert JCP_LABEL not in run.text()
