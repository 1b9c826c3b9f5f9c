"""Refresh by digest on a real containerd: a steady sweep makes one manifest HEAD per image at
the registry (counted there, by a recording proxy), no manifest GET, and no PullImage (counted
in containerd's own log); a tag pushed anew is pulled on the next sweep."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from devstack.containerd import Containerd
from devstack.images import RegistryClient, push_synthetic
from devstack.ratelimit import RateLimitedRegistry
from jcp.model.refs import parse_reference
from jcp.runtime.cri import CriRuntime
from tests.support.cri_args import cri_args
from tests.support.helpers import entry, publish
from tests.support.jcp_process import JcpProcess, engine_args

Start = Callable[..., JcpProcess]


def pull_images(containerd: Containerd) -> int:
    """PullImage calls containerd answered, from its own log."""
    log = (containerd.root / "containerd.log").read_text(errors="replace")
    return len(re.findall(r'msg="PullImage .* returns image reference', log))


async def test_steady_sweep_on_containerd_is_one_head_per_image(
    tmp_path: Path,
    containerd: Containerd,
    cri: CriRuntime,
    open_client: RegistryClient,
    recorder: RateLimitedRegistry,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    containerd.add_registry(recorder.host)
    repos = [unique("csteady") for _ in range(4)]
    for repo in repos:
        push_synthetic(open_client, repo, "1")
    refs = [f"{recorder.host}/{repo}:1" for repo in repos]
    cfg = publish(tmp_path / "config", [entry(r) for r in refs], interval="1")
    run = jcp("run", [*engine_args(cfg, docker_root), *cri_args(containerd)])
    await run.wait_line(r"sweep 1 done.*4 pulled", timeout=30)
    await run.wait_line(r"sweep 2 done", timeout=20)
    seen, pulls = len(recorder.seen), pull_images(containerd)
    await run.wait_line(r"sweep 3 done.*0 pulled, 4 up to date", timeout=20)
    steady = [f"{s.method} {'manifest' if '/manifests/' in s.path else s.path}"
              for s in recorder.seen[seen:]]  # fmt: skip
    print(f"steady sweep of 4 present images on containerd, at the registry: {steady}")
    assert sorted(steady) == ["HEAD manifest"] * 4
    assert pull_images(containerd) == pulls, "no PullImage in a steady sweep"
    # A tag pushed anew: containerd pulls it on the next sweep, and holds the new digest.
    moved = push_synthetic(open_client, repos[0], "1")
    await run.wait_line(rf"Pulled {re.escape(refs[0])}", count=2, timeout=20)
    status = await cri.image_status(parse_reference(refs[0]))
    assert status is not None
    assert any(d.endswith(moved.digest) for d in status.repo_digests), status
