#!/usr/bin/env bash
# Build jcp's container image for several architectures and push a multi-arch manifest list.
#
# Two ways, one interface:
#   - the original's: -h names a ppc64le host reached over ssh; amd64 is built here, ppc64le
#     there, and `docker manifest` joins them (the flags of the original build-docker.sh);
#   - the modern one (no -h): `docker buildx build --platform linux/amd64,linux/arm64,linux/ppc64le`.
# Wheels for every architecture are fetched here first (docker/wheels/<arch>/), on both paths,
# with `pip download --only-binary=:all:` for the base image's platform (manylinux up to its
# glibc, CPython 3.11), so the image build installs from wheels only: no compiler, no network
# (`--network none`). Every arch installs the same jcp: its gRPC transport is grpclib (pure
# Python; grpcio publishes no ppc64le or s390x wheel), so only protobuf, aiohttp, watchfiles and
# their kin are per-arch wheels. `--wheels-only` is that step alone: what
# tests/integration/test_ppc64le.py proves for linux/ppc64le and linux/arm64.
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
  --platforms L  buildx platforms (default: linux/amd64,linux/arm64,linux/ppc64le; also
                 linux/s390x); with -h: linux/amd64 here, linux/ppc64le there
  --no-push      build only (buildx: --load is not possible for several platforms, so this
                 builds into the build cache)
  --builder B    buildx builder to use (default: the current one); it runs the other
                 platforms' RUN step under QEMU (binfmt_misc) unless it has native nodes
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
builder="" platforms_set=0
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
    --platforms) need $# --platforms "${2:-}"; platforms=$2; platforms_set=1; shift 2 ;;
    --builder) need $# --builder "${2:-}"; builder=$2; shift 2 ;;
    --no-push) push=0; shift ;;
    --dry-run) dry=1; shift ;;
    --wheels-only) only_wheels=1; shift ;;
    --help) usage; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done

# Every check comes before any download or build: a missing or wrong flag costs nothing.
[ -z "$token" ] || [ -n "$github" ] || die "-t is only used with -g"
[ -z "$github" ] || [ -n "$host" ] || die "-g is only used with -h (the remote ppc64le build)"
if [ -n "$token" ] && [[ "$token" != *:* ]]; then die "-t expects GITHUB_USER:TOKEN"; fi
[ -n "$tag" ] || tag=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/pyproject.toml")
[ -n "$registry" ] || registry=${repo%%/*}

# linux/ARCH -> ARCH, checked: only platforms with a wheel platform and a python:3.11 base.
IFS=',' read -r -a plats <<< "$platforms"
archs=()
for p in "${plats[@]}"; do
  case "$p" in
    linux/amd64|linux/arm64|linux/ppc64le|linux/s390x) archs+=("${p#linux/}") ;;
    *) die "--platforms: unsupported platform '$p' (linux/amd64, linux/arm64, linux/ppc64le, linux/s390x)" ;;
  esac
done
[ ${#archs[@]} -gt 0 ] || die "--platforms needs at least one platform"

base="python:3.11-slim-bookworm"
case "$release" in
  "") ;;
  bookworm|bullseye|trixie) base="python:3.11-slim-$release" ;;
  bionic|focal|jammy|noble|xenial)
    echo "$prog: warning: -U $release is an Ubuntu release; jcp's image uses Debian's" \
         "python:3.11-slim-bookworm (Ubuntu images ship no Python 3.11)" >&2 ;;
  *) die "-U: unknown release '$release' (bookworm, bullseye, trixie)" ;;
esac
# The base image's glibc bounds the manylinux wheels it can run.
case "$base" in
  *bullseye) glibc=31 ;;
  *trixie) glibc=41 ;;
  *) glibc=36 ;;
esac

if [ "$only_wheels" = 0 ]; then
  [ -n "$repo" ] || die "missing -r REPO (the image repository)"
  if [ -n "$host" ] && [ "$platforms_set" = 1 ]; then
    die "--platforms is for the buildx path; -h builds linux/amd64 here and linux/ppc64le on HOST"
  fi
  [ -z "$builder" ] || [ -z "$host" ] || die "--builder is for the buildx path, not with -h"
  if [ -n "$user" ] && [ "$push" = 1 ] && [ -z "${DOCKER_PASSWORD:-}" ] && [ -t 0 ]; then
    die "-u $user: the password comes from \$DOCKER_PASSWORD or standard input (not a terminal)"
  fi
  if [ "$dry" = 0 ]; then
    command -v docker >/dev/null || die "docker is needed to build the image"
    if [ -z "$host" ] && ! docker buildx version >/dev/null 2>&1; then
      die "docker buildx is needed for the multi-arch build (or use -h HOST, the original's path)"
    fi
  fi
fi
if [ "$dry" = 0 ]; then
  python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip is needed to fetch the wheels"
fi

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

# Fetch wheels for ARCH (amd64, arm64, ppc64le, s390x) into docker/wheels/ARCH: jcp's own
# (pure Python) and every dependency's, binary only, for CPython 3.11 on manylinux up to the
# base image's glibc.
wheels() {
  local arch=$1 m plat_args=() dest
  dest="$here/docker/wheels/$arch"
  case "$arch" in
    amd64) m=x86_64 ;;
    arm64) m=aarch64 ;;
    *) m=$arch ;;
  esac
  plat_args=(--platform "manylinux2014_$m")
  for ((v = 17; v <= glibc; v++)); do plat_args+=(--platform "manylinux_2_${v}_$m"); done
  run rm -rf "$dest"
  run mkdir -p "$dest"
  run cp "$own_wheel" "$dest/"
  # PyYAML (kubernetes_asyncio needs it) publishes no ppc64le wheel. Its sdist builds a pure-Python
  # wheel here (PYYAML_FORCE_LIBYAML=0: no C extension, no compiler in the image), which the
  # download below then takes from --find-links.
  if [ "$arch" = ppc64le ]; then
    run env PYYAML_FORCE_LIBYAML=0 python3 -m pip wheel --quiet --no-deps --no-binary pyyaml \
        -w "$dest" "pyyaml>=6"
  fi
  run python3 -m pip download --quiet --only-binary=:all: "${plat_args[@]}" \
      --python-version 3.11 --implementation cp --find-links "$dest" -d "$dest" \
      "$dest/${own_wheel##*/}"
}
tag_version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/pyproject.toml")
own_wheel="$here/docker/wheels/jcp-$tag_version-py3-none-any.whl"

