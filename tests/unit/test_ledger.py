"""The purge ledger on a real file system: round trips, restarts, torn and corrupt files."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from jcp.lifecycle.ledger import MAX_BYTES, UNUSABLE_SUFFIX, Ledger, LedgerError

A = "registry.example.com/team/a:1"
B = "docker.io/library/busybox:1.36"
ID_A = "sha256:" + "a" * 64
ID_B = "sha256:" + "b" * 64
T = 1_714_557_600.0  # 2024-05-01T10:00:00Z


async def saved(path: Path) -> Ledger:
    ledger = Ledger.load(path)
    ledger.record(A, ID_A, at=T)
    ledger.record(B, None, at=T + 60.7)
    await ledger.save()
    return ledger


async def test_first_start_is_new_and_empty_and_the_first_save_creates_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "var" / "lib" / "jcp" / "ledger.json"
    ledger = await Ledger.open(path)
    assert (ledger.usable, ledger.new, ledger.state, ledger.owned()) == (True, True, "new", set())
    await ledger.save()
    again = Ledger.load(path)
    assert (again.usable, again.new, again.state, again.owned()) == (True, False, "ok", set())


async def test_round_trip_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    await saved(path)
    restarted = Ledger.load(path)
    assert restarted.usable
    assert restarted.owned() == {A, B}
    assert restarted.ids() == {A: ID_A, B: None}
    assert restarted.entries()[A].pulled == T
    assert restarted.entries()[B].pulled == T + 60, "kept to the second"
    doc = json.loads(path.read_text())
    assert doc["images"][A] == {"pulledAt": "2024-05-01T10:00:00Z", "id": ID_A}
    restarted.forget(B)
    restarted.record(A, ID_B, at=T + 3600)  # jcp refreshed the tag
    await restarted.save()
    again = Ledger.load(path)
    assert again.ids() == {A: ID_B}
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.json"], "no temp file is left"


async def test_save_writes_only_when_something_changed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = await saved(path)
    before = path.stat().st_mtime_ns, path.stat().st_ino
    ledger.forget("never/recorded:1")
    await ledger.save()
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    assert not ledger.dirty


@pytest.mark.parametrize("keep", [0, 1, 40, -40, -2])
async def test_a_torn_file_is_unusable_and_owns_nothing(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "ledger.json"
    await saved(path)
    raw = path.read_bytes()
    path.write_bytes(raw[:keep])
    ledger = Ledger.load(path)
    assert not ledger.usable
    assert ledger.owned() == set()
    assert ledger.ids() == {}
    assert ledger.state.startswith(f"unusable: {path}: ")
    assert "torn" in ledger.state


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\xff\xfe garbage", "not UTF-8"),
        (b"{not json", "not valid JSON at line 1 column 2"),
        (b"[]", "expected a JSON object, found list"),
        (b'{"version": "1", "images": {}, "sha256": ""}', "'version' must be an integer"),
        (b'{"version": true, "images": {}, "sha256": ""}', "'version' must be an integer"),
        (b'{"version": 2, "images": {}, "sha256": ""}', "version 2 is not one this jcp"),
        (b'{"version": 1, "images": [], "sha256": ""}', "'images' must be an object"),
        (b'{"version": 1, "images": {}}', "'sha256' is missing"),
        (b'{"version": 1, "images": {}, "sha256": "00"}', "checksum does not match"),
    ],
)
def test_corrupt_or_wrongly_typed_files_are_unusable(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "ledger.json"
    path.write_bytes(content)
    ledger = Ledger.load(path)
    assert not ledger.usable
    assert why in (ledger.problem or "")
    assert ledger.owned() == set()


def _with_checksum(images: object) -> bytes:
    """A file with a valid checksum, computed as the format says: sha256 of canonical JSON."""
    canonical = json.dumps(images, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return json.dumps({"version": 1, "images": images, "sha256": digest}).encode()


@pytest.mark.parametrize(
    ("images", "why"),
    [
        ({A: "sha256:x"}, "must be a non-empty reference mapped to an object"),
        ({"": {"id": None, "pulledAt": "2024-05-01T10:00:00Z"}}, "non-empty reference"),
        ({A: {"id": 5, "pulledAt": "2024-05-01T10:00:00Z"}}, ".id must be a string or null"),
        ({A: {"id": None, "pulledAt": "yesterday"}}, ".pulledAt must be an ISO 8601 UTC"),
        ({A: {"id": None, "pulledAt": "2024-05-01T10:00:00"}}, ".pulledAt must be an ISO"),
        ({A: {"id": None}}, ".pulledAt must be an ISO 8601 UTC time, found None"),
    ],
)
def test_entries_of_the_wrong_type_make_the_ledger_unusable(
    tmp_path: Path, images: object, why: str
) -> None:
    path = tmp_path / "ledger.json"
    path.write_bytes(_with_checksum(images))
    ledger = Ledger.load(path)
    assert why in (ledger.problem or "")
    assert ledger.owned() == set()


async def test_a_hand_edit_that_still_parses_fails_the_checksum(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    await saved(path)
    path.write_text(path.read_text().replace("team/a:1", "team/z:1"))
    assert "checksum does not match" in (Ledger.load(path).problem or "")


def test_a_huge_file_is_unusable_without_being_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    with path.open("wb") as f:
        f.truncate(MAX_BYTES * 50)
    ledger = Ledger.load(path)
    assert "larger than 4 MiB" in (ledger.problem or "")


def test_an_unreadable_path_is_unusable(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.mkdir()
    ledger = Ledger.load(path)
    assert f"cannot read {path}: Is a directory" == ledger.problem


async def test_an_unusable_file_is_kept_aside_and_replaced_but_trusted_only_after_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.json"
    path.write_bytes(b'{"version": 1, "images": {"other/x:1": ')
    ledger = Ledger.load(path)
    ledger.record(A, ID_A, at=T)
    await ledger.save()
    assert not ledger.usable, "this process never trusts it"
    assert ledger.owned() == set()
    assert (tmp_path / ("ledger.json" + UNUSABLE_SUFFIX)).read_bytes().startswith(b'{"version"')
    ledger.record(B, ID_B, at=T)
    await ledger.save()
    assert (tmp_path / ("ledger.json" + UNUSABLE_SUFFIX)).exists(), "moved aside once only"
    restarted = Ledger.load(path)
    assert restarted.usable
    assert restarted.owned() == {A, B}, "only what was recorded since: purge can only do less"


async def test_a_failed_save_raises_names_the_file_and_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.json"
    ledger = Ledger.load(path)
    ledger.record(A, ID_A)
    path.mkdir()
    (path / "occupied").touch()  # a rename onto a non-empty directory fails, even for root
    with pytest.raises(LedgerError, match=f"cannot write the ledger {path}"):
        await ledger.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.json"]
    assert ledger.dirty, "the next save tries again"


async def test_concurrent_saves_leave_one_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = Ledger.load(path)

    async def pull(i: int) -> None:
        ledger.record(f"r/img-{i}:1", f"sha256:{i:064x}", at=T)
        await ledger.save()

    await asyncio.gather(*(pull(i) for i in range(20)))
    assert not ledger.dirty
    assert len(Ledger.load(path).owned()) == 20
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.json"]
