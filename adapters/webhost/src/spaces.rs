//! Web spaces in batches: one SSH command and one hold of the host-wide
//! `flock` per batch of account changes (create, update, suspend, resume,
//! remove), through the shared [`Coalescer`].
//!
//! Why: every SSH command costs a session round trip and root's shell start
//! on the host (~150-300 ms on the test machine), and account changes are
//! serialised under `<home_root>/.hostwright.lock` anyway (so two changes
//! never pick the same UID). One command per account made concurrent
//! web-space steps strictly sequential; a batch pays that cost once.
//!
//! [`BATCH_WEBSPACES`] applies the changes in order, each in its own
//! subshell under `set -e`: a refused or failed account fails only its own
//! step; one result line per change. Free UIDs are picked in one pass over
//! the account databases per batch.

use std::collections::BTreeMap;
use std::sync::Arc;

use hostwright_adapter::AdapterError;
use hostwright_adapter::batch::{BatchRunner, Coalescer, results_by_line, stdin_lines};
use hostwright_ssh::{Command, SshError, SshPool, excerpt};

/// Most changes in one batch: a removal archives a home (tar), and the
/// whole batch must finish within the SSH command timeout.
pub const MAX_BATCH: usize = 100;

/// $1 home_root, $2 uid_min, $3 uid_max, $4 archive_dir.
/// stdin: one change per line, every value validated by the adapter (no ':'
/// nor whitespace): `put:USER:CONTRACT_ID:QUOTA_MB:SUSPENDED(0|1):INDEX_PAGE_BASE64`
/// or `del:USER:CONTRACT_ID:STAMP`. stdout: one line per change, in order,
/// `r:USER:STATUS:TEXT`: STATUS 0 and TEXT = space-separated `key=value`
/// facts, or the change's exit status (20 refused, 21 no free UID: both
/// permanent; other: transient) and TEXT = its error message on one line.
/// Exit 22 on lock timeout (nothing done).
///
/// Per account the same rules as a single ensure always had: an existing
/// account must carry the GECOS marker of the change's contract
/// (`hostwright CONTRACT_ID`; another contract's account is refused, for an
/// ensure and a removal alike) and live at `<home_root>/<user>`;
/// UID = GID, the first free in the range; home 0711, public_html 0755,
/// the index page only when public_html is new; quota recorded (and set
/// when the file system has user quotas on); suspension = password lock +
/// expiry 1 + marker file. Removal archives the home, then deletes the
/// account, home and group.
pub const BATCH_WEBSPACES: &str = r#"set -eu
set -f
root=$1 umin=$2 umax=$3 archive=$4
mkdir -p "$root"
exec 9>>"$root/.hostwright.lock"
flock -w 30 9 || exit 22
w=$(mktemp -d)
trap 'rm -rf -- "$w"' EXIT
cat >"$w/req"
fields() { _ifs=$IFS; IFS=:; set -- $1; IFS=$_ifs
  f2=${2-} f3=${3-} f4=${4-} f5=${5-} f6=${6-} f8=${8-}; }
# The GECOS marker names the owning contract: an account of another
# contract, or one hostwright never made, is refused (exit 20).
owned() {
  case "$1" in
    "hostwright $3") ;;
    hostwright*) echo "account $2 belongs to another contract" >&2; exit 20 ;;
    *) echo "account $2 exists and is not managed by hostwright" >&2; exit 20 ;;
  esac
}
quotaon=$(command -v quotaon || true)
# Free ids (as uid and as gid) for the new accounts, in one pass.
n=$(grep -c '^put:' "$w/req" || true)
free=$({ getent passwd; getent group; } | awk -F: -v lo="$umin" -v hi="$umax" -v n="$n" \
  '$3 >= lo && $3 <= hi { t[$3] = 1 } END { for (i = lo; i <= hi && n > 0; i++) if (!(i in t)) { printf "%d ", i; n-- } }')
