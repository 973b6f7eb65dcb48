#!/usr/bin/env bash
# The billing sink (target/debug/billing-sink, built by `cargo build
# --workspace`) on 127.0.0.1:55390, reports and secret under $TESTENV/billing.
set -euo pipefail
PORT=55390
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
DIR="$TESTENV/billing"
BIN="$ROOT/target/debug/billing-sink"
PIDFILE="$DIR/billing-sink.pid"
running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
case "$1" in
up)
  mkdir -p "$DIR"
  if ! [ -s "$DIR/secret" ]; then
    (umask 077; openssl rand -hex 32 >"$DIR/secret")
  fi
  if ! running; then
    [ -x "$BIN" ] || { echo "billing: $BIN missing; run cargo build --workspace" >&2; exit 1; }
    setsid nohup "$BIN" --listen "127.0.0.1:$PORT" --secret-file "$DIR/secret" \
      --store "$DIR/reports.jsonl" >>"$DIR/log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
  fi
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    running || { echo "billing: sink exited; see $DIR/log" >&2; exit 1; }
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || { echo "billing: no /healthz; see $DIR/log" >&2; exit 1; }
  echo "HW_BILLING_URL=http://127.0.0.1:$PORT/v1/billable-states" >>"$TESTENV/env.new"
  echo "HW_BILLING_SECRET_FILE=$DIR/secret" >>"$TESTENV/env.new"
  ;;
down)
  if running; then
    pid="$(cat "$PIDFILE")"
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  ;;
esac
