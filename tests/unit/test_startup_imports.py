"""`jcp once` and `jcp validate` start without the heavy clients: kubernetes_asyncio alone takes
most of a second to import, and `jcp once` is often a one-shot job (its start-up is part of a
sweep). A regression here doubled the benchmark's small steady sweeps."""

import subprocess
import sys

HEAVY = ("kubernetes_asyncio", "grpc", "grpclib", "prometheus_client", "aiodocker")


def test_the_cli_and_the_composition_root_import_no_heavy_client() -> None:
    code = (
        "import sys, jcp.cli.main, jcp.app.run\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]", out
