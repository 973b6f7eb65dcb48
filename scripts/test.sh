#!/usr/bin/env bash
# The whole test suite, as CI runs it (README: "Run every test").
# Installs what the tests need, starts the real backends on loopback, runs the
# unit and integration tests of every crate against them, then stops them.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

scripts/install-deps.sh
cargo build --workspace --all-targets --locked
scripts/testenv/up.sh
trap 'scripts/testenv/down.sh' EXIT
cargo test --workspace --locked --no-fail-fast 2>&1 | tee .hostwright/test.log
