//! Group commit of pure-ftpd passwd edits: one SSH command, one passwd
//! rewrite and one `pure-pw mkdb` per batch of account changes.
//!
//! Every ensure/remove hands its edit to the host's [`Batcher`] (the shared
//! `hostwright_adapter::batch::Coalescer`) and waits for its own result.
//! When no batch is running, the edit starts one at once (no
//! added latency for a lone change); edits arriving while a batch runs queue
//! up and form the next batch, so under load the cost of a passwd rewrite and
//! a PureDB rebuild (both O(accounts)) is paid once per batch instead of once
//! per account.
//!
//! A batch is one constant remote script ([`EDIT_BATCH`]) that, under the
//! `flock` of the passwd file, looks up the Unix accounts, applies the edits
//! in order to the current file (an account's existing hash is kept, so an
//! ensure of an existing account changes no password), builds the new PureDB
//! from the new file *before* putting the file in place (so a failed rebuild
//! leaves both untouched and a retry redoes it), and prints one result line
//! per edit. An edit that is refused (no such web space, not a hostwright
//! account) fails only its own waiter; a batch that fails as a whole (SSH
//! trouble, lock timeout, `mkdb` failure) fails each of its waiters with the
//! same error.

use std::sync::Arc;

use hostwright_adapter::AdapterError;
use hostwright_adapter::batch::{BatchRunner, Coalescer, results_by_line, stdin_lines};
use hostwright_ssh::{Command, SshError, SshPool, excerpt};

/// Most edits in one batch (one stdin payload of ~200 bytes each).
pub const MAX_BATCH: usize = 500;

/// $1 passwd file, $2 pdb, $3 pure-pw, $4 home_root, $5 chroot suffix
/// ("" or "/public_html"). stdin: one edit per line,
/// `put:LOGIN:USER:CONTRACT_ID:HASH:LOCKED(0|1):QUOTA_BYTES(or empty)` or
/// `del:LOGIN:CONTRACT_ID`, every value validated by the adapter (no ':'
/// nor newline). A login belongs to the contract whose GECOS marker
/// (`hostwright CONTRACT_ID`) its Unix account carries: a put for another
/// contract's account or over another account's login, and a del of
/// another contract's login, are refused (`other`). stdout: one line per
/// edit, in order: `put:LOGIN:ok:CREATED:CHANGED:UID:GID:DIR`,
/// `put:LOGIN:nouser`, `put:LOGIN:foreign`, `put:LOGIN:other`,
/// `del:LOGIN:removed`, `del:LOGIN:absent` or `del:LOGIN:other`. Exit 22 on lock timeout. An existing line is kept
/// as it is when its hash, lock, uid, gid, chroot and quota already match.
pub const EDIT_BATCH: &str = r#"set -eu
passwd=$1 pdb=$2 purepw=$3 root=$4 subdir=$5
exec 9>>"$passwd.lock"
flock -w 30 9 || exit 22
touch "$passwd"
work=$(mktemp -d "$passwd.batch.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
cat >"$work/req"
getent passwd >"$work/ent"
: >"$work/new"
: >"$work/res"
awk -F: -v root="$root" -v subdir="$subdir" -v new="$work/new" -v res="$work/res" -v flag="$work/changed" '
FILENAME == ARGV[1] { if (!($1 in uid)) { uid[$1] = $3; gid[$1] = $4; gecos[$1] = $5; home[$1] = $6 }; if (!($3 in owner)) owner[$3] = $5; next }
FILENAME == ARGV[2] { nr++; req[nr] = $0; next }
{ n++; line[n] = $0; lg[n] = $1; cnt[$1]++; if (NF >= 13 && !($1 in at)) at[$1] = n }
END {
  changed = 0
  for (i = 1; i <= nr; i++) {
    split(req[i], f, ":")
    l = f[2]
    if (f[1] == "del") {
      if (l in at) { split(line[at[l]], o, ":"); if (owner[o[3]] != "hostwright " f[3]) { print "del:" l ":other" > res; continue } }
      if (cnt[l] > 0) { touched[l] = 1; delete at[l]; cnt[l] = 0; changed = 1; print "del:" l ":removed" > res }
      else print "del:" l ":absent" > res
      continue
    }
    u = f[3]
    if (!(u in uid)) { print "put:" l ":nouser" > res; continue }
    if (index(gecos[u], "hostwright") != 1 || home[u] != root "/" u) { print "put:" l ":foreign" > res; continue }
    if (gecos[u] != "hostwright " f[4]) { print "put:" l ":other" > res; continue }
    dir = home[u] subdir
    lock = (f[6] == "1") ? "!" : ""
    if (l in at) {
      split(line[at[l]], o, ":")
      if (o[3] != uid[u]) { print "put:" l ":other" > res; continue }
      hash = o[2]; if (substr(hash, 1, 1) == "!") hash = substr(hash, 2)
      odir = o[6]; sub(/\/\.\/$/, "", odir); sub(/\/+$/, "", odir)
      same = (o[2] == lock hash && o[3] == uid[u] && o[4] == gid[u] && odir == dir && o[13] == f[7] && cnt[l] == 1)
      created = 0
    } else { hash = f[5]; same = 0; created = 1 }
    if (!same) {
      text = l ":" lock hash ":" uid[u] ":" gid[u] "::" dir "/./:::::::" f[7] ":::::"
      if (l in at) line[at[l]] = text
      else { n++; line[n] = text; lg[n] = l; at[l] = n }
      touched[l] = 1; cnt[l] = 1; changed = 1
    }
    print "put:" l ":ok:" created ":" (same ? 0 : 1) ":" uid[u] ":" gid[u] ":" dir > res
  }
  if (changed) {
    for (i = 1; i <= n; i++) if (!(lg[i] in touched) || ((lg[i] in at) && at[lg[i]] == i)) print line[i] > new
    print 1 > flag
  }
}' "$work/ent" "$work/req" "$passwd"
if [ -s "$work/changed" ]; then
  chmod 0600 "$work/new"
  "$purepw" mkdb "$pdb" -f "$work/new"
  mv -f -- "$work/new" "$passwd"
fi
cat "$work/res"
"#;

/// One change of the passwd file. Values must be validated (user names,
/// a crypt hash without ':'); [`Edit::encode`] refuses anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Create or update `login` for the Unix account `user`; `hash` is used
    /// only when the login does not exist yet.
    Put {
        login: String,
        user: String,
        /// The contract `user`'s GECOS marker must name.
        contract_id: String,
        hash: String,
        locked: bool,
        quota_bytes: Option<u64>,
    },
    /// Remove `login` (absent is fine) if `contract_id`'s account owns it.
    Del { login: String, contract_id: String },
}

