"""The purge decision, by table: only jcp's own, unlisted, unused images, after the grace."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from jcp.lifecycle.purge_plan import Action, Removal, purge_candidates, unlisted_since

A, B, C = "reg.example.com/a:1", "reg.example.com/b:1", "reg.example.com/c:1"
HAND = "reg.example.com/a:hand"  # pulled by a person, same repository as A
ID_A, ID_B, ID_C, ID_X = (f"sha256:{c * 64}" for c in "abcd")
NOW, GRACE = 10_000.0, 3600.0
LONG_AGO = NOW - GRACE  # exactly the grace: due


def plan(
    owned: Mapping[str, str | None],
    desired: set[str] | None = None,
    present: Mapping[str, str] | None = None,
    in_use: set[str] | None = None,
    since: Mapping[str, float] | None = None,
) -> list[tuple[str, Action, str]]:
    present = {A: ID_A, B: ID_B, C: ID_C} if present is None else present
    since = dict.fromkeys(owned, LONG_AGO) if since is None else since
    removals = purge_candidates(
        owned,
        desired or set(),
        present=present,
        in_use=in_use or set(),
        first_seen_unlisted=since,
        now=NOW,
        grace=GRACE,
    )
    return [(r.image, r.action, r.reason) for r in removals]


@pytest.mark.parametrize(
    ("case", "kwargs", "expected"),
    [
        (
            "unlisted, unused, past grace: removed",
            {"owned": {A: ID_A}},
            [(A, Action.REMOVE, "unlisted for 3600s (grace 3600s)")],
        ),
        ("still listed: not a candidate at all", {"owned": {A: ID_A}, "desired": {A}}, []),
        (
            "within grace: waits",
            {"owned": {A: ID_A}, "since": {A: NOW - 600}},
            [(A, Action.WAIT, "unlisted, 3000s of grace left")],
        ),
        (
            "first seen unlisted now: the grace starts",
            {"owned": {A: ID_A}, "since": {}},
            [(A, Action.WAIT, "unlisted, 3600s of grace left")],
        ),
        (
            "a container uses it: kept",
            {"owned": {A: ID_A}, "in_use": {ID_A}},
            [(A, Action.KEEP, "a container uses it")],
        ),
        (
            "gone already (GC or by hand): forgotten, nothing to remove",
            {"owned": {A: ID_A}, "present": {B: ID_B}},
            [(A, Action.FORGET, "no longer on the node")],
        ),
        (
            "the name now points at another image: not jcp's, forgotten",
            {"owned": {A: ID_A}, "present": {A: ID_X}},
            [(A, Action.FORGET, f"now names {'d' * 12}, not {'a' * 12} that jcp pulled")],
        ),
        (
            "id unknown in the ledger: the name decides",
            {"owned": {A: None}},
            [(A, Action.REMOVE, "unlisted for 3600s (grace 3600s)")],
        ),
        (
            "not in the ledger: never a candidate, whatever else holds",
            {"owned": {}, "present": {A: ID_A, HAND: ID_B}},
            [],
        ),
        (
            "same image also named by a hand pull: kept (a runtime may remove all names)",
            {"owned": {A: ID_A}, "present": {A: ID_A, HAND: ID_A}},
            [(A, Action.KEEP, f"the same image is also {HAND} (not pulled by jcp)")],
        ),
        (
            "same image also listed under another name: kept",
            {"owned": {A: ID_A, B: ID_A}, "desired": {B}, "present": {A: ID_A, B: ID_A}},
            [(A, Action.KEEP, f"the same image is also {B} (listed)")],
        ),
        (
            "same image, both jcp's and both due: both removed",
            {"owned": {A: ID_A, B: ID_A}, "present": {A: ID_A, B: ID_A}},
            [
                (A, Action.REMOVE, "unlisted for 3600s (grace 3600s)"),
                (B, Action.REMOVE, "unlisted for 3600s (grace 3600s)"),
            ],
        ),
        (
            "same image, the other name still in its grace: kept until both are due",
            {
                "owned": {A: ID_A, B: ID_A},
                "present": {A: ID_A, B: ID_A},
                "since": {A: LONG_AGO, B: NOW - 60},
            },
            [
                (A, Action.KEEP, f"the same image is also {B} (unlisted, 3540s of grace left)"),
                (B, Action.WAIT, "unlisted, 3540s of grace left"),
            ],
        ),
        (
            "several at once, sorted by image",
            {"owned": {C: ID_C, A: ID_A, B: ID_B}, "desired": {B}, "in_use": {ID_C}},
            [
                (A, Action.REMOVE, "unlisted for 3600s (grace 3600s)"),
                (C, Action.KEEP, "a container uses it"),
            ],
        ),
    ],
)
def test_purge_candidates(
    case: str, kwargs: dict[str, object], expected: list[tuple[str, Action, str]]
) -> None:
    assert plan(**kwargs) == expected, case  # type: ignore[arg-type]


def test_removal_carries_the_image_id_to_remove() -> None:
    (removal,) = purge_candidates(
        {A: ID_A},
        set(),
        present={A: ID_A},
        in_use=set(),
        first_seen_unlisted={A: 0.0},
        now=NOW,
        grace=GRACE,
    )
    assert removal == Removal(A, ID_A, Action.REMOVE, f"unlisted for {NOW:.0f}s (grace 3600s)")


def test_an_unusable_ledger_owns_nothing_so_nothing_is_removed() -> None:
    removals = purge_candidates(
        {}, set(), present={A: ID_A}, in_use=set(), first_seen_unlisted={A: 0.0}, now=NOW, grace=0
    )
    assert removals == []


def test_unlisted_since_starts_keeps_and_restarts_the_grace() -> None:
    first = unlisted_since({}, [A, B, C], {C}, now=100)
    assert first == {A: 100, B: 100}
    later = unlisted_since(first, [A, B, C], {B, C}, now=200)
    assert later == {A: 100}, "B listed again: its grace is forgotten"
    again = unlisted_since(later, [A, B, C], {C}, now=300)
    assert again == {A: 100, B: 300}, "B unlisted again: a new grace"
