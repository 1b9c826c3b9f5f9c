"""A registry behind a link that paces every TCP connection, as CDNs and object stores do.

Real blob GETs mostly end at object storage that gives each connection a fixed rate, so one
connection is slow and several range requests are fast: on loopback that difference vanishes.
Here Debian's `docker-registry` runs in a network namespace of its own, reached over a veth
pair with addresses from 198.18.0.0/15 (reserved for benchmarking, RFC 2544) on that veth
only, one /30 per link so that parallel sessions never collide. The namespace's egress (the
direction of blob bytes) has an htb root with CLASSES classes of rate and ceil RATE each.

Which class a connection gets: the issue proposed a u32 match on the client port's low bits,
but Linux's connect() picks even ports (bit 0 is always 0: 8 of 16 classes ever used) spread
at random, so 4 connections would share a class more often than not (59%; 33% even with bits
1-4), and a range fetch would be measured at half speed. Instead, conntrack gives each
new connection the next class in turn (iptables `statistic --mode nth` sets its connmark, and
`CLASSIFY` maps the mark to the class): up to CLASSES connections open at once are each paced
to RATE exactly. (This kernel has htb, u32, conntrack and xt_CLASSIFY; not netem, fq, sfq.)

The link cleans up after itself: a watchdog process (devstack/link_watchdog.py), in a session
of its own, holds the read end of a pipe whose write end only this process has; when this
process ends for any reason (SIGKILL included) the pipe closes and the watchdog kills every
process in the namespace, deletes the namespace and the veth. stop() closes the pipe too: one
cleanup path.

The registry logs every request as JSON (level info); `requests()` reads that log.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from devstack.link_watchdog import cleanup, ip, link_exists, netns_exists
from devstack.request_log import RequestLog
from devstack.services import Registry, StackError, _stop, _wait

NETWORK = ipaddress.ip_network("198.18.0.0/15")
SLOTS = NETWORK.num_addresses // 4
DEFAULT_RATE = 20e6
"""Bytes per second per connection on the wire (160 mbit); TCP payload is about 95% of it."""
PORT = 5000


def _in_ns(netns: str, *cmd: str) -> None:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise StackError(f"in {netns}: {' '.join(cmd)}: {done.stderr.strip()}")


def names(slot: int) -> tuple[str, str, str]:
    """(namespace, host-side veth, namespace-side veth) of SLOT; veth names stay < 16 bytes."""
    return f"jcp-link-{slot}", f"jcpl{slot}h", f"jcpl{slot}n"


def addresses(slot: int) -> tuple[str, str]:
    """(host side, namespace side) addresses of SLOT's /30."""
    base = NETWORK.network_address + 4 * slot
    return str(base + 1), str(base + 2)


@dataclass
class _NetnsRegistry(Registry):
    """The devstack registry, started inside NETNS on ADDRESS, logging requests as JSON."""

    netns: str = ""
    address: str = ""

    @property
    def host(self) -> str:
        return f"{self.address}:{self.port}"

    def _config(self) -> str:
        config = super()._config()
        config = config.replace(f"addr: 127.0.0.1:{self.port}", f"addr: {self.host}")
        return config.replace("  level: error\n", "  level: info\n  formatter: json\n")

    def alive(self) -> bool:
        try:
            conn = http.client.HTTPConnection(self.address, self.port, timeout=2)
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            conn.close()
        except OSError:
            return False
        return status in (200, 401)

    def start(self, timeout: float = 30) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(self._config())
        log = self.root / "registry.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, "docker-registry", "serve", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(self.alive, f"registry on {self.host}", log, timeout, self.proc)


