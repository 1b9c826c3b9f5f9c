"""The Helm chart, linted and rendered by a real helm (scripts/install-helm.sh), every output
validated for the README's Kubernetes versions and held to the same pod invariants as k8s/
(tests/integration/test_deploy.py), its image list read back with jcp's own config parser."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from jcp.model.config import Config, ConfigFiles, build_config
from tests.support.manifests import check_pod, check_rbac, container, kind, kubelet_args, validate

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "jcp"
IMAGES: list[dict[str, Any]] = [
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
    {
        "ref": "solver:2.1",
        "registry": "registry.example.com",
        "private": True,
        "config": "example-registry",
    },
]
# runtime value -> ((--runtime, endpoint in the pod, host socket directory), host image disk)
RUNTIMES: dict[str, tuple[tuple[str, str, str], str | None]] = {
    "containerd": (
        ("cri", "/run/containerd/containerd.sock", "/run/containerd"),
        "/var/lib/containerd",
    ),
    "crio": (("cri", "/run/crio/crio.sock", "/run/crio"), "/var/lib/containers/storage"),
    "docker": (("docker", "/host/var/run/docker.sock", "/var/run"), "/var/lib/docker"),
    "auto": (("auto", "", "/run"), None),
}


@pytest.fixture(scope="module")
def helm() -> str:
    """A real helm; the chart tests fail, never skip, when it cannot be had."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-helm.sh")],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if out.returncode != 0 or not out.stdout.strip():
        pytest.fail(f"scripts/install-helm.sh could not install helm:\n{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def helm_run(helm: str, tmp_path: Path, command: str, values: dict[str, Any]) -> Any:
    vals = tmp_path / "values.yaml"
    vals.write_text(yaml.safe_dump(values))
    args = [helm, command, "jcp", str(CHART)] if command == "template" else [helm, command]
    if command == "lint":
        args += ["--strict", str(CHART)]
    return subprocess.run(
        [*args, "--namespace", "jarvice-system", "-f", str(vals)],
        capture_output=True,
        text=True,
        check=False,
    )


def template(helm: str, tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    out = helm_run(helm, tmp_path, "template", values)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    validate(docs)
    return docs


def read_config(docs: list[dict[str, Any]]) -> Config:
    """The rendered ConfigMap through jcp's own parser, as jcp reads its config directory."""
    data = kind(docs, "ConfigMap")["data"]
    assert set(data) == {"image.config", "interval"}
    return build_config(
        ConfigFiles("image.config", data["image.config"], "interval", data["interval"])
    )


def as_seed(config: Config) -> list[dict[str, Any]]:
    """jcp's parsed entries written back in the seed's format."""
    out: list[dict[str, Any]] = []
    for e in config.entries:
        entry: dict[str, Any] = {
            "ref": e.ref,
            "registry": e.registry,
            "private": e.private,
            "config": e.secret,
        }
        if e.arch is not None:
            entry["arch"] = {arch: str(ref) for arch, ref in e.arch}
        out.append(entry)
    return out


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"images": IMAGES, "nodeLifecycle": {"enabled": True}, "purge": {"enabled": True}},
        {"runtime": "auto", "kubeletRuntimeEndpoint": "unix:///run/containerd/containerd.sock"},
    ],
    ids=["defaults", "lifecycle-purge", "auto"],
)
def test_lint(helm: str, tmp_path: Path, values: dict[str, Any]) -> None:
    out = helm_run(helm, tmp_path, "lint", values)
    assert out.returncode == 0, out.stdout + out.stderr


def test_defaults_are_containerd_without_rbac(helm: str, tmp_path: Path) -> None:
    docs = template(helm, tmp_path, {})
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "DaemonSet"]
    args = check_pod(docs, *RUNTIMES["containerd"])
    check_rbac(docs, args, lifecycle=False)
    assert not args.purge
    assert read_config(docs).interval == 300


