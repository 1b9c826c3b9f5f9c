"""Checks on rendered Kubernetes objects that the manifest and chart tests share."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate

from jcp.cli.main import _build_parser

ROOT = Path(__file__).resolve().parents[2]
NODE_RULES = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "patch"]}
]
NODE_READ_RULES = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
"""Entries with a nodeSelector and no node lifecycle: the node's labels, read and watched."""


FIELDS = {"spec.nodeName": "node-1", "status.podIP": "10.1.2.3"}


def supported_k8s() -> tuple[str, ...]:
    """The Kubernetes versions the README's support table says the manifests are validated for."""
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"manifests validated for ((?:\d+\.\d+(?:, | and )?)+)", readme)
    assert m, "README's support table no longer says 'manifests validated for X, Y, Z'"
    return tuple(f"{v}.0" for v in re.findall(r"\d+\.\d+", m.group(1)))


def pod_env(c: dict[str, Any], fields: dict[str, str]) -> dict[str, str]:
    env = {}
    for var in c.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def validate(docs: list[dict[str, Any]]) -> None:
    assert docs
    for doc in docs:
        for version in supported_k8s():
            kubernetes_validate.validate(doc, version, strict=True)


def kind(docs: list[dict[str, Any]], k: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == k]
    return dict(doc)


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = kind(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    return dict(c)


def kubelet_args(c: dict[str, Any], fields: dict[str, str] = FIELDS) -> list[str]:
    """The args as the kubelet hands them to jcp: `$(VAR)` from the container's env, `$$` a `$`."""
    env = pod_env(c, fields)

    def expand(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return [re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", expand, a) for a in c["args"]]


def check_pod(docs: list[dict[str, Any]], runtime: tuple[str, str, str], disk: str | None) -> Any:
    """What every manifest (kustomize or Helm) must hold; returns jcp's parsed args."""
    validate(docs)
    ds = kind(docs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    c = container(docs)
    args = _build_parser().parse_args(kubelet_args(c))
    assert args.command == "run"
    kind_, endpoint, socket_host_dir = runtime
    assert args.runtime == kind_
    assert args.runtime_endpoint == (f"unix://{endpoint}" if endpoint else None)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    host = {p: volumes[m["name"]].get("hostPath", {}).get("path") for p, m in mounts.items()}
    for vol in volumes.values():
        # Socket, File or Directory would keep the pod in ContainerCreating on a node without
        # that path (a containerd node has no docker.sock).
        if "hostPath" in vol:
            assert vol["hostPath"].get("type", "") in ("", "DirectoryOrCreate"), vol
    # The runtime: only its socket's directory (read-only: connecting needs no write access),
    # at the same path for the CRI runtimes; its image disk for the disk guard; jcp's ledger.
    socket_mount = str(Path(endpoint).parent) if endpoint else "/run"
    assert host[socket_mount] == socket_host_dir
    assert mounts[socket_mount].get("readOnly") is True
    if kind_ == "cri":
        assert socket_mount == socket_host_dir
    expected_host = {socket_host_dir, "/var/lib/jcp"}
    if disk is not None:
        assert host[str(args.disk_path)] == disk
        assert mounts[str(args.disk_path)].get("readOnly") is True
        expected_host.add(disk)
    else:
        assert args.disk_path is None
    if args.registry_config_path is not None:  # containerd's hosts.toml, at the node's path
        hosts_dir = str(args.registry_config_path)
        assert host[hosts_dir] == hosts_dir
        assert mounts[hosts_dir].get("readOnly") is True
        expected_host.add(hosts_dir)
    assert {p for p in host.values() if p} == expected_host
    assert host[str(args.ledger.parent)] == "/var/lib/jcp"
    assert mounts[str(args.config_dir)]["readOnly"] is True
    # Probes, /metrics and /status on the pod's address, on the port the probes use.
    addr_host, _, port = args.http_addr.rpartition(":")
    assert addr_host == FIELDS["status.podIP"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == int(port)
    assert pod_env(c, FIELDS)["NODE_NAME"] == FIELDS["spec.nodeName"]
    # Today's security posture.
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"requests", "limits"} <= set(c["resources"])
    strategy = ds["spec"]["updateStrategy"]
    assert strategy["type"] == "OnDelete" or strategy["rollingUpdate"]["maxUnavailable"]
    assert any(t["key"] == "node-role.jarvice.io/jarvice-compute" for t in pod["tolerations"])
    for mount in c["volumeMounts"]:
        assert "subPath" not in mount  # secrets as directories: rotation reaches the pod
        if "secret" in volumes[mount["name"]]:
            assert mount["mountPath"].startswith(f"{args.docker_config_root}/")
    return args


def check_rbac(docs: list[dict[str, Any]], args: Any, lifecycle: bool) -> None:
    """Node lifecycle: get/list/watch/patch on nodes and nothing else, and only when it is on."""
    pod = kind(docs, "DaemonSet")["spec"]["template"]["spec"]
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    if not lifecycle:
        assert not roles
        assert not [d for d in docs if d["kind"] in ("ServiceAccount", "ClusterRoleBinding")]
        assert pod["automountServiceAccountToken"] is False
        assert args.node_label is None
        assert args.untaint is None
        return
    (role,) = roles
    assert role["kind"] == "ClusterRole"
    assert role["rules"] == NODE_RULES
    sa = kind(docs, "ServiceAccount")
    binding = kind(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    ds = kind(docs, "DaemonSet")
    namespace = ds["metadata"].get("namespace")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": namespace}
    ]
    assert sa["metadata"].get("namespace") == namespace
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True
    assert args.node_label == "jcp.nimbix.net/warm"
    assert args.untaint == "jcp.nimbix.net/warming"
    # jcp runs on the nodes that wait for it.
    assert {"key": args.untaint, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
