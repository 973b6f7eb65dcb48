#!/usr/bin/env bash
# The whole test suite, as CI runs it (README: "Run every test").
# 1. Installs what the tests need, starts the real backends on loopback, runs
#    the unit and integration tests of every crate against them, then stops
#    them.
# 2. The compose end-to-end and fault suite (scripts/compose-test.sh): builds
#    the images (once; cached), brings the whole stack up, provisions, breaks
#    and repairs it from outside, and takes it down again.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
mkdir -p .hostwright

scripts/install-deps.sh
cargo build --workspace --all-targets --locked
scripts/testenv/up.sh
trap 'scripts/testenv/down.sh' EXIT
cargo test --workspace --locked --no-fail-fast 2>&1 | tee .hostwright/test.log
scripts/testenv/down.sh
trap - EXIT

scripts/compose-test.sh 2>&1 | tee .hostwright/compose-test.log
