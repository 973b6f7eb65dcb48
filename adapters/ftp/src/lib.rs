//! The FTP adapter: `ftp_account` resources as pure-ftpd virtual users on the
//! web host, reached over SSH ([`hostwright_ssh`]).
//!
//! * A virtual user maps to the Unix account of its web space (uid/gid of
//!   `spec.user`, which must be a hostwright account under `home_root`) and is
//!   chrooted to that home; its size quota is `quota_mb`.
//! * The password is generated here (24 random alphanumerics), hashed here as
//!   SHA-512 crypt, and only the hash is sent: pure-pw's own argon2 hashes make
//!   every login take seconds. The clear password is returned once, in
//!   `Outcome.secrets["password"]`; an ensure of an existing account keeps the
//!   hash and returns no secret.
//! * The passwd line is written from validated values by a constant remote
//!   script under `flock` that looks up the Unix account, edits the file and
//!   rebuilds the PureDB in one SSH command. Concurrent edits are grouped
//!   ([`batch`]): one passwd rewrite and one `pure-pw mkdb` per batch, each
//!   edit with its own result, so FTP steps are no longer a global queue of
//!   O(accounts) rebuilds.
//! * Suspension puts `!` in front of the hash (no password can match it) and
//!   resumption takes it away: the customer keeps the same password.
//!
//! Errors: SSH trouble and lock timeouts are transient; invalid specs, a
//! missing or foreign Unix account are permanent.

pub mod batch;

use std::collections::BTreeMap;
use std::sync::Arc;

use hostwright_adapter::validate::UnixUser;
use hostwright_adapter::{
    Adapter, AdapterError, Comparison, Difference, Export, Marked, Observation, Outcome, Resource,
    Secret, Spec, StepContext, validate,
};
use hostwright_ssh::{Command, SshConfig, SshPool};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::batch::{Applied, Batcher, Edit, Target};

pub const KIND: &str = "ftp_account";
/// Length of generated passwords (alphanumeric: ~143 bits).
pub const PASSWORD_LEN: usize = 24;

/// Configuration (the `[adapters.ftp]` table). Paths are on the host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpConfig {
    pub ssh: SshConfig,
    /// Customer homes: `<home_root>/<user>` (as in the webhost adapter).
    pub home_root: String,
    /// pure-ftpd's passwd file (`pure-pw -f`).
    pub passwd_file: String,
    /// The puredb file pure-ftpd reads (`pure-pw mkdb PDB`).
    pub pdb_file: String,
    #[serde(default = "default_pure_pw")]
    pub pure_pw: String,
    /// Chroot to `<home>/public_html` instead of `<home>`.
    #[serde(default)]
    pub chroot_public_html: bool,
}

fn default_pure_pw() -> String {
    "pure-pw".into()
}

/// A configuration the adapter cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "ftp config: {field} {value:?} must be an absolute path of [A-Za-z0-9._/-] without '..'"
    )]
    Path { field: &'static str, value: String },
}

fn check_path(field: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = value.starts_with('/')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        && !value.split('/').any(|c| c == "..");
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Path {
            field,
            value: value.to_string(),
        })
    }
}

/// The `ftp_account` spec; the key is the login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpAccountSpec {
    /// The web space (Unix account) whose home the login is chrooted to.
    pub user: UnixUser,
    /// Size quota; 0 means none.
    pub quota_mb: u64,
    #[serde(default)]
    pub suspended: bool,
}

impl Spec for FtpAccountSpec {
    const KIND: &'static str = KIND;
    const LEGACY_FIELDS: &'static [&'static str] = &["login"];
}

/// One line of the pure-ftpd passwd file, as far as hostwright cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PwLine {
    pub login: String,
    /// The crypt hash without the suspension mark.
    pub hash: String,
    pub locked: bool,
    pub uid: u32,
    pub gid: u32,
    /// The chroot directory (without pure-ftpd's trailing `/./`).
    pub dir: String,
    pub quota_bytes: Option<u64>,
}

impl PwLine {
    /// The 18-field line pure-pw writes: login:hash:uid:gid:gecos:home/./:
    /// 6 empty limits, files quota, size quota, 5 empty IP/time fields.
    pub fn render(&self) -> String {
        format!(
            "{}:{}{}:{}:{}::{}/./:::::::{}:::::",
            self.login,
            if self.locked { "!" } else { "" },
            self.hash,
            self.uid,
            self.gid,
            self.dir,
            self.quota_bytes.map(|b| b.to_string()).unwrap_or_default()
        )
    }

