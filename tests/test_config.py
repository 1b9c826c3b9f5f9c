"""The config model: the original's format, kubelet's volume layout, and precise errors."""

import json
from pathlib import Path

import pytest

from devstack.kubelet import write_volume
from jcp.configdir import load_config
from jcp.model.config import ConfigError, Problem

ORIGINAL_EXAMPLE = [
    {
        "ref": "ubuntu:xenial",
        "registry": "docker.io",
        "private": False,
        "config": "jarvice-docker",
        "arch": {
            "amd64": "docker.io/library/ubuntu:xenial",
            "ppc64le": "docker.io/ppc64le/ubuntu:xenial",
        },
    },
    {
        "ref": "fail-test",
        "registry": "docker.io",
        "private": True,
        "config": "jarvice-docker",
        "arch": {"amd64": "docker.io/kenhill/abc123:test"},
    },
]


def write(
    d: Path, entries: object, interval: str | None = None, name: str = "image.config"
) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(entries if isinstance(entries, str) else json.dumps(entries))
    if interval is not None:
        (d / "interval").write_text(interval)
    return d


def problems(path: Path, *, warnings: bool = False) -> list[Problem]:
    """The errors (and with WARNINGS, the warnings too) of a config that must be rejected."""
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return [p for p in info.value.problems if warnings or p.severity == "error"]


def test_original_readme_example(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ORIGINAL_EXAMPLE, "300"), env={})
    assert config.interval == 300
    amd = config.select("amd64")
    assert [str(t.image) for t in amd.targets] == [
        "docker.io/library/ubuntu:xenial",
        "docker.io/kenhill/abc123:test",
    ]
    assert amd.targets[1].entry.private
    assert amd.targets[1].entry.secret == "jarvice-docker"
    ppc = config.select("ppc64le")
    assert [str(t.image) for t in ppc.targets] == ["docker.io/ppc64le/ubuntu:xenial"]
    assert [e.ref for e in ppc.skipped] == ["fail-test"]
    assert [e.ref for e in config.select("arm64").skipped] == ["ubuntu:xenial", "fail-test"]


def test_defaults_and_no_arch(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, [{"ref": "app:1", "registry": "quay.io"}, {"ref": "busybox"}]), env={}
    )
    entry = config.entries[0]
    assert (entry.private, entry.secret) == (False, "jarvice-docker")
    assert [str(t.image) for t in config.select("s390x").targets] == [
        "quay.io/app:1",
        "docker.io/library/busybox:latest",
    ]


def test_image_json_accepted_and_both_is_error(tmp_path: Path) -> None:
    write(tmp_path, [{"ref": "a"}], name="image.json")
    assert len(load_config(tmp_path, env={}).entries) == 1
    write(tmp_path, [{"ref": "a"}])
    (only,) = problems(tmp_path)
    assert "both image.config and image.json" in str(only)


def test_kubelet_volume_layout(tmp_path: Path) -> None:
    write_volume(tmp_path, {"image.config": json.dumps([{"ref": "a"}]), "interval": "42"})
    assert (tmp_path / "..data").is_symlink()
    config = load_config(tmp_path, env={})
    assert (config.interval, config.interval_source) == (42, str(tmp_path / "interval"))
    write_volume(
        tmp_path, {"image.config": json.dumps([{"ref": "a"}, {"ref": "b"}]), "interval": "7"}
    )
    config = load_config(tmp_path, env={})
    assert (len(config.entries), config.interval) == (2, 7)


def test_interval_precedence(tmp_path: Path) -> None:
    write(tmp_path, [{"ref": "a"}])
    assert load_config(tmp_path, env={}).interval == 300
    assert load_config(tmp_path, env={"PULL_INTERVAL": "30"}).interval == 30
    (tmp_path / "interval").write_text("12.5\n")
    assert load_config(tmp_path, env={"PULL_INTERVAL": "30"}).interval == 12.5
    assert load_config(tmp_path, interval_flag=5, env={"PULL_INTERVAL": "30"}).interval == 5


