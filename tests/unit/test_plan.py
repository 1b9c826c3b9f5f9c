"""The reconcile plan, by table: every rule of `decide`, `plan` and `Observed.from_images`.

Runtime image lists are written the way runtimes write them (Docker's short `ubuntu:22.04`,
the CRI's fully qualified names, `<none>` placeholders), so that normalisation is part of what
is tested, not assumed.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from jcp.engine.plan import TAG_MOVED, Action, Decision, Observed, Refresh, decide
from jcp.model.config import ImageEntry, Target, TargetKey
from jcp.model.refs import parse_reference
from jcp.runtime.base import ImageStatus

D1, D2, D3 = (f"sha256:{c * 64}" for c in "123")
UBUNTU = "docker.io/library/ubuntu:22.04"


def target(ref: str, index: int = 0) -> Target:
    image = parse_reference(ref)
    entry = ImageEntry(
        index=index,
        ref=ref,
        registry=image.registry,
        private=False,
        secret="jarvice-docker",
        arch=None,
        default_ref=image,
    )
    return Target(image, entry)


def image(*names: str) -> ImageStatus:
    return ImageStatus(
        id=f"id-{'|'.join(names)}",
        repo_tags=tuple(n for n in names if "@" not in n),
        repo_digests=tuple(n for n in names if "@" in n),
    )


def plan(
    targets: list[Target],
    seen: Observed | None,
    remote: dict[TargetKey, str] | None = None,
    refresh: Refresh = Refresh.PULL,
) -> list[Decision]:
    """One decision per target, in order: how the worker applies `decide` over a sweep."""
    remote = remote or {}
    return [decide(t, seen, remote.get(t.key), refresh) for t in targets]


def observed(*images: ImageStatus) -> Observed:
    return Observed.from_images(images)


class Row(NamedTuple):
    """One rule of the plan: what the runtime holds, what the registry says, the decision."""

    name: str
    ref: str
    seen: Observed | None
    remote: str | None
    refresh: Refresh
    action: Action
    why: str


# A Docker daemon holding ubuntu:22.04 at D1, written as `docker image inspect` writes it.
DOCKER_UBUNTU = observed(image("ubuntu:22.04", f"ubuntu@{D1}"))
NOTHING = observed()


ROWS: list[Row] = [
    # -- what the runtime holds is unknown or lacks the image: pull -----------------------
    Row(
        name="runtime list unknown: pull",
        ref=UBUNTU,
        seen=None,
        remote=None,
        refresh=Refresh.NEVER,
        action=Action.PULL,
        why="runtime's images unknown",
    ),
    Row(
        name="absent: pull",
        ref=UBUNTU,
        seen=NOTHING,
        remote=None,
        refresh=Refresh.DIGEST,
        action=Action.PULL,
        why="absent",
    ),
    Row(
        name="absent, refresh never: pull",
        ref=UBUNTU,
        seen=NOTHING,
        remote=D1,
        refresh=Refresh.NEVER,
        action=Action.PULL,
        why="absent",
    ),
    Row(
        name="absent, remote digest known: pull",
        ref=UBUNTU,
        seen=NOTHING,
        remote=D1,
        refresh=Refresh.DIGEST,
        action=Action.PULL,
        why="absent",
    ),
    Row(
        name="another tag of the repository held: still absent",
        ref="ubuntu:24.04",
        seen=DOCKER_UBUNTU,
        remote=D1,
        refresh=Refresh.DIGEST,
        action=Action.PULL,
        why="absent",
    ),
    Row(
        name="pinned, another digest held: absent",
        ref=f"ubuntu@{D2}",
        seen=DOCKER_UBUNTU,
        remote=None,
        refresh=Refresh.DIGEST,
        action=Action.PULL,
        why="absent",
    ),
    # -- pinned by digest and present: skip, whatever the mode, without any network -------
    *[
        Row(
            name=f"pinned, present, refresh {mode}: skip",
            ref=f"ubuntu@{D1}",
            seen=DOCKER_UBUNTU,
            remote=None,
            refresh=mode,
            action=Action.SKIP,
            why="present, pinned by digest",
        )
        for mode in Refresh
    ],
    Row(
        name="pinned, present, fully qualified: skip",
        ref=f"docker.io/library/ubuntu@{D1}",
        seen=DOCKER_UBUNTU,
        remote=None,
        refresh=Refresh.PULL,
        action=Action.SKIP,
        why="present, pinned by digest",
    ),
    # -- a present tag, per refresh mode --------------------------------------------------
    Row(
        name="tag present, refresh never: skip",
        ref=UBUNTU,
        seen=DOCKER_UBUNTU,
        remote=D2,
        refresh=Refresh.NEVER,
        action=Action.SKIP,
        why="present (--refresh never)",
    ),
    Row(
        name="tag present, refresh pull: the runtime checks the registry",
        ref=UBUNTU,
        seen=DOCKER_UBUNTU,
        remote=D1,
        refresh=Refresh.PULL,
        action=Action.PULL,
        why="present; the runtime checks the registry",
    ),
    Row(
        name="tag present, refresh digest, remote unknown: the runtime checks",
        ref=UBUNTU,
        seen=DOCKER_UBUNTU,
        remote=None,
        refresh=Refresh.DIGEST,
        action=Action.PULL,
        why="present; the runtime checks the registry",
    ),
    Row(
        name="tag present, remote digest equal: skip",
        ref=UBUNTU,
        seen=DOCKER_UBUNTU,
        remote=D1,
        refresh=Refresh.DIGEST,
        action=Action.SKIP,
        why="present, remote digest unchanged",
    ),
    Row(
        name="tag present, tag moved: pull",
        ref=UBUNTU,
        seen=DOCKER_UBUNTU,
        remote=D2,
        refresh=Refresh.DIGEST,
        action=Action.PULL,
        why=TAG_MOVED,
    ),
    Row(
        name="config says ubuntu, runtime says docker.io/library/ubuntu:latest",
        ref="ubuntu",
        seen=observed(image("docker.io/library/ubuntu:latest", f"docker.io/library/ubuntu@{D1}")),
        remote=D1,
        refresh=Refresh.DIGEST,
        action=Action.SKIP,
        why="present, remote digest unchanged",
    ),
]


@pytest.mark.parametrize(
    ("case", "ref", "seen", "remote", "refresh", "action", "why"),
    [pytest.param(*row, id=row.name) for row in ROWS],
)
def test_decide(
    case: str,
    ref: str,
    seen: Observed | None,
    remote: str | None,
    refresh: Refresh,
    action: Action,
    why: str,
) -> None:
    t = target(ref)
    decision = decide(t, seen, remote, refresh)
    assert (decision.action, decision.why) == (action, why), case
    assert decision.target is t


def test_decide_default_refresh_asks_the_runtime() -> None:
    """Without a refresh mode a present tag goes to the runtime (the safe default)."""
    decision = decide(target(UBUNTU), DOCKER_UBUNTU)
    assert decision.action == Action.PULL


def test_pinned_with_tag_and_digest_present_is_skipped() -> None:
    """`ubuntu:22.04@sha256:...` (the form Renovate writes) names content by its digest; the
    tag is decoration. Docker lists such an image as `ubuntu@sha256:...` only."""
    decision = decide(target(f"ubuntu:22.04@{D1}"), DOCKER_UBUNTU, None, Refresh.DIGEST)
    assert decision.action == Action.SKIP


def test_tag_moved_to_content_held_under_another_tag_is_pulled() -> None:
    """app:latest was pulled at D1; the registry moved latest to D2, which the node holds as
    app:1.2. The local app:latest still points at D1: it must be pulled (cheap: layers are
    present), or pods using app:latest with IfNotPresent run the old content forever."""
    seen = observed(
        image("reg.example.com/app:latest", f"reg.example.com/app@{D1}"),
        image("reg.example.com/app:1.2", f"reg.example.com/app@{D2}"),
    )
    decision = decide(target("reg.example.com/app:latest"), seen, D2, Refresh.DIGEST)
    assert (decision.action, decision.why) == (Action.PULL, TAG_MOVED)


# -- Observed.from_images: the runtime's names, normalised -------------------------------------


@pytest.mark.parametrize(
    ("names", "held"),
    [
        (("ubuntu:22.04",), [UBUNTU]),
        ((f"ubuntu@{D1}",), [f"docker.io/library/ubuntu@{D1}"]),
        ((f"docker.io/library/ubuntu@{D1}",), [f"ubuntu@{D1}"]),
        (("index.docker.io/library/ubuntu:22.04",), [UBUNTU]),
        (("registry-1.docker.io/library/ubuntu:22.04",), ["ubuntu:22.04"]),
        (("jarvice/app:1",), ["docker.io/jarvice/app:1", "index.docker.io/jarvice/app:1"]),
        (("localhost:5000/app:1",), ["localhost:5000/app:1"]),
        (("REG.Example.COM/app:1",), ["reg.example.com/app:1"]),
        (("reg.example.com:443/team/app:v1.2",), ["reg.example.com:443/team/app:v1.2"]),
        (("ubuntu",), ["ubuntu:latest"]),
    ],
)
def test_runtime_names_are_normalised(names: tuple[str, ...], held: list[str]) -> None:
    seen = observed(image(*names))
    for ref in held:
        assert seen.holds(parse_reference(ref)), (names, ref)


def test_docker_style_listing() -> None:
    """`docker image inspect ubuntu:22.04`: RepoTags and RepoDigests both short."""
    seen = DOCKER_UBUNTU
    assert seen.holds(parse_reference(UBUNTU))
    assert seen.holds(parse_reference(f"docker.io/library/ubuntu@{D1}"))
    assert not seen.holds(parse_reference("ubuntu:latest"))
    assert not seen.holds(parse_reference(f"ubuntu@{D2}"))
    assert seen.digests_of(parse_reference(UBUNTU)) == {D1}
    assert seen.digests_of(parse_reference("ubuntu:anything")) == frozenset()
    assert seen.digests_of(parse_reference("debian:12")) == frozenset()


def test_digests_collected_per_tag() -> None:
    """A tag's digests are those of the image it names, not of its whole repository."""
    seen = observed(
        image("ubuntu:22.04", f"ubuntu@{D1}", f"index.docker.io/library/ubuntu@{D3}"),
        image("ubuntu:24.04", f"docker.io/library/ubuntu@{D2}"),
        image("reg.example.com/ubuntu:22.04", f"reg.example.com/ubuntu@{D3}"),
    )
    assert seen.digests_of(parse_reference("ubuntu:22.04")) == {D1, D3}
    assert seen.digests_of(parse_reference("ubuntu:24.04")) == {D2}
    assert seen.digests_of(parse_reference("ubuntu:x")) == frozenset()
    assert seen.digests_of(parse_reference("reg.example.com/ubuntu:22.04")) == {D3}


