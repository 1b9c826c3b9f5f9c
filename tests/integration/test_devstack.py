"""The stack itself: multi-arch manifest lists resolve per platform; dev-stack.sh works."""

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiodocker

from devstack.images import RegistryClient, make_layer
from tests.support.helpers import image_present

ROOT = Path(__file__).resolve().parents[2]


async def test_manifest_list_pulls_the_requested_platform(
    open_client: RegistryClient, docker: aiodocker.Docker, unique: Callable[[str], str]
) -> None:
    base = make_layer(4096, seed=7)
    pushed = open_client.push_multiarch(
        unique("multi"), "1", {a: [base, make_layer(1024)] for a in ("amd64", "arm64", "ppc64le")}
    )
    await docker.images.pull(pushed.reference, platform="linux/amd64")
    info = await docker.images.inspect(pushed.reference)
    assert info["Architecture"] == "amd64"
    assert any(d.endswith(pushed.digest) for d in info["RepoDigests"])


async def test_shared_base_layer_is_shared(
    open_client: RegistryClient, docker: aiodocker.Docker, unique: Callable[[str], str]
) -> None:
    base = make_layer(8192, seed=11)
    a = open_client.push_image(unique("a"), "1", [base, make_layer(100)])
    b = open_client.push_image(unique("b"), "1", [base, make_layer(100)])
    for p in (a, b):
        await docker.images.pull(p.reference)
    layers = [(await docker.images.inspect(p.reference))["RootFS"]["Layers"] for p in (a, b)]
    assert layers[0][0] == layers[1][0]
    assert layers[0][1] != layers[1][1]
    assert await image_present(docker, b.reference)


def test_dev_stack_script_up_and_down(tmp_path: Path) -> None:
    root = Path(os.environ.get("JCP_TEST_TMP", "/tmp")) / f"jcp-ds-{os.getpid()}"
    up = subprocess.run(
        ["bash", str(ROOT / "scripts/dev-stack.sh"), "up", str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    try:
        assert up.returncode == 0, up.stderr
        assert f"export DOCKER_HOST=unix://{root}/dockerd/docker.sock" in up.stdout
        entries = json.loads((root / "config/image.config").read_text())
        assert {e["ref"] for e in entries} >= {"sample/app:1.0", "private/solver:2.1"}
        assert (root / "docker/jarvice-docker/config.json").exists()
        out = subprocess.run(
            ["python3", "-m", "jcp", "validate", str(root / "config"), "--arch", "amd64"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stdout
        assert "warning" not in out.stdout
    finally:
        down = subprocess.run(
            ["bash", str(ROOT / "scripts/dev-stack.sh"), "down", str(root)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    assert down.returncode == 0, down.stderr
    assert not (root / "stack.json").exists()


def test_demo_script(tmp_path: Path) -> None:
    """The README's first command, as a new user runs it (jcp already installed here)."""
    root = Path(os.environ.get("JCP_TEST_TMP", "/tmp")) / f"jcp-demo-{os.getpid()}"
    try:
        out = subprocess.run(
            ["bash", str(ROOT / "scripts/demo.sh"), str(root)],
            capture_output=True,
            text=True,
            check=False,
            timeout=170,
            stdin=subprocess.DEVNULL,
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        assert "a amd64 node pulls 4 image(s):" in out.stdout
        assert "sweep 1 done" in out.stderr
        assert "4 pulled, 0 up to date, 1 skipped, 0 failed" in out.stderr
        assert "== exit code: 0" in out.stdout
        assert f"jcp run --config-dir {root}/config" in out.stdout
    finally:
        subprocess.run(
            ["bash", str(ROOT / "scripts/dev-stack.sh"), "down", str(root)],
            capture_output=True,
            check=False,
            timeout=60,
        )
