"""The purge ledger on a state directory that fills up: a real tmpfs of a few pages (mounted as
root in a temporary directory), filled to the last byte, then freed."""

from __future__ import annotations

import contextlib
import errno
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.images import RegistryClient, push_synthetic
from jcp.lifecycle.ledger import Ledger, LedgerError
from jcp.observe.metrics import Metrics
from tests.support.helpers import entry, publish
from tests.support.jcp_process import JcpProcess, engine_args
from tests.support.scrape import samples, value
from tests.support.snapshots import empty_snapshot

Start = Callable[..., JcpProcess]


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A 16 KiB tmpfs: room for a small ledger, or for nothing once `fill` has run."""
    d = tmp_path / "state"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(d)], check=True)
    yield d
    subprocess.run(["umount", str(d)], check=True)


def fill(d: Path) -> Path:
    """Write a file until the file system says ENOSPC; returns it (delete it to free the space)."""
    filler = d / "filler"
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as f:
        while True:
            f.write(b"x" * 512)
    with pytest.raises(OSError, match="No space left") as caught:
        (d / "probe").write_bytes(b"x" * 4096)
    assert caught.value.errno == errno.ENOSPC
    (d / "probe").unlink(missing_ok=True)
    return filler


async def test_a_full_state_dir_is_on_the_metrics_and_status_and_the_file_stays_whole(
    state_dir: Path,
) -> None:
    path = state_dir / "ledger.json"
    ledger = Ledger.load(path)
    ledger.record("r.example/a:1", "sha256:" + "a" * 64, at=1_714_557_600)
    await ledger.save()
    metrics = Metrics()
    metrics.watch_ledger(ledger)
    filler = fill(state_dir)
    ledger.record("r.example/b:1", None, at=1_714_557_660)
    for _ in range(3):
        with pytest.raises(LedgerError, match="No space left on device"):
            await ledger.save()
    m = samples(metrics.render(empty_snapshot())[0].decode())
    assert value(m, "jcp_ledger_ok") == 0
    assert value(m, "jcp_ledger_write_failures_total") == 3
    doc = metrics.status_extra()["ledger"]
    assert isinstance(doc, dict)
    assert (doc["write_ok"], doc["write_failures"], doc["unsaved_changes"]) == (False, 3, True)
    assert "No space left on device" in str(doc["write_error"])
    assert set(json.loads(path.read_text())["images"]) == {"r.example/a:1"}, "old file, whole"
    assert not [p.name for p in state_dir.iterdir() if p.name.endswith(".tmp")]
    filler.unlink()
    await ledger.save()
    m = samples(metrics.render(empty_snapshot())[0].decode())
    assert value(m, "jcp_ledger_ok") == 1
    assert value(m, "jcp_ledger_write_failures_total") == 3
    assert Ledger.load(path).owned() == {"r.example/a:1", "r.example/b:1"}


async def test_jcp_run_says_a_failing_ledger_once_and_its_recovery_once(
    tmp_path: Path,
    state_dir: Path,
    open_client: RegistryClient,
    docker_root: Path,
    jcp: Start,
    unique: Callable[[str], str],
) -> None:
    refs = [
        push_synthetic(open_client, unique("ledg"), "1", layers=1, layer_size=1024).reference
        for _ in range(4)
    ]
    filler = fill(state_dir)
    cfg = publish(tmp_path / "config", [entry(r) for r in refs[:2]])
    ledger = state_dir / "ledger.json"
    run = jcp("run", engine_args(cfg, docker_root, extra=["--ledger", str(ledger)]))
    await run.wait_line(r"sweep 1 done.*2 pulled")
    publish(cfg, [entry(r) for r in refs])
    await run.wait_line(r"done.*2 pulled", count=2)
    failing = r"purge ledger: cannot write the ledger .*No space left on device"
    assert run.count(failing) == 1, run.text()
    filler.unlink()
    line = await run.wait_line(r"purge ledger: .* written again after \d+ failed", timeout=45)
    print(f"ledger: {line}")
    assert run.count(failing) == 1
    assert Ledger.load(ledger).owned() == set(refs)
