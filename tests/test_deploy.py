"""Deployment: manifests validate and hold their invariants; the build script's dry runs; and the
real container image, built and run exactly as the DaemonSet's pod spec says."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiodocker
import kubernetes_validate
import pytest
import yaml

from devstack.images import RegistryClient, push_synthetic
from devstack.kubelet import write_volume
from devstack.stack import AUTH_USER, Stack
from jcp.cli import _build_parser
from jcp.configdir import load_config
from tests.conftest import image_present

ROOT = Path(__file__).resolve().parent.parent
K8S_VERSION = "1.31.0"
SUPPORTED_K8S = ("1.28.0", "1.31.0", "1.34.0")  # the README's support table
VARIANTS = ("k8s", "k8s/variants/docker", "k8s/variants/cri-o", "lifecycle")


def render(path: Path) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is needed to render k8s/ (it ships kustomize)")
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def render_variant(name: str, tmp: Path) -> list[dict[str, Any]]:
    """A variant as a user deploys it; `lifecycle` is k8s/ with its component uncommented."""
    if name != "lifecycle":
        return render(ROOT / name)
    copy = tmp / "k8s"
    shutil.copytree(ROOT / "k8s", copy)
    kust = copy / "kustomization.yaml"
    text = kust.read_text()
    enabled = text.replace("# components:", "components:").replace(
        "#   - components/node-lifecycle", "  - components/node-lifecycle"
    )
    assert enabled != text, "k8s/kustomization.yaml lost its commented node-lifecycle component"
    kust.write_text(enabled)
    return render(copy)


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """`kubectl kustomize k8s/`: what `kubectl apply -k k8s/` would send (containerd)."""
    return render(ROOT / "k8s")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_validates_and_starts_on_any_node(variant: str, tmp_path: Path) -> None:
    docs = render_variant(variant, tmp_path)
    for doc in docs:
        for version in SUPPORTED_K8S:
            kubernetes_validate.validate(doc, version, strict=True)
    pod = kind(docs, "DaemonSet")["spec"]["template"]["spec"]
    for vol in pod["volumes"]:
        # Socket, File or Directory would keep the pod in ContainerCreating on a node without
        # that path (a containerd node has no docker.sock).
        if "hostPath" in vol:
            assert vol["hostPath"].get("type", "") in ("", "DirectoryOrCreate"), vol
    args = _build_parser().parse_args(container(docs)["args"])
    mounts = {m["mountPath"] for m in container(docs)["volumeMounts"]}
    socket_dir = str(Path(args.runtime_endpoint.removeprefix("unix://")).parent)
    assert socket_dir in mounts
    assert str(args.disk_path) in mounts
    expected = {
        "k8s": ("cri", "/run/containerd/containerd.sock"),
        "lifecycle": ("cri", "/run/containerd/containerd.sock"),
        "k8s/variants/cri-o": ("cri", "/run/crio/crio.sock"),
        "k8s/variants/docker": ("docker", "/host/docker-run/docker.sock"),
    }[variant]
    assert (args.runtime, args.runtime_endpoint) == (expected[0], f"unix://{expected[1]}")
    rbac = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    if variant == "lifecycle":
        (role,) = rbac
        assert role["rules"] == [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}
        ]
        assert pod["automountServiceAccountToken"] is True
        assert args.node_label
        assert args.untaint
        assert str(args.ledger.parent) in mounts
    else:
        assert not rbac
        assert pod["automountServiceAccountToken"] is False


def kind(docs: list[dict[str, Any]], k: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == k]
    return dict(doc)


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = kind(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    return dict(c)


def test_default_is_configmap_and_daemonset(rendered: list[dict[str, Any]]) -> None:
    assert {d["kind"] for d in rendered} == {"ConfigMap", "DaemonSet"}


def test_daemonset_invariants(rendered: list[dict[str, Any]]) -> None:
    ds = kind(rendered, "DaemonSet")
    assert ds["apiVersion"] == "apps/v1"
    assert ds["metadata"]["namespace"] == "jarvice-system"
    spec = ds["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert any(t["key"] == "node-role.jarvice.io/jarvice-compute" for t in pod["tolerations"])
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert 5 < pod["terminationGracePeriodSeconds"] <= 30
    c = container(rendered)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    mem = c["resources"]["requests"]["memory"]
    assert mem.endswith("Mi")
    assert int(mem[:-2]) <= 128
    # Secrets are mounted as directories: no subPath anywhere, so rotation reaches the pod.
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in c["volumeMounts"]:
        assert "subPath" not in mount
        if "secret" in volumes[mount["name"]]:
            assert mount["mountPath"].startswith("/root/.docker/")
    # The args are flags jcp accepts, and the probes hit the port jcp listens on.
    args = _build_parser().parse_args(c["args"])
    assert args.command == "run"
    port = int(args.http_addr.rpartition(":")[2])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == port
    assert str(args.config_dir) in {m["mountPath"] for m in c["volumeMounts"]}
    assert str(args.disk_path) in {m["mountPath"] for m in c["volumeMounts"]}


def test_configmap_is_the_original_layout_and_valid(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    cm = kind(rendered, "ConfigMap")
    assert cm["metadata"]["name"] == "image-cache"  # no name hash: updates arrive as hot reloads
    assert set(cm["data"]) == {"image.config", "interval"}
    write_volume(tmp_path, cm["data"])
    config = load_config(tmp_path, env={})
    assert config.interval == 300
    assert {t.entry.private for t in config.select("amd64").targets} == {False, True}


# -- scripts/build-docker.sh -------------------------------------------------------------------


def build_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts/build-docker.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_build_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is needed (apt-get install shellcheck)")
    scripts = sorted(str(p) for p in (ROOT / "scripts").glob("*.sh"))
    subprocess.run(["shellcheck", *scripts, str(ROOT / ".ci/run")], check=True)


def test_build_script_remote_ppc64le_path() -> None:
    token = "ghp_DoNotShowThis123"
    out = build_script(
        "-h",
        "me@ppc.example.org",
        "-r",
        "quay.io/n/jcp",
        "-R",
        "quay.io",
        "-u",
        "bob",
        "-U",
        "bookworm",
        "-g",
        "github.com/nimbix/jcp",
        "-t",
        f"bob:{token}",
        "--dry-run",
        env={"DOCKER_PASSWORD": "pw-secret"},
    )
    assert out.returncode == 0, out.stderr
    cmds = out.stdout.splitlines()
    assert any(
        c.startswith("+ docker build ")
        and "TARGETARCH=amd64" in c
        and "quay.io/n/jcp:0.1.0-amd64" in c
        for c in cmds
    )
    assert any(c.startswith("+ ssh me@ppc.example.org") and "TARGETARCH=ppc64le" in c for c in cmds)
    assert "+ docker login --username bob --password-stdin quay.io" in cmds
    assert (
        "+ docker manifest create --amend quay.io/n/jcp:0.1.0 quay.io/n/jcp:0.1.0-amd64 "
        "quay.io/n/jcp:0.1.0-ppc64le"
    ) in cmds
    assert cmds[-1] == "+ docker manifest push --purge quay.io/n/jcp:0.1.0"
    assert "BASE_IMAGE=python:3.11-slim-bookworm" in out.stdout
    for secret in (token, "pw-secret"):
        assert secret not in out.stdout + out.stderr


def test_build_script_buildx_path() -> None:
    out = build_script("-r", "ghcr.io/n/jcp", "--tag", "9.9", "--dry-run")
    assert out.returncode == 0, out.stderr
    cmds = out.stdout.splitlines()
    for arch, plat in (("amd64", "x86_64"), ("arm64", "aarch64"), ("ppc64le", "ppc64le")):
        assert any(f"docker/wheels/{arch}" in c and f"manylinux2014_{plat}" in c for c in cmds)
    (build,) = [c for c in cmds if c.startswith("+ docker buildx build")]
    assert r"--platform linux/amd64\,linux/arm64\,linux/ppc64le" in build
    assert "-t ghcr.io/n/jcp:9.9 --push" in build
    assert not any("docker login" in c for c in cmds)  # no -u: no login


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "missing -r REPO"),
        (("-r",), "-r needs a value"),
        (("-r", "x/y", "--bogus"), "unknown argument: --bogus"),
        (("-r", "x/y", "-t", "u:t"), "-t is only used with -g"),
        (("-r", "x/y", "-g", "github.com/a/b"), "-g is only used with -h"),
        (("-r", "x/y", "-h", "h", "-g", "g", "-t", "notoken"), "-t expects GITHUB_USER:TOKEN"),
        (("-r", "x/y", "-U", "sid-ish"), "-U: unknown release"),
        (("-h",), "-h needs a host"),
    ],
)
def test_build_script_usage_errors(args: tuple[str, ...], message: str) -> None:
    out = build_script("--dry-run", *args)
    assert out.returncode == 2
    assert message in out.stderr


def test_build_script_help() -> None:
    out = build_script("--help")
    assert out.returncode == 0
    assert "-h HOST" in out.stdout
    assert "--dry-run" in out.stdout


# -- the container image -----------------------------------------------------------------------


def _docker(stack: Stack, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "-H", stack.dockerd.host, *args],
        capture_output=True,
        text=True,
        check=kw.pop("check", True),
        **kw,
    )


def _mirror() -> str:
    for source in Path("/etc/apt").rglob("*.sources"):
        m = re.search(r"^URIs:\s*(\S+/debian)\s*$", source.read_text(), re.MULTILINE)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


@pytest.fixture(scope="module")
def base_image(stack: Stack) -> str:
    """A minimal Debian root file system with python3, made by debootstrap and cached."""
    cache = Path(os.environ.get("JCP_CACHE", "/var/cache/jcp-test"))
    tar = cache / "bookworm-minbase-python3.tar"
    if not tar.exists():
        cache.mkdir(parents=True, exist_ok=True)
        rootfs = cache / "rootfs.tmp"
        shutil.rmtree(rootfs, ignore_errors=True)
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv",
                "bookworm",
                str(rootfs),
                _mirror(),
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(["tar", "-C", str(rootfs), "-cf", f"{tar}.tmp", "."], check=True)
        Path(f"{tar}.tmp").rename(tar)
        shutil.rmtree(rootfs)
    tag = "jcp-test-base:bookworm"
    with tar.open("rb") as f:
        subprocess.run(
            ["docker", "-H", stack.dockerd.host, "import", "-", tag],
            stdin=f,
            check=True,
            capture_output=True,
        )
    return tag


@pytest.fixture(scope="module")
def jcp_image(stack: Stack, base_image: str) -> str:
    out = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts/build-docker.sh"),
            "--wheels-only",
            "--platforms",
            "linux/amd64",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    tag = "jcp:test"
    build = _docker(
        stack,
        "build",
        "--network",
        "none",
        "-f",
        "docker/Dockerfile",
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--build-arg",
        "VERSION=test",
        "-t",
        tag,
        ".",
        cwd=ROOT,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return tag


@pytest.mark.timeout(
    900
)  # the first use builds the debootstrap base (about a minute) and the image
def test_image_labels_and_entrypoint(stack: Stack, jcp_image: str) -> None:
    info = json.loads(_docker(stack, "image", "inspect", jcp_image).stdout)[0]["Config"]
    assert info["Entrypoint"] == ["/opt/jcp/bin/jcp"]
    assert info["Cmd"] == ["run"]
    assert info["Labels"]["org.opencontainers.image.version"] == "test"
    assert "org.opencontainers.image.revision" in info["Labels"]
    out = _docker(stack, "run", "--rm", "--network", "none", jcp_image, "--version")
    assert out.stdout.strip() == "jcp 0.1.0"


@pytest.fixture
def container_name(stack: Stack) -> Iterator[str]:
    name = f"jcp-pod-{os.getpid()}"
    yield name
    _docker(stack, "rm", "-f", name, check=False)


@pytest.mark.timeout(900)  # also builds the image when run alone
async def test_container_runs_as_the_daemonset_says(
    tmp_path: Path,
    stack: Stack,
    rendered: list[dict[str, Any]],
    jcp_image: str,
    open_client: RegistryClient,
    auth_client: RegistryClient,
    docker: aiodocker.Docker,
    unique: Callable[[str], str],
    container_name: str,
) -> None:
    public = push_synthetic(open_client, unique("pod-pub"), "1").reference
    private = push_synthetic(auth_client, unique("pod-priv"), "1").reference
    # The Docker variant, against the session's dockerd (the CRI path is proven on containerd by
    # tests/test_cri_jcp.py); its hostPaths map to the session daemon's directories.
    rendered = render(ROOT / "k8s" / "variants" / "docker")
    c = container(rendered)
    pod = kind(rendered, "DaemonSet")["spec"]["template"]["spec"]
    cm = kind(rendered, "ConfigMap")
    volumes = {v["name"]: v for v in pod["volumes"]}
    (secret_dir,) = [
        Path(m["mountPath"]).name for m in c["volumeMounts"] if "secret" in volumes[m["name"]]
    ]
    docker_args = ["run", "-d", "--name", container_name, "--network", "none"]
    sc = c["securityContext"]
    if sc.get("readOnlyRootFilesystem"):
        docker_args.append("--read-only")
    if sc.get("allowPrivilegeEscalation") is False:
        docker_args += ["--security-opt", "no-new-privileges"]
    for cap in sc["capabilities"]["drop"]:
        docker_args += ["--cap-drop", cap]
    docker_args += ["--user", str(sc["runAsUser"])]
    for env in c["env"]:
        value = env.get("value") or ("test-node" if "fieldRef" in env["valueFrom"] else "")
        docker_args += ["-e", f"{env['name']}={value}"]
    for mount in c["volumeMounts"]:
        vol = volumes[mount["name"]]
        src = tmp_path / mount["name"]
        if "configMap" in vol:
            data = dict(cm["data"])
            data["image.config"] = json.dumps(
                [
                    {"ref": "pub", "registry": public.split("/")[0], "arch": {"amd64": public}},
                    {
                        "ref": "priv",
                        "registry": private.split("/")[0],
                        "private": True,
                        "config": secret_dir,
                        "arch": {"amd64": private},
                    },
                ]
            )
            write_volume(src, data)
        elif "secret" in vol:
            token = base64.b64encode(
                f"{AUTH_USER}:{stack.auth_registry.password}".encode()
            ).decode()
            content = json.dumps({"auths": {stack.auth_registry.host: {"auth": token}}})
            items = vol["secret"].get("items") or [
                {"key": ".dockerconfigjson", "path": ".dockerconfigjson"}
            ]
            write_volume(
                src, {i["path"]: content for i in items if i["key"] == ".dockerconfigjson"}
            )
        elif vol.get("hostPath", {}).get("path") == "/var/run":
            src = stack.dockerd.socket.parent
        elif vol.get("hostPath", {}).get("path") == "/var/lib/docker":
            src = stack.dockerd.data_root
        else:
            src.mkdir()
        ro = ":ro" if mount.get("readOnly") else ""
        docker_args += ["-v", f"{src}:{mount['mountPath']}{ro}"]
    docker_args += [jcp_image, *c["args"]]
    _docker(stack, *docker_args)

    async def pulled() -> bool:
        return await image_present(docker, public) and await image_present(docker, private)

    deadline = time.monotonic() + 60
    while not await pulled():
        state = json.loads(_docker(stack, "inspect", container_name).stdout)[0]["State"]
        if not state["Running"] or time.monotonic() > deadline:
            logs = _docker(stack, "logs", container_name, check=False)
            pytest.fail(f"container state {state['Status']}; logs:\n{logs.stdout}{logs.stderr}")
        await asyncio.sleep(0.2)
    probe = c["readinessProbe"]["httpGet"]
    port = int(_build_parser().parse_args(c["args"]).http_addr.rpartition(":")[2])
    check = (
        "import urllib.request as u; "
        f"print(u.urlopen('http://127.0.0.1:{port}{probe['path']}').read().decode())"
    )
    deadline = time.monotonic() + 20
    while True:
        ready = _docker(stack, "exec", container_name, "python3", "-c", check, check=False)
        if ready.returncode == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert ready.stdout.strip() == "ready", ready.stderr
    output = _docker(stack, "logs", container_name).stderr
    assert '"event": "sweep_done"' in output
    assert (stack.auth_registry.password or "-") not in output
    t0 = time.monotonic()
    _docker(stack, "stop", "-t", str(pod["terminationGracePeriodSeconds"]), container_name)
    stopped = time.monotonic() - t0
    state = json.loads(_docker(stack, "inspect", container_name).stdout)[0]["State"]
    assert state["ExitCode"] == 0
    assert stopped < 5, f"SIGTERM took {stopped:.1f}s"
    assert "stop signal received" in _docker(stack, "logs", container_name).stderr