ensure_one() {
  set -e
  user=$1 cid=$2 quota=$3 susp=$4 page=$5
  home="$root/$user"
  created=0
  if ent=$(getent passwd "$user"); then
    fields "$ent"
    owned "$f5" "$user" "$cid"
    [ "$f6" = "$home" ] || { echo "account $user has another home than $home" >&2; exit 20; }
    uid=$f3 gid=$f4
  else
    if g=$(getent group "$user"); then
      fields "$g"
      gid=$f3
      if [ "$gid" -lt "$umin" ] || [ "$gid" -gt "$umax" ]; then
        echo "group $user exists outside the customer range" >&2; exit 20
      fi
      uid=$gid
      if getent passwd "$uid" >/dev/null; then echo "uid $uid is taken" >&2; exit 20; fi
    else
      uid=${free%% *}
      [ -n "$uid" ] || { echo "no free uid in $umin-$umax" >&2; exit 21; }
      : >"$w/picked"
      groupadd -g "$uid" "$user"
      gid=$uid
    fi
    useradd -u "$uid" -g "$user" -d "$home" -M -s /usr/sbin/nologin -c "hostwright $cid" "$user"
    created=1
  fi
  if [ "$uid" -lt "$umin" ] || [ "$uid" -gt "$umax" ]; then
    echo "account $user has uid $uid outside $umin-$umax" >&2; exit 20
  fi
  if [ -d "$home/public_html" ]; then new_site=0; else new_site=1; fi
  mkdir -p "$home/.hostwright" "$home/public_html"
  if [ "$new_site" = 1 ]; then
    printf %s "$page" | base64 -d >"$home/public_html/index.html"
    chown "$uid:$gid" "$home" "$home/public_html" "$home/public_html/index.html"
    chmod 0644 "$home/public_html/index.html"
  else
    chown "$uid:$gid" "$home" "$home/public_html"
  fi
  chown root:root "$home/.hostwright"
  chmod 0711 "$home"
  chmod 0755 "$home/public_html" "$home/.hostwright"
  q=
  if [ -f "$home/.hostwright/quota" ]; then read -r q <"$home/.hostwright/quota" || :; fi
  if [ "$q" != "$quota" ]; then
    printf '%s\n' "$quota" >"$home/.hostwright/quota.tmp"
    mv -f "$home/.hostwright/quota.tmp" "$home/.hostwright/quota"
  fi
  enforced=false
  if [ -n "$quotaon" ]; then
    mp=$(df -P "$home" | awk 'NR==2 {print $6}')
    if quotaon -pu "$mp" 2>/dev/null | grep -q ' is on'; then
      setquota -u "$user" $((quota * 1024)) $((quota * 1024)) 0 0 "$mp"
      enforced=true
    fi
  fi
  fields "$(getent shadow "$user")"
  pw=$f2 exp=$f8
  if [ "$susp" = 1 ]; then
    case "$pw" in '!'*) ;; *) usermod -L "$user" ;; esac
    [ "$exp" = 1 ] || usermod -e 1 "$user"
    : >"$home/.hostwright/suspended"
  else
    case "$pw" in '!!'*) usermod -U "$user" ;; esac
    [ -z "$exp" ] || usermod -e '' "$user"
    if [ -e "$home/.hostwright/suspended" ]; then rm -f "$home/.hostwright/suspended"; fi
  fi
  echo "uid=$uid gid=$gid created=$created quota_enforced=$enforced"
}
remove_one() {
  set -e
  user=$1 cid=$2 stamp=$3
  home="$root/$user"
  ent=$(getent passwd "$user") || { echo "removed=false"; return 0; }
  fields "$ent"
  owned "$f5" "$user" "$cid"
  [ "$f6" = "$home" ] || { echo "account $user has another home than $home" >&2; exit 20; }
  out=
  if [ -d "$home" ]; then
    out="$archive/$user-$stamp.tar.gz"
    tar -czf "$out.part" -C "$root" "$user"
    chmod 0600 "$out.part"
    mv -f "$out.part" "$out"
  fi
  pkill -KILL -u "$user" 2>/dev/null || true
  userdel -r "$user" 2>/dev/null || userdel "$user"
  rm -rf -- "$home"
  if getent group "$user" >/dev/null; then groupdel "$user" 2>/dev/null || true; fi
  echo "removed=true archive=$out"
}
set +e
while IFS=: read -r op user a b c d; do
  case $op in
    put) res=$(ensure_one "$user" "$a" "$b" "$c" "$d" 2>"$w/err"); st=$?
         # A picked id is used (or half used) now: never offer it again.
         if [ -e "$w/picked" ]; then free=${free#* }; rm -f "$w/picked"; fi ;;
    del) res=$(remove_one "$user" "$a" "$b" 2>"$w/err"); st=$? ;;
    *) echo "unknown change $op" >"$w/err"; st=20 ;;
  esac
  if [ "$st" = 0 ]; then
    echo "r:$user:0:$res"
  else
    echo "r:$user:$st:$(head -c 500 "$w/err" | tr '\n' ' ')"
  fi