impl Edit {
    fn login(&self) -> &str {
        match self {
            Edit::Put { login, .. } | Edit::Del { login, .. } => login,
        }
    }

    /// The stdin line of [`EDIT_BATCH`].
    pub fn encode(&self) -> Result<String, AdapterError> {
        let line = match self {
            Edit::Put {
                login,
                user,
                contract_id,
                hash,
                locked,
                quota_bytes,
            } => format!(
                "put:{login}:{user}:{contract_id}:{hash}:{}:{}",
                u8::from(*locked),
                quota_bytes.map(|b| b.to_string()).unwrap_or_default()
            ),
            Edit::Del { login, contract_id } => format!("del:{login}:{contract_id}"),
        };
        let fields = if matches!(self, Edit::Put { .. }) {
            7
        } else {
            3
        };
        if line.split(':').count() != fields || line.contains(['\n', '\r']) {
            return Err(AdapterError::permanent(format!(
                "ftp: refusing to send a malformed passwd edit for {:?}",
                self.login()
            )));
        }
        Ok(line)
    }
}

/// What the host did with one [`Edit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The login exists as wanted now.
    Put {
        created: bool,
        changed: bool,
        uid: u32,
        gid: u32,
        dir: String,
    },
    /// The Unix account does not exist.
    NoUser,
    /// The Unix account is not a hostwright web space under `home_root`.
    Foreign,
    /// The login is gone; whether it existed.
    Del { existed: bool },
    /// The account or the login belongs to another contract: untouched.
    OtherContract,
}

