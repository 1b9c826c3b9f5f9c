"""The committed CRI stubs are what scripts/gen-cri.sh makes from the vendored api.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_stubs_match_the_vendored_proto() -> None:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen-cri.sh"), "--check"],
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "CRI stubs match api.proto" in out.stdout


def test_proto_keeps_its_licence_and_pin() -> None:
    proto = (ROOT / "jcp" / "runtime" / "cri_api" / "api.proto").read_text()
    assert "Licensed under the Apache License, Version 2.0" in proto
    assert "package runtime.v1;" in proto
    assert "v0.36.3" in (ROOT / "scripts" / "gen-cri.sh").read_text()
