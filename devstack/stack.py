"""The whole stack (dockerd, an open and a password-protected registry) and sample content."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from devstack.images import RegistryClient, make_layer, push_synthetic
from devstack.services import Dockerd, Registry

AUTH_USER = "jcp"


def write_docker_secret(
    root: Path, name: str, host: str, user: str, password: str, *, file: str = "config.json"
) -> Path:
    """A secret directory laid out as kubelet mounts a dockerconfigjson secret."""
    path = root / name / file
    path.parent.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    path.chmod(0o600)
    return path


@dataclass
class Stack:
    root: Path
    dockerd: Dockerd = field(init=False)
    open_registry: Registry = field(init=False)
    auth_registry: Registry = field(init=False)

    def __post_init__(self) -> None:
        self.dockerd = Dockerd(self.root / "dockerd")
        self.open_registry = Registry(self.root / "registry-open")
        self.auth_registry = Registry(
            self.root / "registry-auth", user=AUTH_USER, password=secrets.token_urlsafe(18)
        )

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.open_registry.start()
            self.auth_registry.start()
            self.dockerd.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.dockerd.stop()
        self.open_registry.stop()
        self.auth_registry.stop()

    def open_client(self) -> RegistryClient:
        return RegistryClient(self.open_registry.host)

    def auth_client(self) -> RegistryClient:
        return RegistryClient(
            self.auth_registry.host, self.auth_registry.user, self.auth_registry.password
        )

    def pids(self) -> dict[str, int]:
        procs = {
            "dockerd": self.dockerd.proc,
            "registry-open": self.open_registry.proc,
            "registry-auth": self.auth_registry.proc,
        }
        return {name: p.pid for name, p in procs.items() if p is not None}


def seed_samples(stack: Stack, config_dir: Path, docker_root: Path) -> list[str]:
    """Sample images (public, private, multi-arch) and a config directory that lists them."""
    base = make_layer(2 * 1024 * 1024, seed=1, name="base")
    pub = stack.open_client()
    priv = stack.auth_client()
    try:
        pushed = [
            push_synthetic(pub, "sample/app", "1.0", layers=3, layer_size=1 << 20, base=base),
            push_synthetic(pub, "sample/tools", "1.0", layers=2, layer_size=1 << 20, base=base),
            push_synthetic(priv, "private/solver", "2.1", layers=2, layer_size=1 << 20, base=base),
        ]
        multi = pub.push_multiarch(
            "sample/multi",
            "1.0",
            {a: [base, make_layer(512 * 1024)] for a in ("amd64", "arm64", "ppc64le")},
        )
    finally:
        pub.close()
        priv.close()
    write_docker_secret(
        docker_root,
        "jarvice-docker",
        stack.auth_registry.host,
        AUTH_USER,
        stack.auth_registry.password or "",
    )
    open_host, auth_host = stack.open_registry.host, stack.auth_registry.host
    entries = [
        {
            "ref": "sample/app:1.0",
            "registry": open_host,
            "private": False,
            "arch": {"amd64": pushed[0].reference, "arm64": pushed[0].reference},
        },
        {"ref": "sample/tools:1.0", "registry": open_host},
        {
            "ref": "private/solver:2.1",
            "registry": auth_host,
            "private": True,
            "config": "jarvice-docker",
        },
        {
            "ref": "sample/multi:1.0",
            "registry": open_host,
            "arch": {
                "amd64": multi.reference,
                "arm64": multi.reference,
                "ppc64le": multi.reference,
            },
        },
        {
            "ref": "ppc-only",
            "registry": open_host,
            "arch": {"ppc64le": f"{open_host}/sample/ppc-only:1.0"},
        },
    ]
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "image.config").write_text(json.dumps(entries, indent=2) + "\n")
    (config_dir / "interval").write_text("60\n")
    return [p.reference for p in pushed] + [multi.reference]
