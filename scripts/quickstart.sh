#!/usr/bin/env bash
# The README's first command. On a fresh machine of this project's kind it
# installs the Debian packages, builds the images and the release binary,
# brings the compose stack up (docs/compose.md), submits the three signed
# example contracts (WWW with SSL, Secure MX, Pack with DNS) to hostwright,
# waits for their jobs, and shows where each contract landed (the web host of
# the fleet it was placed on) and what it provisioned, each fact read back
# with a real client from this host: the sites over HTTP and HTTPS (curl, on
# their web host), the FTP accounts (a curl login there), the zones (dig, on
# the primary and on the secondary), the mailboxes (the Secure MX mock's API)
# and the billable state the billing sink received.
#
# Run it again at any time: contracts already accepted answer with their
# existing jobs, and the FTP passwords (handed out once by hostwright) are
# kept from the first run under .hostwright/compose/quickstart/ (mode 0600).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
CONTRACTS=(examples/signed/www-ssl.json examples/signed/securemx.json examples/signed/pack-dns.json)

say() { printf '\n== %s\n' "$*"; }
ok() { printf '  %-44s %s\n' "$1" "$2"; }

say "installing the Debian packages (scripts/install-deps.sh)"
scripts/install-deps.sh
say "bringing the compose stack up (scripts/compose-up.sh)"
scripts/compose-up.sh

# shellcheck disable=SC1091
. .hostwright/compose/env
HW=("$HW_COMPOSE_BIN")
API=(--url "$HW_COMPOSE_URL" --token-file "$HW_COMPOSE_TOKEN_FILE")
SAVED=.hostwright/compose/quickstart
mkdir -p "$SAVED"
chmod 0700 "$SAVED"

say "submitting the signed example contracts"
jobs=()
for f in "${CONTRACTS[@]}"; do
  out="$("${HW[@]}" submit --url "$HW_COMPOSE_URL" --json "$f")" || {
    echo "$out"
    echo "quickstart: $f was refused" >&2
    exit 1
  }
  job="$(jq -r '.response.job_id' <<<"$out")"
  printf '%-34s %-8s job %s (%s rev %s)\n' "$f" "$(jq -r '.response.outcome' <<<"$out")" "$job" \
    "$(jq -r '.response.contract_id' <<<"$out")" "$(jq -r '.response.revision' <<<"$out")"
  jobs+=("$job")
done