    pub fn parse(line: &str) -> Option<PwLine> {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 13 {
            return None;
        }
        let (locked, hash) = match f[1].strip_prefix('!') {
            Some(h) => (true, h),
            None => (false, f[1]),
        };
        Some(PwLine {
            login: f[0].to_string(),
            hash: hash.to_string(),
            locked,
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            dir: f[5]
                .trim_end_matches("/./")
                .trim_end_matches('/')
                .to_string(),
            quota_bytes: f[12].parse().ok(),
        })
    }
}

/// A fresh random password.
pub fn generate_password() -> Secret {
    let s: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect();
    Secret::new(s)
}

/// SHA-512 crypt (`$6$...`) of `password` with a random salt.
pub fn hash_password(password: &Secret) -> Result<String, AdapterError> {
    sha_crypt::sha512_simple(password.expose(), &sha_crypt::Sha512Params::default())
        .map_err(|e| AdapterError::permanent(format!("cannot hash the password: {e:?}")))
}

/// The FTP adapter.
pub struct FtpAdapter {
    cfg: FtpConfig,
    pool: Arc<SshPool>,
    /// Groups passwd edits into one remote script per batch.
    batcher: Arc<Batcher>,
}

impl std::fmt::Debug for FtpAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpAdapter")
            .field("host", &self.cfg.ssh.host)
            .finish()
    }
}

fn perm(msg: impl std::fmt::Display) -> AdapterError {
    AdapterError::permanent(msg.to_string())
}

impl FtpAdapter {
    pub fn new(cfg: FtpConfig) -> Result<Self, ConfigError> {
        check_path("home_root", &cfg.home_root)?;
        check_path("passwd_file", &cfg.passwd_file)?;
        check_path("pdb_file", &cfg.pdb_file)?;
        let pool = Arc::new(SshPool::new(cfg.ssh.clone()));
        let batcher = batch::batcher(
            pool.clone(),
            Target {
                passwd_file: cfg.passwd_file.clone(),
                pdb_file: cfg.pdb_file.clone(),
                pure_pw: cfg.pure_pw.clone(),
                home_root: cfg.home_root.clone(),
                chroot_suffix: if cfg.chroot_public_html {
                    "/public_html".into()
                } else {
                    String::new()
                },
            },
        );
        Ok(FtpAdapter { pool, cfg, batcher })
    }

    /// Passwd edit batches run so far (tests and metrics).
    pub fn batches(&self) -> u64 {
        self.batcher.batches()
    }

    /// Hands `edit` to the batcher; checked first, so a malformed edit
    /// never reaches (and fails) a batch the others wait for.
    async fn apply(&self, edit: Edit) -> Result<Applied, AdapterError> {
        edit.encode()?;
        self.batcher.submit(edit).await
    }

    /// The SSH pool (for tests).
    pub fn pool(&self) -> &SshPool {
        &self.pool
    }

