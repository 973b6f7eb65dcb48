#!/usr/bin/env bash
# Let's Encrypt's ACME test server (Debian's `pebble`) on
# https://127.0.0.1:55400/dir (management 127.0.0.1:55401), for the webhost
# adapter's ACME certificates. Its HTTPS certificate comes from a test CA
# made here ($TESTENV/pebble/ca.crt: Debian's package does not ship
# pebble's own test certificates). HTTP-01 challenges are validated against
# the testenv nginx (httpPort 55080), and every name resolves to 127.0.0.1
# through pebble-challtestsrv's mock DNS (127.0.0.1:55402, A records only),
# so test domains need no zone. No sleeps, no rejected nonces, no reused
# authorizations: every order validates its challenges, quickly.
# Idempotent: a daemon already up is left running.
set -euo pipefail
PORT=55400
MGMT_PORT=55401
DNS_PORT=55402
DNS_MGMT_PORT=55403
HTTP_PORT=55080
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
. "$ROOT/scripts/testenv/daemon.sh"
DIR="$TESTENV/pebble"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

case "${1:-}" in
up)
  command -v pebble >/dev/null || { echo "pebble: not installed; run scripts/install-deps.sh" >&2; exit 1; }
  mkdir -p "$DIR"
  if ! [ -s "$DIR/ca.crt" ] || ! [ -s "$DIR/localhost.crt" ]; then
    (
      umask 077
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$DIR/ca.key" -out "$DIR/ca.crt" -days 3650 \
        -subj "/CN=hostwright pebble HTTPS test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$DIR/localhost.key" -out "$DIR/localhost.csr" -subj "/CN=localhost" 2>/dev/null
      printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$DIR/ext.cnf"
      openssl x509 -req -in "$DIR/localhost.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
        -CAcreateserial -days 3650 -extfile "$DIR/ext.cnf" -out "$DIR/localhost.crt" 2>/dev/null
    )
    chmod 644 "$DIR/ca.crt" "$DIR/localhost.crt"
  fi
  cat >"$DIR/pebble.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$PORT",
    "managementListenAddress": "127.0.0.1:$MGMT_PORT",
    "certificate": "$DIR/localhost.crt",
    "privateKey": "$DIR/localhost.key",
    "httpPort": $HTTP_PORT,
    "tlsPort": 55443,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
  if ! alive "$DIR/challtestsrv.pid"; then
    setsid nohup pebble-challtestsrv -dns01 "127.0.0.1:$DNS_PORT" -http01 "" -https01 "" \
      -tlsalpn01 "" -management "127.0.0.1:$DNS_MGMT_PORT" -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
      >>"$DIR/challtestsrv.log" 2>&1 </dev/null &
    echo $! >"$DIR/challtestsrv.pid"
  fi
  if ! alive "$DIR/pebble.pid"; then
    PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
      setsid nohup pebble -config "$DIR/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT" \
      >>"$DIR/pebble.log" 2>&1 </dev/null &
    echo $! >"$DIR/pebble.pid"
  fi
  ok=
  for _ in $(seq 1 100); do
    if curl -fsS --cacert "$DIR/ca.crt" "https://127.0.0.1:$PORT/dir" >/dev/null 2>&1; then ok=1; break; fi
    alive "$DIR/pebble.pid" || { echo "pebble: exited; see $DIR/pebble.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$ok" ] || { echo "pebble: no answer on $PORT; see $DIR/pebble.log" >&2; exit 1; }
  {
    echo "HW_ACME_DIRECTORY=https://127.0.0.1:$PORT/dir"
    echo "HW_ACME_CA_FILE=$DIR/ca.crt"
    echo "HW_ACME_MANAGEMENT=https://127.0.0.1:$MGMT_PORT"
  } >>"$TESTENV/env.new"
  ;;
down)
  daemon_down "$DIR/pebble.pid"
  daemon_down "$DIR/challtestsrv.pid"
  ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
