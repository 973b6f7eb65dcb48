# Sourced by the service scripts that run one of our own binaries as a
# background daemon: start it once (pidfile), wait for its health URL, stop it.

# running PIDFILE: true when the daemon of PIDFILE is alive.
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# daemon_up NAME PIDFILE LOG HEALTH_URL -- COMMAND...
daemon_up() {
  local name="$1" pidfile="$2" log="$3" health="$4"
  shift 5
  if ! running "$pidfile"; then
    [ -x "$1" ] || { echo "$name: $1 missing; run cargo build --workspace" >&2; exit 1; }
    setsid nohup "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
  fi
  for _ in $(seq 1 100); do
    curl -fsS "$health" >/dev/null 2>&1 && return 0
    running "$pidfile" || { echo "$name: exited; see $log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$name: no answer from $health; see $log" >&2
  exit 1
}

# daemon_down PIDFILE: SIGTERM, then wait up to 5 s for it to go.
daemon_down() {
  if running "$1"; then
    local pid
    pid="$(cat "$1")"
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$1"
}

# secret_file PATH: 32 random bytes in hex, made once, readable by root only.
secret_file() {
  [ -s "$1" ] || (umask 077; openssl rand -hex 32 >"$1")
}
