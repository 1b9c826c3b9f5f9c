"""Deployment: every k8s/ variant validates for the README's Kubernetes versions and holds its
invariants; the build script's dry runs; and the real container image, built and run exactly as
the DaemonSet's pod spec says (Docker variant on the session dockerd, default variant on the
session containerd)."""

from __future__ import annotations

import asyncio
import base64
import functools
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
import pytest
import yaml

from devstack.containerd import Containerd
from devstack.images import RegistryClient, push_synthetic
from devstack.kubelet import write_volume
from devstack.stack import AUTH_USER, Stack
from jcp.cli.main import _build_parser
from jcp.inputs.configdir import load_config
from jcp.model.refs import parse_reference
from jcp.runtime.cri import CriRuntime
from tests.support.helpers import image_present
from tests.support.manifests import (
    check_pod,
    check_rbac,
    container,
    kind,
    kubelet_args,
    pod_env,
    supported_k8s,
)

ROOT = Path(__file__).resolve().parents[2]
# What the downward API gives in the tests: the pod spec's fieldRefs resolve to these.
# kustomization -> (--runtime, endpoint in the pod, host directory of the socket)
RUNTIMES = {
    "k8s": ("cri", "/run/containerd/containerd.sock", "/run/containerd"),
    "k8s/variants/cri-o": ("cri", "/run/crio/crio.sock", "/run/crio"),
    "k8s/variants/docker": ("docker", "/host/var/run/docker.sock", "/var/run"),
}
DISKS = {
    "k8s": "/var/lib/containerd",
    "k8s/variants/cri-o": "/var/lib/containers/storage",
    "k8s/variants/docker": "/var/lib/docker",
}
VARIANTS = [
    ("k8s", ()),
    ("k8s", ("node-lifecycle",)),
    ("k8s", ("purge",)),
    ("k8s/variants/docker", ()),
    ("k8s/variants/docker", ("node-lifecycle", "purge")),
    ("k8s/variants/cri-o", ()),
    ("k8s/variants/cri-o", ("node-lifecycle", "purge")),
]


@functools.cache
def render(path: Path) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is needed to render k8s/ (it ships kustomize)")
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def render_variant(path: str, components: tuple[str, ...], tmp: Path) -> list[dict[str, Any]]:
    """A variant as a user deploys it: with COMPONENTS uncommented in its kustomization.yaml."""
    if not components:
        return render(ROOT / path)
    shutil.copytree(ROOT / "k8s", tmp / "k8s")
    kust = tmp / path / "kustomization.yaml"
    text = kust.read_text()
    for name in components:
        line = re.compile(rf"^(\s*)# (- (?:\.\./\.\./)?components/{name})\b", re.MULTILINE)
        text, found = line.subn(r"\1\2", text)
        assert found == 1, f"{path}/kustomization.yaml lost its commented component {name}"
    kust.write_text(text)
    return render(tmp / path)


@pytest.mark.parametrize(("path", "components"), VARIANTS)
def test_every_variant_validates_and_starts_on_any_node(
    path: str, components: tuple[str, ...], tmp_path: Path
) -> None:
    docs = render_variant(path, components, tmp_path)
    args = check_pod(docs, RUNTIMES[path], DISKS[path])
    check_rbac(docs, args, "node-lifecycle" in components)
    if "purge" in components:
        assert (args.purge, args.purge_grace) == (True, 3600)
    else:
        assert not args.purge
        assert not args.purge_dry_run
    # Every namespaced object lands in the one namespace (the ServiceAccount too).
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"].get("namespace") == "jarvice-system", doc["kind"]
    if path == "k8s/variants/docker":
        assert str(args.host_root) == "/host"  # the warning when the kubelet uses another runtime


def test_supported_versions_come_from_the_readme() -> None:
    assert len(supported_k8s()) >= 2
    assert all(re.fullmatch(r"1\.\d+\.0", v) for v in supported_k8s())


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """`kubectl kustomize k8s/`: what `kubectl apply -k k8s/` would send (containerd)."""
    return render(ROOT / "k8s")


