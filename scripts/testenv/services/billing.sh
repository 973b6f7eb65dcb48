#!/usr/bin/env bash
# The billing sink (target/debug/billing-sink, built by `cargo build
# --workspace`) on 127.0.0.1:55390, reports and secret under $TESTENV/billing.
set -euo pipefail
PORT=55390
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
. "$ROOT/scripts/testenv/daemon.sh"
DIR="$TESTENV/billing"
case "$1" in
up)
  mkdir -p "$DIR"
  secret_file "$DIR/secret"
  daemon_up billing "$DIR/billing-sink.pid" "$DIR/log" "http://127.0.0.1:$PORT/healthz" -- \
    "$ROOT/target/debug/billing-sink" --listen "127.0.0.1:$PORT" --secret-file "$DIR/secret" \
    --store "$DIR/reports.jsonl"
  echo "HW_BILLING_URL=http://127.0.0.1:$PORT/v1/billable-states" >>"$TESTENV/env.new"
  echo "HW_BILLING_SECRET_FILE=$DIR/secret" >>"$TESTENV/env.new"
  ;;
down)
  daemon_down "$DIR/billing-sink.pid"
  ;;
esac
