#!/usr/bin/env bash
# jcp working on a fresh Debian machine with no cluster and no internet: installs jcp and the
# Debian packages it needs, brings up a local dockerd and two registries with sample images
# (public, private, multi-arch), and runs one `jcp once` sweep against them with live progress.
# Usage: scripts/demo.sh [DIR]   (default DIR: /tmp/jcp-demo; `scripts/dev-stack.sh down DIR` stops it)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
dir=${1:-/tmp/jcp-demo}
bash scripts/install-deps.sh
if ! "$python" -c 'import jcp, aiodocker, watchfiles' 2>/dev/null; then
  "$python" -m pip install -q --disable-pip-version-check . 2>&1 | grep -v -e '^WARNING: Location' -e 'Running pip as' || true
fi
if [ -f "$dir/stack.json" ]; then
  echo "== a stack is already up in $dir; reusing it"
else
  echo "== starting dockerd and two registries in $dir"
  "$python" -m devstack up "$dir"
fi
export DOCKER_HOST="unix://$dir/dockerd/docker.sock"
echo
echo "== the config (as a ConfigMap would hold it): $dir/config/image.config"
"$python" -m jcp validate "$dir/config" --arch amd64
echo
echo "== jcp once: one sweep, then exit (0 = everything cached)"
set +e
"$python" -m jcp once --config-dir "$dir/config" --docker-config-root "$dir/docker"
rc=$?
set -e
echo "== exit code: $rc"
cat <<EOT

Next:
  export DOCKER_HOST=$DOCKER_HOST
  jcp run --config-dir $dir/config --docker-config-root $dir/docker --start-jitter 0
and, in another shell, edit $dir/config/image.config (or $dir/config/interval): jcp reloads it
at once, pulls what was added and logs a one-line summary of every sweep.
Stop the stack with: scripts/dev-stack.sh down $dir
EOT
exit $rc
