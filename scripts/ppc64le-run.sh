#!/usr/bin/env bash
# jcp on ppc64le, proven on any Linux machine by emulation: a ppc64el Debian bookworm root
# (debootstrap from Debian's archive, second stage under qemu-user, cached as a tarball), jcp
# installed into a venv in it from the very ppc64le wheels `build-docker.sh --wheels-only` fetches
# (pip --no-index, as docker/Dockerfile installs them), then run under qemu-ppc64le in a chroot:
# `jcp --version`, `jcp validate` of the sample config, and `jcp once --runtime cri` warming a
# real containerd (its socket bind-mounted into the root) from a loopback registry. A chroot is
# no network namespace, so the registry on 127.0.0.1 is reachable from the root as it is here.
#
# Usage (root; Debian's qemu-user-static, debootstrap, containerd, docker-registry):
#   scripts/ppc64le-run.sh [all]   [--work DIR] [--cache DIR] [--wheels DIR]   prepare + check
#   scripts/ppc64le-run.sh prepare [--work DIR] [--cache DIR] [--wheels DIR]   the root and venv
#   scripts/ppc64le-run.sh check   [--work DIR]     version, validate, once into a containerd
#   scripts/ppc64le-run.sh exec    [--work DIR] [--bind PATH]... -- CMD [ARG...]
# --work   where the root is unpacked and the throwaway registry and containerd live
#          (default ${TMPDIR:-/tmp}/jcp-ppc64le; prepare replaces its root/)
# --cache  where the debootstrapped root is kept as a tarball (default $JCP_CACHE or
#          /var/cache/jcp-test, like the amd64 root of tests/integration/test_deploy.py)
# --wheels a directory of ppc64le wheels to install (default: fetch them with
#          scripts/build-docker.sh --wheels-only --platforms linux/ppc64le)
# --bind   with exec: a host path mounted at the same path inside the root (repeatable)
# Every mount into the root is made in a mount namespace of its own (unshare), so it is gone
# when the command ends, however it ends. Each step prints `ppc64le-run: time STEP SECONDSs`.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
prog=$(basename "$0")
die() { echo "$prog: $*" >&2; exit 2; }