/// Parses the result line of `edit` (the script's output, in order).
pub fn parse_result(edit: &Edit, line: &str) -> Option<Applied> {
    let f: Vec<&str> = line.split(':').collect();
    let (op, login) = (*f.first()?, *f.get(1)?);
    if login != edit.login() {
        return None;
    }
    match (edit, op, &f[2..]) {
        (Edit::Put { .. }, "put", ["ok", created, changed, uid, gid, dir]) => Some(Applied::Put {
            created: *created == "1",
            changed: *changed == "1",
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
            dir: dir.to_string(),
        }),
        (Edit::Put { .. }, "put", ["nouser"]) => Some(Applied::NoUser),
        (Edit::Put { .. }, "put", ["foreign"]) => Some(Applied::Foreign),
        (Edit::Del { .. }, "del", ["removed"]) => Some(Applied::Del { existed: true }),
        (Edit::Del { .. }, "del", ["absent"]) => Some(Applied::Del { existed: false }),
        (_, "put" | "del", ["other"]) => Some(Applied::OtherContract),
        _ => None,
    }
}

/// Where the batch script works on the host.
#[derive(Debug, Clone)]
pub struct Target {
    pub passwd_file: String,
    pub pdb_file: String,
    pub pure_pw: String,
    pub home_root: String,
    /// "" (chroot to the home) or "/public_html".
    pub chroot_suffix: String,
}

/// The passwd edit runner of one host, driven by a shared
/// [`Coalescer`](hostwright_adapter::batch::Coalescer).
pub struct PasswdBatch {
    pool: Arc<SshPool>,
    target: Target,
}

/// The passwd edit coordinator of one host.
pub type Batcher = Coalescer<PasswdBatch>;

/// A coordinator for `target` on the host behind `pool`.
pub fn batcher(pool: Arc<SshPool>, target: Target) -> Arc<Batcher> {
    Coalescer::new(PasswdBatch { pool, target }, MAX_BATCH)
}

#[async_trait::async_trait]
impl BatchRunner for PasswdBatch {
    type Item = Edit;
    type Output = Applied;

    fn what(&self) -> &str {
        "ftp passwd batch"
    }