def test_default_is_containerd_configmap_and_daemonset(rendered: list[dict[str, Any]]) -> None:
    assert {d["kind"] for d in rendered} == {"ConfigMap", "DaemonSet"}
    args = _build_parser().parse_args(kubelet_args(container(rendered)))
    assert args.runtime_endpoint == "unix:///run/containerd/containerd.sock"
    ds = kind(rendered, "DaemonSet")
    spec = ds["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert 5 < pod["terminationGracePeriodSeconds"] <= 30
    mem = container(rendered)["resources"]["requests"]["memory"]
    assert mem.endswith("Mi")
    assert int(mem[:-2]) <= 128


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


def pod_as_docker_run(
    docs: list[dict[str, Any]],
    name: str,
    tmp: Path,
    host_dirs: dict[str, Path],
    config: dict[str, str | bytes],
    secret: str,
) -> list[str]:
    """`docker run` arguments that reproduce the pod: its security context, its env from the
    downward API (POD_IP is loopback: the container has no other network), its args as the
    kubelet expands them, and every volume: hostPaths from HOST_DIRS, the ConfigMap's and the
    secret's contents written as the kubelet does."""
    c = container(docs)
    pod = kind(docs, "DaemonSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    fields = {"spec.nodeName": "test-node", "status.podIP": "127.0.0.1"}
    out = ["run", "-d", "--name", name, "--network", "none"]
    sc = c["securityContext"]
    if sc.get("readOnlyRootFilesystem"):
        out.append("--read-only")
    if sc.get("allowPrivilegeEscalation") is False:
        out += ["--security-opt", "no-new-privileges"]
    for cap in sc["capabilities"]["drop"]:
        out += ["--cap-drop", cap]
    out += ["--user", str(sc["runAsUser"])]
    for key, value in pod_env(c, fields).items():
        out += ["-e", f"{key}={value}"]
    for mount in c["volumeMounts"]:
        vol = volumes[mount["name"]]
        src = tmp / mount["name"]
        if "configMap" in vol:
            write_volume(src, config)
        elif "secret" in vol:
            items = vol["secret"].get("items") or [
                {"key": ".dockerconfigjson", "path": ".dockerconfigjson"}
            ]
            write_volume(src, {i["path"]: secret for i in items if i["key"] == ".dockerconfigjson"})
        else:
            src = host_dirs[vol["hostPath"]["path"]]
        ro = ":ro" if mount.get("readOnly") else ""
        out += ["-v", f"{src}:{mount['mountPath']}{ro}"]
    return [*out, "IMAGE", *kubelet_args(c, fields)]


@pytest.mark.parametrize("variant", ["k8s/variants/docker", "k8s"])
@pytest.mark.timeout(900)  # also builds the image when run alone
async def test_container_runs_as_the_daemonset_says(
    request: pytest.FixtureRequest,
    variant: str,
    tmp_path: Path,
    stack: Stack,
    jcp_image: str,
    open_client: RegistryClient,
    auth_client: RegistryClient,
    docker: aiodocker.Docker,
    unique: Callable[[str], str],
    container_name: str,
) -> None:
    public = push_synthetic(open_client, unique("pod-pub"), "1").reference
    private = push_synthetic(auth_client, unique("pod-priv"), "1").reference
    docs = render(ROOT / variant)
    c = container(docs)
    pod = kind(docs, "DaemonSet")["spec"]["template"]["spec"]
    state = tmp_path / "host-var-lib-jcp"
    state.mkdir()
    cri: CriRuntime | None = None
    if variant == "k8s":
        # The default variant against the session's containerd: its socket, hard-linked as
        # containerd.sock into a directory that stands for the host's /run/containerd.
        containerd: Containerd = request.getfixturevalue("containerd")
        run_dir = containerd.root / "pod-run"
        run_dir.mkdir(exist_ok=True)
        (run_dir / "containerd.sock").unlink(missing_ok=True)
        os.link(containerd.socket, run_dir / "containerd.sock")
        host_dirs = {"/run/containerd": run_dir, "/var/lib/containerd": containerd.root}
        cri = CriRuntime(containerd.endpoint)
    else:
        host_dirs = {
            "/var/run": stack.dockerd.socket.parent,
            "/var/lib/docker": stack.dockerd.data_root,
        }
    host_dirs["/var/lib/jcp"] = state
    host_dirs["/etc/containerd/certs.d"] = tmp_path / "host-certs.d"  # no hosts.toml: as before
    host_dirs["/etc/containerd/certs.d"].mkdir()

    async def present(ref: str) -> bool:
        if cri is not None:
            return await cri.image_status(parse_reference(ref)) is not None
        return await image_present(docker, ref)

    secret_dir = next(
        Path(m["mountPath"]).name for m in c["volumeMounts"] if m["mountPath"].startswith("/root/")
    )
    token = base64.b64encode(f"{AUTH_USER}:{stack.auth_registry.password}".encode()).decode()
    config: dict[str, str | bytes] = dict(kind(docs, "ConfigMap")["data"])
    config["image.config"] = json.dumps(
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
    run = pod_as_docker_run(
        docs,
        container_name,
        tmp_path,
        host_dirs,
        config,
        json.dumps({"auths": {stack.auth_registry.host: {"auth": token}}}),
    )
    run[run.index("IMAGE")] = jcp_image
    try:
        _docker(stack, *run)
        deadline = time.monotonic() + 60
        while not (await present(public) and await present(private)):
            status = json.loads(_docker(stack, "inspect", container_name).stdout)[0]["State"]
            if not status["Running"] or time.monotonic() > deadline:
                logs = _docker(stack, "logs", container_name, check=False)
                pytest.fail(f"container {status['Status']}; logs:\n{logs.stdout}{logs.stderr}")
            await asyncio.sleep(0.2)
    finally:
        if cri is not None:
            await cri.close()
    args = _build_parser().parse_args(run[run.index(jcp_image) + 1 :])
    probe = c["readinessProbe"]["httpGet"]
    check = (
        "import urllib.request as u; "
        f"print(u.urlopen('http://{args.http_addr}{probe['path']}').read().decode())"
    )
    deadline = time.monotonic() + 20
    while True:
        ready = _docker(stack, "exec", container_name, "python3", "-c", check, check=False)
        if ready.returncode == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert ready.stdout.strip() == "ready", ready.stderr
    # The ledger reaches the node's /var/lib/jcp through the read-only root file system.
    deadline = time.monotonic() + 20
    while not (state / args.ledger.name).exists():
        assert time.monotonic() < deadline, f"no {args.ledger} on the host: {list(state.iterdir())}"
        await asyncio.sleep(0.2)
    assert public.rpartition(":")[0].rpartition("/")[2] in (state / args.ledger.name).read_text()
    output = _docker(stack, "logs", container_name).stderr
    assert '"event": "sweep_done"' in output
    assert (stack.auth_registry.password or "-") not in output
    t0 = time.monotonic()
    _docker(stack, "stop", "-t", str(pod["terminationGracePeriodSeconds"]), container_name)
    stopped = time.monotonic() - t0
    status = json.loads(_docker(stack, "inspect", container_name).stdout)[0]["State"]
    assert status["ExitCode"] == 0
    assert stopped < 5, f"SIGTERM took {stopped:.1f}s"
    assert "stop signal received" in _docker(stack, "logs", container_name).stderr
