//! The remote shell scripts of the web host adapter.
//!
//! Each is a constant: values reach it only as quoted positional parameters
//! (`hostwright_ssh::Command::script`), already validated by the adapter.
//! Account changes take `flock` on `<home_root>/.hostwright.lock` so that
//! two hostwright processes (or steps) never pick the same UID.
//!
//! Exit codes: 20 = refused (not ours / inconsistent: permanent),
//! 21 = no free UID (permanent), 22 = lock timeout (transient).

/// Facts are printed as `key=value` lines.
///
/// $1 user, $2 home, $3 uid_min, $4 uid_max, $5 gecos, $6 home_root,
/// $7 quota_mb, $8 suspended (0|1); stdin: the default index page.
pub const ENSURE_WEBSPACE: &str = r#"set -eu
user=$1 home=$2 umin=$3 umax=$4 gecos=$5 root=$6 quota=$7 susp=$8
mkdir -p "$root"
exec 9>>"$root/.hostwright.lock"
flock -w 30 9 || exit 22
created=0
if ent=$(getent passwd "$user"); then
  case "$(printf %s "$ent" | cut -d: -f5)" in
    hostwright*) ;;
    *) echo "account $user exists and is not managed by hostwright" >&2; exit 20 ;;
  esac
  if [ "$(printf %s "$ent" | cut -d: -f6)" != "$home" ]; then
    echo "account $user has another home than $home" >&2; exit 20
  fi
else
  if g=$(getent group "$user"); then
    gid=$(printf %s "$g" | cut -d: -f3)
    if [ "$gid" -lt "$umin" ] || [ "$gid" -gt "$umax" ]; then
      echo "group $user exists outside the customer range" >&2; exit 20
    fi
    uid=$gid
    if getent passwd "$uid" >/dev/null; then echo "uid $uid is taken" >&2; exit 20; fi
  else
    # The first id free as both uid and gid, in one pass over the databases
    # (one getent per taken id made a batch of N accounts O(N^2) execs).
    uid=$({ getent passwd; getent group; } | awk -F: -v lo="$umin" -v hi="$umax" \
      '$3 >= lo && $3 <= hi { t[$3] = 1 } END { for (i = lo; i <= hi; i++) if (!(i in t)) { print i; exit } }')
    [ -n "$uid" ] || { echo "no free uid in $umin-$umax" >&2; exit 21; }
    groupadd -g "$uid" "$user"
  fi
  useradd -u "$uid" -g "$user" -d "$home" -M -s /usr/sbin/nologin -c "$gecos" "$user"
  created=1
fi
uid=$(id -u "$user"); gid=$(id -g "$user")
if [ "$uid" -lt "$umin" ] || [ "$uid" -gt "$umax" ]; then
  echo "account $user has uid $uid outside $umin-$umax" >&2; exit 20
fi
mkdir -p "$home"
chown "$uid:$gid" "$home"; chmod 0711 "$home"
new_site=0
[ -d "$home/public_html" ] || { mkdir "$home/public_html"; new_site=1; }
chown "$uid:$gid" "$home/public_html"; chmod 0755 "$home/public_html"
if [ "$new_site" = 1 ]; then
  cat >"$home/public_html/index.html"
  chown "$uid:$gid" "$home/public_html/index.html"; chmod 0644 "$home/public_html/index.html"
else
  cat >/dev/null
fi
mkdir -p "$home/.hostwright"
chown root:root "$home/.hostwright"; chmod 0755 "$home/.hostwright"
if [ "$(cat "$home/.hostwright/quota" 2>/dev/null)" != "$quota" ]; then
  printf '%s\n' "$quota" >"$home/.hostwright/quota.tmp"
  mv -f "$home/.hostwright/quota.tmp" "$home/.hostwright/quota"
fi
enforced=false
mp=$(df -P "$home" | awk 'NR==2 {print $6}')
if command -v quotaon >/dev/null 2>&1 && quotaon -pu "$mp" 2>/dev/null | grep -q ' is on'; then
  setquota -u "$user" $((quota * 1024)) $((quota * 1024)) 0 0 "$mp"
  enforced=true
fi
pw=$(getent shadow "$user" | cut -d: -f2)
exp=$(getent shadow "$user" | cut -d: -f8)
if [ "$susp" = 1 ]; then
  case "$pw" in '!'*) ;; *) usermod -L "$user" ;; esac
  [ "$exp" = 1 ] || usermod -e 1 "$user"
  : >"$home/.hostwright/suspended"
else
  case "$pw" in '!!'*) usermod -U "$user" ;; esac
  [ -z "$exp" ] || usermod -e '' "$user"
  rm -f "$home/.hostwright/suspended"
