//! The remote shell scripts of the web host adapter.
//!
//! Each is a constant: values reach it only as quoted positional parameters
//! (`hostwright_ssh::Command::script`), already validated by the adapter.
//! Account changes take `flock` on `<home_root>/.hostwright.lock` so that
//! two hostwright processes (or steps) never pick the same UID.
//!
//! Exit codes: 20 = refused (not ours / inconsistent: permanent),
//! 21 = no free UID (permanent), 22 = lock timeout (transient).

/// Facts are printed as `key=value` lines. (Account changes are batched:
/// `crate::spaces::BATCH_WEBSPACES`.)
///
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

/// $1 user: prints the passwd entry's home; exit 3 when absent.
pub const USER_HOME: &str = r#"ent=$(getent passwd "$1") || exit 3
printf '%s\n' "$ent" | cut -d: -f6"#;

/// $@ files to delete (missing ones are fine); prints `existed=N`.
pub const REMOVE_FILES: &str = r#"n=0
for f in "$@"; do
  if [ -e "$f" ]; then rm -f -- "$f"; n=$((n + 1)); fi
done
echo "existed=$n""#;

/// $@ files: exit 0 when every one exists and is not empty, else 3.
pub const FILES_EXIST: &str = r#"for f in "$@"; do [ -s "$f" ] || exit 3; done"#;

/// An ACME HTTP-01 answer: $1 the challenge directory (made 0755 so nginx's
/// workers can read it), $2 the token (base64url, checked by the adapter),
/// stdin the key authorization; written atomically, mode 0644.
pub const ACME_TOKEN: &str = r#"set -e
mkdir -p -- "$1"
chmod 0755 -- "$1"
t=$(mktemp "$1/.hw-tmp.XXXXXX")
trap 'rm -f -- "$t"' EXIT
cat >"$t"
chmod 0644 "$t"
mv -f -- "$t" "$1/$2"
trap - EXIT"#;

/// The drift scan of a batch of web spaces and vhosts, in one command:
/// $1 home root, $2 sites dir, $3 TLS dir, then items `u:USER` (a web
/// space) and `d:DOMAIN` (a vhost). Prints a `[u USER]` or `[d DOMAIN]`
/// header per item, then `key=value` lines; free text (GECOS, files) is
/// base64 so that no byte of it can break the format.
pub const SCAN: &str = r#"set -u
hr=$1 sd=$2 td=$3
shift 3
for it in "$@"; do
  n=${it#?:}
  case "$it" in
  u:*)
    echo "[u $n]"
    if ent=$(getent passwd "$n"); then
      echo "present=1"
      echo "uid=$(printf %s "$ent" | cut -d: -f3)"
      echo "gid=$(printf %s "$ent" | cut -d: -f4)"
      echo "home=$(printf %s "$ent" | cut -d: -f6 | tr -d '\n' | base64 -w0)"
      echo "gecos=$(printf %s "$ent" | cut -d: -f5 | tr -d '\n' | base64 -w0)"
      h=$hr/$n
      if [ -d "$h" ]; then
        echo "home_mode=$(stat -c %a "$h")"
        echo "home_owner=$(stat -c %u:%g "$h")"
      fi
      echo "quota_mb=$(cat "$h/.hostwright/quota" 2>/dev/null || true)"
      exp=$(getent shadow "$n" | cut -d: -f8)
      if [ "$exp" = 1 ]; then echo "locked=true"; else echo "locked=false"; fi
      if [ -e "$h/.hostwright/suspended" ]; then echo "suspended=true"; else echo "suspended=false"; fi
    else
      echo "present=0"
    fi
    ;;
  d:*)
    echo "[d $n]"
    f=$sd/$n.conf
    if [ -f "$f" ]; then
      echo "present=1"
      echo "conf=$(base64 -w0 <"$f")"
    else
      echo "present=0"
    fi
    if [ -f "$td/$n.meta" ]; then echo "meta=$(base64 -w0 <"$td/$n.meta")"; fi
    ;;
  esac
done
"#;

/// Everything on the host carrying hostwright's marker, in one command:
/// $1 sites dir, $2 home root. Prints `u USER CONTRACT` for each account
/// whose GECOS is `hostwright CONTRACT` and whose home is under the home
/// root (another instance's accounts are not ours to judge), and
/// `d DOMAIN CONTRACT` for each vhost file whose first line is the marker
/// (`render::marker_line`).
pub const INVENTORY: &str = r##"set -u
getent passwd | while IFS=: read -r u _ _ _ g h _; do
  case "$g" in "hostwright "*) [ "$h" = "$2/$u" ] && echo "u $u ${g#hostwright }" ;; esac
done
for f in "$1"/*.conf; do
  [ -f "$f" ] || continue
  l=$(head -n1 "$f")
  case "$l" in
  "# managed by hostwright (contract "*)
    c=${l#*contract }
    b=${f##*/}
    echo "d ${b%.conf} ${c%%,*}"
    ;;
  esac
done
"##;

/// $1 home: one digest of every path under it (type, mode, owner and
/// group by name, path, link target) and of each file's content. Equal on
/// two hosts means the same files with the same content, ownership and
/// modes (times are not compared: extraction sets directories' own).
pub const HOME_MANIFEST: &str = r#"set -eu
cd -- "$1"
{ find . -printf '%y %m %u %g %p %l\n' | LC_ALL=C sort
  find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum --
} | sha256sum | cut -d' ' -f1"#;

/// $1 home: its files as a tar stream on stdout (owners by name, modes
/// kept; the user and group names are the same on every host).
pub const HOME_EXPORT: &str =
    r#"cd -- "$1" && exec tar --create --preserve-permissions --one-file-system --file=- ."#;

/// $1 home: replaces everything under it with the tar stream on stdin. Run
/// only on a relocation's target before the site is switched to it, so
/// what it deletes is an earlier, unfinished copy.
pub const HOME_IMPORT: &str = r#"set -eu
cd -- "$1"
find . -mindepth 1 -delete
exec tar --extract --preserve-permissions --same-owner --file=-"#;
