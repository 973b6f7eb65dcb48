#!/usr/bin/env bash
# Signs every example contract with the example-only key (examples/keys/),
# writing examples/signed/NAME.json. The key is for examples and tests only:
# it is public in this repository and must never be trusted in production.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${HOSTWRIGHT_BIN:-$ROOT/target/debug/hostwright}"
[ -x "$BIN" ] || (cd "$ROOT" && cargo build -q -p hostwright --bin hostwright)
mkdir -p "$ROOT/examples/signed"
for f in "$ROOT"/examples/contracts/*.json; do
  "$BIN" contract sign "$f" --key "$ROOT/examples/keys/example-only-2026.key" \
    --key-id example-only-2026 --out "$ROOT/examples/signed/$(basename "$f")"
done
echo "signed $(ls "$ROOT"/examples/signed | wc -l) example contracts"
