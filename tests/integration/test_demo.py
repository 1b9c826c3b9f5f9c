"""scripts/demo.sh on each runtime: containerd by default (the images land in containerd's
k8s.io namespace, where the kubelet looks), `--docker` into the stack's dockerd, and
`scripts/dev-stack.sh down` stops the containerd the demo started with the rest."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts/demo.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=170,
        stdin=subprocess.DEVNULL,
    )


def test_the_demo_warms_containerd_then_docker_and_stops_clean() -> None:
    root = Path(os.environ.get("JCP_TEST_TMP", "/tmp")) / f"jcp-demo-rt-{os.getpid()}"
    socket = root / "containerd" / "c.sock"
    pid = 0
    try:
        out = demo(str(root))
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        assert f"one sweep into the containerd at unix://{socket}" in out.stdout
        assert "4 pulled, 0 up to date, 1 skipped, 0 failed" in out.stderr
        images = subprocess.run(
            ["ctr", "-a", str(socket), "-n", "k8s.io", "images", "ls", "-q"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert sum(1 for i in images if "/private/solver:2.1" in i) == 1
        assert f"--runtime cri --runtime-endpoint unix://{socket}" in out.stdout
        pid = json.loads((root / "stack.json").read_text())["pids"]["containerd"]
        # Again on the same stack: containerd is reused, everything is up to date.
        again = demo(str(root))
        assert "0 pulled, 4 up to date, 1 skipped, 0 failed" in again.stderr
        assert json.loads((root / "stack.json").read_text())["pids"]["containerd"] == pid
        docker = demo("--docker", str(root))
        assert docker.returncode == 0, docker.stdout[-2000:] + docker.stderr[-2000:]
        assert "one sweep into the dockerd at unix://" in docker.stdout
        assert "4 pulled, 0 up to date, 1 skipped, 0 failed" in docker.stderr
    finally:
        down = subprocess.run(
            ["bash", str(ROOT / "scripts/dev-stack.sh"), "down", str(root)],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert pid
    assert not Path(f"/proc/{pid}").exists(), "containerd still running after down"
