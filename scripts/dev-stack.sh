#!/usr/bin/env bash
# Bring up (or down) a real dockerd and two loopback registries (one password-protected) in DIR,
# seed sample images, and print the DOCKER_HOST and config to try jcp with. Needs root and
# Debian's docker.io, docker-registry and apache2-utils (scripts/install-deps.sh installs them).
set -euo pipefail
usage() { echo "usage: $0 up|down DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
case "$1" in up|down) ;; *) usage ;; esac
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
cd "$here"
exec "$python" -m devstack "$1" "$2"
