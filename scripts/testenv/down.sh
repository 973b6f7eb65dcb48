#!/usr/bin/env bash
# Stops every backend started by up.sh.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export TESTENV="$ROOT/.hostwright/testenv"
for svc in "$ROOT"/scripts/testenv/services/*.sh; do
  bash "$svc" down || true
done
