"""A real containerd (Debian's, CRI plugin built in) whose whole state lives under one directory.

The test session and the benchmark start it as root with its own root, state dir, gRPC socket
and a v2 config whose CRI registry `config_path` holds `hosts.toml` files that send the loopback
test registries over plain HTTP: the same image store a kubelet on containerd pulls into.
stop()/start() and kill() keep its images (kill is SIGKILL, for restart-mid-pull tests).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from devstack.services import StackError, _stop, _wait
from jcp.runtime.cri_api import api_pb2, api_pb2_grpc

_DISABLED = (
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)


@dataclass
class Containerd:
    root: Path
    registries: list[str] = field(default_factory=list)
    """Registry hosts (host:port) served over plain HTTP."""
    snapshotter: str = "overlayfs"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "c.sock"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    def add_registry(self, host: str) -> None:
        """Send HOST over plain HTTP (takes effect at once: hosts.toml is read per pull)."""
        if host not in self.registries:
            self.registries.append(host)
        d = self.root / "certs.d" / host
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts.toml").write_text(
            f'server = "http://{host}"\n\n[host."http://{host}"]\n'
            '  capabilities = ["pull", "resolve"]\n  skip_verify = true\n'
        )

    def _write_config(self) -> None:
        r = self.root
        disabled = ", ".join(f'"{p}"' for p in _DISABLED)
        self.config.write_text(
            f"""version = 2
root = "{r / "root"}"
state = "{r / "state"}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{r / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{self.snapshotter}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{r / "cni-bin"}"
    conf_dir = "{r / "cni-conf"}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{r / "certs.d"}"
"""
        )

    def answers(self) -> bool:
        try:
            with grpc.insecure_channel(self.endpoint) as channel:
                stub = api_pb2_grpc.ImageServiceStub(channel)  # type: ignore[no-untyped-call]
                stub.ImageFsInfo(api_pb2.ImageFsInfoRequest(), timeout=2)
        except grpc.RpcError:
            return False
        return True

    def start(self, timeout: float = 60) -> None:
        if shutil.which("containerd") is None:
            raise StackError("containerd not found: apt-get install containerd")
        self.root.mkdir(parents=True, exist_ok=True)
        for host in list(self.registries):
            self.add_registry(host)
        (self.root / "certs.d").mkdir(exist_ok=True)
        self._write_config()
        log = self.root / "containerd.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["containerd", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(self.answers, "containerd", log, timeout, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, as far as its clients can tell."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove_all(self) -> None:
        """Forget every image (between tests that need a cold store)."""
        with grpc.insecure_channel(self.endpoint) as channel:
            stub = api_pb2_grpc.ImageServiceStub(channel)  # type: ignore[no-untyped-call]
            for image in stub.ListImages(api_pb2.ListImagesRequest(), timeout=10).images:
                stub.RemoveImage(
                    api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=image.id)),
                    timeout=10,
                )
