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

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "webhost2: port $1 did not open" >&2
  return 1
}

case "${1:-}" in
up)
  mkdir -p "$DIR"/{home,sites,tls,archive,suspended,nginx,ftp}
  chmod 0755 "$DIR" "$DIR/home" "$DIR/suspended"
  chmod 0700 "$DIR/tls" "$DIR/archive"
  cat >"$DIR/nginx/nginx.conf" <<CONF
user nobody nogroup;
worker_processes 1;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log;
events { worker_connections 256; }
http {
  access_log $DIR/nginx/access.log;
  client_body_temp_path $DIR/nginx/client_body;
  proxy_temp_path $DIR/nginx/proxy;
  fastcgi_temp_path $DIR/nginx/fastcgi;
  uwsgi_temp_path $DIR/nginx/uwsgi;
  scgi_temp_path $DIR/nginx/scgi;
  types { text/html html htm; text/plain txt; }
  default_type application/octet-stream;
  server_names_hash_bucket_size 128;
  server {
    listen 127.0.0.1:$HTTP_PORT default_server;
    server_name _;
    return 404;
  }
  include $DIR/sites/*.conf;
}
CONF
  if ! alive "$DIR/nginx/nginx.pid"; then
    nginx -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log"
  fi
  wait_port "$HTTP_PORT"

  touch "$DIR/ftp/pureftpd.passwd"
  chmod 600 "$DIR/ftp/pureftpd.passwd"
  [ -s "$DIR/ftp/pureftpd.pdb" ] || pure-pw mkdb "$DIR/ftp/pureftpd.pdb" -f "$DIR/ftp/pureftpd.passwd"
  if ! alive "$DIR/ftp/pure-ftpd.pid"; then
    pure-ftpd -l "puredb:$DIR/ftp/pureftpd.pdb" -S "127.0.0.1,$FTP_PORT" -p 55300:55399 \
      -P 127.0.0.1 -E -A -H -B -g "$DIR/ftp/pure-ftpd.pid" >/dev/null
  fi
  wait_port "$FTP_PORT"

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
  for pidfile in "$DIR/ftp/pure-ftpd.pid" "$DIR/nginx/nginx.pid"; do
    if alive "$pidfile"; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  getent passwd | awk -F: -v root="$DIR/home/" \
    '$5 ~ /^hostwright/ && index($6, root) == 1 { print $1 }' |
    while read -r u; do userdel -r "$u" 2>/dev/null || userdel "$u" 2>/dev/null || true; done
  ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
