#!/usr/bin/env bash
# BIND 9 primary on 127.0.0.1:55353 (UDP+TCP) for the DNS adapter tests, with
# rndc controls on 127.0.0.1:55953, and a BIND 9 secondary on 127.0.0.1:55354
# (rndc 55954) that learns the primary's zones from its catalog zone
# `catalog.hostwright.test` (RFC 9432) and NOTIFY, nobody touching it.
# Zones are added at run time with `rndc addzone` (allow-new-zones),
# populated from a template zone file (`initial-file`), and updated with
# TSIG-signed RFC 2136 UPDATEs signed by the key `hostwright-update`.
# Everything lives under $TESTENV/bind and $TESTENV/bind-secondary; named
# runs as the invoking user (root on a fresh machine), so no chown or systemd
# is needed.
set -euo pipefail
PORT=55353
CTL_PORT=55953
DIR="$TESTENV/bind"
CONF="$DIR/named.conf"
PIDFILE="$DIR/named.pid"
RNDC=(rndc -s 127.0.0.1 -p "$CTL_PORT" -k "$DIR/rndc.key")
SEC_PORT=55354
SEC_CTL_PORT=55954
SEC_DIR="$TESTENV/bind-secondary"
SEC_CONF="$SEC_DIR/named.conf"
SEC_PIDFILE="$SEC_DIR/named.pid"
SEC_RNDC=(rndc -s 127.0.0.1 -p "$SEC_CTL_PORT" -k "$DIR/rndc.key")
CATALOG=catalog.hostwright.test

# start_named CONF PIDFILE PORT LOG RNDC...: starts named (or lets a running
# one re-read its config) and waits until rndc and DNS on PORT answer.
start_named() {
  local conf="$1" pidfile="$2" port="$3" log="$4"
  shift 4
  named-checkconf "$conf"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    "$@" reconfig >/dev/null 2>&1 || true
  else
    rm -f "$pidfile"
    named -c "$conf"
  fi
  for _ in $(seq 1 100); do
    if "$@" status >/dev/null 2>&1 &&
      dig @127.0.0.1 -p "$port" +norec +time=1 +tries=1 version.bind chaos txt >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "bind: named did not come up on 127.0.0.1:$port (log: $log)" >&2
  tail -n 20 "$log" >&2 2>/dev/null || true
  return 1
}

# stop_named PIDFILE RNDC...
stop_named() {
  local pidfile="$1"
  shift
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    local pid
    pid="$(cat "$pidfile")"
    "$@" stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
up)
  mkdir -p "$DIR/work" "$DIR/zones" "$SEC_DIR/work"
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
  # The catalog zone starts empty, once; then the adapter's updates own it.
  [ -s "$DIR/work/catalog.db" ] || cat >"$DIR/work/catalog.db" <<'EOF'
$TTL 300
@	IN SOA	invalid. invalid. ( 1 3600 600 604800 300 )
@	IN NS	invalid.
version	IN TXT	"2"
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
	// Every zone (those rndc addzone adds too) notifies the secondary only.
	notify explicit;
	also-notify { 127.0.0.1 port $SEC_PORT; };
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
	notify no;
};
view "main" {
	match-clients { !key hostwright-seed; any; };
	// The secondary (here one, on loopback) transfers every zone.
	allow-transfer { 127.0.0.1; };
	// The catalog of hostwright's zones (RFC 9432, version 2): the DNS
	// adapter adds and deletes one PTR per zone; the secondary follows it.
	zone "$CATALOG" {
		type primary;
		file "$DIR/work/catalog.db";
		allow-update { key hostwright-update; };
	};
};
logging {
	channel main { file "$DIR/named.log" versions 2 size 5m; severity info; print-time yes; };
	category default { main; };
	category general { main; };
};
EOF
  start_named "$CONF" "$PIDFILE" "$PORT" "$DIR/named.log" "${RNDC[@]}"

  # The secondary knows only the catalog zone and where the primary is.
  cat >"$SEC_CONF" <<EOF
options {
	directory "$SEC_DIR/work";
	pid-file "$SEC_PIDFILE";
	session-keyfile "$SEC_DIR/work/session.key";
	managed-keys-directory "$SEC_DIR/work";
	new-zones-directory "$SEC_DIR/work";
	listen-on port $SEC_PORT { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	allow-new-zones yes;
	dnssec-validation no;
	notify no;
	transfer-source 127.0.0.1;
	catalog-zones {
		zone "$CATALOG" default-primaries { 127.0.0.1 port $PORT; };
	};
};
include "$DIR/rndc.key";
controls {
	inet 127.0.0.1 port $SEC_CTL_PORT allow { 127.0.0.1; } keys { "rndc-key"; };
};
zone "$CATALOG" {
	type secondary;
	primaries { 127.0.0.1 port $PORT; };
	file "$SEC_DIR/work/catalog.db";
};
logging {
	channel main { file "$SEC_DIR/named.log" versions 2 size 5m; severity info; print-time yes; };
	category default { main; };
	category general { main; };
};
EOF
  start_named "$SEC_CONF" "$SEC_PIDFILE" "$SEC_PORT" "$SEC_DIR/named.log" "${SEC_RNDC[@]}"
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
    echo "HW_DNS_NAMESERVERS=ns1.hostwright.test.,ns2.hostwright.test."
    echo "HW_DNS_CATALOG=$CATALOG"
    echo "HW_DNS_SECONDARY=127.0.0.1:$SEC_PORT"
  } >>"$TESTENV/env.new"
  ;;
down)
  stop_named "$SEC_PIDFILE" "${SEC_RNDC[@]}"
  stop_named "$PIDFILE" "${RNDC[@]}"
  ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