@pytest.mark.parametrize(
    "bad",
    [
        "<none>:<none>",
        "<none>@<none>",
        "",
        " ubuntu:22.04",
        "Upper/Case:1",
        "ubuntu@sha256:short",
        "ubuntu:-bad-tag",
        "https://reg.example.com/app:1",
        "reg.example.com//app:1",
    ],
)
def test_invalid_names_in_the_list_are_ignored(bad: str) -> None:
    """One odd name (dangling images, a runtime's own placeholders) costs nothing else."""
    seen = observed(image(bad), image(bad, "ubuntu:22.04", f"ubuntu@{D1}"))
    assert seen.refs == {parse_reference(UBUNTU), parse_reference(f"ubuntu@{D1}")}
    assert dict(seen.digests) == {parse_reference(UBUNTU): {D1}}


def test_empty_list_and_nameless_images() -> None:
    for seen in (observed(), observed(ImageStatus(id="sha256:dangling"))):
        assert seen.refs == frozenset()
        assert dict(seen.digests) == {}
        assert decide(target(UBUNTU), seen).action == Action.PULL


# -- plan: one decision per target, in order, each with its own remote digest -----------------


def test_plan_one_decision_per_target_in_order() -> None:
    seen = observed(
        image("ubuntu:22.04", f"ubuntu@{D1}"),
        image("reg.example.com/app:1", f"reg.example.com/app@{D2}"),
        image(f"reg.example.com/pinned@{D3}"),
    )
    targets = [
        target(UBUNTU, 0),
        target("reg.example.com/app:1", 1),
        target(f"reg.example.com/pinned@{D3}", 2),
        target("reg.example.com/new:1", 3),
        target("debian:12", 4),
    ]
    remote = {
        targets[0].key: D1,  # unchanged
        targets[1].key: D1,  # moved
        targets[3].key: D3,  # absent anyway
    }
    decisions = plan(targets, seen, remote, Refresh.DIGEST)
    assert [(d.target.entry.index, d.action, d.why) for d in decisions] == [
        (0, Action.SKIP, "present, remote digest unchanged"),
        (1, Action.PULL, TAG_MOVED),
        (2, Action.SKIP, "present, pinned by digest"),
        (3, Action.PULL, "absent"),
        (4, Action.PULL, "absent"),
    ]


def test_plan_defaults_and_unknown_runtime() -> None:
    targets = [target(UBUNTU), target(f"ubuntu@{D1}")]
    assert [d.action for d in plan(targets, DOCKER_UBUNTU)] == [Action.PULL, Action.SKIP]
    assert [d.action for d in plan(targets, DOCKER_UBUNTU, None, Refresh.NEVER)] == [
        Action.SKIP,
        Action.SKIP,
    ]
    assert [d.why for d in plan(targets, None)] == ["runtime's images unknown"] * 2
    assert plan([], DOCKER_UBUNTU) == []
