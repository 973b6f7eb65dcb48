#!/usr/bin/env bash
# Installs every Debian package the tests, the quickstart and the benchmarks
# need. Idempotent; daemons are kept from auto-starting (our scripts start
# them on loopback with their own configs).
set -euo pipefail

PACKAGES=(
  openssh-server openssh-client
  nginx
  pure-ftpd
  bind9 bind9-dnsutils bind9-utils
  postgresql postgresql-client
  sqlite3
  curl ftp
  debootstrap
  # the ACME test server and its mock DNS (scripts/testenv/services/pebble.sh)
  pebble
  openssl ca-certificates
  libssl-dev pkg-config libsqlite3-dev
  quota
  procps iproute2 psmisc
  python3 python3-venv
  # the compose stack (scripts/compose-up.sh, scripts/quickstart.sh): Compose
  # v1 is bookworm's only Compose; the Docker engine itself comes with the machine
  docker-compose jq
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
# The Debian service units may have been started by an earlier install; the
# tests run their own instances on other ports, so the defaults are harmless,
# but stop them to free the standard ports for the compose stack.
for svc in nginx bind9 named pure-ftpd ssh postgresql; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
echo "install-deps: ok"
