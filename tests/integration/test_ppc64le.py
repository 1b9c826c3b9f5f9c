"""ppc64le, the platform the original was built for, and arm64: (a) every dependency of jcp
resolves to a wheel for them exactly as scripts/build-docker.sh fetches it, and its flag checks
fail before any download; (b) jcp installed from those ppc64le wheels into a ppc64el Debian root
runs under qemu-ppc64le (scripts/ppc64le-run.sh): --version, validate, and `once` warming the
session's real containerd through its socket, bind-mounted into the root.

The root is made once by debootstrap (about 3 minutes, mostly its second stage under qemu) and
cached in $JCP_CACHE (/var/cache/jcp-test); each run then unpacks it and installs the wheels
into a venv under emulation (about 40 s)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from devstack.containerd import Containerd
from devstack.images import RegistryClient, make_layer
from jcp.runtime.cri_api import api_pb2 as pb
from tests.support.cri_fixtures import stubs
from tests.support.ppc64le import (
    ROOT,
    Wheel,
    closure_problems,
    in_root,
    read_wheel,
    run_script,
    supported_tags,
)

ARCHS = ("ppc64le", "arm64")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


# -- (a) the wheels, as build-docker.sh resolves them ------------------------------------------


def build_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts/build-docker.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


@pytest.fixture(scope="module")
def fetched() -> dict[str, dict[str, Wheel]]:
    """The script's own `--wheels-only` run for both platforms, read back wheel by wheel."""
    out = build_script("--wheels-only", "--platforms", ",".join(f"linux/{a}" for a in ARCHS))
    assert out.returncode == 0, out.stderr[-3000:]
    found: dict[str, dict[str, Wheel]] = {}
    for arch in ARCHS:
        wheels = [read_wheel(p) for p in sorted((ROOT / "docker/wheels" / arch).glob("*.whl"))]
        found[arch] = {str(w.name): w for w in wheels}
        assert len(found[arch]) == len(wheels), f"two versions of one package for {arch}"
    return found


