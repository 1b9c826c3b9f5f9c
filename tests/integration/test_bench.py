"""The benchmark's --quick mode, so that the harness never rots (timings are not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
    results = json.loads(out.read_text())["results"]
    assert set(results) == {
        "steady",
        "cold_small",
        "cold_slow_link",
        "cold_big",
        "cold_mixed",
        "containerd",
        "reload_latency",
        "footprint",
        "scale",
    }
    # Counted at the registry: a present image refreshed by `docker pull` is one HEAD of its
    # manifest and no GET, and one pull in the daemon's event stream.
    serial = results["steady"]["loopback"]["4"]["contenders"]["serial"]
    assert serial["requests_per_image"]["head_manifest"] == 1
    assert serial["requests_per_image"]["get_manifest"] == 0
    assert serial["runtime_pulls_per_image"] == 1
    for name in ("cold_small", "cold_big", "cold_mixed"):
        contenders = results[name]["contenders"]
        assert {"xargs -P 2", "xargs -P 8", "jcp"} <= set(contenders)
        assert results[name]["jcp_vs_best_xargs"] > 0
    assert results["cold_big"]["floor"]["two_cores_seconds"] > 0
    # A part another change brings is either measured or said to be skipped, never absent.
    digest = results["steady"]["loopback"]["4"]["contenders"]["jcp digest"]
    assert "seconds" in digest or digest["skipped"]
    assert "skipped" in results["containerd"] or results["containerd"]["cold"]
    assert results["reload_latency"]["to_pull_start_seconds"]["median"] > 0
    assert results["footprint"]["idle_rss_mb"] > 0
    assert "goals:" in run.stdout
    assert "| cold_small | 4 |" in run.stdout
