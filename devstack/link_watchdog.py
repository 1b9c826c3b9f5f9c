"""The paced link's watchdog: takes its namespace, veth and registry down when the owner ends.

Run as `python -m devstack.link_watchdog NETNS VETH` with its stdin the read end of a pipe
whose write end only the owner holds. The pipe closes when the owner closes it (stop()) or
dies in any way, SIGKILL included: then every process in NETNS is killed, NETNS and VETH are
deleted. It runs in a session of its own, so a Ctrl-C or a kill of the owner's process group
does not take it down first.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

from devstack.services import StackError


def ip(
    *args: str, netns: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise StackError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done


def link_exists(name: str) -> bool:
    return ip("link", "show", name, check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return name in ip("netns", "list").stdout.split()


def cleanup(netns: str, veth: str, timeout: float = 10) -> None:
    """Kill what runs in NETNS, delete it and VETH, and wait until both are gone."""
    pids = ip("netns", "pids", netns, check=False).stdout.split()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and ip("netns", "pids", netns, check=False).stdout:
            time.sleep(0.05)
        pids = ip("netns", "pids", netns, check=False).stdout.split()
        if not pids:
            break
    ip("netns", "del", netns, check=False)
    deadline = time.monotonic() + timeout
    while link_exists(veth) and time.monotonic() < deadline:
        # The kernel takes a deleted namespace's devices down asynchronously; deleting one
        # end of the pair takes both at once.
        ip("link", "del", veth, check=False)
        time.sleep(0.05)


class _StoppedError(Exception):
    pass


def watch(netns: str, veth: str) -> int:
    """Block until the owner's pipe closes (the owner stopped the link, or died), then clean."""

    def term(*_: object) -> None:
        raise _StoppedError

    signal.signal(signal.SIGTERM, term)  # a stray TERM still ends in a cleanup
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the owner's terminal does not
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        while os.read(0, 1):
            pass
    except _StoppedError:
        pass
    cleanup(netns, veth)
    print(json.dumps({"cleaned": netns, "veth": veth}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(watch(sys.argv[1], sys.argv[2]))
