"""The benchmark's --quick mode, so that the harness never rots (timings are not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=170,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads(out.read_text())
    results = doc["results"]
    assert set(results) == {
        "cold_warm_up",
        "slow_link",
        "steady_state",
        "reload_latency",
        "footprint",
        "scale",
    }
    for name in ("cold_warm_up", "slow_link"):
        assert set(results[name]["seconds"]) == {"serial_cli", "parallel_cli", "jcp"}
        assert results[name]["jcp_vs_serial"] > 0
    assert results["reload_latency"]["to_pull_start_seconds"]["median"] > 0
    assert results["footprint"]["idle_rss_mb"] > 0
    assert "goals:" in run.stdout
    assert "| cold_warm_up (6 images) |" in run.stdout
