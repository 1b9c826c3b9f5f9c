#!/usr/bin/env bash
# Build jcp's container image for several architectures and push a multi-arch manifest list.
#
# Two ways, one interface:
#   - the original's: -h names a ppc64le host reached over ssh; amd64 is built here, ppc64le
#     there, and `docker manifest` joins them (the flags of the original build-docker.sh);
#   - the modern one (no -h): `docker buildx build --platform linux/amd64,linux/arm64,linux/ppc64le`.
# Wheels for every architecture are fetched first (docker/wheels/<arch>/), so the image build
# itself needs no network.
#
# Secrets never go on a command line: the registry password comes from $DOCKER_PASSWORD or
# standard input (`docker login --password-stdin`); the GitHub token is sent to the remote host
# on ssh's standard input and handed to git through GIT_ASKPASS, never in a URL.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
prog=$(basename "$0")

usage() {
  cat <<EOF
usage: $prog -r REPO [-R REGISTRY] [-u USER] [-h PPC64LE_HOST] [-U RELEASE]
             [-g GITHUB_REPO] [-t GITHUB_USER:TOKEN] [--tag TAG]
             [--platforms LIST] [--no-push] [--dry-run] [--help]

  -r REPO        image repository, e.g. quay.io/nimbix/jarvice-cache-pull (required)
  -R REGISTRY    registry to log in to, e.g. quay.io (default: the host part of REPO)
  -u USER        registry user; the password is read from \$DOCKER_PASSWORD or stdin
  -h HOST        user@host of a ppc64le machine with docker: build ppc64le there over ssh
  -U RELEASE     Debian release of the base image (bookworm, bullseye); Ubuntu names of the
                 original (bionic, focal, jammy) fall back to bookworm with a warning
  -g GITHUB_REPO with -h: the remote host clones this repository (e.g. github.com/nimbix/jcp)
                 instead of receiving this checkout over ssh
  -t USER:TOKEN  with -g: GitHub credentials for that clone (never put in a URL)
  --tag TAG      image tag (default: jcp's version, $(sed -n 's/^version = "\(.*\)"/\1/p' "$here/pyproject.toml"))
  --platforms L  buildx platforms (default: linux/amd64,linux/arm64,linux/ppc64le)
  --no-push      build only (buildx: --load is not possible for several platforms, so this
                 builds into the build cache)
  --wheels-only  only fetch the wheels (docker/wheels/<arch>/) for the platforms, then stop
  --dry-run      print every command instead of running it
  --help         this text
EOF
}

die() { echo "$prog: $*" >&2; echo "run '$prog --help' for usage" >&2; exit 2; }
# A flag's value must be there and must not be the next flag (`-r --dry-run` is a mistake).
need() {
  if [ "$1" -lt 2 ] || [[ "$3" == -* ]]; then die "$2 needs ${4:-a value}"; fi
}

repo="" registry="" user="" host="" release="" github="" token="" tag="" dry=0 push=1 only_wheels=0
platforms="linux/amd64,linux/arm64,linux/ppc64le"
while [ $# -gt 0 ]; do
  case "$1" in
    -r) need $# -r "${2:-}"; repo=$2; shift 2 ;;
    -R) need $# -R "${2:-}"; registry=$2; shift 2 ;;
    -u) need $# -u "${2:-}"; user=$2; shift 2 ;;
    -h) need $# -h "${2:-}" "a host (use --help for help)"; host=$2; shift 2 ;;
    -U) need $# -U "${2:-}"; release=$2; shift 2 ;;
    -g) need $# -g "${2:-}"; github=$2; shift 2 ;;
    -t) need $# -t "${2:-}"; token=$2; shift 2 ;;
    --tag) need $# --tag "${2:-}"; tag=$2; shift 2 ;;
    --platforms) need $# --platforms "${2:-}"; platforms=$2; shift 2 ;;
    --no-push) push=0; shift ;;
    --dry-run) dry=1; shift ;;
    --wheels-only) only_wheels=1; shift ;;
    --help) usage; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done

