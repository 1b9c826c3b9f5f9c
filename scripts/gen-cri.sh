#!/usr/bin/env bash
# Regenerate the CRI v1 stubs in jcp/runtime/cri_api/ from the vendored api.proto (k8s.io/cri-api
# v0.36.3, pkg/apis/runtime/v1/api.proto, Apache-2.0, licence header kept in the file; the first
# tag whose api.proto has no gogo imports is v0.34.0). containerd's own Images API (pinning) has
# its script: scripts/gen-containerd-api.sh. The output depends on grpcio-tools'
# version, which pyproject pins: the stubs say which they were made with (GRPC_GENERATED_VERSION),
# and need a grpcio and protobuf runtime at least that new.
# --check: regenerate into a temporary directory and fail (exit 1) if the committed stubs differ.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
out=jcp/runtime/cri_api
files="api_pb2.py api_pb2.pyi api_pb2_grpc.py"
gen() {
  local dest=$1
  mkdir -p "$dest/jcp/runtime/cri_api"
  cp "$out/api.proto" "$dest/jcp/runtime/cri_api/"
  (cd "$dest" && "$python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. \
    --grpc_python_out=. jcp/runtime/cri_api/api.proto)
}
versions() {
  local made installed
  made=$(sed -n "s/^GRPC_GENERATED_VERSION = '\(.*\)'/\1/p" "$out/api_pb2_grpc.py")
  installed=$("$python" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))')
  echo "committed stubs made with grpcio-tools $made; installed: $installed"
}
if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  gen "$tmp"
  for f in $files; do
    if ! cmp -s "$tmp/jcp/runtime/cri_api/$f" "$out/$f"; then
      echo "$out/$f differs from what scripts/gen-cri.sh generates: run scripts/gen-cri.sh" >&2
      versions >&2
      exit 1
    fi
  done
  echo "CRI stubs match api.proto"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gen "$tmp"
for f in $files; do cp "$tmp/jcp/runtime/cri_api/$f" "$out/"; done
echo "regenerated $out"
versions
