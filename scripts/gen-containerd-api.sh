#!/usr/bin/env bash
# Regenerate the stubs of containerd's native API in jcp/runtime/containerd_api/: Images (what
# --pin labels image records through; the CRI has no call to pin), Content and Leases (blobs
# streamed into the content store under a lease: bench/transport.py, and image blobs at the
# link's speed). Vendored from containerd v1.7.24 (commit
# 88bf19b2105c8b17560993bee28a01ddc2f97182, Apache-2.0, licence headers kept):
# api/services/images/v1/images.proto, api/types/descriptor.proto,
# api/services/content/v1/content.proto and api/services/leases/v1/leases.proto (content and
# leases as Debian's containerd_1.7.24~ds1.orig.tar.xz has them, whose images.proto and
# descriptor.proto have the sums below too). Messages only (*_pb2.py, *_pb2.pyi): jcp's gRPC
# transport names each method by its path (jcp/runtime/grpc_transport.py), so it needs no
# service stubs; grpcio's Images stub (images_pb2_grpc.py) is kept for the pin tests, which
# look at containerd through a client that is not jcp's. containerd 1.7's protos
# carry no gogoproto options (1.6's did); the wire is the same for 1.6 and 1.7 (same package,
# service, messages and field numbers). One line is edited: images.proto imports descriptor.proto
# by its path here, not by its Go path (protoc resolves imports by path, and the generated Python
# imports the module that path names). The output depends on grpcio-tools' version, which
# pyproject pins, as for scripts/gen-cri.sh.
# --check: verify that each .proto is containerd's byte for byte (the import line put back;
# sha256 below), regenerate into a temporary directory and fail (exit 1) if the committed stubs
# differ.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
out=jcp/runtime/containerd_api
upstream_import='import "github.com/containerd/containerd/api/types/descriptor.proto";'
ours_import="import \"$out/descriptor.proto\";"
# sha256 of the files as containerd v1.7.24 has them
sums="b3b63adb220124877e2f0bd451e3c3f25ef2680650c71c09b9a11947fc4fa45b images.proto
b5d45974cb169e4d3cfaf2df9ed57ee5ade70677c92a4107eb44967bc6025368 descriptor.proto
b91daba4649a0e8916d046660905c8a0c70c06d5ef27d23786d8d2b5e4a218a1 content.proto
0148dfbf87a9cabe67e6fe4550a1955c8f5fe1c2b4374515a68e4b5d0eb21713 leases.proto"
services="images content leases"
files="descriptor_pb2.py descriptor_pb2.pyi images_pb2_grpc.py"
for s in $services; do files+=" ${s}_pb2.py ${s}_pb2.pyi"; done
gen() {
  local dest=$1 s
  mkdir -p "$dest/$out"
  cp "$out"/*.proto "$dest/$out/"
  (cd "$dest" && "$python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. \
    "$out/descriptor.proto" "$out/content.proto" "$out/leases.proto")
  (cd "$dest" && "$python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. \
    --grpc_python_out=. "$out/images.proto")
}
versions() {
  local made installed
  made=$(sed -n "s/^GRPC_GENERATED_VERSION = '\(.*\)'/\1/p" "$out/images_pb2_grpc.py")
  installed=$("$python" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))')
  echo "committed stubs made with grpcio-tools $made; installed: $installed"
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "${1:-}" = "--check" ]; then
  while read -r sum name; do
    got=$(sed "s#^${ours_import}\$#${upstream_import}#" "$out/$name" | sha256sum | cut -d' ' -f1)
    if [ "$got" != "$sum" ]; then
      echo "$out/$name is not containerd v1.7.24's (sha256 $got, want $sum)" >&2
      exit 1
    fi
  done <<<"$sums"
  gen "$tmp"
  for f in $files; do
    if ! cmp -s "$tmp/$out/$f" "$out/$f"; then
      echo "$out/$f differs from what scripts/gen-containerd-api.sh generates: run it" >&2
      versions >&2
      exit 1
    fi
  done
  echo "containerd API stubs match containerd v1.7.24's images.proto and descriptor.proto," \
    "content.proto and leases.proto"
  exit 0
fi
gen "$tmp"
for f in $files; do cp "$tmp/$out/$f" "$out/"; done
echo "regenerated $out"
versions
