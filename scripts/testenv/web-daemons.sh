# Shared by services/webhost.sh and services/webhost2.sh (sourced, not a
# service of its own): a test web host's nginx and pure-ftpd under $DIR.

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$(basename "$DIR"): port $1 did not open" >&2
  return 1
}

# nginx on 127.0.0.1:$1 (its default server answers 404), including
# $DIR/sites/*.conf.
nginx_up() {
  local http_port=$1
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
    listen 127.0.0.1:$http_port default_server;
    server_name _;
    return 404;
  }
  include $DIR/sites/*.conf;
}
CONF
  if ! alive "$DIR/nginx/nginx.pid"; then
    nginx -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log"
  fi
  wait_port "$http_port"
}

# pure-ftpd on 127.0.0.1:$1 with passive ports $2 (FROM:TO), reading
# $DIR/ftp/pureftpd.pdb built from $DIR/ftp/pureftpd.passwd.
ftpd_up() {
  local ftp_port=$1 passive=$2
  touch "$DIR/ftp/pureftpd.passwd"
  chmod 600 "$DIR/ftp/pureftpd.passwd"
  [ -s "$DIR/ftp/pureftpd.pdb" ] || pure-pw mkdb "$DIR/ftp/pureftpd.pdb" -f "$DIR/ftp/pureftpd.passwd"
  if ! alive "$DIR/ftp/pure-ftpd.pid"; then
    pure-ftpd -l "puredb:$DIR/ftp/pureftpd.pdb" -S "127.0.0.1,$ftp_port" -p "$passive" \
      -P 127.0.0.1 -E -A -H -B -g "$DIR/ftp/pure-ftpd.pid" >/dev/null
  fi
  wait_port "$ftp_port"
}

# Stops the daemons of these pidfiles, then removes the test accounts
# hostwright made (GECOS marker) whose home is under $DIR/home.
web_down() {
  for pidfile in "$@"; do
    if alive "$pidfile"; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  getent passwd | awk -F: -v root="$DIR/home/" \
    '$5 ~ /^hostwright/ && index($6, root) == 1 { print $1 }' |
    while read -r u; do userdel -r "$u" 2>/dev/null || userdel "$u" 2>/dev/null || true; done
}
