"""`jcp validate` as a user runs it: exit codes and the lines printed."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.nasty_inputs import NASTY_CONFIGS, make


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jcp", "validate", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_valid_with_arch_listing(tmp_path: Path) -> None:
    (tmp_path / "image.config").write_text(
        json.dumps(
            [
                {"ref": "a", "arch": {"amd64": "q.io/a:1", "ppc64le": "q.io/a:p"}},
                {"ref": "p", "registry": "q.io", "private": True, "config": "reg"},
                {"ref": "ppc", "arch": {"ppc64le": "q.io/ppc:1"}},
                {"ref": "u", "odd": True},
            ]
        )
    )
    (tmp_path / "interval").write_text("60")
    out = run(str(tmp_path), "--arch", "x86_64")
    assert out.returncode == 0, out.stdout
    lines = out.stdout.splitlines()
    assert "warning:" in lines[0]
    assert "key 'odd'" in lines[0]
    assert "ok: 4 entries, interval 60s" in out.stdout
    assert "a amd64 node pulls 3 image(s):" in out.stdout
    assert "  pull q.io/a:1" in lines
    assert "  pull q.io/p:latest (private, secret 'reg')" in lines
    assert "  skip entry 2 (ppc): no arch.amd64" in lines


def test_broken_configs_exit_2_with_every_problem(tmp_path: Path) -> None:
    cases = {
        "bad-json": ('[{"ref": "a"', "invalid JSON at line 1 column 13"),
        "wrong-type": ('[{"ref": "a", "private": 1}]', "entry 0 (a): key 'private'"),
        "missing-key": ('[{"registry": "q.io"}]', "entry 0: key 'ref': missing"),
        "bad-ref": ('[{"ref": "a", "arch": {"amd64": "q.io/A"}}]', "uppercase letters"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        out = run(str(path))
        assert out.returncode == 2, (name, out.stdout)
        assert expected in out.stdout, (name, out.stdout)
        assert out.stdout.rstrip().endswith("invalid: 1 error(s)")


def test_unknown_arch_and_missing_path(tmp_path: Path) -> None:
    out = run(str(tmp_path / "none"))
    assert out.returncode == 2
    assert "no such file or directory" in out.stdout
    (tmp_path / "image.config").write_text("[]")
    out = run(str(tmp_path), "--arch", "mips")
    assert out.returncode == 2
    assert "--arch 'mips' is not a known architecture" in out.stdout


def test_bad_engine_arguments_are_usage_errors(tmp_path: Path) -> None:
    """Each mistake is named, with exit code 2 and no traceback."""
    cases = [
        (["once", "--docker-host", "foo"], {}, "--docker-host: expected unix://"),
        (["once"], {"DOCKER_HOST": "bogus"}, "$DOCKER_HOST: expected unix://"),
        (["run", "--http-addr", "nonsense"], {}, "--http-addr: expected HOST:PORT"),
        (["once", "--concurrency", "0"], {}, "--concurrency: expected a whole number >= 1"),
        (["once", "--min-free", "200%"], {}, "--min-free: percentage must be in [0, 100)"),
        (["once", "--arch", "mips"], {}, "--arch: unknown architecture 'mips'"),
        (
            ["once", "--interval", "-5"],
            {},
            (
                "--interval: expected a plain number of seconds such as 300 or 2.5, "
                'from 1 to 604800 seconds (7 days); got "-5"'
            ),
        ),
    ]
    for args, env, message in cases:
        out = subprocess.run([sys.executable, "-m", "jcp", *args], capture_output=True, text=True,
                             check=False, env={**os.environ, **env})  # fmt: skip
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr


def test_nasty_files_never_traceback(tmp_path: Path) -> None:
    """Issue 10: every case of the nasty corpus, through the real CLI: exit 2 (0 for a BOM) and
    the problem, never a traceback. The processes run at once to keep the test short."""
    runs = {}
    for name, (image, interval, _) in NASTY_CONFIGS.items():
        d = tmp_path / name
        d.mkdir()
        make(d / "image.config", image)
        make(d / "interval", interval)
        runs[name] = subprocess.Popen(
            [sys.executable, "-m", "jcp", "validate", str(d)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, proc in runs.items():
        out, err = proc.communicate(timeout=120)
        expected = NASTY_CONFIGS[name][2]
        assert err == "", (name, err)
        if expected == "ok":
            assert proc.returncode == 0, (name, out)
            continue
        assert proc.returncode == 2, (name, out)
        assert expected in out, (name, out)
        assert out.rstrip().endswith("error(s)"), (name, out)


def test_undecodable_path_is_printed_escaped(tmp_path: Path) -> None:
    path = os.fsencode(tmp_path) + b"/caf\xe9"
    out = subprocess.run(
        [sys.executable, "-m", "jcp", "validate", path], capture_output=True, check=False
    )
    assert out.returncode == 2, out
    assert out.stderr == b""
    assert b"caf\\udce9: no such file or directory" in out.stdout
