#!/usr/bin/env bash
# PostgreSQL on 127.0.0.1:55432 for the job store tests (PostgreSQL refuses to
# run as root, so the cluster belongs to the 'postgres' system user).
set -euo pipefail
PORT=55432
DIR="$TESTENV/postgres"
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
case "$1" in
up)
  if ! [ -f "$DIR/data/PG_VERSION" ]; then
    mkdir -p "$DIR"
    chown postgres:postgres "$DIR"
    su postgres -s /bin/sh -c "$BIN/initdb -D '$DIR/data' -A trust -U postgres --no-sync -E UTF8" >/dev/null
  fi
  if ! su postgres -s /bin/sh -c "$BIN/pg_ctl -D '$DIR/data' status" >/dev/null 2>&1; then
    # fsync=off is for this throw-away TEST server only: it makes commits
    # vanish on a power loss. A production store needs fsync=on and
    # synchronous_commit=on (the defaults; docs/schema.md, "Durability").
    su postgres -s /bin/sh -c "$BIN/pg_ctl -D '$DIR/data' -l '$DIR/log' -w -o '-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200' start" >/dev/null
  fi
  for db in hostwright_test; do
    su postgres -s /bin/sh -c "psql -h 127.0.0.1 -p $PORT -U postgres -tAc \"select 1 from pg_database where datname='$db'\"" | grep -q 1 ||
      su postgres -s /bin/sh -c "psql -h 127.0.0.1 -p $PORT -U postgres -c 'create database $db'" >/dev/null
  done
  echo "HW_TEST_PG_URL=postgres://postgres@127.0.0.1:$PORT/hostwright_test" >>"$TESTENV/env.new"
  ;;
down)
  [ -d "$DIR/data" ] && su postgres -s /bin/sh -c "$BIN/pg_ctl -D '$DIR/data' -m fast stop" >/dev/null 2>&1 || true
  ;;
esac