@pytest.mark.parametrize("bad", ["0", "-3", "soon", "", "nan", "inf"])
def test_bad_interval_is_an_error(tmp_path: Path, bad: str) -> None:
    (p,) = problems(write(tmp_path, [{"ref": "a"}], bad))
    assert p.file.endswith("interval")
    assert "positive number of seconds" in p.message


def test_bad_env_interval(tmp_path: Path) -> None:
    write(tmp_path, [{"ref": "a"}])
    with pytest.raises(ConfigError, match="env PULL_INTERVAL"):
        load_config(tmp_path, env={"PULL_INTERVAL": "five"})


def test_bad_json_names_line_and_column(tmp_path: Path) -> None:
    (p,) = problems(write(tmp_path, '[\n  {"ref": "a",}\n]'))
    assert "invalid JSON at line 2 column" in str(p)


def test_every_problem_reported_with_location(tmp_path: Path) -> None:
    entries = [
        {"ref": "ok"},
        {"ref": 5, "private": "yes"},
        {"registry": "quay.io"},
        "not-an-object",
        {"ref": "x", "config": "../../etc"},
        {"ref": "y", "arch": ["amd64"]},
        {"ref": "z", "arch": {"amd64": "Bad/Name"}},
        {"ref": "w", "surprise": 1},
    ]
    found = problems(write(tmp_path, entries), warnings=True)
    errors = {(p.index, p.key) for p in found if p.severity == "error"}
    assert errors == {
        (1, "ref"),
        (1, "private"),
        (2, "ref"),
        (3, None),
        (4, "config"),
        (5, "arch"),
        (6, "arch.amd64"),
    }
    warnings = [p for p in found if p.severity == "warning"]
    assert [(p.index, p.key) for p in warnings] == [(7, "surprise")]
    text = "\n".join(str(p) for p in found)
    assert "entry 1: key 'private': expected true or false, got string \"yes\"" in text
    assert "entry 6 (z): key 'arch.amd64': malformed image reference" in text
    assert str(tmp_path / "image.config") in text


def test_top_level_must_be_a_list(tmp_path: Path) -> None:
    (p,) = problems(write(tmp_path, {"ref": "a"}))
    assert "expected a JSON list" in p.message


def test_duplicates(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, [{"ref": "busybox"}, {"ref": "docker.io/library/busybox:latest"}]), env={}
    )
    assert [str(w) for w in config.warnings if "duplicate" in w.message]
    assert len(config.select("amd64").targets) == 1
    conflicting = [
        {"ref": "q.io/a", "private": True, "config": "one"},
        {"ref": "q.io/a", "private": True, "config": "two"},
    ]
    (p,) = problems(write(tmp_path, conflicting))
    assert "disagree" in p.message


def test_arch_aliases_and_unknown(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, [{"ref": "a", "arch": {"aarch64": "a:arm", "riscv64": "a:rv"}}]), env={}
    )
    assert str(config.select("arm64").targets[0].image) == "docker.io/library/a:arm"
    keys = sorted(w.key or "" for w in config.warnings)
    assert keys == ["arch.aarch64", "arch.riscv64"]
    (p,) = problems(write(tmp_path, [{"ref": "a", "arch": {"x86_64": "a:1", "amd64": "a:2"}}]))
    assert "given twice" in p.message


def test_registry_mismatch_warns(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            [
                {
                    "ref": "a",
                    "registry": "quay.io",
                    "private": True,
                    "arch": {"amd64": "ghcr.io/a:1"},
                },
                {"ref": "b", "registry": "quay.io", "arch": {"amd64": "ghcr.io/b:1"}},
            ],
        ),
        env={},
    )
    (w,) = config.warnings
    assert "credentials are looked up for ghcr.io" in w.message


def test_missing_dir_and_file(tmp_path: Path) -> None:
    (p,) = problems(tmp_path / "nope")
    assert "no such file" in p.message
    (p,) = problems(tmp_path)
    assert "no image file" in p.message


def test_digest_changes_with_content(tmp_path: Path) -> None:
    a = load_config(write(tmp_path, [{"ref": "a"}]), env={}).digest
    b = load_config(write(tmp_path, [{"ref": "b"}]), env={}).digest
    assert a != b
