#!/usr/bin/env bash
# The mock Secure MX API (target/debug/securemx-mock, built by `cargo build
# --workspace`) on 127.0.0.1:55380, state and API key under $TESTENV/securemx.
set -euo pipefail
PORT=55380
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
. "$ROOT/scripts/testenv/daemon.sh"
DIR="$TESTENV/securemx"
case "$1" in
up)
  mkdir -p "$DIR"
  secret_file "$DIR/api-key"
  daemon_up securemx "$DIR/securemx-mock.pid" "$DIR/log" "http://127.0.0.1:$PORT/healthz" -- \
    "$ROOT/target/debug/securemx-mock" --listen "127.0.0.1:$PORT" --state "$DIR/state.json" \
    --api-key-file "$DIR/api-key" --rate-limit 2000/s --burst 500
  echo "HW_SECUREMX_URL=http://127.0.0.1:$PORT" >>"$TESTENV/env.new"
  echo "HW_SECUREMX_API_KEY_FILE=$DIR/api-key" >>"$TESTENV/env.new"
  ;;
down)
  daemon_down "$DIR/securemx-mock.pid"
  ;;
esac