action=all
case "${1:-}" in all|prepare|check|exec) action=$1; shift ;; esac
work=${TMPDIR:-/tmp}/jcp-ppc64le
cache=${JCP_CACHE:-/var/cache/jcp-test}
wheels=""
binds=()
while [ $# -gt 0 ]; do
  case "$1" in
    --work) [ $# -ge 2 ] || die "--work needs a directory"; work=$2; shift 2 ;;
    --cache) [ $# -ge 2 ] || die "--cache needs a directory"; cache=$2; shift 2 ;;
    --wheels) [ $# -ge 2 ] || die "--wheels needs a directory"; wheels=$2; shift 2 ;;
    --bind) [ $# -ge 2 ] || die "--bind needs a path"; binds+=("$2"); shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[ "$action" != exec ] || [ $# -gt 0 ] || die "exec needs a command after --"
[ "$action" = exec ] || [ $# -eq 0 ] || die "unexpected arguments: $*"
[ "$action" = exec ] || [ ${#binds[@]} -eq 0 ] || die "--bind is for exec"
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, binfmt_misc, chroot, mounts)"
work=$(realpath -m "$work")
root=$work/root
tarball=$cache/bookworm-ppc64el-minbase-python3.tar

now() { date +%s.%N; }
lap_start=$(now)
lap() {  # lap STEP: the time since the last lap, on stderr
  local t
  t=$(now)
  awk -v s="$lap_start" -v t="$t" -v n="$1" 'BEGIN { printf "ppc64le-run: time %s %.1fs\n", n, t - s }' >&2
  lap_start=$t
}

mirror() {  # the Debian archive this machine's apt uses (deb822 or one-line sources)
  local m
  m=$(sed -n 's|^URIs:[[:space:]]*\([^[:space:]]*/debian\)[[:space:]]*$|\1|p' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  [ -n "$m" ] || m=$(sed -n 's|^deb[[:space:]]\{1,\}\(http[^[:space:]]*/debian\)[[:space:]].*|\1|p' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n 1)
  echo "${m:-http://deb.debian.org/debian}"
}

# qemu-ppc64le registered with binfmt_misc. Debian's qemu-user-static ships the register line
# (flag F: the kernel opens the interpreter now, so it need not exist inside the root); if an
# existing registration lacks F, the interpreter is copied into the root at its path instead.
interp_copy=""
binfmt() {
  local d=/proc/sys/fs/binfmt_misc line conf=/usr/lib/binfmt.d/qemu-ppc64le.conf
  command -v qemu-ppc64le-static >/dev/null || die "qemu-ppc64le-static not found: apt-get install qemu-user-static"
  if [ ! -e "$d/register" ]; then
    mount -t binfmt_misc binfmt_misc "$d" || die "cannot mount binfmt_misc on $d"
  fi
  if [ ! -e "$d/qemu-ppc64le" ]; then
    if [ -f "$conf" ]; then
      line=$(cat "$conf")
    else
      line=':qemu-ppc64le:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x15\x00:\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\x00:/usr/bin/qemu-ppc64le-static:F'
    fi
    # Another run may register it at the same moment: its entry is as good as ours.
    printf '%s' "$line" 2>/dev/null > "$d/register" || [ -e "$d/qemu-ppc64le" ] \
      || die "cannot register qemu-ppc64le with binfmt_misc"
  fi
  [ "$(head -n 1 "$d/qemu-ppc64le")" = enabled ] || echo 1 > "$d/qemu-ppc64le"
  if ! grep -q '^flags:.*F' "$d/qemu-ppc64le"; then
    interp_copy=$(sed -n 's/^interpreter //p' "$d/qemu-ppc64le")
  fi
}

# in_root CMD...: CMD in the root under qemu, with /proc, /dev and every --bind mounted in a
# mount namespace of its own, and a clean environment.
in_root() {
  if [ -n "$interp_copy" ] && [ ! -e "$root$interp_copy" ]; then
    mkdir -p "$root$(dirname "$interp_copy")"
    cp "$(readlink -f "$interp_copy")" "$root$interp_copy"
  fi
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  unshare --mount --propagation private -- bash -euc '
    r=$1; shift; n=$1; shift
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    for ((i = 0; i < n; i++)); do
      b=$1; shift
      if [ -d "$b" ]; then mkdir -p "$r$b"; else mkdir -p "$r$(dirname "$b")"; touch "$r$b"; fi
      mount --bind "$b" "$r$b"
    done
    exec chroot "$r" /usr/bin/env -i PATH=/opt/jcp/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 "$@"
  ' in_root "$root" "${#binds[@]}" ${binds[@]+"${binds[@]}"} "$@"
}

# The cached ppc64el root: made once (first stage here, second stage under qemu), then reused.
make_tarball() {
  local tmp=$cache/bookworm-ppc64el.tmp
  command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
  rm -rf "$tmp"
  debootstrap --foreign --arch=ppc64el --variant=minbase --include=python3,python3-venv \
    bookworm "$tmp" "$(mirror)" > "$cache/bookworm-ppc64el.log" 2>&1 \
    || { tail -n 20 "$cache/bookworm-ppc64el.log" >&2; die "debootstrap (first stage) failed"; }
  lap debootstrap-first-stage
  local keep=$root
  root=$tmp
  if [ -n "$interp_copy" ]; then mkdir -p "$tmp$(dirname "$interp_copy")"; cp "$(readlink -f "$interp_copy")" "$tmp$interp_copy"; fi
  # debootstrap mounts /proc and /sys itself; in this namespace they vanish with it.
  unshare --mount --propagation private -- chroot "$tmp" /debootstrap/debootstrap --second-stage \
    >> "$cache/bookworm-ppc64el.log" 2>&1 \
    || { tail -n 20 "$cache/bookworm-ppc64el.log" >&2; die "debootstrap (second stage, under qemu) failed"; }
  root=$keep
  lap debootstrap-second-stage-qemu
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
  [ -z "$interp_copy" ] || rm -f "$tmp$interp_copy"
  tar -C "$tmp" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$tmp"
  lap pack-root
}

prepare() {
  binfmt
  mkdir -p "$cache" "$work"
  if grep -qF " $root" /proc/self/mountinfo; then die "something is mounted under $root: unmount it first"; fi
  (
    flock 9
    [ -f "$tarball" ] || make_tarball
  ) 9> "$cache/bookworm-ppc64el.lock"
  lap_start=$(now)
  rm -rf "$root"
  mkdir -p "$root"
  tar -C "$root" -xf "$tarball"
  lap unpack-root
  if [ -z "$wheels" ]; then
    bash "$here/scripts/build-docker.sh" --wheels-only --platforms linux/ppc64le
    wheels=$here/docker/wheels/ppc64le
    lap fetch-wheels
  fi
  compgen -G "$wheels/jcp-*.whl" >/dev/null || die "no jcp wheel in $wheels"
  mkdir -p "$root/wheels"
  cp "$wheels"/*.whl "$root/wheels/"
  # docker/Dockerfile's install, word for word, under emulation.
  in_root python3 -m venv /opt/jcp
  lap venv-qemu
  in_root /opt/jcp/bin/pip install --quiet --no-index --no-cache-dir --find-links /wheels jcp
  lap pip-install-qemu
  echo "$prog: jcp installed in $root/opt/jcp (ppc64le, from $wheels)" >&2
}

stop_own() {  # the registry and containerd check started: their pids, one a line, as started
  local p deadline pids=()
  [ -f "$work/own.pids" ] || return 0
  # Only a process still running from WORK is ours (a stale file's pid may be anyone's now).
  mapfile -t pids < <(while read -r p; do
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "$work/" && echo "$p"
  done < "$work/own.pids")
  for p in ${pids[@]+"${pids[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
  deadline=$((SECONDS + 30))
  for p in ${pids[@]+"${pids[@]}"}; do
    while [ -e "/proc/$p" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  done
  rm -f "$work/own.pids"
}

prepared() {
  [ -x "$root/opt/jcp/bin/jcp" ] || die "no prepared root in $work (run: $prog prepare --work $work)"
}

check() {
  binfmt
  prepared
  lap_start=$(now)
  in_root jcp --version
  lap jcp-version-qemu
  mkdir -p "$root/etc/jcp-sample"
  cp "$here"/k8s/base/config/* "$root/etc/jcp-sample/"
  in_root jcp validate /etc/jcp-sample --arch ppc64le
  lap jcp-validate-qemu
  # A registry with a multi-arch image and a containerd of their own, started here (natively).
  command -v ctr >/dev/null || die "ctr not found: apt-get install containerd"
  stop_own
  rm -rf "$work/registry" "$work/containerd" "$work/config"
  local state
  trap stop_own EXIT
  state=$(cd "$here" && PYTHONPATH=$here python3 - "$work" <<'EOF'
import json
import sys
from pathlib import Path

from devstack.containerd import Containerd
from devstack.images import RegistryClient, make_layer
from devstack.services import Registry

work = Path(sys.argv[1])
pids = (work / "own.pids").open("a")
registry = Registry(work / "registry")
registry.start()
assert registry.proc is not None
pids.write(f"{registry.proc.pid}\n")
pids.flush()
client = RegistryClient(registry.host)
base = make_layer(1 << 20, seed=1, name="base")
layers = {a: [base, make_layer(256 * 1024)] for a in ("amd64", "arm64", "ppc64le")}
image = client.push_multiarch("ppc/warm", "1.0", layers).reference
client.close()
containerd = Containerd(work / "containerd", registries=[registry.host])
try:
    containerd.start()
finally:
    if containerd.proc is not None:
        pids.write(f"{containerd.proc.pid}\n")
        pids.close()
config = work / "config"
config.mkdir()
(config / "image.config").write_text(json.dumps([{"ref": "ppc/warm:1.0", "registry": registry.host}]))
print(json.dumps({"endpoint": containerd.endpoint, "image": image}))
EOF
) || die "could not start a registry and a containerd (python3 with jcp's test extra: pip install -e '.[test]')"
  local endpoint image
  endpoint=$(sed -n 's/.*"endpoint": "\([^"]*\)".*/\1/p' <<< "$state")
  image=$(sed -n 's/.*"image": "\([^"]*\)".*/\1/p' <<< "$state")
  if [ -z "$endpoint" ] || [ -z "$image" ]; then
    die "no containerd endpoint or image from the setup: $state"
  fi
  lap own-registry-and-containerd
  binds=("$work/containerd" "$work/config")
  in_root jcp once --runtime cri --runtime-endpoint "$endpoint" --config-dir "$work/config" \
    --node-labels ''
  lap jcp-once-qemu
  ctr -a "${endpoint#unix://}" -n k8s.io images ls -q | grep -Fx "$image" \
    || die "$image is not in containerd's k8s.io namespace"
  echo "$prog: $image is in containerd at $endpoint, warmed by jcp under qemu-ppc64le" >&2
  stop_own
  trap - EXIT
}

case "$action" in
  all) prepare; check ;;
  prepare) prepare ;;
  check) check ;;
  exec) binfmt; prepared; in_root "$@" ;;
esac
