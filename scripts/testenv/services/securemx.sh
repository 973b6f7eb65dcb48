#!/usr/bin/env bash
# The mock Secure MX API (target/debug/securemx-mock, built by `cargo build
# --workspace`) on 127.0.0.1:55380, state and API key under $TESTENV/securemx.
set -euo pipefail
PORT=55380
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
DIR="$TESTENV/securemx"
BIN="$ROOT/target/debug/securemx-mock"
PIDFILE="$DIR/securemx-mock.pid"
running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
case "$1" in
up)
  mkdir -p "$DIR"
  if ! [ -s "$DIR/api-key" ]; then
    (umask 077; openssl rand -hex 32 >"$DIR/api-key")
  fi
  if ! running; then
    [ -x "$BIN" ] || { echo "securemx: $BIN missing; run cargo build --workspace" >&2; exit 1; }
    setsid nohup "$BIN" --listen "127.0.0.1:$PORT" --state "$DIR/state.json" \
      --api-key-file "$DIR/api-key" --rate-limit 2000/s --burst 500 \
      >>"$DIR/log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
  fi
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    running || { echo "securemx: mock exited; see $DIR/log" >&2; exit 1; }
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || { echo "securemx: no /healthz; see $DIR/log" >&2; exit 1; }
  echo "HW_SECUREMX_URL=http://127.0.0.1:$PORT" >>"$TESTENV/env.new"
  echo "HW_SECUREMX_API_KEY_FILE=$DIR/api-key" >>"$TESTENV/env.new"
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