done <"$w/req"
"#;

/// One account change. Values must be validated (user names, contract
/// ids); [`Change::encode`] refuses anything that could shift the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create or update the web space of `user`.
    Ensure {
        user: String,
        contract_id: String,
        quota_mb: u64,
        suspended: bool,
        /// The default index page (written only into a new public_html).
        index_page: String,
    },
    /// Archive and delete the web space of `user` (absent is fine), if it
    /// is `contract_id`'s.
    Remove {
        user: String,
        contract_id: String,
        stamp: String,
    },
}

impl Change {
    fn user(&self) -> &str {
        match self {
            Change::Ensure { user, .. } | Change::Remove { user, .. } => user,
        }
    }

    /// The stdin line of [`BATCH_WEBSPACES`].
    pub fn encode(&self) -> Result<String, AdapterError> {
        let (line, fields) = match self {
            Change::Ensure {
                user,
                contract_id,
                quota_mb,
                suspended,
                index_page,
            } => (
                format!(
                    "put:{user}:{contract_id}:{quota_mb}:{}:{}",
                    u8::from(*suspended),
                    base64(index_page.as_bytes())
                ),
                6,
            ),
            Change::Remove {
                user,
                contract_id,
                stamp,
            } => (format!("del:{user}:{contract_id}:{stamp}"), 4),
        };
        if line.split(':').count() != fields
            || line.contains(|c: char| c.is_whitespace() || c.is_control())
            || self.user().is_empty()
        {
            return Err(AdapterError::permanent(format!(
                "webhost: refusing to send a malformed web space change for {:?}",
                self.user().chars().take(80).collect::<String>()
            )));
        }
        Ok(line)
    }
}

/// Standard base64 (RFC 4648, with padding), what `base64 -d` reads.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The facts of one applied change (`key=value` of its result line).
pub type Facts = BTreeMap<String, String>;

/// Parses the result line of `change`: `None` when it is not this change's.
pub fn parse_result(change: &Change, line: &str) -> Option<Result<Facts, AdapterError>> {
    let mut f = line.splitn(4, ':');
    let (tag, user, status, text) = (f.next()?, f.next()?, f.next()?, f.next()?);
    if tag != "r" || user != change.user() {
        return None;
    }
    let status: i32 = status.parse().ok()?;
    let what = match change {
        Change::Ensure { .. } => "ensuring the web space",
        Change::Remove { .. } => "removing the web space",
    };
    Some(match status {
        0 => Ok(text
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()),
        20 | 21 => Err(AdapterError::permanent(format!(
            "{what} {user}: {}",
            text.trim()
        ))),
        _ => Err(AdapterError::transient(
            SshError::Exit {
                what: format!("{what} {user}"),
                status,
                stderr: text.trim().to_string(),
            }
            .to_string(),
        )),
    })
}

/// Where the batch script works on the host.
#[derive(Debug, Clone)]
pub struct Target {
    pub home_root: String,
    pub uid_min: u32,
    pub uid_max: u32,
    pub archive_dir: String,
}

