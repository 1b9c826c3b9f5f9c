"""What a wheel directory from `build-docker.sh --wheels-only` must hold for one platform, read
from the wheels themselves (file names and METADATA), independent of the pip that fetched them:
`pip download --platform` evaluates environment markers for the machine it runs on, not for the
target, so a dependency behind `platform_machine == "ppc64le"` could be missing without pip
saying so. And the emulated root's commands, through scripts/ppc64le-run.sh."""

from __future__ import annotations

import email.parser
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/ppc64le-run.sh"
MACHINE = {"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "ppc64le", "s390x": "s390x"}
GLIBC = 36  # the base image's (python:3.11-slim-bookworm), as build-docker.sh bounds it


def supported_tags(arch: str) -> set[Tag]:
    """The tags CPython 3.11 on ARCH with glibc 2.GLIBC installs, as pip on it would rank them."""
    m = MACHINE[arch]
    platforms = [f"manylinux_2_{v}_{m}" for v in range(GLIBC, 16, -1)] + [f"manylinux2014_{m}"]
    tags = set(cpython_tags((3, 11), abis=["cp311", "abi3", "none"], platforms=platforms))
    return tags | set(compatible_tags((3, 11), "cp311", platforms))


def environment(arch: str) -> dict[str, str]:
    """PEP 508 marker values on the target, not on this machine."""
    return {
        "python_version": "3.11",
        "python_full_version": "3.11.2",
        "platform_machine": MACHINE[arch],
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


@dataclass(frozen=True)
class Wheel:
    path: Path
    name: NormalizedName
    version: Version
    tags: frozenset[Tag]
    requires: tuple[Requirement, ...]


def read_wheel(path: Path) -> Wheel:
    name, version, _, tags = parse_wheel_filename(path.name)
    with zipfile.ZipFile(path) as z:
        (meta,) = [
            n for n in z.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1
        ]
        msg = email.parser.BytesParser().parsebytes(z.read(meta), headersonly=True)
    requires = tuple(Requirement(r) for r in msg.get_all("Requires-Dist") or [])
    return Wheel(path, name, version, frozenset(tags), requires)


def closure_problems(wheels: dict[str, Wheel], top: str, arch: str) -> list[str]:
    """Every requirement reachable from TOP on ARCH that no wheel here satisfies."""
    env = environment(arch)
    problems: list[str] = []
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    todo: list[tuple[NormalizedName, frozenset[str], str]] = [
        (canonicalize_name(top), frozenset(), "the image")
    ]
    while todo:
        name, extras, wanted_by = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        wheel = wheels.get(name)
        if wheel is None:
            problems.append(f"{name} (wanted by {wanted_by}): no wheel")
            continue
        for req in wheel.requires:
            active = [
                e
                for e in ("", *extras)
                if req.marker is None or req.marker.evaluate({**env, "extra": e})
            ]
            if not active:
                continue
            dep = canonicalize_name(req.name)
            have = wheels.get(dep)
            if have is not None and not req.specifier.contains(have.version, prereleases=True):
                problems.append(f"{req} (wanted by {name}): only {have.path.name}")
            todo.append((dep, frozenset(req.extras), f"{name} {wheel.version}"))
    return problems


def run_script(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def in_root(
    work: Path, *cmd: str, binds: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """CMD inside the emulated root (scripts/ppc64le-run.sh exec), BINDS at their own paths."""
    flags = [a for b in binds for a in ("--bind", str(b))]
    return run_script("exec", "--work", str(work), *flags, "--", *cmd, timeout=300)
