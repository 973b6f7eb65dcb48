#!/usr/bin/env bash
# The compose end-to-end and fault suite (issue #5): builds the suite, brings
# the stack up (scripts/compose-up.sh), runs tests/compose against it one
# test at a time (they share the stack), and always takes the stack down
# again with its state volumes (scripts/compose-down.sh), pass or fail, so
# the next run starts clean. Images stay cached.
#
#   scripts/compose-test.sh                 # the whole suite
#   scripts/compose-test.sh t06             # only tests whose name contains t06
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

CARGO_TEST=(cargo test --locked --features compose-tests --test compose)

# Compile first: the build is not part of the stack's time.
"${CARGO_TEST[@]}" --no-run

started=$(date +%s)
# shellcheck disable=SC2317 # run by the EXIT trap
finish() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "compose-test: failed; the last log lines of hostwright, the web hosts and the name servers:" >&2
    scripts/compose.sh logs --no-color --tail 40 hostwright webhost webhost2 dns dns2 >&2 2>&1 || true
  fi
  scripts/compose-down.sh || echo "compose-test: compose-down.sh failed" >&2
  echo "compose-test: compose part took $(($(date +%s) - started))s (up, tests, down)"
}
trap finish EXIT

scripts/compose-up.sh
"${CARGO_TEST[@]}" -- --test-threads=1 --show-output "$@"