    async fn run(
        &self,
        batch: &[Edit],
    ) -> Result<Vec<Result<Applied, AdapterError>>, AdapterError> {
        // Encoded once already by the adapter, before submitting.
        let stdin = stdin_lines(batch, Edit::encode)?;
        tracing::debug!(edits = batch.len(), "ftp: applying a batch of passwd edits");
        let t = &self.target;
        let cmd = Command::script(
            EDIT_BATCH,
            [
                t.passwd_file.as_str(),
                &t.pdb_file,
                &t.pure_pw,
                &t.home_root,
                &t.chroot_suffix,
            ],
        )
        .stdin(stdin);
        let out = self.pool.run(cmd).await?;
        if !out.success() {
            let e = SshError::Exit {
                what: format!(
                    "editing the pure-ftpd passwd file (a batch of {})",
                    batch.len()
                ),
                status: out.status,
                stderr: excerpt(&out.stderr),
            };
            return Err(if out.status == 22 {
                AdapterError::transient(e.to_string())
            } else {
                AdapterError::permanent(e.to_string())
            });
        }
        results_by_line(self.what(), batch, &out.stdout_str(), |edit, line| {
            parse_result(edit, line).ok_or_else(|| {
                AdapterError::transient(format!(
                    "ftp passwd batch: unexpected result {:?} for {:?}",
                    excerpt(line.as_bytes()),
                    edit.login()
                ))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(login: &str) -> Edit {
        Edit::Put {
            login: login.into(),
            user: "c1001".into(),
            contract_id: "C-1001".into(),
            hash: "$6$salt$abc./XYZ".into(),
            locked: false,
            quota_bytes: Some(1048576),
        }
    }

    /// A del for contract C-1 (whose account is `c1` in [`ENT`]).
    fn del(login: &str) -> Edit {
        Edit::Del {
            login: login.into(),
            contract_id: "C-1".into(),
        }
    }

    #[test]
    fn edits_encode_to_one_line_of_fixed_fields() {
        assert_eq!(
            put("c1001-2").encode().unwrap(),
            "put:c1001-2:c1001:C-1001:$6$salt$abc./XYZ:0:1048576"
        );
        let unlimited = Edit::Put {
            login: "a".into(),
            user: "b".into(),
            contract_id: "K".into(),
            hash: "h".into(),
            locked: true,
            quota_bytes: None,
        };
        assert_eq!(unlimited.encode().unwrap(), "put:a:b:K:h:1:");
        assert_eq!(del("a").encode().unwrap(), "del:a:C-1");
        // A value that would shift the fields or add a line is refused.
        for bad in [
            Edit::Put {
                login: "a".into(),
                user: "b".into(),
                contract_id: "K".into(),
                hash: "x:y".into(),
                locked: false,
                quota_bytes: None,
            },
            Edit::Put {
                login: "a".into(),
                user: "b\ndel:root".into(),
                contract_id: "K".into(),
                hash: "h".into(),
                locked: false,
                quota_bytes: None,
            },
            del("a:b"),
        ] {
            assert!(!bad.encode().unwrap_err().is_transient(), "{bad:?}");
        }
    }

    #[test]
    fn results_are_parsed_per_edit_and_checked_against_it() {
        let e = put("c1001-2");
        assert_eq!(
            parse_result(&e, "put:c1001-2:ok:1:1:70001:70001:/srv/home/c1001"),
            Some(Applied::Put {
                created: true,
                changed: true,
                uid: 70001,
                gid: 70001,
                dir: "/srv/home/c1001".into()
            })
        );
        assert_eq!(
            parse_result(&e, "put:c1001-2:nouser"),
            Some(Applied::NoUser)
        );
        assert_eq!(
            parse_result(&e, "put:c1001-2:foreign"),
            Some(Applied::Foreign)
        );
        // Another login's line, a del line for a put, garbage: not ours.
        assert_eq!(parse_result(&e, "put:c1001-3:nouser"), None);
        assert_eq!(parse_result(&e, "del:c1001-2:removed"), None);
        assert_eq!(parse_result(&e, "put:c1001-2:ok:1:1:x:1:/d"), None);
        assert_eq!(parse_result(&e, ""), None);
        let d = del("c1001-2");
        assert_eq!(
            parse_result(&d, "del:c1001-2:removed"),
            Some(Applied::Del { existed: true })
        );
        assert_eq!(
            parse_result(&d, "del:c1001-2:absent"),
            Some(Applied::Del { existed: false })
        );
    }

    /// A stand-in host for [`EDIT_BATCH`], run locally with `sh`: `getent`
    /// prints a fixed account list and `pure-pw mkdb` copies the passwd
    /// file it is given to the pdb path (or fails), so the script's logic is
    /// checked without the test environment (the live test covers the rest).
    struct Host {
        dir: tempfile::TempDir,
    }

    const ENT: &str = "root:x:0:0:root:/root:/bin/bash
c1:x:70001:70001:hostwright C-1:/srv/home/c1:/usr/sbin/nologin
c2:x:70002:70002:hostwright C-2:/srv/home/c2:/usr/sbin/nologin
mallory:x:1000:1000:Mallory:/srv/home/mallory:/bin/sh
moved:x:70003:70003:hostwright C-3:/elsewhere/moved:/usr/sbin/nologin
";

    impl Host {
        fn new() -> Host {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("bin");
            std::fs::create_dir(&bin).unwrap();
            std::fs::write(dir.path().join("ent"), ENT).unwrap();
            let fake = |name: &str, body: String| {
                let p = bin.join(name);
                std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            };
            fake(
                "getent",
                format!("cat '{}'", dir.path().join("ent").display()),
            );
            // pure-pw mkdb PDB -f FILE; fails while the file `mkdb-fails` exists.
            fake(
                "pure-pw",
                format!(
                    "[ -e '{0}/mkdb-fails' ] && {{ echo mkdb broke >&2; exit 1; }}\n\
                     echo x >>'{0}/mkdb-runs'\ncp \"$4\" \"$2\"",
                    dir.path().display()
                ),
            );
            Host { dir }
        }

        fn passwd(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("passwd")).unwrap_or_default()
        }

        fn pdb(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("pdb")).unwrap_or_default()
        }

        fn mkdb_runs(&self) -> usize {
            std::fs::read_to_string(self.dir.path().join("mkdb-runs"))
                .unwrap_or_default()
                .lines()
                .count()
        }

        /// Runs one batch; (exit status, result lines).
        fn run(&self, edits: &[Edit]) -> (i32, Vec<String>) {
            let d = self.dir.path();
            let stdin: String = edits.iter().map(|e| e.encode().unwrap() + "\n").collect();
            let args = [
                d.join("passwd"),
                d.join("pdb"),
                d.join("bin/pure-pw"),
                "/srv/home".into(),
                "".into(),
            ];
            hostwright_adapter::testenv::run_script(EDIT_BATCH, &args, &d.join("bin"), &stdin)
        }
    }

    /// A put for `user`'s own contract (`c1` → `C-1`, as in [`ENT`]).
    fn put_for(login: &str, user: &str, hash: &str, locked: bool, quota: Option<u64>) -> Edit {
        Edit::Put {
            login: login.into(),
            user: user.into(),
            contract_id: format!("C-{}", user.trim_start_matches('c')),
            hash: hash.into(),
            locked,
            quota_bytes: quota,
        }
    }

    #[test]
    fn a_batch_applies_each_edit_and_refuses_only_the_bad_ones() {
        let h = Host::new();
        let (st, res) = h.run(&[
            put_for("c1-1", "c1", "$6$s$h1", false, Some(1048576)),
            put_for("x-1", "nosuch", "$6$s$hx", false, None),
            put_for("m-1", "mallory", "$6$s$hm", false, None),
            put_for("mv-1", "moved", "$6$s$hv", false, None),
            put_for("c2-1", "c2", "$6$s$h2", false, None),
            del("gone-1"),
        ]);
        assert_eq!(st, 0);
        assert_eq!(
            res,
            [
                "put:c1-1:ok:1:1:70001:70001:/srv/home/c1",
                "put:x-1:nouser",
                "put:m-1:foreign",
                "put:mv-1:foreign",
                "put:c2-1:ok:1:1:70002:70002:/srv/home/c2",
                "del:gone-1:absent",
            ]
        );
        for l in h.passwd().lines() {
            assert_eq!(l.split(':').count(), 18, "pure-pw's 18 fields: {l}");
        }
        assert_eq!(
            h.passwd(),
            "c1-1:$6$s$h1:70001:70001::/srv/home/c1/./:::::::1048576:::::\n\
             c2-1:$6$s$h2:70002:70002::/srv/home/c2/./::::::::::::\n"
        );
        // The lines are what the adapter's own parser reads back.
        let c1 = crate::PwLine::parse(h.passwd().lines().next().unwrap()).unwrap();
        assert_eq!(c1.quota_bytes, Some(1048576));
        assert_eq!(c1.dir, "/srv/home/c1");
        assert_eq!(h.pdb(), h.passwd(), "one mkdb over the new file");
        assert_eq!(h.mkdb_runs(), 1);
    }

    #[test]
    fn another_contracts_login_or_account_is_never_touched() {
        let h = Host::new();
        h.run(&[put_for("c1-1", "c1", "$6$s$first", false, None)]);
        let before = h.passwd();
        let (st, res) = h.run(&[
            // c2's contract asks for c1's login under its own account...
            put_for("c1-1", "c2", "$6$s$x", false, None),
            // ...or under c1's account, claiming to be C-1's owner C-2...
            Edit::Put {
                login: "c1-9".into(),
                user: "c1".into(),
                contract_id: "C-2".into(),
                hash: "$6$s$x".into(),
                locked: false,
                quota_bytes: None,
            },
            // ...or removes it.
            Edit::Del {
                login: "c1-1".into(),
                contract_id: "C-2".into(),
            },
        ]);
        assert_eq!(st, 0);
        assert_eq!(res, ["put:c1-1:other", "put:c1-9:other", "del:c1-1:other"]);
        assert_eq!(
            parse_result(&del("c1-1"), "del:c1-1:other"),
            Some(Applied::OtherContract)
        );
        assert_eq!(h.passwd(), before, "untouched");
        // Its own contract removes it.
        let (_, res) = h.run(&[del("c1-1")]);
        assert_eq!(res, ["del:c1-1:removed"]);
    }

    #[test]
    fn a_rerun_keeps_the_hash_and_changes_nothing() {
        let h = Host::new();
        h.run(&[put_for("c1-1", "c1", "$6$s$first", false, Some(1048576))]);
        let before = h.passwd();
        // A new candidate hash is offered but the existing one is kept, and
        // an unchanged file needs no mkdb (it would fail now).
        std::fs::write(h.dir.path().join("mkdb-fails"), "").unwrap();
        let (st, res) = h.run(&[put_for("c1-1", "c1", "$6$s$second", false, Some(1048576))]);
        assert_eq!(st, 0);
        assert_eq!(res, ["put:c1-1:ok:0:0:70001:70001:/srv/home/c1"]);
        assert_eq!(h.passwd(), before);
        assert_eq!(h.mkdb_runs(), 1);
    }

    #[test]
    fn suspension_and_quota_changes_keep_the_hash() {
        let h = Host::new();
        h.run(&[put_for("c1-1", "c1", "$6$s$first", false, Some(1048576))]);
        let (_, res) = h.run(&[put_for("c1-1", "c1", "$6$s$other", true, None)]);
        assert_eq!(res, ["put:c1-1:ok:0:1:70001:70001:/srv/home/c1"]);
        let l = crate::PwLine::parse(h.passwd().trim()).unwrap();
        assert!(l.locked);
        assert_eq!(l.hash, "$6$s$first");
        assert_eq!(l.quota_bytes, None);
        let (_, res) = h.run(&[put_for("c1-1", "c1", "$6$s$other", false, None)]);
        assert_eq!(res, ["put:c1-1:ok:0:1:70001:70001:/srv/home/c1"]);
        assert_eq!(
            crate::PwLine::parse(h.passwd().trim()).unwrap().hash,
            "$6$s$first"
        );
        assert_eq!(h.pdb(), h.passwd());
    }

    #[test]
    fn edits_of_one_login_apply_in_order_and_other_lines_are_kept() {
        let h = Host::new();
        // A line of someone else, a duplicate and a malformed line of ours.
        std::fs::write(
            h.dir.path().join("passwd"),
            "other:$6$o$o:5:5::/x/./::::::::::::\n\
             c1-1:$6$s$old:70001:70001::/srv/home/c1/./::::::::::::\n\
             c1-1:$6$s$dup:70001:70001::/srv/home/c1/./::::::::::::\n\
             c2-1:broken\n",
        )
        .unwrap();
        let (st, res) = h.run(&[
            put_for("c1-1", "c1", "$6$s$new", false, None),
            put_for("c2-1", "c2", "$6$s$c2", false, None),
            del("c1-1"),
            del("c1-1"),
            put_for("c1-1", "c1", "$6$s$again", false, None),
            put_for("c1-1", "c1", "$6$s$third", false, None),
        ]);
        assert_eq!(st, 0);
        assert_eq!(
            res,
            [
                // The duplicate is cleaned up: a change, the old hash kept.
                "put:c1-1:ok:0:1:70001:70001:/srv/home/c1",
                // The malformed line does not count as an account.
                "put:c2-1:ok:1:1:70002:70002:/srv/home/c2",
                "del:c1-1:removed",
                "del:c1-1:absent",
                "put:c1-1:ok:1:1:70001:70001:/srv/home/c1",
                "put:c1-1:ok:0:0:70001:70001:/srv/home/c1",
            ]
        );
        assert_eq!(
            h.passwd(),
            "other:$6$o$o:5:5::/x/./::::::::::::\n\
             c2-1:$6$s$c2:70002:70002::/srv/home/c2/./::::::::::::\n\
             c1-1:$6$s$again:70001:70001::/srv/home/c1/./::::::::::::\n"
        );
        assert_eq!(h.pdb(), h.passwd());
    }

    #[test]
    fn a_failed_mkdb_leaves_the_passwd_file_untouched() {
        let h = Host::new();
        h.run(&[put_for("c1-1", "c1", "$6$s$first", false, None)]);
        let before = h.passwd();
        std::fs::write(h.dir.path().join("mkdb-fails"), "").unwrap();
        let (st, res) = h.run(&[put_for("c2-1", "c2", "$6$s$c2", false, None)]);
        assert_ne!(st, 0);
        assert!(res.is_empty(), "{res:?}");
        assert_eq!(h.passwd(), before);
        // The retry, once mkdb works, does the whole edit.
        std::fs::remove_file(h.dir.path().join("mkdb-fails")).unwrap();
        let (st, res) = h.run(&[put_for("c2-1", "c2", "$6$s$c2", false, None)]);
        assert_eq!(st, 0);
        assert_eq!(res, ["put:c2-1:ok:1:1:70002:70002:/srv/home/c2"]);
        assert_eq!(h.pdb(), h.passwd());
        // No temporary files are left next to the passwd file.
        let names: Vec<String> = std::fs::read_dir(h.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("passwd.batch"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }
}