fi
echo "uid=$uid"
echo "gid=$gid"
echo "home=$home"
echo "created=$created"
echo "quota_enforced=$enforced"
"#;

/// $1 user, $2 home. Exit 3 when the account is absent.
pub const OBSERVE_WEBSPACE: &str = r#"set -eu
ent=$(getent passwd "$1") || exit 3
echo "uid=$(printf %s "$ent" | cut -d: -f3)"
echo "gid=$(printf %s "$ent" | cut -d: -f4)"
echo "home=$(printf %s "$ent" | cut -d: -f6)"
echo "gecos=$(printf %s "$ent" | cut -d: -f5)"
echo "quota_mb=$(cat "$2/.hostwright/quota" 2>/dev/null || true)"
pw=$(getent shadow "$1" | cut -d: -f2)
exp=$(getent shadow "$1" | cut -d: -f8)
# The password of a hostwright account is always locked ('!', no Unix
# password); suspension is the expiry date 1 (1970-01-02), which refuses
# every login, key-based ones included.
case "$pw" in '!'*) pw_locked=true ;; *) pw_locked=false ;; esac
if [ "$exp" = 1 ]; then locked=true; else locked=false; fi
echo "password_locked=$pw_locked"
echo "locked=$locked"
if [ -e "$2/.hostwright/suspended" ]; then echo "suspended=true"; else echo "suspended=false"; fi
"#;

/// $1 user, $2 home, $3 home_root, $4 archive_dir, $5 timestamp.
pub const REMOVE_WEBSPACE: &str = r#"set -eu
user=$1 home=$2 root=$3 archive=$4 stamp=$5
exec 9>>"$root/.hostwright.lock"
flock -w 30 9 || exit 22
ent=$(getent passwd "$user") || { echo "removed=false"; exit 0; }
case "$(printf %s "$ent" | cut -d: -f5)" in
  hostwright*) ;;
  *) echo "account $user exists and is not managed by hostwright" >&2; exit 20 ;;
esac
if [ "$(printf %s "$ent" | cut -d: -f6)" != "$home" ]; then
  echo "account $user has another home than $home" >&2; exit 20
fi
if [ -d "$home" ]; then
  out="$archive/$user-$stamp.tar.gz"
  tar -czf "$out.part" -C "$root" "$user"
  chmod 0600 "$out.part"
  mv -f "$out.part" "$out"
  echo "archive=$out"
fi
pkill -KILL -u "$user" 2>/dev/null || true
userdel -r "$user" 2>/dev/null || userdel "$user"
rm -rf -- "$home"
if getent group "$user" >/dev/null; then groupdel "$user" 2>/dev/null || true; fi
echo "removed=true"
"#;

/// $1 user: prints the passwd entry's home; exit 3 when absent.
pub const USER_HOME: &str = r#"ent=$(getent passwd "$1") || exit 3
printf '%s\n' "$ent" | cut -d: -f6"#;

/// $@ files to delete (missing ones are fine); prints `existed=N`.
pub const REMOVE_FILES: &str = r#"n=0
for f in "$@"; do
  if [ -e "$f" ]; then rm -f -- "$f"; n=$((n + 1)); fi
done
echo "existed=$n""#;

/// Read-compare-write of a vhost file in one command (the comparison used
/// to be a read and a write, each its own SSH command).
///
/// $1 user (empty: no owner check), $2 home, $3 site file, $4.. files
/// whose presence is reported (the certificate of a vhost that no longer
/// wants TLS); stdin: the file's new contents. Exit 3 when the user does
/// not exist, 4 when it lives elsewhere than $2 (nothing written either
/// way). Prints `changed=0|1` and `stale=N` (how many of $4.. exist).
pub const INSTALL_SITE: &str = r#"set -eu
user=$1 home=$2 file=$3
shift 3
if [ -n "$user" ]; then
  ent=$(getent passwd "$user") || exit 3
  [ "$(printf %s "$ent" | cut -d: -f6)" = "$home" ] || exit 4
fi
t=$(mktemp "$(dirname -- "$file")/.hw-tmp.XXXXXX")
trap 'rm -f -- "$t"' EXIT
cat >"$t"
if [ -f "$file" ] && cmp -s -- "$t" "$file"; then
  changed=0
else
  chmod 0644 "$t"
  chown root:root "$t"
  mv -f -- "$t" "$file"
  changed=1
fi
n=0
for f in "$@"; do if [ -e "$f" ]; then n=$((n + 1)); fi; done
echo "changed=$changed"
echo "stale=$n"
"#;
