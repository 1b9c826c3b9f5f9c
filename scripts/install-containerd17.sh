#!/usr/bin/env bash
# Fetches a containerd 1.7 binary for the pinning tests, without installing a package or
# committing a binary. Debian 12 ships containerd 1.6, whose CRI ignores the pin label; Debian 13
# (trixie) ships 1.7, a static-enough Go binary that runs here (it needs libc6 >= 2.34; bookworm
# has 2.36). The chain of trust is apt's own: trixie's InRelease is checked with gpgv against
# Debian's archive keyring, Packages.xz against InRelease's SHA256, the .deb against Packages.
#
# Prints the path of the containerd binary on stdout and nothing else. Idempotent.
#   JCP_TOOLS  where it goes (default /var/cache/jcp-test/bin; the binary is containerd-1.7)
set -euo pipefail
mirror=${JCP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie
cache=${JCP_TOOLS:-/var/cache/jcp-test/bin}
out="$cache/containerd-1.7"
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi
arch=$(dpkg --print-architecture)
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() { curl -fsSL --retry 3 -o "$2" "$1"; }

fetch "$mirror/dists/$suite/InRelease" "$work/InRelease"
gpgv --keyring "$keyring" "$work/InRelease" 2>/dev/null || {
  echo "install-containerd17: $suite's InRelease does not verify against $keyring" >&2
  exit 1
}
index="main/binary-$arch/Packages.xz"
want=$(awk -v f="$index" '/^SHA256:/{s=1; next} /^[A-Za-z]/{s=0} s && $3 == f {print $1}' "$work/InRelease")
fetch "$mirror/dists/$suite/$index" "$work/Packages.xz"
echo "$want  $work/Packages.xz" | sha256sum -c --quiet - >&2
read -r file sum < <(xz -dc "$work/Packages.xz" | awk '
  /^Package: containerd$/ {p=1} /^$/ {if (p) exit; p=0}
  p && /^Filename:/ {f=$2} p && /^SHA256:/ {s=$2}
  END {print f, s}')
if [ -z "$file" ] || [ -z "$sum" ]; then
  echo "install-containerd17: no containerd in $suite for $arch" >&2
  exit 1
fi
fetch "$mirror/$file" "$work/containerd.deb"
echo "$sum  $work/containerd.deb" | sha256sum -c --quiet - >&2
dpkg-deb -x "$work/containerd.deb" "$work/x"
mkdir -p "$cache"
install -m 0755 "$work/x/usr/bin/containerd" "$out.tmp"
mv "$out.tmp" "$out"
"$out" --version >&2
echo "$out"
