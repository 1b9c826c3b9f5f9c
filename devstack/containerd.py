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
    snapshotter: str | None = None
    """None: overlayfs (what nodes use; works as root here), else `native` if it cannot load."""
    sandbox_image: str | None = None
    """The pod sandbox ("pause") image for RunPodSandbox; None leaves containerd's default."""
    binary: str = "containerd"
    """Which containerd: Debian's 1.6 on PATH, or another (scripts/install-containerd17.sh)."""
    disabled: tuple[str, ...] = ()
    """More plugins to leave out, e.g. `io.containerd.grpc.v1.images`: a CRI socket without
    containerd's own Images API, as CRI-O's is."""
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

    @property
    def ingest_dir(self) -> Path:
        """Where containerd keeps partial downloads: non-empty while a pull is transferring."""
        return self.root / "root" / "io.containerd.content.v1.content" / "ingest"

    def _write_config(self, snapshotter: str) -> None:
        r = self.root
        disabled = ", ".join(f'"{p}"' for p in (*_DISABLED, *self.disabled))
        # Pods here: some hosts (this VM) refuse a negative oom_score_adj even to root, and
        # containerd gives the sandbox -998 unless told to stay at its own.
        sandbox = (
            f'  sandbox_image = "{self.sandbox_image}"\n  restrict_oom_score_adj = true\n'
            if self.sandbox_image
            else ""
        )
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
{sandbox}  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{snapshotter}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{r / "cni-bin"}"
    conf_dir = "{r / "cni-conf"}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{r / "certs.d"}"
"""
        )

    def version(self) -> grpc.StatusCode | None:
        """The status of a CRI Version call: OK when the CRI plugin serves, None if no answer.

        UNIMPLEMENTED means containerd runs without its CRI plugin (it failed to load, e.g.
        because its snapshotter did not).
        """
        try:
            with grpc.insecure_channel(self.endpoint) as channel:
                call = channel.unary_unary(
                    "/runtime.v1.RuntimeService/Version",
                    request_serializer=api_pb2.VersionRequest.SerializeToString,
                    response_deserializer=api_pb2.VersionResponse.FromString,
                )
                call(api_pb2.VersionRequest(), timeout=2)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            return None if code in (None, grpc.StatusCode.UNAVAILABLE) else code
        return grpc.StatusCode.OK

    def answers(self) -> bool:
        """Up and decided: the CRI serves, or is known not to (not "not initialized yet")."""
        return self.version() in (grpc.StatusCode.OK, grpc.StatusCode.UNIMPLEMENTED)

    def start(self, timeout: float = 60) -> None:
        if shutil.which(self.binary) is None:
            raise StackError("containerd not found: apt-get install containerd")
        self.root.mkdir(parents=True, exist_ok=True)
        for host in list(self.registries):
            self.add_registry(host)
        (self.root / "certs.d").mkdir(exist_ok=True)
        log = self.root / "containerd.log"
        for snapshotter in [self.snapshotter] if self.snapshotter else ["overlayfs", "native"]:
            self._write_config(snapshotter)
            with log.open("ab") as out:
                self.proc = subprocess.Popen(
                    [self.binary, "--config", str(self.config)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            _wait(self.answers, "containerd", log, timeout, self.proc)
            status = self.version()
            if status == grpc.StatusCode.OK:
                self.snapshotter = snapshotter
                return
            _stop(self.proc)
            self.proc = None
        raise StackError(f"containerd's CRI plugin did not load: {status} (log: {log})")

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