/// The web space runner of one host.
pub struct SpaceBatch {
    pool: Arc<SshPool>,
    target: Target,
}

/// The web space coordinator of one host.
pub type Spaces = Coalescer<SpaceBatch>;

/// A coordinator for `target` on the host behind `pool`.
pub fn spaces(pool: Arc<SshPool>, target: Target) -> Arc<Spaces> {
    Coalescer::new(SpaceBatch { pool, target }, MAX_BATCH)
}

#[async_trait::async_trait]
impl BatchRunner for SpaceBatch {
    type Item = Change;
    type Output = Facts;

    fn what(&self) -> &str {
        "web space batch"
    }

    async fn run(
        &self,
        batch: &[Change],
    ) -> Result<Vec<Result<Facts, AdapterError>>, AdapterError> {
        let stdin = stdin_lines(batch, Change::encode)?;
        tracing::debug!(
            changes = batch.len(),
            "webhost: applying a batch of web spaces"
        );
        let t = &self.target;
        let cmd = Command::script(
            BATCH_WEBSPACES,
            [
                t.home_root.as_str(),
                &t.uid_min.to_string(),
                &t.uid_max.to_string(),
                &t.archive_dir,
            ],
        )
        .stdin(stdin);
        let out = self.pool.run(cmd).await?;
        if !out.success() {
            // Nothing per account happened (lock timeout) or the script
            // broke as a whole: every change may be retried.
            return Err(AdapterError::transient(
                SshError::Exit {
                    what: format!("a batch of {} web space changes", batch.len()),
                    status: out.status,
                    stderr: excerpt(&out.stderr),
                }
                .to_string(),
            ));
        }
        results_by_line(self.what(), batch, &out.stdout_str(), |c, line| {
            parse_result(c, line).unwrap_or_else(|| {
                Err(AdapterError::transient(format!(
                    "web space batch: unexpected result {:?} for {:?}",
                    excerpt(line.as_bytes()),
                    c.user()
                )))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ensure(user: &str) -> Change {
        Change::Ensure {
            user: user.into(),
            contract_id: "K-1".into(),
            quota_mb: 10,
            suspended: false,
            index_page: "<p>hi</p>\n".into(),
        }
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn changes_encode_to_one_line_of_fixed_fields() {
        assert_eq!(
            ensure("c1").encode().unwrap(),
            "put:c1:K-1:10:0:PHA+aGk8L3A+Cg=="
        );
        assert_eq!(
            Change::Remove {
                user: "c1".into(),
                contract_id: "K-1".into(),
                stamp: "20261129T000000Z".into()
            }
            .encode()
            .unwrap(),
            "del:c1:K-1:20261129T000000Z"
        );
        for bad in [
            ensure("a:b"),
            ensure("a\nput:root"),
            ensure("a b"),
            ensure(""),
            Change::Ensure {
                user: "c1".into(),
                contract_id: "k:1".into(),
                quota_mb: 1,
                suspended: true,
                index_page: String::new(),
            },
        ] {
            assert!(!bad.encode().unwrap_err().is_transient(), "{bad:?}");
        }
    }

    #[test]
    fn results_are_parsed_per_change_and_classified() {
        let c = ensure("c1");
        let ok = parse_result(
            &c,
            "r:c1:0:uid=61001 gid=61001 created=1 quota_enforced=false",
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok["uid"], "61001");
        assert_eq!(ok["created"], "1");
        let refused = parse_result(&c, "r:c1:20:account c1 exists and is not managed")
            .unwrap()
            .unwrap_err();
        assert!(!refused.is_transient() && refused.to_string().contains("not managed"));
        let failed = parse_result(&c, "r:c1:9:useradd: boom")
            .unwrap()
            .unwrap_err();
        assert!(failed.is_transient(), "{failed}");
        // Another account's line, or garbage, is not this change's result.
        assert!(parse_result(&c, "r:c2:0:uid=1").is_none());
        assert!(parse_result(&c, "r:c1:x:").is_none());
        assert!(parse_result(&c, "").is_none());
    }
}
