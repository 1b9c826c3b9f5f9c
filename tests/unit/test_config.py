"""The config model: the original's format, kubelet's volume layout, and precise errors."""

import json
import os
from pathlib import Path

import pytest

from devstack.kubelet import write_volume
from jcp.inputs.configdir import load_config, locate, read_files
from jcp.model.config import (
    MAX_PROBLEMS,
    ConfigError,
    ConfigFiles,
    IntervalError,
    Problem,
    build_config,
    parse_interval,
)

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


@pytest.mark.parametrize(
    "bad", ["0", "-3", "soon", "", "nan", "inf", "1e-300", "0.5", "604801", "\u0663\u0660\u0660"]
)
def test_bad_interval_is_an_error(tmp_path: Path, bad: str) -> None:
    (p,) = problems(write(tmp_path, [{"ref": "a"}], bad))
    assert p.file == str(tmp_path / "interval")
    assert "1 to 604800 seconds (7 days)" in p.message


def test_bad_interval_file_is_a_warning_under_the_flag(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, [{"ref": "a"}], "1e-300"), interval_flag=5, env={})
    assert (config.interval, config.interval_source) == (5, "--interval")
    (w,) = config.warnings
    assert (w.file, w.severity) == (str(tmp_path / "interval"), "warning")
    assert 'got "1e-300"' in w.message


@pytest.mark.parametrize(
    ("text", "seconds"), [("300", 300), (" 2.5\n", 2.5), ("1", 1), ("604800", 604800), ("5.", 5)]
)
def test_interval_plain_decimal(text: str, seconds: float) -> None:
    assert parse_interval(text, "x") == seconds


def test_interval_bounds_are_keywords_and_in_every_message() -> None:
    assert parse_interval("0.1", "--backoff", minimum=0.01, maximum=3600) == 0.1
    with pytest.raises(IntervalError) as info:
        parse_interval("7200", "--backoff", minimum=0.01, maximum=3600)
    assert str(info.value) == (
        "--backoff: 7200 seconds is out of range: expected 0.01 to 3600 seconds"
    )
    with pytest.raises(ValueError, match=r"^src: expected a plain number of seconds such as 300"):
        parse_interval("1e3", "src")


def test_bad_env_interval(tmp_path: Path) -> None:
    write(tmp_path, [{"ref": "a"}])
    with pytest.raises(ConfigError, match="env PULL_INTERVAL") as info:
        load_config(tmp_path, env={"PULL_INTERVAL": "five"})
    (p,) = info.value.problems
    assert (p.file, p.severity) == ("env PULL_INTERVAL", "error")
    assert 'got "five"' in p.message


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


def test_bom_accepted(tmp_path: Path) -> None:
    """Windows editors start UTF-8 files with a BOM; it is not content."""
    (tmp_path / "image.config").write_bytes(b"\xef\xbb\xbf" + json.dumps([{"ref": "a"}]).encode())
    (tmp_path / "interval").write_bytes(b"\xef\xbb\xbf60\r\n")
    config = load_config(tmp_path, env={})
    assert (len(config.entries), config.interval) == (1, 60)


def test_duplicate_key_names_key_and_place(tmp_path: Path) -> None:
    (p,) = problems(write(tmp_path, '[{"ref": "a",\n  "private": true, "ref": "b"}]'))
    assert p.file == str(tmp_path / "image.config")
    assert p.message == (
        'duplicate key "ref" at line 2 column 20: a key may appear only once in an object'
    )


def test_not_utf8_says_where(tmp_path: Path) -> None:
    (tmp_path / "image.config").write_bytes(b'[{"ref": "a"},\n {"ref": "caf\xe9"}]')
    (p,) = problems(tmp_path)
    assert p.message == (
        "not UTF-8 text: invalid byte sequence at byte offset 28 (line 2 column 14)"
    )


def test_interval_file_errors_name_the_interval_file(tmp_path: Path) -> None:
    write(tmp_path, [{"ref": "a"}])
    (tmp_path / "interval").mkdir()
    (p,) = problems(tmp_path)
    assert str(p) == f"error: {tmp_path / 'interval'}: cannot read: is a directory, not a file"


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer; jcp must say what it is instead."""
    os.mkfifo(tmp_path / "image.config")
    (p,) = problems(tmp_path)
    assert p.message == "cannot read: is a FIFO, not a file"
    (p,) = problems(tmp_path / "image.config")
    assert p.file == str(tmp_path / "image.config")


def test_read_error_names_the_path(tmp_path: Path) -> None:
    """A real read error: /proc/self/mem opens, and reading offset 0 (never mapped) fails."""
    (tmp_path / "image.config").symlink_to("/proc/self/mem")
    (p,) = problems(tmp_path)
    assert str(p) == f"error: {tmp_path / 'image.config'}: cannot read: Input/output error"


def test_larger_than_a_configmap(tmp_path: Path) -> None:
    with (tmp_path / "image.config").open("wb") as f:
        f.truncate(1024 * 1024 + 1)
    (p,) = problems(tmp_path)
    assert p.message == "larger than 1 MiB, the most a ConfigMap can hold"
    with (tmp_path / "image.config").open("wb") as f:
        f.write(b"[" + b" " * (1024 * 1024 - 2) + b"]")
    assert load_config(tmp_path, env={}).entries == ()


def test_locate_and_read_files_through_the_volume(tmp_path: Path) -> None:
    write_volume(tmp_path, {"image.config": "[]", "interval": "9"})
    image, interval = locate(tmp_path)
    assert interval is not None
    assert image.parent == interval.parent
    assert image.parent.name.startswith("..")  # inside the generation ..data points to
    files = read_files(tmp_path)
    assert files == ConfigFiles(
        str(tmp_path / "image.config"), "[]", str(tmp_path / "interval"), "9"
    )


def test_problems_are_capped(tmp_path: Path) -> None:
    """A hostile 1 MiB file must not become half a million problems (and log lines)."""
    found = problems(write(tmp_path, [{"ref": "A"}] * 5000), warnings=True)
    assert len(found) == MAX_PROBLEMS + 1
    assert found[-1].message == (
        "1 more problem(s) not shown (1 error(s)); stopped checking at entry 101 of 5000; "
        "fix the ones above first"
    )


def test_warnings_alone_do_not_stop_the_check(tmp_path: Path) -> None:
    """Past the cap, warnings only: every entry is still parsed, and the config is accepted."""
    config = load_config(write(tmp_path, [{"ref": f"a{i}", "odd": 1} for i in range(300)]), env={})
    assert len(config.entries) == 300
    assert len(config.warnings) == MAX_PROBLEMS + 1
    assert config.warnings[-1].message.startswith("200 more problem(s) not shown (0 error(s));")


def test_problems_show_no_control_characters() -> None:
    files = ConfigFiles("f", json.dumps([{"ref": "\x1b[2J", "\x1b[31mx" * 30: 1}]), None, None)
    with pytest.raises(ConfigError) as info:
        build_config(files, env={})
    for p in info.value.problems:
        assert str(p).isprintable(), str(p)
        assert len(str(p)) < 300