@pytest.mark.parametrize("runtime", list(RUNTIMES))
@pytest.mark.parametrize("lifecycle", [False, True], ids=["plain", "lifecycle"])
def test_each_runtime_mounts_only_its_socket(
    helm: str, tmp_path: Path, runtime: str, lifecycle: bool
) -> None:
    values = {
        "images": IMAGES,
        "runtime": runtime,
        "secrets": ["jarvice-docker", "example-registry"],
        "nodeLifecycle": {"enabled": lifecycle, "untaintDeadline": 1800},
        "purge": {"enabled": lifecycle, "grace": 600},
    }
    docs = template(helm, tmp_path, values)
    args = check_pod(docs, *RUNTIMES[runtime])
    check_rbac(docs, args, lifecycle)
    mounts = {m["mountPath"] for m in container(docs)["volumeMounts"]}
    assert {"/root/.docker/jarvice-docker", "/root/.docker/example-registry"} <= mounts
    assert (args.host_root is not None) == (runtime == "docker")
    follows_hosts = runtime in {"containerd", "auto"}  # hosts.toml is containerd's own format
    assert (args.registry_config_path is not None) == follows_hosts
    if lifecycle:
        assert (args.untaint_deadline, args.purge, args.purge_grace) == (1800, True, 600)
    else:
        assert not args.purge


def test_lifecycle_with_own_rbac_and_label_only(helm: str, tmp_path: Path) -> None:
    values = {"nodeLifecycle": {"enabled": True, "untaintKey": "", "rbac": {"create": False}}}
    docs = template(helm, tmp_path, values)
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "DaemonSet"]
    pod = kind(docs, "DaemonSet")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "jarvice-cache-pull"  # the user's own, with get/patch
    args = check_pod(docs, *RUNTIMES["containerd"])
    assert args.node_label == "jcp.nimbix.net/warm"
    assert args.untaint is None
    assert not [t for t in pod["tolerations"] if t["key"].startswith("jcp.")]


def test_configmap_is_the_seed_list_read_by_jcp(helm: str, tmp_path: Path) -> None:
    docs = template(helm, tmp_path, {"images": IMAGES, "interval": 90})
    cm = kind(docs, "ConfigMap")
    assert cm["metadata"]["name"] == "image-cache"  # what the README's update command replaces
    assert json.loads(cm["data"]["image.config"]) == IMAGES
    config = read_config(docs)
    assert as_seed(config) == IMAGES
    assert not config.warnings
    assert config.interval == 90
    assert [str(t.image) for t in config.select("arm64").targets] == [
        "docker.io/arm64v8/ubuntu:xenial",
        "registry.example.com/solver:2.1",
    ]
    # A new list reaches running pods as a volume update: nothing in the pod changes with it.
    other = template(helm, tmp_path, {"images": IMAGES[:1], "interval": 90})
    assert kind(other, "DaemonSet") == kind(docs, "DaemonSet")


@pytest.mark.parametrize("interval", [2.5, 604800, "120"])
def test_interval_is_a_plain_number_jcp_accepts(
    helm: str, tmp_path: Path, interval: float | str
) -> None:
    """Helm reads YAML numbers as floats and would print 604800.0 or 1e+06 without care."""
    config = read_config(template(helm, tmp_path, {"interval": interval}))
    assert config.interval == float(interval)


