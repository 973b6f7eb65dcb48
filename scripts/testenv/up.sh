#!/usr/bin/env bash
# Starts the real backends the integration tests drive, on loopback, each with
# its own config, keys and state under .hostwright/testenv/, and writes their
# coordinates to .hostwright/testenv/env (read by hostwright_adapter::testenv).
# Idempotent: a service already up is left running. `down.sh` stops them.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export TESTENV="$ROOT/.hostwright/testenv"
mkdir -p "$TESTENV"
: >"$TESTENV/env.new"
# Each service script appends its KEY=value lines to $TESTENV/env.new.
for svc in "$ROOT"/scripts/testenv/services/*.sh; do
  echo "testenv: $(basename "$svc" .sh)"
  bash "$svc" up
done
mv "$TESTENV/env.new" "$TESTENV/env"
echo "testenv: up ($TESTENV/env)"
