#!/usr/bin/env bash
# Debian packages the tests run: dockerd, the registry, htpasswd for the password-protected one,
# debootstrap (the container test's base image and the ppc64el root), qemu-user-static (jcp run
# under qemu-ppc64le: scripts/ppc64le-run.sh), shellcheck, containerd (the CRI runtime tests),
# pigz and iptables (the paced link and its benchmark).
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v qemu-ppc64le-static >/dev/null || need+=(qemu-user-static)
command -v containerd >/dev/null || need+=(containerd)
command -v unpigz >/dev/null || need+=(pigz)  # containerd decompresses layers with it when on PATH
command -v iptables >/dev/null || need+=(iptables)  # devstack/paced_link.py: a class per connection
command -v gcc >/dev/null || need+=(gcc libc6-dev)  # a static pause for the CRI pod tests
# install-containerd17.sh: fetch and check trixie's containerd 1.7 (the pin tests)
command -v curl >/dev/null || need+=(curl)
command -v gpgv >/dev/null || need+=(gpgv)
command -v xz >/dev/null || need+=(xz-utils)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# promtool (the alert and dashboard tests) ships only in Debian's `prometheus` package, whose
# postinst would start a Prometheus server: install it with services denied (policy-rc.d, unless
# the machine has its own) and make sure none is left running or enabled.
if ! command -v promtool >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/install-deps.sh: no service starts while prometheus installs\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    own_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null || { [ -z "$own_policy" ] || rm -f "$policy"; exit 1; }
  [ -z "$own_policy" ] || rm -f "$policy"
  if [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
  command -v promtool >/dev/null || { echo "install-deps: prometheus installed but no promtool on PATH" >&2; exit 1; }
fi