# jcp's own wheel (pure Python), built once from this checkout for every arch.
own() {
  run rm -f "$own_wheel"
  run python3 -m pip wheel --quiet --no-deps -w "$here/docker/wheels" "$here"
}

if [ "$only_wheels" = 1 ]; then
  own
  for a in "${archs[@]}"; do wheels "$a"; done
  exit 0
fi

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

ship_wheels() {
  # The ppc64le wheels fetched here go to HOST beside the source: its build needs no network.
  local dir="/tmp/jcp-build-$tag"
  if [ "$dry" = 1 ]; then
    run ssh "$host" "mkdir -p $dir/docker/wheels && tar -x -C $dir/docker/wheels" '<' \
        "(tar of docker/wheels/ppc64le)"
  else
    # shellcheck disable=SC2029 # $dir is meant to expand here: it names the remote directory
    tar -C "$here/docker/wheels" -c ppc64le \
      | ssh "$host" "mkdir -p $dir/docker/wheels && tar -x -C $dir/docker/wheels"
  fi
}

if [ -n "$host" ]; then
  # The original's path: amd64 here, ppc64le on HOST, then a manifest list. Both arches'
  # wheels are fetched here first, as for buildx; HOST only runs `docker build`.
  own
  wheels amd64
  wheels ppc64le
  run docker build --network none -f "$here/docker/Dockerfile" "${build_args[@]}" \
      --build-arg TARGETARCH=amd64 -t "$repo:$tag-amd64" "$here"
  remote_build
  ship_wheels
  # shellcheck disable=SC2029 # the remote command is composed here on purpose
  run ssh "$host" "cd /tmp/jcp-build-$tag && docker build --network none -f docker/Dockerfile --build-arg BASE_IMAGE=$base --build-arg VERSION=$tag --build-arg REVISION=$revision --build-arg TARGETARCH=ppc64le -t $repo:$tag-ppc64le ."
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
  own
  for a in "${archs[@]}"; do wheels "$a"; done
  [ "$push" = 0 ] || login
  out=(--push)
  [ "$push" = 1 ] || out=()
  sel=()
  [ -z "$builder" ] || sel=(--builder "$builder")
  # SBOM and SLSA provenance attestations ride with the image (BuildKit's own generators).
  run docker buildx build "${sel[@]}" --platform "$platforms" --network none \
      --sbom=true --provenance=mode=max -f "$here/docker/Dockerfile" "${build_args[@]}" \
      -t "$repo:$tag" "${out[@]}" "$here"
fi