say "waiting for the jobs"
deadline=$((SECONDS + 300))
last=""
while :; do
  done_n=0 steps=0 total=0 bad=()
  for j in "${jobs[@]}"; do
    d="$("${HW[@]}" jobs show "$j" "${API[@]}" --json)"
    read -r state sd st < <(jq -r '[.summary.state, .summary.steps_done, .summary.steps_total] | @tsv' <<<"$d")
    steps=$((steps + sd))
    total=$((total + st))
    case "$state" in
    succeeded) done_n=$((done_n + 1)) ;;
    failed | cancelled)
      done_n=$((done_n + 1))
      bad+=("$j")
      ;;
    esac
  done
  line="$done_n/${#jobs[@]} jobs ended, $steps/$total steps done"
  [ "$line" != "$last" ] && echo "$line" && last="$line"
  ((done_n == ${#jobs[@]})) && break
  if ((SECONDS >= deadline)); then
    echo "quickstart: the jobs did not end within 300 s" >&2
    "${HW[@]}" jobs list "${API[@]}" >&2
    exit 1
  fi
  sleep 1
done
# This run's jobs only (the stack may hold others, e.g. the compose tests').
printf '%-36s  %-8s %3s  %-10s %5s\n' JOB CONTRACT REV STATE STEPS
for j in "${jobs[@]}"; do
  "${HW[@]}" jobs show "$j" "${API[@]}" --json | jq -r '.summary |
    "\(.job_id)  \(.contract_id | .+"        " | .[0:8]) \(.revision | tostring | "   "[0:3-length] + .)  \(.state | .+"          " | .[0:10]) \(.steps_done)/\(.steps_total)"'
done
if ((${#bad[@]})); then
  for j in "${bad[@]}"; do "${HW[@]}" jobs show "$j" "${API[@]}" >&2; done
  echo "quickstart: ${#bad[@]} job(s) did not succeed" >&2
  exit 1
fi

# The credentials each job created, handed out once by hostwright: kept for
# later runs (and for you) in $SAVED/JOB.json.
secrets_of() {
  local j="$1" s
  s="$("${HW[@]}" jobs secrets "$j" "${API[@]}")"
  if [ "$(jq 'length' <<<"$s")" -gt 0 ]; then
    (umask 077 && printf '%s\n' "$s" >"$SAVED/$j.json")
  fi
  if [ -s "$SAVED/$j.json" ]; then cat "$SAVED/$j.json"; else echo '{}'; fi
}

# The web host (fleet name) a contract was placed on, or "-" (no web space).
placement_of() {
  curl -fsS -m 5 -H "Authorization: Bearer $(cat "$HW_COMPOSE_TOKEN_FILE")" \
    "$HW_COMPOSE_URL/v1/contracts/$1" | jq -r '.placement.host // "-"'
}

# A web host's published coordinate: web_addr web2 HTTP -> 127.0.0.1:18281.
web_addr() {
  local var
  var="HW_COMPOSE_$(tr 'a-z-' 'A-Z_' <<<"$1")_$2"
  echo "${!var}"
}

say "where each contract landed (hostwright hosts list: the fleet)"
"${HW[@]}" hosts list "${API[@]}"
echo
declare -A host_of=()
for j in "${jobs[@]}"; do
  c="$("${HW[@]}" jobs show "$j" "${API[@]}" --json | jq -r '.summary.contract_id')"
  h="$(placement_of "$c")"
  host_of[$j]="$h"
  if [ "$h" = - ]; then
    ok "$c" "no web space (nothing placed)"
  else
    ok "$c" "on $h ($(web_addr "$h" SERVICE), sites $(web_addr "$h" HTTP), FTP $(web_addr "$h" FTP))"
  fi
done

# What each job's steps created, as "kind key" lines.
resources_of() {
  "${HW[@]}" jobs show "$1" "${API[@]}" --json |
    jq -r '.steps[] | select(.step.action != "remove") | "\(.step.resource.kind) \(.step.resource.key)"'
}


mx_key="$(head -n1 "$HW_COMPOSE_SECUREMX_KEY_FILE")"
# Each site and FTP login with the web host its contract was placed on.
domains=() domain_hosts=() ftp_logins=() ftp_hosts=() ftp_passwords=() zones=() tenants=()

for j in "${jobs[@]}"; do
  secrets="$(secrets_of "$j")"
  while read -r kind key; do
    case "$kind" in
    vhost)
      domains+=("$key")
      domain_hosts+=("${host_of[$j]}")
      ;;
    dns_zone) zones+=("$key") ;;
    mx_tenant) tenants+=("$key") ;;
    ftp_account)
      ftp_logins+=("$key")
      ftp_hosts+=("${host_of[$j]}")
      ftp_passwords+=("$(jq -r --arg k "ftp_account/$key/password" '.[$k] // ""' <<<"$secrets")")
      ;;
    esac
  done < <(resources_of "$j")
done

say "web sites (nginx on each contract's web host, published on 127.0.0.1)"
page="$(mktemp)"
trap 'rm -f "$page"' EXIT
for i in "${!domains[@]}"; do
  d="${domains[$i]}" h="${domain_hosts[$i]}"
  http="$(web_addr "$h" HTTP)" https="$(web_addr "$h" HTTPS)"
  ip=${http%:*} http_port=${http#*:} https_port=${https#*:}
  code="$(curl -s -o "$page" -w '%{http_code}' -m 5 --resolve "$d:$http_port:$ip" "http://$d:$http_port/" || true)"
  title="$(sed -n 's:.*<title>\(.*\)</title>.*:\1:p' "$page" | head -n1)"
  ok "http://$d:$http_port/ ($h)" "HTTP $code ${title:+\"$title\"}"
  code="$(curl -s -o /dev/null -w '%{http_code}' -m 5 --cacert "$HW_COMPOSE_CA" \
    --resolve "$d:$https_port:$ip" "https://$d:$https_port/" 2>/dev/null || true)"
  if [ "$code" = 000 ]; then
    ok "https://$d:$https_port/ ($h)" "no TLS for this site"
  else
    issuer="$(echo | openssl s_client -connect "$ip:$https_port" -servername "$d" 2>/dev/null |
      openssl x509 -noout -issuer -enddate 2>/dev/null | tr '\n' ' ')"
    ok "https://$d:$https_port/ ($h)" "HTTPS $code, certificate ${issuer}"
  fi
done

say "FTP accounts (pure-ftpd on each contract's web host; passwords handed out once, kept in $SAVED/)"
for i in "${!ftp_logins[@]}"; do
  login="${ftp_logins[$i]}" pw="${ftp_passwords[$i]}" ftp="$(web_addr "${ftp_hosts[$i]}" FTP)"
  if [ -z "$pw" ]; then
    ok "$login ($ftp)" "password not available (taken by another client)"
    continue
  fi
  if listing="$(curl -s -m 10 --list-only -u "$login:$pw" "ftp://$ftp/")"; then
    ok "$login ($ftp) password $pw" "login ok ($(grep -c . <<<"$listing" || true) entries: $(echo "$listing" | paste -sd' '))"
  else
    ok "$login ($ftp) password $pw" "LOGIN FAILED"
  fi
done

say "DNS zones (BIND primary $HW_COMPOSE_DNS; the secondary $HW_COMPOSE_DNS2 follows its catalog)"
for z in "${zones[@]}"; do
  for q in "$z SOA" "$z NS" "$z A" "www.$z A" "$z MX" "$z TXT"; do
    # shellcheck disable=SC2086
    ans="$(dig @"${HW_COMPOSE_DNS%:*}" -p "${HW_COMPOSE_DNS#*:}" +norec +short +time=2 +tries=1 $q | paste -sd' ')"
    ok "$q" "${ans:-(none)}"
  done
  # The secondary learns the zone from the catalog within seconds.
  sec=""
  for _ in $(seq 1 20); do
    sec="$(dig @"${HW_COMPOSE_DNS2%:*}" -p "${HW_COMPOSE_DNS2#*:}" +norec +short +time=2 +tries=1 "$z" SOA)"
    [ -n "$sec" ] && break
    sleep 0.5
  done
  ok "$z SOA on the secondary" "${sec:-(not there)}"
done

say "Secure MX mailboxes (the mock's API, $HW_COMPOSE_SECUREMX_URL)"
for t in "${tenants[@]}"; do
  tenant="$(curl -fsS -m 5 --cacert "$HW_COMPOSE_CA" -H "Authorization: Bearer $mx_key" "$HW_COMPOSE_SECUREMX_URL/v1/tenants/$t")"
  ok "tenant $t" "$(jq -r '"domains \(.domains | join(",")), \(.mailbox_count) mailbox(es)"' <<<"$tenant" 2>/dev/null || echo "$tenant")"
  curl -fsS -m 5 --cacert "$HW_COMPOSE_CA" -H "Authorization: Bearer $mx_key" "$HW_COMPOSE_SECUREMX_URL/v1/tenants/$t/mailboxes?limit=100" |
    jq -r '.mailboxes[].address' | sed 's/^/    /'
done

say "billable state received by billing ($HW_COMPOSE_BILLING_URL)"
curl -fsS -m 5 --cacert "$HW_COMPOSE_CA" "$HW_COMPOSE_BILLING_URL/v1/billable-states" |
  jq -r --argjson jobs "$(printf '%s\n' "${jobs[@]}" | jq -R . | jq -s .)" '
  def yen: tostring | until(test("^[0-9]{4}") | not; sub("^(?<a>[0-9]+)(?<b>[0-9]{3})"; "\(.a),\(.b)")) | "¥" + .;
  def month: if (.lines | length) == 0 then "    \(.month): nothing billed"
    else "    \(.month): subtotal \(.subtotal | yen) + tax \(.tax | yen) = \(.total | yen)",
      (.lines[] | "      \(.description)  \(.quantity) × \(.unit_price | yen) = \(.amount | yen)") end;
  .records as $r | $jobs[] as $j | [$r[] | select(.body.job_id == $j)] | select(length > 0) |
  "  \(.[0].body.contract_id) rev \(.[0].body.revision) (\(.[0].body.service)): \(length) report(s), receipt \(.[0].receipt_id) at \(.[0].received_at)",
  "    provisioned: \(.[0].body.provisioned | join(", "))",
  (.[-1].body.billable | (.this_month, .next_month) | month)'

d0="${domains[0]:-sakura-trading.co.jp}"
h0="${domain_hosts[0]:-web1}"
z0="${zones[0]:-$d0}"
http0="$(web_addr "$h0" HTTP)" https0="$(web_addr "$h0" HTTPS)" ftp0="$(web_addr "$h0" FTP)"
say "try it yourself"
cat <<EOF
  curl --resolve $d0:${http0#*:}:${http0%:*} http://$d0:${http0#*:}/
  curl --cacert $HW_COMPOSE_CA --resolve $d0:${https0#*:}:${https0%:*} https://$d0:${https0#*:}/
  ftp -p ${ftp0%:*} ${ftp0#*:}          # login ${ftp_logins[0]:-LOGIN}, password above
  curl -u '${ftp_logins[0]:-LOGIN}:PASSWORD' -T README.md ftp://$ftp0/public_html/
  dig @${HW_COMPOSE_DNS%:*} -p ${HW_COMPOSE_DNS#*:} +norec $z0 ANY
  dig @${HW_COMPOSE_DNS2%:*} -p ${HW_COMPOSE_DNS2#*:} +norec $z0 SOA      # the secondary
  $HW_COMPOSE_BIN hosts list --url $HW_COMPOSE_URL --token-file $HW_COMPOSE_TOKEN_FILE
  $HW_COMPOSE_BIN jobs list --url $HW_COMPOSE_URL --token-file $HW_COMPOSE_TOKEN_FILE
  curl --cacert $HW_COMPOSE_CA -H "Authorization: Bearer \$(cat $HW_COMPOSE_SECUREMX_KEY_FILE)" $HW_COMPOSE_SECUREMX_URL/v1/tenants/${tenants[0]:-C-2001}/mailboxes
  curl --cacert $HW_COMPOSE_CA $HW_COMPOSE_BILLING_URL/v1/billable-states
  scripts/compose.sh ps                # the stack; scripts/compose-down.sh removes it and its state
EOF
