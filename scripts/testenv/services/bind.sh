#!/usr/bin/env bash
# BIND 9 primary on 127.0.0.1:55353 (UDP+TCP) for the DNS adapter tests, with
# rndc controls on 127.0.0.1:55953. Zones are added at run time with
# `rndc addzone` (allow-new-zones), populated from a template zone file
# (`initial-file`), and updated with TSIG-signed RFC 2136 UPDATEs signed by the
# key `hostwright-update`. Everything lives under $TESTENV/bind; named runs as
# the invoking user (root on a fresh machine), so no chown or systemd is needed.
set -euo pipefail
PORT=55353
CTL_PORT=55953
DIR="$TESTENV/bind"
CONF="$DIR/named.conf"
PIDFILE="$DIR/named.pid"
RNDC=(rndc -s 127.0.0.1 -p "$CTL_PORT" -k "$DIR/rndc.key")

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

case "${1:-}" in
up)
  mkdir -p "$DIR/work" "$DIR/zones"
  # Keys are generated once and kept, so a restart keeps the same secrets.
  [ -s "$DIR/rndc.key" ] || tsig-keygen -a hmac-sha256 rndc-key >"$DIR/rndc.key"
  [ -s "$DIR/update.key" ] || tsig-keygen -a hmac-sha256 hostwright-update >"$DIR/update.key"
  [ -s "$DIR/seed.key" ] || tsig-keygen -a hmac-sha256 hostwright-seed >"$DIR/seed.key"
  chmod 600 "$DIR/rndc.key" "$DIR/update.key" "$DIR/seed.key"
  # The template every new zone starts from: SOA and NS with a relative '@',
  # so one file serves every zone. The NS is out of zone: no glue needed.
  cat >"$DIR/template.db" <<'EOF'
$TTL 300
@	IN SOA	ns1.hostwright.test. hostmaster.hostwright.test. ( 1 3600 600 604800 300 )
@	IN NS	ns1.hostwright.test.
EOF
  cat >"$CONF" <<EOF
options {
	directory "$DIR/work";
	pid-file "$PIDFILE";
	session-keyfile "$DIR/work/session.key";
	managed-keys-directory "$DIR/work";
	new-zones-directory "$DIR/work";
	listen-on port $PORT { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	allow-new-zones yes;
	dnssec-validation no;
	notify no;
	transfer-source 127.0.0.1;
};
include "$DIR/rndc.key";
include "$DIR/update.key";
include "$DIR/seed.key";
controls {
	inet 127.0.0.1 port $CTL_PORT allow { 127.0.0.1; } keys { "rndc-key"; };
};
// 'seed' serves a new zone from the shared, read-only template for the one
// zone transfer that creates the zone's own file in 'main' (see docs/dns.md).
view "seed" {
	match-clients { key hostwright-seed; };
	allow-transfer { key hostwright-seed; };
	allow-query { key hostwright-seed; };
};
view "main" {
	match-clients { !key hostwright-seed; any; };
};
logging {
	channel main { file "$DIR/named.log" versions 2 size 5m; severity info; print-time yes; };
	category default { main; };
	category general { main; };
};
EOF
  named-checkconf "$CONF"
  if running; then
    # Already up: leave it running, but let it pick up a changed config.
    "${RNDC[@]}" reconfig >/dev/null 2>&1 || true
  else
    rm -f "$PIDFILE"
    named -c "$CONF"
  fi
  ok=""
  for _ in $(seq 1 100); do
    if "${RNDC[@]}" status >/dev/null 2>&1 &&
      dig @127.0.0.1 -p "$PORT" +norec +time=1 +tries=1 version.bind chaos txt >/dev/null 2>&1; then
      ok=1
      break
    fi
    sleep 0.1
  done
  if [ -z "$ok" ]; then
    echo "bind: named did not come up on 127.0.0.1:$PORT (log: $DIR/named.log)" >&2
    tail -n 20 "$DIR/named.log" >&2 2>/dev/null || true
    exit 1
  fi
  {
    echo "HW_DNS_SERVER=127.0.0.1:$PORT"
    echo "HW_DNS_RNDC_HOST=127.0.0.1"
    echo "HW_DNS_RNDC_PORT=$CTL_PORT"
    echo "HW_DNS_RNDC_KEY=$DIR/rndc.key"
    echo "HW_DNS_TSIG_NAME=hostwright-update"
    echo "HW_DNS_TSIG_FILE=$DIR/update.key"
    echo "HW_DNS_INITIAL_FILE=$DIR/template.db"
    echo "HW_DNS_ZONE_DIR=$DIR/zones"
    echo "HW_DNS_NAMESERVER=ns1.hostwright.test."
  } >>"$TESTENV/env.new"
  ;;
down)
  if running; then
    pid="$(cat "$PIDFILE")"
    "${RNDC[@]}" stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PIDFILE"
  ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
