#!/usr/bin/env bash
# `docker compose` for this project's stack: project `hostwright`, the root
# docker-compose.yml. Uses the Compose v2 plugin (`docker compose`) where it
# exists and Debian's Compose v1 (`docker-compose`, bookworm's only one)
# elsewhere; both read the same file.
#   scripts/compose.sh ps
#   scripts/compose.sh exec -T webhost getent passwd
# Sourced, it only defines the `compose` function.

_HW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

compose() {
  if [ -z "${_HW_COMPOSE_V2+x}" ]; then
    if docker compose version >/dev/null 2>&1; then _HW_COMPOSE_V2=1; else _HW_COMPOSE_V2=0; fi
  fi
  if [ "$_HW_COMPOSE_V2" = 1 ]; then
    docker compose -p hostwright -f "$_HW_ROOT/docker-compose.yml" "$@"
  else
    command -v docker-compose >/dev/null || {
      echo "compose: neither 'docker compose' nor 'docker-compose' is installed (scripts/install-deps.sh)" >&2
      return 127
    }
    docker-compose -p hostwright -f "$_HW_ROOT/docker-compose.yml" "$@"
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  compose "$@"
fi