    async fn read_lines(&self) -> Result<Vec<PwLine>, AdapterError> {
        let bytes = self
            .pool
            .read_file(&self.cfg.passwd_file)
            .await?
            .unwrap_or_default();
        Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(PwLine::parse)
            .collect())
    }

    /// The passwd file's lines and the host's accounts (name -> uid, gid,
    /// GECOS), read in one command: what a drift scan compares with.
    async fn read_all(&self) -> Result<(Vec<PwLine>, BTreeMap<String, Account>), AdapterError> {
        let out = self
            .pool
            .run(Command::script(SCAN, [&self.cfg.passwd_file]))
            .await?;
        if out.status != 0 {
            return Err(AdapterError::transient(format!(
                "ftp: reading the passwd file and accounts: exit {}",
                out.status
            )));
        }
        let text = out.stdout_str();
        let (pw, accounts) = text
            .split_once("\n[accounts]\n")
            .unwrap_or((text.as_str(), ""));
        let lines = pw.lines().filter_map(PwLine::parse).collect();
        let accounts = accounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(4, ':').collect();
                Some((
                    f.first()?.to_string(),
                    Account {
                        uid: f.get(1)?.parse().ok()?,
                        gid: f.get(2)?.parse().ok()?,
                        gecos: f.get(3).unwrap_or(&"").to_string(),
                    },
                ))
            })
            .collect();
        Ok((lines, accounts))
    }

    /// The chroot directory of a login of `user`.
    fn chroot_of(&self, user: &str) -> String {
        format!(
            "{}/{user}{}",
            self.cfg.home_root,
            if self.cfg.chroot_public_html {
                "/public_html"
            } else {
                ""
            }
        )
    }

    fn compare_one(
        &self,
        r: &Resource,
        lines: &[PwLine],
        accounts: &BTreeMap<String, Account>,
        by_uid: &BTreeMap<u32, &Account>,
    ) -> Result<Comparison, AdapterError> {
        if r.kind != KIND {
            return Err(perm(format!("ftp does not manage {:?}", r.kind)));
        }
        let spec: FtpAccountSpec = r.spec()?;
        let login = validate::user_name(&r.key).map_err(perm)?;
        let Some(l) = lines.iter().find(|l| l.login == login) else {
            return Ok(Comparison::Missing);
        };
        let mut d = Vec::new();
        let marker = format!("hostwright {}", r.contract_id);
        let owner = by_uid.get(&l.uid);
        let owner_gecos = owner.map(|a| a.gecos.as_str()).unwrap_or_default();
        if owner_gecos != marker {
            d.push(Difference::of("owner", &marker, owner_gecos).says(format!(
                "the login's uid {} is not an account with hostwright's marker {marker:?}",
                l.uid
            )));
        }
        if let Some(a) = accounts.get(spec.user.as_str())
            && (a.uid, a.gid) != (l.uid, l.gid)
        {
            d.push(Difference::of(
                "uid",
                format!("{}:{}", a.uid, a.gid),
                format!("{}:{}", l.uid, l.gid),
            ));
        }
        let chroot = self.chroot_of(spec.user.as_str());
        if l.dir != chroot {
            d.push(Difference::of("chroot", &chroot, &l.dir));
        }
        let quota = (spec.quota_mb > 0).then_some(spec.quota_mb);
        let have = l.quota_bytes.map(|b| b / (1024 * 1024));
        if quota != have {
            d.push(Difference::of("quota_mb", quota, have));
        }
        if l.locked != spec.suspended {
            d.push(Difference::of("suspended", spec.suspended, l.locked));
        }
        Ok(Comparison::from_differences(d))
    }
}

/// Accounts by uid (the first of a uid wins, as for `getent`).
fn by_uid(accounts: &BTreeMap<String, Account>) -> BTreeMap<u32, &Account> {
    let mut m = BTreeMap::new();
    for a in accounts.values() {
        m.entry(a.uid).or_insert(a);
    }
    m
}

/// A Unix account as `getent passwd` lists it, as far as FTP drift cares.
#[derive(Debug, Clone)]
struct Account {
    uid: u32,
    gid: u32,
    gecos: String,
}

/// $1 the passwd file: prints it, then `[accounts]` and the host's accounts
/// as `name:uid:gid:gecos`.
const SCAN: &str = r#"cat "$1" 2>/dev/null || true
printf '\n[accounts]\n'
getent passwd | cut -d: -f1,3,4,5
"#;

impl FtpAdapter {
    /// Creates or updates the login with `hash` for the case it is new (an
    /// existing login keeps its hash); `password`, the one `hash` was made
    /// from, is handed out when the login was created.
    async fn put(
        &self,
        r: &Resource,
        hash: String,
        password: Option<Secret>,
    ) -> Result<Outcome, AdapterError> {
        if r.kind != KIND {
            return Err(perm(format!("ftp does not manage {:?}", r.kind)));
        }
        let spec: FtpAccountSpec = r.spec()?;
        let login = validate::user_name(&r.key).map_err(perm)?;
        let user = spec.user.as_str();
        let quota_bytes = (spec.quota_mb > 0).then(|| spec.quota_mb * 1024 * 1024);
        let contract_id = validate::contract_id(&r.contract_id).map_err(perm)?;
        let applied = self
            .apply(Edit::Put {
                login: login.to_string(),
                user: user.to_string(),
                contract_id: contract_id.to_string(),
                hash,
                locked: spec.suspended,
                quota_bytes,
            })
            .await?;
        match applied {
            Applied::Put {
                created,
                changed,
                uid,
                gid,
                dir,
            } => {
                let mut secrets = std::collections::BTreeMap::new();
                if let (true, Some(pw)) = (created, password) {
                    secrets.insert("password".to_string(), pw);
                }
                Ok(Outcome {
                    facts: json!({
                        "login": login,
                        "user": user,
                        "uid": uid,
                        "gid": gid,
                        "chroot": dir,
                        "quota_mb": quota_bytes.map(|b| b / (1024 * 1024)),
                        "suspended": spec.suspended,
                        "created": created,
                        "changed": changed,
                    }),
                    secrets,
                })
            }
            Applied::NoUser => Err(perm(format!(
                "web space {user} does not exist (the webspace step must come first)"
            ))),
            Applied::Foreign => Err(perm(format!(
                "account {user} is not a hostwright web space under {}",
                self.cfg.home_root
            ))),
            Applied::OtherContract => Err(perm(format!(
                "FTP login {login} or account {user} belongs to another contract: not touched"
            ))),
            Applied::Del { .. } => Err(AdapterError::transient(
                "ftp passwd batch answered a put with a del result",
            )),
        }
    }
}

