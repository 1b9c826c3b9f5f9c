"""`jcp validate --arch A --node-labels k=v,...` as a user runs it: what such a node pulls, in
pull order, and each entry it skips with the reason."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ENTRIES = [
    {"ref": "base"},
    {"ref": "solver:2", "registry": "q.io", "private": True, "config": "reg", "priority": 5},
    {"ref": "ppc", "arch": {"ppc64le": "q.io/ppc:1"}},
    {"ref": "rocm", "nodeSelector": {"gpu": "amd"}},
    {"ref": "cuda12", "nodeSelector": {"gpu": "nvidia"}, "priority": 10},
    {"ref": "cpu-only", "matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]},
]


def validate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "image.config").write_text(json.dumps(ENTRIES))
    return subprocess.run(
        [sys.executable, "-m", "jcp", "validate", str(tmp_path), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def listing(out: subprocess.CompletedProcess[str]) -> list[str]:
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    return lines[lines.index(next(x for x in lines if " pulls " in x)) :]


def test_a_gpu_node_pulls_by_priority_and_says_why_it_skips(tmp_path: Path) -> None:
    out = validate(tmp_path, "--arch", "amd64", "--node-labels", "gpu=nvidia,pool=a")
    assert listing(out) == [
        "a amd64 node labelled gpu=nvidia,pool=a pulls 3 image(s):",
        "  pull docker.io/library/cuda12:latest (priority 10)",
        "  pull q.io/solver:2 (priority 5; private, secret 'reg')",
        "  pull docker.io/library/base:latest",
        "  skip entry 2 (ppc): no arch.amd64",
        "  skip entry 3 (rocm): nodeSelector gpu=amd does not match",
        "  skip entry 5 (cpu-only): matchExpressions !gpu does not match",
    ]


def test_a_node_without_labels(tmp_path: Path) -> None:
    out = validate(tmp_path, "--arch", "amd64", "--node-labels", "")
    assert listing(out)[0] == "a amd64 node without labels pulls 3 image(s):"
    assert "  skip entry 4 (cuda12): nodeSelector gpu=nvidia does not match" in out.stdout
    assert "  pull docker.io/library/cpu-only:latest" in out.stdout


def test_without_labels_the_selected_entries_say_what_they_select(tmp_path: Path) -> None:
    lines = listing(validate(tmp_path, "--arch", "amd64"))
    assert lines[0] == "a amd64 node pulls 2 image(s):"
    assert (
        "  skip entry 4 (cuda12): node labels unknown (it selects gpu=nvidia; give --node-labels)"
    ) in lines
    assert (
        "  skip entry 5 (cpu-only): node labels unknown (it selects !gpu; give --node-labels)"
    ) in lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node-labels", "gpu=nvidia"], "error: --node-labels needs --arch"),
        (
            ["--arch", "amd64", "--node-labels", "gpu"],
            "error: --node-labels: 'gpu' is not KEY=VALUE",
        ),
        (["--arch", "amd64", "--node-labels", "a/b/c=1"], "error: --node-labels: not a label key"),
    ],
)
def test_bad_flags_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    out = validate(tmp_path, *args)
    assert out.returncode == 2
    assert out.stdout.startswith(message), out.stdout


def test_once_and_run_take_node_labels(tmp_path: Path) -> None:
    from jcp.cli.main import _build_parser, settings_from  # noqa: PLC0415

    args = _build_parser().parse_args(["once", "--node-labels", "gpu=nvidia,pool="])
    assert settings_from(args).node_labels == {"gpu": "nvidia", "pool": ""}
    args = _build_parser().parse_args(["run"])
    assert settings_from(args).node_labels is None
    with pytest.raises(SystemExit):
        _build_parser().parse_args(["run", "--node-labels", "gpu=a b"])
