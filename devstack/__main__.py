"""`python -m devstack up|down DIR`: the test stack, for a person trying jcp by hand."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from devstack.services import StackError, kill_pid
from devstack.stack import Stack, seed_samples


def _up(root: Path) -> int:
    state = root / "stack.json"
    if state.exists():
        print(f"a stack is already up in {root} (run: down {root})", file=sys.stderr)
        return 1
    stack = Stack(root)
    try:
        stack.start()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    config_dir, docker_root = root / "config", root / "docker"
    seed_samples(stack, config_dir, docker_root)
    state.write_text(json.dumps({"pids": stack.pids(), "docker_host": stack.dockerd.host}))
    print(f"stack up in {root}")
    print(f"  open registry:      {stack.open_registry.host}")
    print(f"  password registry:  {stack.auth_registry.host} (secret in {docker_root})")
    print(f"export DOCKER_HOST={stack.dockerd.host}")
    print(f"jcp once --config-dir {config_dir} --docker-config-root {docker_root}")
    return 0


def _down(root: Path) -> int:
    state = root / "stack.json"
    if not state.exists():
        print(f"no stack is up in {root}", file=sys.stderr)
        return 1
    pids = json.loads(state.read_text())["pids"]
    for pid in pids.values():
        kill_pid(int(pid))
    deadline = time.monotonic() + 30
    for pid in pids.values():
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    state.unlink()
    print(f"stack in {root} is down")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    return _up(root) if args.action == "up" else _down(root)


if __name__ == "__main__":
    sys.exit(main())