[ -z "$token" ] || [ -n "$github" ] || die "-t is only used with -g"
[ -z "$github" ] || [ -n "$host" ] || die "-g is only used with -h (the remote ppc64le build)"
if [ -n "$token" ] && [[ "$token" != *:* ]]; then die "-t expects GITHUB_USER:TOKEN"; fi
[ -n "$tag" ] || tag=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/pyproject.toml")
[ -n "$registry" ] || registry=${repo%%/*}

base="python:3.11-slim-bookworm"
case "$release" in
  "") ;;
  bookworm|bullseye|trixie) base="python:3.11-slim-$release" ;;
  bionic|focal|jammy|noble|xenial)
    echo "$prog: warning: -U $release is an Ubuntu release; jcp's image uses Debian's" \
         "python:3.11-slim-bookworm (Ubuntu images ship no Python 3.11)" >&2 ;;
  *) die "-U: unknown release '$release' (bookworm, bullseye, trixie)" ;;
esac

revision=$(git -C "$here" rev-parse HEAD 2>/dev/null || echo unknown)
build_args=(--build-arg "BASE_IMAGE=$base" --build-arg "VERSION=$tag"
            --build-arg "REVISION=$revision")

run() {
  if [ "$dry" = 1 ]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

# Fetch wheels for ARCH (amd64, arm64, ppc64le) into docker/wheels/ARCH.
wheels() {
  local arch=$1 plat
  case "$arch" in
    amd64) plat=manylinux2014_x86_64 ;;
    arm64) plat=manylinux2014_aarch64 ;;
    ppc64le) plat=manylinux2014_ppc64le ;;
    s390x) plat=manylinux2014_s390x ;;
    *) die "no wheel platform for $arch" ;;
  esac
  run rm -rf "$here/docker/wheels/$arch"
  run python3 -m pip wheel --no-deps -w "$here/docker/wheels/$arch" "$here"
  run python3 -m pip download --only-binary=:all: --platform "$plat" --python-version 3.11 \
      -d "$here/docker/wheels/$arch" "$here"
}

if [ "$only_wheels" = 1 ]; then
  IFS=',' read -r -a plats <<< "$platforms"
  for p in "${plats[@]}"; do wheels "${p#linux/}"; done
  exit 0
fi
[ -n "$repo" ] || die "missing -r REPO (the image repository)"

login() {
  [ -n "$user" ] || return 0
  if [ "$dry" = 1 ]; then
    run docker login --username "$user" --password-stdin "$registry"
    return 0
  fi
  if [ -n "${DOCKER_PASSWORD:-}" ]; then
    printf '%s' "$DOCKER_PASSWORD" | docker login --username "$user" --password-stdin "$registry"
  else
    docker login --username "$user" --password-stdin "$registry"
  fi
}

remote_build() {
  # Runs on the ppc64le host; its standard input carries this script, the token included,
  # so nothing secret appears in any process list there.
  local dir="/tmp/jcp-build-$tag"
  local script
  script=$(cat <<EOS
set -euo pipefail
rm -rf '$dir' && mkdir -p '$dir'
EOS
)
  if [ -n "$github" ]; then
    script+=$(cat <<EOS

export JCP_GIT_TOKEN='${token#*:}'
askpass=\$(mktemp) && printf '#!/bin/sh\necho "\$JCP_GIT_TOKEN"\n' > "\$askpass" && chmod 700 "\$askpass"
GIT_ASKPASS="\$askpass" git clone --quiet 'https://${token%%:*}@${github#https://}' '$dir'
rm -f "\$askpass"
git -C '$dir' checkout --quiet '$revision' || true
EOS
)
  else
    script+=$'\n'"tar -x -C '$dir' < /dev/stdin"
  fi
  if [ "$dry" = 1 ]; then
    if [ -n "$github" ]; then
      run ssh "$host" bash -s '<<' "(script: clone $github at $revision with GIT_ASKPASS)"
    else
      run ssh "$host" "mkdir -p $dir && tar -x -C $dir" '<' "(git archive $revision)"
    fi
  elif [ -n "$github" ]; then
    printf '%s\n' "$script" | ssh "$host" bash -s
  else
    # shellcheck disable=SC2029 # $dir is meant to expand here: it names the remote directory
    git -C "$here" archive --format=tar HEAD | ssh "$host" "mkdir -p $dir && tar -x -C $dir"
  fi
}

if [ -n "$host" ]; then
  # The original's path: amd64 here, ppc64le on HOST, then a manifest list.
  wheels amd64
  run docker build -f "$here/docker/Dockerfile" "${build_args[@]}" --build-arg TARGETARCH=amd64 \
      -t "$repo:$tag-amd64" "$here"
  remote_build
  # shellcheck disable=SC2029 # the remote command is composed here on purpose
  run ssh "$host" "cd /tmp/jcp-build-$tag && python3 -m pip wheel --no-deps -w docker/wheels/ppc64le . && python3 -m pip download --only-binary=:all: -d docker/wheels/ppc64le . && docker build -f docker/Dockerfile --build-arg BASE_IMAGE=$base --build-arg VERSION=$tag --build-arg REVISION=$revision --build-arg TARGETARCH=ppc64le -t $repo:$tag-ppc64le ."
  if [ "$push" = 1 ]; then
    login
    run docker push "$repo:$tag-amd64"
    # shellcheck disable=SC2029 # composed here on purpose
    run ssh "$host" "docker push $repo:$tag-ppc64le"
    run docker manifest create --amend "$repo:$tag" "$repo:$tag-amd64" "$repo:$tag-ppc64le"
    run docker manifest annotate "$repo:$tag" "$repo:$tag-ppc64le" --os linux --arch ppc64le
    run docker manifest push --purge "$repo:$tag"
  fi
else
  IFS=',' read -r -a plats <<< "$platforms"
  for p in "${plats[@]}"; do
    wheels "${p#linux/}"
  done
  [ "$push" = 0 ] || login
  out=(--push)
  [ "$push" = 1 ] || out=()
  run docker buildx build --platform "$platforms" -f "$here/docker/Dockerfile" "${build_args[@]}" \
      -t "$repo:$tag" "${out[@]}" "$here"
fi