def test_every_value_reaches_the_pod(helm: str, tmp_path: Path) -> None:
    values: dict[str, Any] = {
        "images": IMAGES,
        "runtime": "containerd",
        "runtimeEndpoint": "unix:///run/k3s/containerd/containerd.sock",
        "diskHostPath": "/data/containerd",
        "secrets": ["example-registry", "quay.io-robot"],
        "image": {"repository": "quay.io/me/jcp", "tag": "9.9", "pullPolicy": "Always"},
        "concurrency": 3,
        "minFree": "20GiB",
        "extraArgs": ["--refresh=pull", "--pull-timeout=600"],
        "resources": {"requests": {"cpu": "20m", "memory": "80Mi"}, "limits": {"memory": "1Gi"}},
        "tolerations": [
            {"key": "node-role.jarvice.io/jarvice-compute", "operator": "Exists"},
            {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
        ],
        "nodeSelector": {"kubernetes.io/arch": "arm64"},
        "priorityClassName": "system-node-critical",
        "updateStrategy": {"type": "OnDelete"},
        "purge": {"enabled": True, "dryRun": True, "grace": 0},
        "stateDir": "/var/lib/jcp-b",
    }
    docs = template(helm, tmp_path, values)
    k3s = ("cri", "/run/k3s/containerd/containerd.sock", "/run/k3s/containerd")
    ds = kind(docs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    c = container(docs)
    volumes = {v["name"]: v for v in pod["volumes"]}
    state = next(
        v for v in volumes.values() if v.get("hostPath", {}).get("path") == "/var/lib/jcp-b"
    )
    state["hostPath"]["path"] = "/var/lib/jcp"  # check_pod knows the default state directory
    args = check_pod(docs, k3s, "/data/containerd")
    assert c["image"] == "quay.io/me/jcp:9.9"
    assert c["imagePullPolicy"] == "Always"
    assert (args.concurrency, args.refresh, args.pull_timeout) == (3, "pull", 600)
    assert "--min-free=20GiB" in kubelet_args(c)
    # Helm merges maps with the defaults: the default cpu limit stays unless set to null.
    assert c["resources"] == {**values["resources"], "limits": {"cpu": "2", "memory": "1Gi"}}
    assert pod["tolerations"] == values["tolerations"]
    assert pod["nodeSelector"] == {**values["nodeSelector"], "kubernetes.io/os": "linux"}
    assert pod["priorityClassName"] == "system-node-critical"
    assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}
    assert (args.purge, args.purge_dry_run, args.purge_grace) == (False, True, 0)
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    for name in values["secrets"]:
        assert volumes[mounts[f"/root/.docker/{name}"]]["secret"]["secretName"] == name


@pytest.mark.parametrize("path", ["", "/var/lib/rancher/k3s/agent/etc/containerd/certs.d"])
def test_registry_config_path_off_or_moved(helm: str, tmp_path: Path, path: str) -> None:
    """containerd's hosts.toml directory: off with "", elsewhere on k3s; read-only, at the
    node's own path (checked by check_pod)."""
    args = check_pod(
        template(helm, tmp_path, {"registryConfigPath": path}), *RUNTIMES["containerd"]
    )
    assert args.registry_config_path == (Path(path) if path else None)


def test_auto_passes_the_kubelets_endpoint(helm: str, tmp_path: Path) -> None:
    endpoint = "unix:///run/containerd/containerd.sock"
    docs = template(helm, tmp_path, {"runtime": "auto", "kubeletRuntimeEndpoint": endpoint})
    check_pod(docs, *RUNTIMES["auto"])
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert env["KUBELET_RUNTIME_ENDPOINT"] == endpoint


def test_pin(helm: str, tmp_path: Path) -> None:
    """`pin: true` passes --pin, which jcp's parser must accept."""
    docs = template(helm, tmp_path, {"pin": True})
    assert "--pin" in container(docs)["args"]
    args = check_pod(docs, *RUNTIMES["containerd"])
    assert args.pin is True


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"runtime": "podman"}, "runtime"),
        ({"runtime": "docker", "runtimeEndpoint": "unix:///x.sock"}, "runtimeEndpoint is for"),
        ({"images": [{"ref": "a:1", "regsitry": "r.example"}]}, "regsitry"),
        ({"images": [{"ref": "a:1", "config": "Not_A_Secret"}]}, "config"),
        ({"interval": 1000000}, "interval"),
        ({"secrets": ["UPPER"]}, "secrets"),
    ],
    ids=["runtime", "endpoint-for-docker", "typo-key", "secret-name", "interval", "secrets"],
)
def test_bad_values_are_refused_at_install(
    helm: str, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    out = helm_run(helm, tmp_path, "template", values)
    assert out.returncode != 0
    assert message in out.stderr
