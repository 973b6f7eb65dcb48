#!/usr/bin/env bash
# A second test web host for fleets (issue #13): its own nginx (http
# 127.0.0.1:55081, https 127.0.0.1:55444) and pure-ftpd (127.0.0.1:55031,
# passive 55300-55399) with its own homes, sites, certificates and FTP
# passwd under $TESTENV/webhost2, reached through the first web host's sshd
# and issuing certificates with its CA (webhost.sh runs first). Unix
# accounts are this machine's, shared with the first host: a fleet on
# loopback gives each host its own UID range and homes. `down` stops the
# daemons and removes leftover test accounts whose home is under this root.
set -euo pipefail
HTTP_PORT=55081
HTTPS_PORT=55444
FTP_PORT=55031
DIR="$TESTENV/webhost2"

# shellcheck source=scripts/testenv/web-daemons.sh
. "$(dirname "$0")/../web-daemons.sh"

case "${1:-}" in
up)
  mkdir -p "$DIR"/{home,sites,tls,archive,suspended,nginx,ftp}
  chmod 0755 "$DIR" "$DIR/home" "$DIR/suspended"
  chmod 0700 "$DIR/tls" "$DIR/archive"
  nginx_up "$HTTP_PORT"
  ftpd_up "$FTP_PORT" 55300:55399

  cat >>"$TESTENV/env.new" <<ENV
HW_WEB2_ROOT=$DIR
HW_WEB2_NGINX_CONF=$DIR/nginx/nginx.conf
HW_WEB2_HTTP_PORT=$HTTP_PORT
HW_WEB2_HTTPS_PORT=$HTTPS_PORT
HW_FTP2_PORT=$FTP_PORT
HW_FTP2_PASSWD=$DIR/ftp/pureftpd.passwd
HW_FTP2_PDB=$DIR/ftp/pureftpd.pdb
ENV
  ;;
down)
  # Leftover test accounts: only those hostwright created (GECOS marker)
  # and whose home is under this test root.
  web_down "$DIR/ftp/pure-ftpd.pid" "$DIR/nginx/nginx.pid"
  ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
