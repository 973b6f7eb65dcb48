#!/usr/bin/env bash
# The test web host: this machine, reached over SSH, with its own sshd
# (127.0.0.1:55022), nginx (http 127.0.0.1:55080, https 127.0.0.1:55443) and
# pure-ftpd (127.0.0.1:55021, passive 55100-55199), plus a test CA whose key
# hostwright uses to issue vhost certificates. Everything lives under
# $TESTENV/webhost (home/, sites/, tls/, archive/, suspended/); nothing
# depends on systemd. `down` stops the daemons by pidfile and removes leftover
# test Unix users (GECOS starting with "hostwright").
set -euo pipefail
SSH_PORT=55022
HTTP_PORT=55080
HTTPS_PORT=55443
FTP_PORT=55021
DIR="$TESTENV/webhost"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "webhost: port $1 did not open" >&2
  return 1
}

case "${1:-}" in
up)
  mkdir -p "$DIR"/{home,sites,tls,archive,suspended,nginx,sshd,ftp}
  # Customers' homes must be reachable (x) by the nginx workers (nobody).
  chmod 0755 "$DIR" "$DIR/home" "$DIR/suspended"
  chmod 0700 "$DIR/tls" "$DIR/archive"

  # --- sshd -----------------------------------------------------------------
  [ -s "$DIR/sshd/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/sshd/host_ed25519"
  [ -s "$DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C hostwright-test -f "$DIR/id_ed25519"
  cp "$DIR/id_ed25519.pub" "$DIR/sshd/authorized_keys"
  chmod 600 "$DIR/sshd/authorized_keys" "$DIR/id_ed25519"
  echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$DIR/sshd/host_ed25519.pub")" >"$DIR/known_hosts"
  cat >"$DIR/sshd/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $DIR/sshd/host_ed25519
PidFile $DIR/sshd/sshd.pid
AuthorizedKeysFile $DIR/sshd/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
MaxSessions 64
MaxStartups 64:30:128
# Root's login shell is bash, which sources ~/.bashrc for every command sshd
# starts unless it believes it is a nested shell (SHLVL >= 1). On the
# development and CI machines root's ~/.bashrc runs `pyenv init`, ~165 ms per
# command, which a web host's root does not do: without this every SSH
# command of the tests and benchmarks (hostwright's and Ansible's alike)
# would measure this machine's Python version manager.
SetEnv SHLVL=1
EOF
  mkdir -p -m0755 /run/sshd
  if ! alive "$DIR/sshd/sshd.pid"; then
    /usr/sbin/sshd -f "$DIR/sshd/sshd_config" -E "$DIR/sshd/sshd.log"
  fi
  wait_port "$SSH_PORT"

  # --- test CA ----------------------------------------------------------------
  if ! [ -s "$DIR/ca.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$DIR/ca.key" -out "$DIR/ca.crt" -days 3650 \
      -subj "/CN=hostwright test CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 600 "$DIR/ca.key"
  fi

  # --- nginx ----------------------------------------------------------------
  cat >"$DIR/nginx/nginx.conf" <<EOF
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
EOF
  if ! alive "$DIR/nginx/nginx.pid"; then
    nginx -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log"
  fi
  wait_port "$HTTP_PORT"

  # --- pure-ftpd ------------------------------------------------------------
  touch "$DIR/ftp/pureftpd.passwd"
  chmod 600 "$DIR/ftp/pureftpd.passwd"
  [ -s "$DIR/ftp/pureftpd.pdb" ] || pure-pw mkdb "$DIR/ftp/pureftpd.pdb" -f "$DIR/ftp/pureftpd.passwd"
  if ! alive "$DIR/ftp/pure-ftpd.pid"; then
    pure-ftpd -l "puredb:$DIR/ftp/pureftpd.pdb" -S "127.0.0.1,$FTP_PORT" -p 55100:55199 \
      -P 127.0.0.1 -E -A -H -B -g "$DIR/ftp/pure-ftpd.pid" >/dev/null
  fi
  wait_port "$FTP_PORT"

  cat >>"$TESTENV/env.new" <<EOF
HW_WEB_SSH_HOST=127.0.0.1
HW_WEB_SSH_PORT=$SSH_PORT
HW_WEB_SSH_USER=root
HW_WEB_SSH_KEY=$DIR/id_ed25519
HW_WEB_KNOWN_HOSTS=$DIR/known_hosts
HW_WEB_ROOT=$DIR
HW_WEB_NGINX_CONF=$DIR/nginx/nginx.conf
HW_WEB_HTTP_PORT=$HTTP_PORT
HW_WEB_HTTPS_PORT=$HTTPS_PORT
HW_FTP_PORT=$FTP_PORT
HW_FTP_PASSWD=$DIR/ftp/pureftpd.passwd
HW_FTP_PDB=$DIR/ftp/pureftpd.pdb
HW_TLS_CA_CERT=$DIR/ca.crt
HW_TLS_CA_KEY=$DIR/ca.key
EOF
  ;;
down)
  for pidfile in "$DIR/ftp/pure-ftpd.pid" "$DIR/nginx/nginx.pid" "$DIR/sshd/sshd.pid"; do
    if alive "$pidfile"; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  # Leftover test accounts: only those hostwright created (GECOS marker) and
  # whose home is under this test root.
  getent passwd | awk -F: -v root="$DIR/home/" \
    '$5 ~ /^hostwright/ && index($6, root) == 1 { print $1 }' |
    while read -r u; do userdel -r "$u" 2>/dev/null || userdel "$u" 2>/dev/null || true; done
  ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
