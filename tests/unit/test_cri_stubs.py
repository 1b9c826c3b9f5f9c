"""The committed CRI stubs are what scripts/gen-cri.sh makes from the vendored api.proto."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STUBS = Path("jcp") / "runtime" / "cri_api"


def gen_cri(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(root / "scripts" / "gen-cri.sh"), *args],
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_stubs_match_the_vendored_proto() -> None:
    out = gen_cri(ROOT, "--check")
    assert out.returncode == 0, out.stderr
    assert "CRI stubs match api.proto" in out.stdout


def test_the_check_catches_stubs_that_drifted(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "gen-cri.sh", tmp_path / "scripts")
    shutil.copytree(ROOT / STUBS, tmp_path / STUBS)
    with (tmp_path / STUBS / "api_pb2.pyi").open("a") as stub:
        stub.write("# edited by hand\n")
    out = gen_cri(tmp_path, "--check")
    assert out.returncode == 1
    assert "api_pb2.pyi differs from what scripts/gen-cri.sh generates" in out.stderr
    assert "committed stubs made with grpcio-tools" in out.stderr


def test_proto_keeps_its_licence_and_pin() -> None:
    proto = (ROOT / STUBS / "api.proto").read_text()
    assert "Licensed under the Apache License, Version 2.0" in proto
    assert "package runtime.v1;" in proto
    assert "gogo" not in proto
    assert "v0.36.3" in (ROOT / "scripts" / "gen-cri.sh").read_text()
