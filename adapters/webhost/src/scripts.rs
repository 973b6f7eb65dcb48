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