def test_jcp_requirements_are_the_projects(fetched: dict[str, dict[str, Wheel]]) -> None:
    """The closure starts from what pip sees: the built wheel's Requires-Dist is pyproject's."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for arch in ARCHS:
        jcp = fetched[arch]["jcp"]
        assert str(jcp.version) == VERSION
        plain = {str(r) for r in jcp.requires if r.marker is None or "extra" not in str(r.marker)}
        assert plain == {str(Requirement(d)) for d in declared}  # the test extra is not the image's


@pytest.mark.parametrize("arch", ARCHS)
def test_every_dependency_has_a_wheel_for_the_platform(
    arch: str, fetched: dict[str, dict[str, Wheel]]
) -> None:
    wheels = fetched[arch]
    assert closure_problems(wheels, "jcp", arch) == []
    ok = supported_tags(arch)
    wrong = [w.path.name for w in wheels.values() if not w.tags & ok]
    assert wrong == [], f"wheels CPython 3.11 on {arch} (glibc 2.36) cannot install"
    native = [w.path.name for w in wheels.values() if all(t.platform != "any" for t in w.tags)]
    assert native, f"no {arch} binary wheel at all: did the --platform reach pip?"
    if arch == "ppc64le":  # PyYAML publishes none: the script builds its pure-Python wheel
        assert any(t.platform == "any" for t in wheels["pyyaml"].tags)


@pytest.mark.parametrize("arch", ARCHS)
def test_pip_resolves_jcp_from_the_directory_alone(
    arch: str, fetched: dict[str, dict[str, Wheel]], tmp_path: Path
) -> None:
    """docker/Dockerfile's `pip install --no-index --find-links`, resolved for the platform."""
    machine = {"ppc64le": "ppc64le", "arm64": "aarch64"}[arch]
    report = tmp_path / "report.json"
    wheels = ROOT / "docker/wheels" / arch
    out = subprocess.run(
        [
            *("python3", "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"),
            *("--no-index", "--find-links", str(wheels), "--only-binary=:all:"),
            *("--platform", f"manylinux_2_36_{machine}", "--platform", f"manylinux2014_{machine}"),
            *(
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--target",
                str(tmp_path / "t"),
            ),
            *("--report", str(report), "jcp"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    chosen = {
        i["metadata"]["name"].lower().replace("_", "-")
        for i in json.loads(report.read_text())["install"]
    }
    assert chosen == {str(n) for n in fetched[arch]}


def _wheel_dir_state() -> dict[str, int]:
    d = ROOT / "docker/wheels"
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in d.rglob("*")} if d.exists() else {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--wheels-only", "--platforms", "linux/riscv64"), "unsupported platform 'linux/riscv64'"),
        (("--wheels-only", "--platforms", "ppc64le"), "unsupported platform 'ppc64le'"),
        (("--wheels-only", "--platforms", "linux/ppc64le,,linux/arm64"), "unsupported platform ''"),
        (("--wheels-only", "--platforms", ""), "--platforms needs at least one platform"),
        (("--wheels-only", "--platforms"), "--platforms needs a value"),
        (("--wheels-only", "-U", "sid"), "-U: unknown release 'sid'"),
        (("--platforms", "linux/ppc64le"), "missing -r REPO"),
        (
            ("-r", "x/y", "-h", "me@ppc", "--platforms", "linux/ppc64le"),
            "--platforms is for the buildx",
        ),
        (("-r", "x/y", "-h", "me@ppc", "--builder", "b"), "--builder is for the buildx path"),
    ],
)
def test_build_script_flags_fail_before_any_download(args: tuple[str, ...], message: str) -> None:
    """Real runs (no --dry-run): exit 2 with the message, docker/wheels/ left as it was."""
    before = _wheel_dir_state()
    out = build_script(*args)
    assert (out.returncode, out.stdout) == (2, "")
    assert message in out.stderr
    assert "--help" in out.stderr
    assert _wheel_dir_state() == before


# -- (b) the emulated run -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(fetched: dict[str, dict[str, Wheel]]) -> Iterator[Path]:
    """A prepared root: the cached ppc64el root unpacked, jcp pip-installed under qemu."""
    if os.geteuid() != 0:
        pytest.fail("the emulated run needs root (debootstrap, binfmt_misc, chroot)")
    if shutil.which("qemu-ppc64le-static") is None:
        pytest.fail("qemu-ppc64le-static is needed: apt-get install qemu-user-static")
    d = Path(tempfile.mkdtemp(prefix="jcp-ppc-", dir=os.environ.get("JCP_TEST_TMP", "/tmp")))
    wheels = ROOT / "docker/wheels/ppc64le"
    out = run_script("prepare", "--work", str(d), "--wheels", str(wheels))
    assert out.returncode == 0, out.stderr[-3000:]
    yield d
    shutil.rmtree(d, ignore_errors=True)  # nothing is mounted in it: every mount had its namespace


@pytest.mark.timeout(900)  # the first run on a machine makes the root: about 3 minutes
def test_jcp_runs_as_ppc64le(work: Path) -> None:
    out = in_root(work, "jcp", "--version")
    assert (out.returncode, out.stdout.strip()) == (0, f"jcp {VERSION}"), out.stderr
    probe = (
        "import platform, multidict._multidict as m, grpclib, google.protobuf;"
        "print(platform.machine(), m.__file__)"
    )
    out = in_root(work, "/opt/jcp/bin/python", "-c", probe)
    assert out.returncode == 0, out.stderr
    machine, ext = out.stdout.split()
    assert machine == "ppc64le"
    assert "powerpc64le-linux-gnu" in ext  # the ppc64le wheel's C extension, loaded under qemu


@pytest.mark.timeout(900)
def test_validate_of_the_sample_config(work: Path) -> None:
    sample = ROOT / "k8s/base/config"
    out = in_root(work, "jcp", "validate", str(sample), "--arch", "ppc64le", binds=(sample,))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok: 3 entries" in out.stdout
    assert "pull docker.io/ppc64le/ubuntu:jammy" in out.stdout


@pytest.mark.timeout(900)
def test_once_warms_the_real_containerd(
    work: Path, containerd: Containerd, open_client: RegistryClient, tmp_path: Path
) -> None:
    """A multi-arch image, as the original's lists are: jcp on ppc64le finds its platform in
    the list (inspect), and the amd64 containerd pulls its own through the CRI."""
    repo = f"ppc/warm-{os.getpid()}"
    base = make_layer(512 * 1024, seed=64)
    layers = {a: [base, make_layer(128 * 1024)] for a in ("amd64", "arm64", "ppc64le")}
    ref = open_client.push_multiarch(repo, "1", layers).reference
    config = tmp_path / "config"
    config.mkdir()
    (config / "image.config").write_text(
        json.dumps([{"ref": f"{repo}:1", "registry": open_client.host}])
    )
    out = in_root(
        work,
        *("jcp", "once", "--runtime", "cri", "--runtime-endpoint", containerd.endpoint),
        *("--config-dir", str(config), "--node-labels", "", "--log-format", "json"),
        binds=(containerd.root, config),
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert re.search(r"images for ppc64le", out.stdout + out.stderr)
    with stubs(containerd.endpoint) as (images, _):
        status = images.ImageStatus(
            pb.ImageStatusRequest(image=pb.ImageSpec(image=ref)), timeout=10
        )
    assert status.image.id, f"{ref} is not in containerd after the emulated jcp once"
    assert ref in status.image.repo_tags


@pytest.mark.timeout(900)
def test_the_script_end_to_end(work: Path) -> None:
    """scripts/ppc64le-run.sh check, as a user runs it: its own registry and containerd."""
    out = run_script("check", "--work", str(work), timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    steps = dict(re.findall(r"^ppc64le-run: time (\S+) ([\d.]+)s$", out.stderr, re.MULTILINE))
    assert {"jcp-version-qemu", "jcp-validate-qemu", "jcp-once-qemu"} <= steps.keys()
    assert "warmed by jcp under qemu-ppc64le" in out.stderr
    assert not (work / "own.pids").exists()  # its registry and containerd are stopped
