#!/usr/bin/env bash
# jcp working on a fresh Debian machine with no cluster and no internet: installs jcp and the
# Debian packages it needs, brings up two registries with sample images (public, private,
# multi-arch) and a containerd of its own (the kubelet's runtime, the default in the README and
# in k8s/), and runs one `jcp once` sweep that warms that containerd through the CRI, as the
# DaemonSet does on a node. `--docker` warms the stack's dockerd instead (the Docker variant).
# Usage: scripts/demo.sh [--docker] [DIR]   (default DIR: /tmp/jcp-demo)
# Stop it with: scripts/dev-stack.sh down DIR   (the registries, dockerd and the containerd)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
runtime=containerd
if [ "${1:-}" = "--docker" ]; then
  runtime=docker
  shift
fi
case "${1:-}" in -*) echo "usage: scripts/demo.sh [--docker] [DIR]" >&2; exit 2 ;; esac
dir=${1:-/tmp/jcp-demo}
bash scripts/install-deps.sh
# grpcio is not jcp's (it runs on grpclib): devstack's containerd probe uses it.
if ! "$python" -c 'import jcp, aiodocker, watchfiles, grpclib, grpc' 2>/dev/null; then
  "$python" -m pip install -q --disable-pip-version-check . grpcio 2>&1 | grep -v -e '^WARNING: Location' -e 'Running pip as' || true
fi
if [ -f "$dir/stack.json" ]; then
  echo "== a stack is already up in $dir; reusing it"
else
  echo "== starting two registries (and a dockerd) in $dir"
  "$python" -m devstack up "$dir"
fi

if [ "$runtime" = containerd ]; then
  # A containerd with its own root, state and socket under DIR (CRI plugin built in, the
  # loopback registries over plain HTTP), its pid added to stack.json so that
  # `scripts/dev-stack.sh down DIR` stops it with the rest.
  endpoint=$("$python" - "$dir" <<'EOF'
import json
import sys
from pathlib import Path

from devstack.containerd import Containerd

root = Path(sys.argv[1]).resolve()
state = root / "stack.json"
doc = json.loads(state.read_text())
c = Containerd(root / "containerd")
pid = doc["pids"].get("containerd")
if not (pid and Path(f"/proc/{pid}").exists() and c.answers()):
    entries = json.loads((root / "config" / "image.config").read_text())
    c.registries = sorted({e["registry"] for e in entries if "registry" in e})
    print(f"== starting containerd in {c.root}", file=sys.stderr)
    c.start()
    assert c.proc is not None
    doc["pids"]["containerd"] = c.proc.pid
    state.write_text(json.dumps(doc))
print(c.endpoint)
EOF
)
  runtime_args=(--runtime cri --runtime-endpoint "$endpoint")
  what="the containerd at $endpoint (through the CRI, as the kubelet pulls)"
else
  DOCKER_HOST=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["docker_host"])' "$dir/stack.json")
  export DOCKER_HOST
  runtime_args=(--docker-host "$DOCKER_HOST")
  what="the dockerd at $DOCKER_HOST"
fi

echo
echo "== the config (as a ConfigMap would hold it): $dir/config/image.config"
"$python" -m jcp validate "$dir/config" --arch amd64
echo
echo "== jcp once: one sweep into $what, then exit (0 = everything cached)"
set +e
"$python" -m jcp once "${runtime_args[@]}" --config-dir "$dir/config" --docker-config-root "$dir/docker"
rc=$?
set -e
echo "== exit code: $rc"
if [ "$runtime" = containerd ]; then
  echo
  echo "== the images in containerd's k8s.io namespace (where the kubelet looks)"
  ctr -a "${endpoint#unix://}" -n k8s.io images ls -q | grep -v '^sha256:' || true
  see="ctr -a ${endpoint#unix://} -n k8s.io images ls"
else
  see="docker -H $DOCKER_HOST images"
fi
cat <<EOT

Next:
  jcp run --config-dir $dir/config --docker-config-root $dir/docker ${runtime_args[*]} --start-jitter 0
and, in another shell, edit $dir/config/image.config (or $dir/config/interval): jcp reloads it
at once, pulls what was added and logs a one-line summary of every sweep. See the images with:
  $see
Stop the stack with: scripts/dev-stack.sh down $dir
EOT
exit $rc
