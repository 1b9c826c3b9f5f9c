#!/usr/bin/env bash
# Debian packages the tests run: dockerd, the registry, htpasswd for the password-protected one,
# debootstrap (the container test's base image), shellcheck, and containerd (the CRI runtime tests).
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v containerd >/dev/null || need+=(containerd)
command -v gcc >/dev/null || need+=(gcc libc6-dev)  # a static pause for the CRI pod tests
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
