//! The web host adapter: `webspace` (a Unix account with a web root) and
//! `vhost` (an nginx server block, optionally with a certificate from the
//! internal CA or, with `[acme]`, an ACME directory: [`acme`]) on one Linux
//! host reached over SSH ([`hostwright_ssh`]).
//!
//! * Every contract value is checked with `hostwright_adapter::validate`
//!   before anything is sent; commands are quoted words or constant scripts
//!   with positional parameters ([`scripts`]); file contents are rendered from
//!   validated values only ([`render`]) and travel as stdin.
//! * Accounts carry the GECOS marker `hostwright <contract id>`; an existing
//!   account without it is never touched (permanent error), so a contract
//!   cannot take over `root` or a system user.
//! * Host changes are batched across concurrent steps (one SSH command and
//!   one `flock` per batch, see `hostwright_adapter::batch`): web spaces in
//!   [`spaces`]; vhost files in [`reload`], which writes a batch's files
//!   (only those that differ), then runs one `nginx -t` + reload for it and
//!   moves a rejected file aside.
//!
//! Errors: SSH transport trouble is transient; invalid specs, refusals and
//! nginx rejections are permanent. See `docs/webhost.md`.

pub mod acme;
mod drift;
pub mod reload;
pub mod render;
pub mod scripts;
pub mod spaces;
pub mod tls;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostwright_adapter::validate::{DomainName, UnixUser};
use hostwright_adapter::{
    Adapter, AdapterError, Comparison, Export, Marked, Observation, Outcome, Resource, Spec,
    StepContext, validate,
};
use hostwright_ssh::{Command, Output, SshConfig, SshError, SshPool, excerpt};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::reload::{NginxCommands, Reloader};
use crate::render::{Listen, SUSPENDED_FILE, SUSPENDED_PAGE, Serve, TlsFiles};
use crate::tls::Ca;

pub const KIND_WEBSPACE: &str = "webspace";
pub const KIND_VHOST: &str = "vhost";

/// Configuration (the `[adapters.webhost]` table). Paths are ON THE HOST
/// except the CA files, which are read by hostwright.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhostConfig {
    pub ssh: SshConfig,
    /// Customer homes: `<home_root>/<user>`.
    pub home_root: String,
    /// nginx includes `<sites_dir>/*.conf`; one file per domain.
    pub sites_dir: String,
    /// Certificates and keys of the vhosts.
    pub tls_dir: String,
    /// Archives of removed web spaces.
    pub archive_dir: String,
    /// Directory of the suspended page.
    pub suspended_root: String,
    #[serde(default = "default_nginx")]
    pub nginx_bin: String,
    /// The nginx.conf used for `-t` and `-s reload`.
    pub nginx_conf: String,
    /// argv replacing `nginx -s reload -c CONF` (e.g. `systemctl reload nginx`).
    #[serde(default)]
    pub reload_command: Option<Vec<String>>,
    #[serde(default = "default_http")]
    pub http_port: u16,
    #[serde(default = "default_https")]
    pub https_port: u16,
    /// Address the vhosts listen on (must match nginx's other listeners);
    /// all addresses when absent.
    #[serde(default)]
    pub listen_address: Option<IpAddr>,
    #[serde(default = "default_uid_min")]
    pub uid_min: u32,
    #[serde(default = "default_uid_max")]
    pub uid_max: u32,
    /// The internal CA that issues vhost certificates (files on the
    /// hostwright side). Without them a `tls: true` vhost fails permanently.
    #[serde(default)]
    pub tls_ca_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_ca_key: Option<PathBuf>,
    /// Certificates from an ACME directory instead of the internal CA
    /// (`[adapters.webhost.acme]`; exclusive with `tls_ca_*`).
    #[serde(default)]
    pub acme: Option<acme::AcmeConfig>,
    /// How long the reload coordinator waits for more changes.
    #[serde(default = "default_coalesce")]
    pub reload_coalesce_ms: u64,
}

fn default_nginx() -> String {
    "nginx".into()
}
fn default_http() -> u16 {
    80
}
fn default_https() -> u16 {
    443
}
fn default_uid_min() -> u32 {
    20000
}
fn default_uid_max() -> u32 {
    29999
}
fn default_coalesce() -> u64 {
    100
}

