"""The Helm chart, linted and rendered by a real helm (scripts/install-helm.sh), every output
validated against the Kubernetes schemas and read back with jcp's own parsers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from devstack.kubelet import write_volume
from jcp.cli import _build_parser
from jcp.configdir import load_config

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "jcp"
SUPPORTED_K8S = ("1.28.0", "1.31.0", "1.34.0")  # the README's support table
IMAGES = [
    {
        "ref": "ubuntu:xenial",
        "registry": "docker.io",
        "private": False,
        "config": "jarvice-docker",
        "arch": {
            "amd64": "docker.io/library/ubuntu:xenial",
            "arm64": "docker.io/arm64v8/ubuntu:xenial",
        },
    },
    {"ref": "solver:2.1", "registry": "registry.example.com", "private": True, "config": "ex"},
]
SOCKETS = {
    "containerd": ("cri", "unix:///run/containerd/containerd.sock", "/run/containerd"),
    "crio": ("cri", "unix:///run/crio/crio.sock", "/run/crio"),
    "docker": ("docker", "unix:///host/docker-run/docker.sock", "/var/run"),
    "auto": ("auto", None, "/run"),
}


@pytest.fixture(scope="module")
def helm() -> str:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-helm.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        pytest.fail(f"scripts/install-helm.sh could not install helm:\n{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def template(helm: str, tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    vals = tmp_path / "values.yaml"
    vals.write_text(yaml.safe_dump(values))
    out = subprocess.run(
        [helm, "template", "jcp", str(CHART), "--namespace", "jarvice-system", "-f", str(vals)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_lint(helm: str) -> None:
    out = subprocess.run([helm, "lint", str(CHART)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("runtime", list(SOCKETS))
@pytest.mark.parametrize("lifecycle", [False, True])
def test_renders_valid_manifests_for_each_runtime(
    helm: str, tmp_path: Path, runtime: str, lifecycle: bool
) -> None:
    values = {
        "images": IMAGES,
        "interval": 120,
        "runtime": runtime,
        "secrets": ["jarvice-docker", "ex"],
        "priorityClassName": "system-node-critical",
        "nodeLifecycle": {"enabled": lifecycle},
        "purge": {"enabled": lifecycle, "grace": 600},
    }
    docs = template(helm, tmp_path, values)
    for doc in docs:
        for version in SUPPORTED_K8S:
            kubernetes_validate.validate(doc, version, strict=True)
    (ds,) = [d for d in docs if d["kind"] == "DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    args = _build_parser().parse_args(c["args"])
    kind, endpoint, socket_dir = SOCKETS[runtime]
    assert args.runtime == kind
    assert args.runtime_endpoint == endpoint
    assert pod["priorityClassName"] == "system-node-critical"
    host_paths = {v["hostPath"]["path"]: v for v in pod["volumes"] if "hostPath" in v}
    assert socket_dir in host_paths
    assert all(v["hostPath"]["type"] == "DirectoryOrCreate" for v in host_paths.values())
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/root/.docker/jarvice-docker", "/root/.docker/ex"} <= mounts
    if args.disk_path is not None:
        assert str(args.disk_path) in mounts
    roles = [d for d in docs if d["kind"] == "ClusterRole"]
    if lifecycle:
        (role,) = roles
        assert role["rules"] == [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}
        ]
        assert args.node_label == "jcp.nimbix.net/warm"
        assert args.untaint == "jcp.nimbix.net/warming"
        assert args.purge
        assert args.purge_grace == 600
        assert "/var/lib/jcp" in mounts
        assert pod["serviceAccountName"] == "jarvice-cache-pull"
    else:
        assert not roles
        assert pod["automountServiceAccountToken"] is False


def test_configmap_is_the_seed_format_read_by_jcp(helm: str, tmp_path: Path) -> None:
    docs = template(helm, tmp_path, {"images": IMAGES, "interval": 90})
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert json.loads(cm["data"]["image.config"]) == IMAGES
    write_volume(tmp_path / "cfg", cm["data"])
    config = load_config(tmp_path / "cfg", env={})
    assert config.interval == 90
    assert [str(t.image) for t in config.select("arm64").targets] == [
        "docker.io/arm64v8/ubuntu:xenial",
        "registry.example.com/solver:2.1",
    ]


def test_unknown_runtime_is_refused(helm: str, tmp_path: Path) -> None:
    vals = tmp_path / "v.yaml"
    vals.write_text("runtime: podman\n")
    out = subprocess.run(
        [helm, "template", "jcp", str(CHART), "-f", str(vals)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0
    assert "runtime must be containerd, crio, docker or auto" in out.stderr
