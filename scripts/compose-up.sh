#!/usr/bin/env bash
# Brings the compose stack up (docs/compose.md): builds what is missing
# (scripts/images.sh), starts every service, waits until each one is healthy,
# and writes .hostwright/compose/env (KEY=value lines for host-side clients
# and tests) with copies of the secrets those clients need. Idempotent:
# running it again leaves one healthy stack (containers whose image or config
# changed are recreated, state volumes are kept).
#
# Environment: HW_COMPOSE_NO_BUILD=1 skips scripts/images.sh (images must
# exist); HW_COMPOSE_TIMEOUT (seconds, default 240) bounds the wait.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/compose.sh
. "$ROOT/scripts/compose.sh"
OUT="$ROOT/.hostwright/compose"
TIMEOUT=${HW_COMPOSE_TIMEOUT:-240}
SERVICES=(postgres webhost webhost2 dns dns2 securemx billing hostwright)

log() { echo "compose-up: $*"; }

docker info >/dev/null 2>&1 || { echo "compose-up: the Docker engine does not answer" >&2; exit 1; }

t0=$SECONDS
if [ "${HW_COMPOSE_NO_BUILD:-0}" != 1 ]; then
  "$ROOT/scripts/images.sh"
fi

log "starting the stack"
compose up -d --no-build --remove-orphans

# The second worker belongs to the stack while it runs (profile two-workers).
if [ "$(docker inspect -f '{{.State.Running}}' hostwright-hostwright-2 2>/dev/null)" = true ]; then
  SERVICES+=(hostwright-2)
fi

# Compose v1 has no `up --wait`: poll the containers' own health checks.
init_state() { docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' hostwright-init 2>/dev/null || echo missing; }
health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "hostwright-$1" 2>/dev/null || echo missing; }
deadline=$((SECONDS + TIMEOUT))
while :; do
  pending=()
  case "$(init_state)" in
  "exited 0") ;;
  "exited "*)
    echo "compose-up: the init service failed:" >&2
    docker logs --tail 30 hostwright-init >&2
    exit 1
    ;;
  *) pending+=(init) ;;
  esac
  for s in "${SERVICES[@]}"; do
    h="$(health "$s")"
    [ "$h" = healthy ] || pending+=("$s($h)")
  done
  ((${#pending[@]} == 0)) && break
  if ((SECONDS >= deadline)); then
    echo "compose-up: not healthy after ${TIMEOUT} s: ${pending[*]}" >&2
    for s in "${SERVICES[@]}"; do
      [ "$(health "$s")" = healthy ] && continue
      echo "--- hostwright-$s (last log lines)" >&2
      docker logs --tail 20 "hostwright-$s" >&2 2>&1 || true
    done
    exit 1
  fi
  sleep 1
done

# Copies of what host-side clients need, readable by the invoking user only.
mkdir -p "$OUT"
chmod 0700 "$OUT"
copy_secret() {
  (umask 077 && docker exec hostwright-hostwright cat "/secrets/$1" >"$OUT/$2.tmp")
  mv "$OUT/$2.tmp" "$OUT/$2"
}
copy_secret ops-token ops-token
copy_secret securemx-api-key securemx-api-key
copy_secret billing-secret billing-secret
copy_secret ca/ca.crt ca.crt
copy_secret ssh/id_ed25519 id_ed25519
copy_secret ssh/known_hosts known_hosts
pg_password="$(docker exec hostwright-hostwright cat /secrets/postgres-password | tr -d '[:space:]')"

(
  umask 077
  cat >"$OUT/env.tmp" <<EOF
HW_COMPOSE_PROJECT=hostwright
HW_COMPOSE_FILE=$ROOT/docker-compose.yml
HW_COMPOSE_CMD=$ROOT/scripts/compose.sh
HW_COMPOSE_URL=http://127.0.0.1:18080
HW_COMPOSE_URL_2=http://127.0.0.1:18082
HW_COMPOSE_TOKEN_FILE=$OUT/ops-token
HW_COMPOSE_WEB_HOSTS="web1 web2"
HW_COMPOSE_WEB1_SERVICE=webhost
HW_COMPOSE_WEB1_HTTP=127.0.0.1:18081
HW_COMPOSE_WEB1_HTTPS=127.0.0.1:18443
HW_COMPOSE_WEB1_FTP=127.0.0.1:18021
HW_COMPOSE_WEB1_SSH=127.0.0.1:18022
HW_COMPOSE_WEB2_SERVICE=webhost2
HW_COMPOSE_WEB2_HTTP=127.0.0.1:18281
HW_COMPOSE_WEB2_HTTPS=127.0.0.1:18643
HW_COMPOSE_WEB2_FTP=127.0.0.1:18221
HW_COMPOSE_WEB2_SSH=127.0.0.1:18222
HW_COMPOSE_WEB_HTTP=127.0.0.1:18081
HW_COMPOSE_WEB_HTTPS=127.0.0.1:18443
HW_COMPOSE_CA=$OUT/ca.crt
HW_COMPOSE_FTP=127.0.0.1:18021
HW_COMPOSE_SSH=127.0.0.1:18022
HW_COMPOSE_SSH_KEY=$OUT/id_ed25519
HW_COMPOSE_KNOWN_HOSTS=$OUT/known_hosts
HW_COMPOSE_DNS=127.0.0.1:18053
HW_COMPOSE_DNS2=127.0.0.1:18054
HW_COMPOSE_SECUREMX_URL=https://127.0.0.1:18090
HW_COMPOSE_SECUREMX_KEY_FILE=$OUT/securemx-api-key
HW_COMPOSE_BILLING_URL=https://127.0.0.1:18091
HW_COMPOSE_BILLING_SECRET_FILE=$OUT/billing-secret
HW_COMPOSE_PG=postgres://hostwright:$pg_password@127.0.0.1:18432/hostwright
HW_COMPOSE_BIN=$ROOT/target/release/hostwright
EOF
)
mv "$OUT/env.tmp" "$OUT/env"
log "healthy in $((SECONDS - t0)) s: ${SERVICES[*]} (coordinates in $OUT/env)"