/// A configuration the adapter cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "webhost config: {field} {value:?} must be an absolute path of [A-Za-z0-9._/-] without '..'"
    )]
    Path { field: &'static str, value: String },
    #[error("webhost config: uid range {min}-{max} is empty or below 1000")]
    UidRange { min: u32, max: u32 },
    #[error("webhost config: tls_ca_cert and tls_ca_key must be given together")]
    CaPair,
    #[error("webhost config: {0}")]
    Ca(#[from] tls::TlsError),
    #[error("webhost config: {0}")]
    Acme(#[from] acme::AcmeConfigError),
    #[error(
        "webhost config: [acme] and tls_ca_cert/tls_ca_key both issue vhost certificates: keep one"
    )]
    AcmeAndCa,
}

/// Who issues this adapter's vhost certificates.
#[derive(Debug)]
enum Certs {
    Internal(Ca),
    Acme(acme::Acme),
}

impl Certs {
    /// What a `.meta` file names as the issuer (`ca=`).
    fn source(&self) -> String {
        match self {
            Certs::Internal(ca) => ca.fingerprint.clone(),
            Certs::Acme(a) => a.source(),
        }
    }

    /// A certificate with fewer days left is renewed, and is drift.
    fn renew_days(&self) -> i64 {
        match self {
            Certs::Internal(_) => tls::RENEW_DAYS,
            Certs::Acme(a) => i64::from(a.config().renew_days),
        }
    }

    /// Whether the certificate `meta` describes is kept for `names`.
    fn is_current(&self, meta: &str, names: &[String], now: chrono::DateTime<chrono::Utc>) -> bool {
        tls::meta_fits(meta, names, &self.source(), self.renew_days(), now)
    }

    fn kind(&self) -> &'static str {
        match self {
            Certs::Internal(_) => "internal",
            Certs::Acme(_) => "acme",
        }
    }
}

/// A vhost that wants TLS on a host with no issuer configured.
const NO_ISSUER: &str =
    "vhost wants tls but neither tls_ca_cert/tls_ca_key nor [acme] is configured";

/// Checks a host path from the config: it is interpolated into nginx files.
pub fn check_path(field: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = value.starts_with('/')
        && value.len() <= 255
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

/// The `webspace` spec; the key is the Unix user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebspaceSpec {
    pub quota_mb: u64,
    #[serde(default)]
    pub suspended: bool,
}

impl Spec for WebspaceSpec {
    const KIND: &'static str = KIND_WEBSPACE;
    const LEGACY_FIELDS: &'static [&'static str] = &["user"];
}

/// The `vhost` spec; the key is the domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VhostSpec {
    /// The web space whose `public_html` the site serves.
    pub user: UnixUser,
    #[serde(default)]
    pub aliases: Vec<DomainName>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub suspended: bool,
}

impl Spec for VhostSpec {
    const KIND: &'static str = KIND_VHOST;
    const LEGACY_FIELDS: &'static [&'static str] = &["domain"];
}

/// The web host adapter.
pub struct WebhostAdapter {
    cfg: WebhostConfig,
    pool: Arc<SshPool>,
    reloader: Arc<Reloader>,
    /// Groups web space changes into one remote script per batch.
    spaces: Arc<spaces::Spaces>,
    certs: Option<Certs>,
    /// Domains whose file was written but whose reload failed: the next
    /// ensure reloads even if the file is unchanged.
    dirty: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for WebhostAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhostAdapter")
            .field("host", &self.cfg.ssh.host)
            .finish()
    }
}

fn perm(msg: impl std::fmt::Display) -> AdapterError {
    AdapterError::permanent(msg.to_string())
}

/// The contract id goes into GECOS and nginx comments: a narrow alphabet.
/// Whose vhost a site file is: the contract its marker must name, and the
/// web space (user, home) that must exist first.
#[derive(Debug, Clone, Copy)]
struct SiteOwner<'a> {
    contract_id: &'a str,
    user: &'a str,
    home: &'a str,
}

fn contract_id(id: &str) -> Result<&str, AdapterError> {
    validate::contract_id(id).map_err(perm)
}

fn no_webspace(user: &str) -> AdapterError {
    perm(format!(
        "web space {user} does not exist (the webspace step must come first)"
    ))
}