@dataclass
class PacedLink:
    """`with PacedLink(root) as link:` a registry at `link.url`, each connection paced to RATE."""

    root: Path
    rate: float = DEFAULT_RATE
    classes: int = 16
    slot: int = -1
    registry: _NetnsRegistry | None = None
    _watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _pipe: int | None = field(default=None, repr=False)

    @property
    def netns(self) -> str:
        return names(self.slot)[0]

    @property
    def veth(self) -> str:
        return names(self.slot)[1]

    @property
    def address(self) -> str:
        return addresses(self.slot)[1]

    @property
    def host(self) -> str:
        return f"{self.address}:{PORT}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log(self) -> Path:
        return self.root / "registry" / "registry.log"

    def requests(self) -> RequestLog:
        """The registry's answered requests, from a mark (devstack/request_log.py)."""
        return RequestLog(self.log)

    def _claim(self) -> None:
        """Take a free /30: `ip netns add` fails if the name exists, so a claim is atomic."""
        rng = random.Random(os.getpid() ^ time.monotonic_ns())
        for _ in range(64):
            slot = rng.randrange(SLOTS)
            netns = names(slot)[0]
            if ip("netns", "add", netns, check=False).returncode == 0:
                self.slot = slot
                return
        raise StackError("no free 198.18.0.0/15 slot for a paced link")

    def _start_watchdog(self) -> None:
        read, write = os.pipe()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        with (self.root / "watchdog.log").open("ab") as out:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-m", "devstack.link_watchdog", self.netns, self.veth],
                stdin=read,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        os.close(read)
        self._pipe = write

    def _wire(self) -> None:
        netns, host_veth, ns_veth = names(self.slot)
        host_ip, ns_ip = addresses(self.slot)
        ip("link", "add", host_veth, "type", "veth", "peer", "name", ns_veth)
        ip("link", "set", ns_veth, "netns", netns)
        ip("addr", "add", f"{host_ip}/30", "dev", host_veth)
        ip("link", "set", host_veth, "up")
        ip("addr", "add", f"{ns_ip}/30", "dev", ns_veth, netns=netns)
        ip("link", "set", ns_veth, "up", netns=netns)
        ip("link", "set", "lo", "up", netns=netns)
        self._pace(ns_veth)

    def _pace(self, dev: str) -> None:
        rate = f"{round(self.rate * 8)}bit"
        tc = ("tc",)
        # Unclassified packets (ARP) leave at once; r2q keeps htb's quantum in range.
        _in_ns(self.netns, *tc, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb",
               "default", "0", "r2q", "1000")  # fmt: skip
        mangle = ("iptables", "-w", "-t", "mangle", "-A")
        for k in range(1, self.classes + 1):
            _in_ns(self.netns, *tc, "class", "add", "dev", dev, "parent", "1:",
                   "classid", f"1:{k:x}", "htb", "rate", rate, "ceil", rate)  # fmt: skip
            # Every rule sees every new connection (CONNMARK does not stop the chain), each
            # counts them, and rule k takes the k-th of every CLASSES: round robin.
            _in_ns(self.netns, *mangle, "PREROUTING", "-p", "tcp", "-m", "conntrack",
                   "--ctstate", "NEW", "-m", "statistic", "--mode", "nth", "--every",
                   str(self.classes), "--packet", str(k - 1), "-j", "CONNMARK",
                   "--set-mark", str(k))  # fmt: skip
            _in_ns(self.netns, *mangle, "POSTROUTING", "-o", dev, "-m", "connmark",
                   "--mark", str(k), "-j", "CLASSIFY", "--set-class", f"1:{k:x}")  # fmt: skip

    def start(self) -> Self:
        if os.geteuid() != 0:
            raise StackError("a paced link needs root (network namespaces, tc, iptables)")
        self.root.mkdir(parents=True, exist_ok=True)
        self._claim()
        self._start_watchdog()
        try:
            self._wire()
            self.registry = _NetnsRegistry(
                self.root / "registry", port=PORT, netns=self.netns, address=self.address
            )
            self.registry.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop the registry, then let the watchdog take the namespace and veth down."""
        if self.registry is not None and self.registry.proc is not None:
            _stop(self.registry.proc, 10)
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None
        if self._watchdog is not None:
            try:
                self._watchdog.wait(timeout)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait(5)
                cleanup(self.netns, self.veth)
            self._watchdog = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def gone(self) -> bool:
        return not netns_exists(self.netns) and not link_exists(self.veth)

    def class_bytes(self) -> dict[int, int]:
        """Bytes each class has sent (which classes connections used)."""
        out = subprocess.run(
            ["ip", "netns", "exec", self.netns, "tc", "-s", "class", "show", "dev",
             names(self.slot)[2]],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        sent: dict[int, int] = {}
        current = 0
        for line in out.splitlines():
            words = line.split()
            if words[:2] == ["class", "htb"]:
                current = int(words[2].split(":")[1], 16)
            elif words[:1] == ["Sent"]:
                sent[current] = int(words[1])
        return sent
