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

# shellcheck source=scripts/testenv/web-daemons.sh
. "$(dirname "$0")/../web-daemons.sh"

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

  # --- nginx and pure-ftpd (web-daemons.sh) ----------------------------------
  nginx_up "$HTTP_PORT"
  ftpd_up "$FTP_PORT" 55100:55199

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
  # Leftover test accounts: only those hostwright created (GECOS marker)
  # and whose home is under this test root.
  web_down "$DIR/ftp/pure-ftpd.pid" "$DIR/nginx/nginx.pid" "$DIR/sshd/sshd.pid"
  ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