/// Parses `key=value` lines of a script's stdout.
fn kv(out: &Output) -> BTreeMap<String, String> {
    out.stdout_str()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Maps a script's exit status per the convention of [`scripts`].
fn script_result(what: &str, out: Output) -> Result<Output, AdapterError> {
    match out.status {
        0 => Ok(out),
        20 | 21 => Err(perm(format!("{what}: {}", excerpt(&out.stderr)))),
        _ => Err(AdapterError::transient(
            SshError::Exit {
                what: what.to_string(),
                status: out.status,
                stderr: excerpt(&out.stderr),
            }
            .to_string(),
        )),
    }
}

/// How long a relocated site may take to answer on its new host (the
/// reload coalescing and nginx's reload are well inside it).
const SITE_WAIT: Duration = Duration::from_secs(30);

impl WebhostAdapter {
    /// A web space's home as a tar stream, with the manifest the copy must
    /// match.
    async fn export_home(&self, r: &Resource) -> Result<Export, AdapterError> {
        let user = validate::user_name(&r.key).map_err(perm)?;
        let home = self.home(user);
        let out = self
            .pool
            .run(Command::script(scripts::HOME_MANIFEST, [&home]))
            .await?;
        let manifest = script_result("reading the home's manifest", out)?
            .stdout_str()
            .trim()
            .to_string();
        let reader = self
            .pool
            .open_stdout(
                "tar of the home",
                Command::script(scripts::HOME_EXPORT, [&home]),
            )
            .await?;
        Ok(Export::Stream {
            reader: Box::new(reader),
            manifest,
        })
    }

    /// Takes a web space over: the account as its spec says, the home's
    /// files from the stream, checked against the source's manifest, then
    /// the spec again (the copied `.hostwright` markers are the source's).
    async fn import_home(
        &self,
        r: &Resource,
        reader: Box<dyn std::io::Read + Send>,
        manifest: &str,
    ) -> Result<Outcome, AdapterError> {
        let user = validate::user_name(&r.key).map_err(perm)?;
        let home = self.home(user);
        self.ensure_webspace(r).await?;
        let out = self
            .pool
            .run_with_input(Command::script(scripts::HOME_IMPORT, [&home]), reader)
            .await?;
        script_result("unpacking the home", out)?;
        let out = self
            .pool
            .run(Command::script(scripts::HOME_MANIFEST, [&home]))
            .await?;
        let copied = script_result("reading the copy's manifest", out)?
            .stdout_str()
            .trim()
            .to_string();
        if copied != manifest {
            // Files changed on the source while they were copied: copy again.
            return Err(AdapterError::transient(format!(
                "the copy of {home} on {} differs from the source (manifest {copied} != {manifest})",
                self.cfg.ssh.host
            )));
        }
        let mut outcome = self.ensure_webspace(r).await?;
        if let Some(f) = outcome.facts.as_object_mut() {
            f.insert("manifest".into(), json!(manifest));
        }
        Ok(outcome)
    }

    /// The HTTP status this host's nginx answers `GET /` for `domain` with.
    async fn site_status(&self, domain: &str) -> Result<u16, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = match self.cfg.listen_address {
            Some(a) => a.to_string(),
            None => self.cfg.ssh.host.clone(),
        };
        let addr = format!("{host}:{}", self.cfg.http_port);
        let io = async {
            let mut s = tokio::net::TcpStream::connect(&addr).await?;
            s.write_all(
                format!("GET / HTTP/1.0\r\nHost: {domain}\r\nUser-Agent: hostwright\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
            let mut head = [0u8; 64];
            let mut n = 0;
            while n < 12 {
                let m = s.read(&mut head[n..]).await?;
                if m == 0 {
                    break;
                }
                n += m;
            }
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&head[..n]).to_string())
        };
        let head = tokio::time::timeout(Duration::from_secs(5), io)
            .await
            .map_err(|_| format!("{addr} did not answer within 5 s"))?
            .map_err(|e| format!("{addr}: {e}"))?;
        head.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{addr} answered no HTTP status line"))
    }

    /// Waits until this host answers for `domain` as the old host did
    /// (`want`), or with a success when the old one did not answer.
    async fn wait_site(&self, domain: &str, want: Option<u16>) -> Result<(), AdapterError> {
        let deadline = tokio::time::Instant::now() + SITE_WAIT;
        loop {
            let got = self.site_status(domain).await;
            let ok = match (&got, want) {
                (Ok(s), Some(w)) => *s == w,
                (Ok(s), None) => (200..400).contains(s) || *s == 401 || *s == 403,
                (Err(_), _) => false,
            };
            if ok {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AdapterError::transient(format!(
                    "{domain} does not answer on {} as on its old host yet (want {}, got {})",
                    self.cfg.ssh.host,
                    want.map_or("a success".to_string(), |w| w.to_string()),
                    match got {
                        Ok(s) => s.to_string(),
                        Err(e) => e,
                    }
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn new(cfg: WebhostConfig) -> Result<Self, ConfigError> {
        for (field, v) in [
            ("home_root", &cfg.home_root),
            ("sites_dir", &cfg.sites_dir),
            ("tls_dir", &cfg.tls_dir),
            ("archive_dir", &cfg.archive_dir),
            ("suspended_root", &cfg.suspended_root),
            ("nginx_conf", &cfg.nginx_conf),
        ] {
            check_path(field, v)?;
        }
        if cfg.uid_min < 1000 || cfg.uid_min > cfg.uid_max {
            return Err(ConfigError::UidRange {
                min: cfg.uid_min,
                max: cfg.uid_max,
            });
        }
        let ca = match (&cfg.tls_ca_cert, &cfg.tls_ca_key) {
            (Some(c), Some(k)) => Some(Ca::load(&c.to_string_lossy(), &k.to_string_lossy())?),
            (None, None) => None,
            _ => return Err(ConfigError::CaPair),
        };
        let certs = match (ca, &cfg.acme) {
            (Some(_), Some(_)) => return Err(ConfigError::AcmeAndCa),
            (Some(ca), None) => Some(Certs::Internal(ca)),
            (None, Some(a)) => {
                check_path("acme.challenge_dir", &a.challenge_dir)?;
                Some(Certs::Acme(acme::Acme::new(a.clone())?))
            }
            (None, None) => None,
        };
        let pool = Arc::new(SshPool::new(cfg.ssh.clone()));
        let cmds = NginxCommands {
            test: vec![
                cfg.nginx_bin.clone(),
                "-t".into(),
                "-q".into(),
                "-c".into(),
                cfg.nginx_conf.clone(),
            ],
            reload: cfg.reload_command.clone().unwrap_or_else(|| {
                vec![
                    cfg.nginx_bin.clone(),
                    "-s".into(),
                    "reload".into(),
                    "-c".into(),
                    cfg.nginx_conf.clone(),
                ]
            }),
            conf: cfg.nginx_conf.clone(),
        };
        let reloader = Reloader::new(
            pool.clone(),
            cmds,
            Duration::from_millis(cfg.reload_coalesce_ms),
        );
        let spaces = spaces::spaces(
            pool.clone(),
            spaces::Target {
                home_root: cfg.home_root.clone(),
                uid_min: cfg.uid_min,
                uid_max: cfg.uid_max,
                archive_dir: cfg.archive_dir.clone(),
            },
        );
        Ok(WebhostAdapter {
            cfg,
            pool,
            reloader,
            spaces,
            certs,
            dirty: Mutex::new(HashSet::new()),
        })
    }

    /// nginx reloads done by this adapter so far.
    pub fn reload_count(&self) -> u64 {
        self.reloader.reloads()
    }

    /// vhost batches run so far (tests and metrics).
    pub fn vhost_batches(&self) -> u64 {
        self.reloader.batches()
    }

    /// Web space batches run so far (tests and metrics).
    pub fn webspace_batches(&self) -> u64 {
        self.spaces.batches()
    }

    /// The SSH pool (sessions opened so far, for tests).
    pub fn pool(&self) -> &SshPool {
        &self.pool
    }

    fn home(&self, user: &str) -> String {
        format!("{}/{}", self.cfg.home_root, user)
    }

    fn site_file(&self, domain: &str) -> String {
        format!("{}/{}.conf", self.cfg.sites_dir, domain)
    }

    fn tls_files(&self, domain: &str) -> (TlsFiles, String) {
        (
            TlsFiles {
                cert: format!("{}/{}.crt", self.cfg.tls_dir, domain),
                key: format!("{}/{}.key", self.cfg.tls_dir, domain),
            },
            format!("{}/{}.meta", self.cfg.tls_dir, domain),
        )
    }

    /// What a vhost serves: the site, or the suspended page.
    fn serve_of(&self, spec: &VhostSpec, home: &str) -> Serve {
        if spec.suspended {
            Serve::Suspended {
                root: self.cfg.suspended_root.clone(),
            }
        } else {
            Serve::Site {
                root: format!("{home}/public_html"),
            }
        }
    }

    fn listen(&self) -> Listen {
        Listen {
            address: self.cfg.listen_address.map(|a| match a {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            }),
            http_port: self.cfg.http_port,
            https_port: self.cfg.https_port,
        }
    }

    /// The vhost file `ensure` writes for this spec, byte for byte.
    fn desired_conf(&self, cid: &str, domain: &str, names: &[String], spec: &VhostSpec) -> String {
        let user = spec.user.as_str();
        let tls = spec.tls.then(|| self.tls_files(domain).0);
        render::vhost_conf(
            cid,
            user,
            names,
            &self.listen(),
            tls.as_ref(),
            self.acme_challenge_dir(),
            &self.serve_of(spec, &self.home(user)),
        )
    }

    /// The host directory answering ACME challenges, when ACME is configured.
    fn acme_challenge_dir(&self) -> Option<&str> {
        match &self.certs {
            Some(Certs::Acme(a)) => Some(a.config().challenge_dir.as_str()),
            _ => None,
        }
    }

    // ---- webspace ---------------------------------------------------------

    async fn ensure_webspace(&self, r: &Resource) -> Result<Outcome, AdapterError> {
        let spec: WebspaceSpec = r.spec()?;
        let user = validate::user_name(&r.key).map_err(perm)?;
        let cid = contract_id(&r.contract_id)?;
        let home = self.home(user);
        let change = spaces::Change::Ensure {
            user: user.to_string(),
            contract_id: cid.to_string(),
            quota_mb: spec.quota_mb,
            suspended: spec.suspended,
            index_page: render::index_page(user),
        };
        // Checked before queueing: a malformed change never reaches a batch.
        change.encode()?;
        let facts = self.spaces.submit(change).await?;
        let num = |k: &str| facts.get(k).and_then(|v| v.parse::<u64>().ok());
        Ok(Outcome::with_facts(json!({
            "user": user,
            "uid": num("uid"),
            "gid": num("gid"),
            "home": home,
            "public_html": format!("{home}/public_html"),
            "quota_mb": spec.quota_mb,
            "quota_enforced": facts.get("quota_enforced").map(String::as_str) == Some("true"),
            "suspended": spec.suspended,
            "created": facts.get("created").map(String::as_str) == Some("1"),
        })))
    }

    async fn remove_webspace(&self, r: &Resource) -> Result<Outcome, AdapterError> {
        let user = validate::user_name(&r.key).map_err(perm)?;
        let cid = contract_id(&r.contract_id)?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let change = spaces::Change::Remove {
            user: user.to_string(),
            contract_id: cid.to_string(),
            stamp,
        };
        change.encode()?;
        let facts = self.spaces.submit(change).await?;
        Ok(Outcome::with_facts(json!({
            "user": user,
            "removed": facts.get("removed").map(String::as_str) == Some("true"),
            "archive": facts.get("archive").filter(|a| !a.is_empty()),
        })))
    }

    async fn observe_webspace(&self, r: &Resource) -> Result<Observation, AdapterError> {
        let user = validate::user_name(&r.key).map_err(perm)?;
        let out = self
            .pool
            .run(Command::script(
                scripts::OBSERVE_WEBSPACE,
                [user, &self.home(user)],
            ))
            .await?;
        if out.status == 3 {
            return Ok(Observation::Absent);
        }
        let f = kv(&script_result("observing the web space", out)?);
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
        Ok(Observation::Present {
            facts: json!({
                "user": user,
                "uid": num("uid"),
                "gid": num("gid"),
                "home": f.get("home"),
                "managed": f.get("gecos").is_some_and(|g| g.starts_with("hostwright")),
                "quota_mb": num("quota_mb"),
                "locked": f.get("locked").map(String::as_str) == Some("true"),
                "password_locked": f.get("password_locked").map(String::as_str) == Some("true"),
                "suspended": f.get("suspended").map(String::as_str) == Some("true"),
            }),
        })
    }

    // ---- vhost ------------------------------------------------------------

    /// The domain of a vhost resource (its key) and every name it serves.
    fn vhost_names(r: &Resource, spec: &VhostSpec) -> Result<(String, Vec<String>), AdapterError> {
        let domain = validate::domain_name(&r.key).map_err(perm)?;
        let mut names = vec![domain.to_string()];
        for a in &spec.aliases {
            if !names.iter().any(|n| n == a.as_str()) {
                names.push(a.to_string());
            }
        }
        Ok((domain.to_string(), names))
    }

    async fn ensure_vhost(&self, r: &Resource) -> Result<Outcome, AdapterError> {
        let spec: VhostSpec = r.spec()?;
        let (domain, names) = Self::vhost_names(r, &spec)?;
        let user = spec.user.as_str();
        let cid = contract_id(&r.contract_id)?;
        if spec.tls && self.certs.is_none() {
            return Err(perm(NO_ISSUER));
        }
        let mut in_flight = Some(self.reloader.begin());

        // The web space must exist, with the home we expect. The plain case
        // checks that in the same remote command that installs the file
        // (`reload::SITES_BATCH`); certificates and the suspended page are
        // written before that, so then it is checked first.
        let home = self.home(user);
        if spec.tls || spec.suspended {
            let out = self
                .pool
                .run(Command::script(scripts::USER_HOME, [user]))
                .await?;
            match out.status {
                0 if out.stdout_str().trim() == home => {}
                0 => return Err(self.foreign_home(user)),
                3 => return Err(no_webspace(user)),
                _ => return Err(out.check("looking up the web space").unwrap_err().into()),
            }
        }
        let owner = SiteOwner {
            contract_id: cid,
            user,
            home: &home,
        };

        let mut cert_changed = false;
        let mut not_after = None;
        let tls_files = if spec.tls {
            let (files, meta_path) = self.tls_files(&domain);
            let certs = self.certs.as_ref().expect("checked above");
            let now = chrono::Utc::now();
            let meta = self.pool.read_file(&meta_path).await?;
            let current = meta
                .as_deref()
                .map(|m| certs.is_current(&String::from_utf8_lossy(m), &names, now))
                .unwrap_or(false);
            if !current {
                // The certificate is written before the batch checks the
                // vhost file's owner: check it here first.
                let site = self.site_file(&domain);
                if let Some(existing) = self.pool.read_file(&site).await? {
                    render::check_owner(&site, &existing, cid).map_err(perm)?;
                }
                let (chain_pem, key_pem, expires) = match certs {
                    Certs::Internal(ca) => {
                        let issued = ca.issue(&names, now).map_err(perm)?;
                        (issued.cert_pem, issued.key_pem, issued.not_after)
                    }
                    Certs::Acme(acme) => {
                        // An order takes seconds: other vhosts' batches do
                        // not wait for it.
                        drop(in_flight.take());
                        let issued = self
                            .acme_issue(acme, &domain, &names, &spec, owner, meta.is_some())
                            .await?;
                        in_flight = Some(self.reloader.begin());
                        (issued.chain_pem, issued.key_pem, issued.not_after)
                    }
                };
                self.pool
                    .write_file(&files.key, key_pem.as_bytes(), "0600", "root:root")
                    .await?;
                self.pool
                    .write_file(&files.cert, chain_pem.as_bytes(), "0644", "root:root")
                    .await?;
                self.pool
                    .write_file(
                        &meta_path,
                        tls::meta_text(&names, expires, &certs.source()).as_bytes(),
                        "0644",
                        "root:root",
                    )
                    .await?;
                cert_changed = true;
                not_after = Some(expires.to_rfc3339());
            }
            Some(files)
        } else {
            None
        };

        if spec.suspended {
            let page = format!("{}/{SUSPENDED_FILE}", self.cfg.suspended_root);
            if self.pool.read_file(&page).await?.as_deref() != Some(SUSPENDED_PAGE.as_bytes()) {
                self.pool
                    .write_file(&page, SUSPENDED_PAGE.as_bytes(), "0644", "root:root")
                    .await?;
            }
        }
        let serve = self.serve_of(&spec, &home);
        let conf = render::vhost_conf(
            cid,
            user,
            &names,
            &self.listen(),
            tls_files.as_ref(),
            self.acme_challenge_dir(),
            &serve,
        );
        let (files, meta) = self.tls_files(&domain);
        let unused_cert = if spec.tls {
            vec![]
        } else {
            vec![files.cert, files.key, meta]
        };
        let applied = self
            .install_site_inner(
                &domain,
                &conf,
                cert_changed,
                in_flight,
                Some(owner),
                &unused_cert,
            )
            .await?;
        let reloaded = applied.reloaded;

        if applied.stale > 0 {
            // TLS switched off: the old certificate goes once nginx forgot it.
            self.pool
                .run_ok(
                    "removing an unused certificate",
                    Command::script(scripts::REMOVE_FILES, &unused_cert),
                )
                .await?;
        }

        Ok(Outcome::with_facts(json!({
            "domain": domain,
            "names": names,
            "user": user,
            "conf": self.site_file(&domain),
            "root": match &serve { Serve::Site { root } | Serve::Suspended { root } => root },
            "tls": spec.tls,
            "cert_issued": cert_changed,
            "cert_issuer": self.certs.as_ref().filter(|_| spec.tls).map(Certs::kind),
            "cert_not_after": not_after,
            "suspended": spec.suspended,
            "reloaded": reloaded,
        })))
    }

    /// A certificate for `names` from the ACME directory, its HTTP-01
    /// challenges answered by this vhost: its file is put in place first
    /// (with the installed certificate when there is one, else without TLS,
    /// which nginx could not load), so nginx serves the challenge
    /// directory for every name; the tokens are written there, and deleted
    /// once the order is over.
    async fn acme_issue(
        &self,
        acme: &acme::Acme,
        domain: &str,
        names: &[String],
        spec: &VhostSpec,
        owner: SiteOwner<'_>,
        had_meta: bool,
    ) -> Result<acme::AcmeIssued, AdapterError> {
        let (files, _) = self.tls_files(domain);
        let have_cert = had_meta
            && self
                .pool
                .run(Command::script(
                    scripts::FILES_EXIST,
                    [&files.cert, &files.key],
                ))
                .await?
                .success();
        let conf = render::vhost_conf(
            owner.contract_id,
            owner.user,
            names,
            &self.listen(),
            have_cert.then_some(&files),
            self.acme_challenge_dir(),
            &self.serve_of(spec, owner.home),
        );
        self.install_site_inner(
            domain,
            &conf,
            false,
            Some(self.reloader.begin()),
            Some(owner),
            &[],
        )
        .await?;
        let dir = acme.config().challenge_dir.as_str();
        acme.issue(
            names,
            |token, key_authorization| {
                async move {
                    self.pool
                        .run_ok(
                            "writing an ACME challenge token",
                            Command::script(scripts::ACME_TOKEN, [dir, &token])
                                .stdin(key_authorization.into_bytes()),
                        )
                        .await
                        .map(drop)
                        .map_err(AdapterError::from)
                }
            },
            |tokens| async move {
                let paths: Vec<String> = tokens.iter().map(|t| format!("{dir}/{t}")).collect();
                if let Err(e) = self
                    .pool
                    .run_ok(
                        "removing ACME challenge tokens",
                        Command::script(scripts::REMOVE_FILES, &paths),
                    )
                    .await
                {
                    // Harmless leftovers (a token answers nothing once its
                    // order is over): logged, not failed.
                    tracing::warn!(host = %self.cfg.ssh.host, error = %e, "ACME challenge tokens left behind");
                }
            },
        )
        .await
    }

    /// Puts `conf` in place as the vhost file of `domain` (validated here)
    /// and reloads nginx in the same batch if it changed (or `force`).
    /// Returns whether a reload happened. `conf` must be rendered from
    /// validated values; [`Self::ensure`] renders it with [`render`].
    pub async fn install_site(
        &self,
        domain: &str,
        conf: &str,
        force: bool,
    ) -> Result<bool, AdapterError> {
        let in_flight = self.reloader.begin();
        self.install_site_inner(domain, conf, force, Some(in_flight), None, &[])
            .await
            .map(|a| a.reloaded)
    }

    /// Hands the file to the vhost batch, which checks the file's marker and
    /// the owner's account when `owner` is given, writes the file only if it
    /// differs, and tests + reloads nginx if it changed, `force` or the
    /// domain is dirty. `report`: files whose presence is counted.
    async fn install_site_inner(
        &self,
        domain: &str,
        conf: &str,
        force: bool,
        in_flight: Option<reload::InFlight>,
        owner: Option<SiteOwner<'_>>,
        report: &[String],
    ) -> Result<reload::SiteApplied, AdapterError> {
        let domain = validate::domain_name(domain).map_err(perm)?;
        let dirty = self.dirty.lock().expect("dirty set").contains(domain);
        let change = reload::SiteChange::Put {
            file: self.site_file(domain),
            contents: conf.to_string(),
            contract_id: owner.map(|o| o.contract_id.to_string()),
            owner: owner.map(|o| (o.user.to_string(), o.home.to_string())),
            stale: report.to_vec(),
            force: force || dirty,
        };
        let res = self.reloader.submit(change, in_flight).await;
        self.settle_dirty(domain, &res);
        res
    }

    /// Keeps the set of domains whose file may be newer than what nginx
    /// serves: a reload that failed transiently (or a batch that failed
    /// before saying what it wrote) forces a reload on the next change.
    fn settle_dirty(&self, domain: &str, res: &Result<reload::SiteApplied, AdapterError>) {
        let mut dirty = self.dirty.lock().expect("dirty set");
        match res {
            Ok(a) if a.reloaded || !a.changed => {
                dirty.remove(domain);
            }
            Ok(_) | Err(AdapterError::Transient { .. }) => {
                dirty.insert(domain.to_string());
            }
            // Refused, or rejected and moved aside: a rewrite is tested anyway.
            Err(_) => {
                dirty.remove(domain);
            }
        }
    }

    fn foreign_home(&self, user: &str) -> AdapterError {
        perm(format!(
            "user {user} does not live under {}",
            self.cfg.home_root
        ))
    }

    async fn remove_vhost(&self, r: &Resource) -> Result<Outcome, AdapterError> {
        let domain = validate::domain_name(&r.key).map_err(perm)?;
        let cid = contract_id(&r.contract_id)?;
        let in_flight = self.reloader.begin();
        let (files, meta) = self.tls_files(domain);
        let dirty = self.dirty.lock().expect("dirty set").contains(domain);
        // The certificate goes in the same command: the vhost file that used
        // it is gone before nginx is tested and reloaded.
        let change = reload::SiteChange::Del {
            file: self.site_file(domain),
            contract_id: Some(cid.to_string()),
            extra: vec![files.cert, files.key, meta],
            force: dirty,
        };
        let res = self.reloader.submit(change, Some(in_flight)).await;
        self.settle_dirty(domain, &res);
        let applied = res?;
        Ok(Outcome::with_facts(json!({
            "domain": domain,
            "removed": applied.changed,
            "reloaded": applied.reloaded,
        })))
    }

    async fn observe_vhost(&self, r: &Resource) -> Result<Observation, AdapterError> {
        let domain = validate::domain_name(&r.key).map_err(perm)?;
        let path = self.site_file(domain);
        match self.pool.read_file(&path).await? {
            None => Ok(Observation::Absent),
            Some(bytes) => {
                let conf = String::from_utf8_lossy(&bytes);
                let names = conf
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("server_name "))
                    .map(|s| {
                        s.trim_end_matches(';')
                            .split_whitespace()
                            .map(String::from)
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                Ok(Observation::Present {
                    facts: json!({
                        "domain": domain,
                        "conf": path,
                        "names": names,
                        "tls": conf.contains(" ssl;"),
                        "suspended": conf.contains("return 503;"),
                        "managed": conf.starts_with("# managed by hostwright"),
                    }),
                })
            }
        }
    }
}

#[async_trait::async_trait]
impl Adapter for WebhostAdapter {
    fn name(&self) -> &'static str {
        "webhost"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[KIND_WEBSPACE, KIND_VHOST]
    }

    async fn ensure(&self, _ctx: &StepContext, r: &Resource) -> Result<Outcome, AdapterError> {
        match r.kind.as_str() {
            KIND_WEBSPACE => self.ensure_webspace(r).await,
            KIND_VHOST => self.ensure_vhost(r).await,
            k => Err(perm(format!("webhost does not manage {k:?}"))),
        }
    }

    async fn remove(&self, _ctx: &StepContext, r: &Resource) -> Result<Outcome, AdapterError> {
        match r.kind.as_str() {
            KIND_WEBSPACE => self.remove_webspace(r).await,
            KIND_VHOST => self.remove_vhost(r).await,
            k => Err(perm(format!("webhost does not manage {k:?}"))),
        }
    }

    async fn observe(&self, r: &Resource) -> Result<Observation, AdapterError> {
        match r.kind.as_str() {
            KIND_WEBSPACE => self.observe_webspace(r).await,
            KIND_VHOST => self.observe_vhost(r).await,
            k => Err(perm(format!("webhost does not manage {k:?}"))),
        }
    }

    async fn compare(&self, resources: &[Resource]) -> Vec<Result<Comparison, AdapterError>> {
        self.compare_batch(resources).await
    }

    async fn inventory(&self) -> Result<Option<Vec<Marked>>, AdapterError> {
        self.list_marked().await.map(Some)
    }

    async fn export(&self, r: &Resource) -> Result<Export, AdapterError> {
        match r.kind.as_str() {
            KIND_WEBSPACE => self.export_home(r).await,
            KIND_VHOST => {
                let domain = validate::domain_name(&r.key).map_err(perm)?;
                // How the site answers here, if it does: the new host must
                // answer the same before the site is switched to it.
                Ok(Export::Record(json!({
                    "status": self.site_status(domain).await.ok(),
                })))
            }
            k => Err(perm(format!("webhost does not manage {k:?}"))),
        }
    }

    async fn import(
        &self,
        ctx: &StepContext,
        r: &Resource,
        export: Export,
    ) -> Result<Outcome, AdapterError> {
        match (r.kind.as_str(), export) {
            (KIND_WEBSPACE, Export::Stream { reader, manifest }) => {
                self.import_home(r, reader, &manifest).await
            }
            (KIND_VHOST, Export::Record(source)) => {
                let outcome = self.ensure_vhost(r).await?;
                let domain = validate::domain_name(&r.key).map_err(perm)?;
                let want = source.get("status").and_then(|s| s.as_u64());
                self.wait_site(domain, want.map(|s| s as u16)).await?;
                Ok(outcome)
            }
            (_, Export::Nothing) => self.ensure(ctx, r).await,
            (k, e) => Err(perm(format!(
                "webhost cannot import {k:?} from {}",
                e.describe()
            ))),
        }
    }

    fn location(&self) -> String {
        format!("{}:{}", self.cfg.ssh.host, self.cfg.ssh.port)
    }
}

#[cfg(test)]
mod tests;