#[async_trait::async_trait]
impl Adapter for FtpAdapter {
    fn name(&self) -> &'static str {
        "ftp"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[KIND]
    }

    async fn ensure(&self, _ctx: &StepContext, r: &Resource) -> Result<Outcome, AdapterError> {
        // A fresh password for the case the login is new; the host keeps an
        // existing login's hash, and then this one is dropped unseen.
        let pw = generate_password();
        let hash = hash_password(&pw)?;
        self.put(r, hash, Some(pw)).await
    }

    /// The login's password hash on this host, for a relocation: the new
    /// host gets the same hash, so the customer's password keeps working
    /// and nothing is generated or handed out again.
    async fn export(&self, r: &Resource) -> Result<Export, AdapterError> {
        let login = validate::user_name(&r.key).map_err(perm)?;
        let passwd = self
            .pool
            .read_file(&self.cfg.passwd_file)
            .await?
            .unwrap_or_default();
        let line = String::from_utf8_lossy(&passwd)
            .lines()
            .filter_map(PwLine::parse)
            .find(|l| l.login == login);
        Ok(match line {
            Some(l) => Export::Record(json!({ "hash": l.hash })),
            // Not on the old host (drift): the new one makes it afresh, and
            // its new password is handed out like any new login's.
            None => Export::Nothing,
        })
    }

    async fn import(
        &self,
        ctx: &StepContext,
        r: &Resource,
        export: Export,
    ) -> Result<Outcome, AdapterError> {
        match export {
            Export::Record(v) => {
                let hash = v
                    .get("hash")
                    .and_then(|h| h.as_str())
                    .filter(|h| !h.is_empty() && !h.contains([':', '\n']))
                    .ok_or_else(|| perm("the old host's record of the login has no usable hash"))?;
                self.put(r, hash.to_string(), None).await
            }
            Export::Nothing => self.ensure(ctx, r).await,
            other => Err(perm(format!("ftp cannot import {}", other.describe()))),
        }
    }

    async fn remove(&self, _ctx: &StepContext, r: &Resource) -> Result<Outcome, AdapterError> {
        let login = validate::user_name(&r.key).map_err(perm)?;
        let contract_id = validate::contract_id(&r.contract_id).map_err(perm)?;
        let existed = match self
            .apply(Edit::Del {
                login: login.to_string(),
                contract_id: contract_id.to_string(),
            })
            .await?
        {
            Applied::Del { existed } => existed,
            Applied::OtherContract => {
                return Err(perm(format!(
                    "FTP login {login} belongs to another contract: not removed"
                )));
            }
            other => {
                return Err(AdapterError::transient(format!(
                    "ftp passwd batch answered a del with {other:?}"
                )));
            }
        };
        Ok(Outcome::with_facts(
            json!({"login": login, "removed": existed}),
        ))
    }

    async fn observe(&self, r: &Resource) -> Result<Observation, AdapterError> {
        let login = validate::user_name(&r.key).map_err(perm)?;
        let found = self
            .read_lines()
            .await?
            .into_iter()
            .find(|l| l.login == login);
        Ok(match found {
            None => Observation::Absent,
            Some(l) => Observation::Present {
                facts: json!({
                    "login": l.login,
                    "uid": l.uid,
                    "gid": l.gid,
                    "chroot": l.dir,
                    "quota_mb": l.quota_bytes.map(|b| b / (1024 * 1024)),
                    "suspended": l.locked,
                }),
            },
        })
    }

    /// One read of the passwd file and the accounts for the whole batch.
    async fn compare(&self, resources: &[Resource]) -> Vec<Result<Comparison, AdapterError>> {
        match self.read_all().await {
            Ok((lines, accounts)) => {
                let by_uid = by_uid(&accounts);
                resources
                    .iter()
                    .map(|r| self.compare_one(r, &lines, &accounts, &by_uid))
                    .collect()
            }
            Err(e) => resources.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// Logins whose uid is an account with hostwright's GECOS marker.
    async fn inventory(&self) -> Result<Option<Vec<Marked>>, AdapterError> {
        let (lines, accounts) = self.read_all().await?;
        let by_uid = by_uid(&accounts);
        Ok(Some(
            lines
                .iter()
                .filter_map(|l| {
                    let a = by_uid.get(&l.uid)?;
                    let owner = a.gecos.strip_prefix("hostwright ")?;
                    Some(Marked {
                        kind: KIND.to_string(),
                        key: l.login.clone(),
                        owner: owner.to_string(),
                    })
                })
                .collect(),
        ))
    }

    fn location(&self) -> String {
        format!("{}:{}", self.cfg.ssh.host, self.cfg.ssh.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_in_pure_pw_format() {
        // As written by `pure-pw useradd ... -N 1` (hash shortened).
        let pw = "tuser:$argon2id$x:61000:61000::/tmp/h/./:::::::1048576:::::";
        let l = PwLine::parse(pw).unwrap();
        assert_eq!(l.uid, 61000);
        assert_eq!(l.dir, "/tmp/h");
        assert_eq!(l.quota_bytes, Some(1048576));
        assert!(!l.locked);
        assert_eq!(l.render(), pw);
        assert_eq!(l.render().split(':').count(), 18);
        let locked = PwLine {
            locked: true,
            ..l.clone()
        };
        assert!(locked.render().starts_with("tuser:!$argon2id$x:"));
        assert_eq!(PwLine::parse(&locked.render()).unwrap(), locked);
        let unlimited = PwLine {
            quota_bytes: None,
            ..l
        };
        assert_eq!(
            PwLine::parse(&unlimited.render()).unwrap().quota_bytes,
            None
        );
    }

    #[test]
    fn passwords_are_strong_and_hashes_are_sha512_crypt() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose().len(), PASSWORD_LEN);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "Secret(***)");
        let h = hash_password(&a).unwrap();
        assert!(h.starts_with("$6$"), "{h}");
        assert!(!h.contains(':') && !h.contains('\n'));
        assert!(sha_crypt::sha512_check(a.expose(), &h).is_ok());
        assert!(sha_crypt::sha512_check(b.expose(), &h).is_err());
        // The system's crypt (openssl passwd -6) agrees with our hash.
        let salt = h.split('$').nth(2).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["passwd", "-6", "-salt", salt, "-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(a.expose().as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), h);
    }

    fn unreachable() -> FtpAdapter {
        FtpAdapter::new(
            serde_json::from_value(json!({
                "ssh": {"host": "127.0.0.1", "port": 1, "user": "root",
                        "private_key_file": "/k", "known_hosts_file": "/kh",
                        "connect_timeout_secs": 1},
                "home_root": "/srv/home",
                "passwd_file": "/etc/pure-ftpd/pureftpd.passwd",
                "pdb_file": "/etc/pure-ftpd/pureftpd.pdb"
            }))
            .unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn hostile_logins_are_rejected_before_any_command_runs() {
        let a = unreachable();
        let ctx = StepContext {
            job_id: "j".into(),
            step_id: "s".into(),
            attempt: 1,
        };
        for bad in [
            "a;id",
            "$(id)",
            "`id`",
            "a\nb",
            "..",
            "a b",
            "a:b",
            "ａｄｍｉｎ",
            "exаmple",
            "",
            "Root",
            "x'y",
        ] {
            for spec in [
                json!({"login": bad, "user": "c1001", "quota_mb": 1}),
                json!({"login": "c1001-2", "user": bad, "quota_mb": 1}),
            ] {
                let key = spec["login"].as_str().unwrap().to_string();
                let r = Resource {
                    kind: KIND.into(),
                    key,
                    contract_id: "K-1".into(),
                    spec,
                };
                assert!(
                    !a.ensure(&ctx, &r).await.unwrap_err().is_transient(),
                    "{bad:?}"
                );
            }
            let r = Resource {
                kind: KIND.into(),
                key: bad.into(),
                contract_id: "K-1".into(),
                spec: json!({}),
            };
            assert!(!a.remove(&ctx, &r).await.unwrap_err().is_transient());
            assert!(!a.observe(&r).await.unwrap_err().is_transient());
        }
        assert_eq!(a.pool().sessions_created(), 0);
    }

    #[test]
    fn config_paths_are_checked() {
        let mut cfg: FtpConfig = serde_json::from_value(json!({
            "ssh": {"host": "h", "user": "root", "private_key_file": "/k", "known_hosts_file": "/kh"},
            "home_root": "/srv/home",
            "passwd_file": "/etc/pw",
            "pdb_file": "/etc/pdb"
        }))
        .unwrap();
        cfg.pdb_file = "/etc/pdb; rm -rf /".into();
        assert!(FtpAdapter::new(cfg).is_err());
    }
}
