//! The engine's configuration file (`hostwright.toml`): parsed into typed
//! settings once at start, with every path resolved against the file's folder.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use hostwright_adapter::retry::RetryPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite store and other local state live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Folder of the playbooks.
    #[serde(default = "default_playbooks")]
    pub playbooks: PathBuf,
    /// Catalog file; the built-in catalog (revision 2024-03-01) when absent.
    pub catalog: Option<PathBuf>,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub api: ApiConfig,
    pub intake: IntakeConfig,
    #[serde(default)]
    pub workers: WorkerSettings,
    pub provisioning: ProvisioningConfig,
    /// Per-adapter settings, handed as TOML to each adapter's own config type.
    #[serde(default)]
    pub adapters: BTreeMap<String, toml::Value>,
    /// Several web hosts and where contracts go (`engine::fleet`); without
    /// it, `[adapters.webhost]` and `[adapters.ftp]` are the one web host.
    pub fleet: Option<super::fleet::FleetConfig>,
    pub billing: Option<BillingConfig>,
    /// The monthly close for billing on a schedule (`engine::close`).
    #[serde(default)]
    pub close: CloseConfig,
    /// Drift scans on a schedule (`engine::drift`).
    #[serde(default)]
    pub drift: DriftConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Webhooks per event (`[notify.job_failed]`, `[notify.job_recovered]`,
    /// `[notify.contract_refused]`, `[notify.drift_found]`); none when absent.
    #[serde(default)]
    pub notify: BTreeMap<super::notify::Event, super::notify::EndpointConfig>,
    /// The file and its text, kept so an `[adapters.*]` error found when
    /// the adapters are built can name the line
    /// ([`Config::adapter_error_at_line`]).
    #[serde(skip)]
    pub source: Option<(PathBuf, String)>,
}

/// `[drift]`: how `serve` reconciles the backends with the contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// Scan on a schedule (on by default; a scan only reads).
    pub enabled: bool,
    /// Minutes between full scans.
    pub interval_minutes: u64,
    /// Seconds after start before the first scan (start-up is left alone).
    pub first_scan_after_seconds: u64,
    /// Queue and run repairs for what a scheduled scan finds (actor
    /// `reconcile`). Off by default: scans only report.
    pub repair: bool,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            enabled: true,
            interval_minutes: 15,
            first_scan_after_seconds: 60,
            repair: false,
        }
    }
}

/// `[close]`: when `serve` closes months for billing by itself.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloseConfig {
    /// Off unless set: a close reports every contract's month to billing.
    pub enabled: bool,
    /// How often the schedule closes the previous month (JST) again; each
    /// run sends only what is new (first statements and corrections).
    pub interval_minutes: u64,
    /// Earlier months re-closed on each run, for corrections of contracts
    /// revised after their close.
    pub recheck_months: u32,
}

impl Default for CloseConfig {
    fn default() -> Self {
        CloseConfig {
            enabled: false,
            interval_minutes: 60,
            recheck_months: 2,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(".hostwright/data")
}
fn default_playbooks() -> PathBuf {
    PathBuf::from("playbooks")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite:PATH` (relative to data_dir) or `postgres://...`.
    pub url: String,
    #[serde(default = "default_pg_conns")]
    pub max_connections: u32,
    /// The key file that seals secrets at rest (`<data_dir>/secrets.key`
    /// when absent; made, mode 0600, at first start). Keep it apart from the
    /// store's backups.
    #[serde(default)]
    pub secrets_key_file: Option<PathBuf>,
    /// `[store.retention]`: how long history is kept (`engine::retention`).
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// `[store.retention]`: what `hostwright store prune`, and `serve` every
/// `interval_minutes`, delete. Never pruned: jobs and their steps, revisions,
/// resources and ownership, secrets, the ops and audit logs, undelivered
/// reports, and each contract's newest report. Refusals follow `[intake]
/// rejection_retention_days`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days the attempts (the journal) of a succeeded job are kept after it
    /// ended; 0 keeps them forever.
    pub succeeded_attempts_days: u32,
    /// Days a report billing acknowledged is kept after its delivery (a
    /// contract's newest report is always kept); 0 keeps them forever.
    pub delivered_reports_days: u32,
    /// How often `serve` prunes (at start, then every this many minutes).
    pub interval_minutes: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            succeeded_attempts_days: 90,
            delivered_reports_days: 400,
            interval_minutes: 60,
        }
    }
}

impl StoreConfig {
    pub fn secrets_key_path(&self, data_dir: &Path) -> PathBuf {
        self.secrets_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("secrets.key"))
    }
}

fn default_pg_conns() -> u32 {
    16
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite:jobs.db".into(),
            max_connections: default_pg_conns(),
            secrets_key_file: None,
            retention: RetentionConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// File holding a shared bearer token for the ops endpoints, with every
    /// scope, acting as `ops-token-file`. A bootstrap: per-person tokens
    /// (`hostwright tokens create`) are what ops should use.
    pub ops_token_file: Option<PathBuf>,
    /// Failed authentications allowed per client address and minute...
    #[serde(default = "default_auth_per_minute")]
    pub auth_failures_per_minute: u32,
    /// ...and at once, before the address is refused (429) until the rate
    /// lets it try again.
    #[serde(default = "default_auth_burst")]
    pub auth_failure_burst: u32,
    /// Terminate TLS here (`[api.tls] cert_file, key_file`, PEM, re-read
    /// when they change); plain HTTP when absent (loopback, or behind a
    /// reverse proxy that terminates TLS).
    #[serde(default)]
    pub tls: Option<hostwright_tls::server::CertFiles>,
}

fn default_auth_per_minute() -> u32 {
    10
}
fn default_auth_burst() -> u32 {
    10
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".parse().expect("literal address"),
            ops_token_file: None,
            auth_failures_per_minute: default_auth_per_minute(),
            auth_failure_burst: default_auth_burst(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// Trusted contract-signing keys (TOML, see `docs/contract-format.md`).
    pub trusted_keys: PathBuf,
    /// File holding the contract system's bearer credential for
    /// `POST /v1/contracts`; without it intake is open to any caller (the
    /// signature is then the only check).
    #[serde(default)]
    pub credential_file: Option<PathBuf>,
    /// Refused submissions one client address may have in a row before it
    /// is answered 429 (nothing read or recorded) until its budget refills.
    #[serde(default = "default_refusal_burst")]
    pub refusal_burst: std::num::NonZeroU32,
    /// How fast that budget refills, in refusals per minute.
    #[serde(default = "default_refusals_per_minute")]
    pub refusals_per_minute: std::num::NonZeroU32,
    /// Refusals (the `rejections` table) older than this are deleted.
    #[serde(default = "default_rejection_retention_days")]
    pub rejection_retention_days: u32,
}

fn default_refusal_burst() -> std::num::NonZeroU32 {
    super::guard::RefusalBudget::default().burst
}
fn default_refusals_per_minute() -> std::num::NonZeroU32 {
    super::guard::RefusalBudget::default().per_minute
}
fn default_rejection_retention_days() -> u32 {
    90
}

impl IntakeConfig {
    pub fn refusal_budget(&self) -> super::guard::RefusalBudget {
        super::guard::RefusalBudget {
            burst: self.refusal_burst,
            per_minute: self.refusals_per_minute,
        }
    }
    pub fn rejection_retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.rejection_retention_days) * 86_400)
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Jobs run concurrently by this process (jobs of one contract never run
    /// concurrently, whatever this says).
    pub concurrency: usize,
    pub lease_seconds: u64,
    pub poll_interval_ms: u64,
    pub step_timeout_seconds: u64,
    pub shutdown_grace_seconds: u64,
    pub retry: RetryPolicy,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: 8,
            lease_seconds: 30,
            poll_interval_ms: 250,
            step_timeout_seconds: 120,
            shutdown_grace_seconds: 20,
            retry: RetryPolicy::default(),
        }
    }
}

impl WorkerSettings {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds.max(1))
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }
    pub fn step_timeout(&self) -> Duration {
        Duration::from_secs(self.step_timeout_seconds.max(1))
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}

/// Facts about our own platform that the planner writes into specs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningConfig {
    /// Address the customers' web sites answer on (DNS A records) when
    /// there is one web host; with `[fleet]`, each host's own `ipv4`.
    #[serde(default)]
    pub web_ipv4: Option<std::net::Ipv4Addr>,
    /// MX targets of the Secure MX service, `preference host.` each.
    #[serde(default = "default_mx")]
    pub mx: Vec<String>,
    /// SPF record published for domains whose mail we host.
    #[serde(default = "default_spf")]
    pub spf: String,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
}

fn default_mx() -> Vec<String> {
    vec![
        "10 mx1.securemx.example.".into(),
        "20 mx2.securemx.example.".into(),
    ]
}
fn default_spf() -> String {
    "v=spf1 include:spf.securemx.example ~all".into()
}
fn default_ttl() -> u32 {
    3600
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// Billing's endpoint for billable-state reports (`https://`, or
    /// `http://` on loopback).
    pub endpoint: String,
    /// PEM file of the CA(s) to trust for the endpoint instead of the
    /// system's trust store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// File holding the shared HMAC secret for report signatures.
    pub secret_file: PathBuf,
    #[serde(default = "default_billing_timeout")]
    pub timeout_seconds: u64,
}

fn default_billing_timeout() -> u64 {
    10
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `human` (default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Makes the local-path keys of an adapter's section (see
/// `adapters::local_paths`) absolute against the config file's folder.
fn resolve_adapter_paths(adapter: &str, section: &mut toml::Value, base: &Path) {
    let toml::Value::Table(t) = section else {
        return;
    };
    for key in super::adapters::local_paths(adapter) {
        let (tables, leaf) = match key.rsplit_once('.') {
            Some((sub, leaf)) => (Some(sub), leaf),
            None => (None, *key),
        };
        let t = match tables {
            None => Some(&mut *t),
            Some(sub) => match t.get_mut(sub) {
                Some(toml::Value::Table(st)) => Some(st),
                _ => None,
            },
        };
        if let Some(toml::Value::String(s)) = t.and_then(|t| t.get_mut(leaf)) {
            let p = PathBuf::from(&*s);
            if p.is_relative() {
                *s = base.join(p).display().to_string();
            }
        }
    }
}

impl Config {
    /// Reads a config file; relative paths inside it are taken relative to
    /// the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: toml_one_line(&e),
        })?;
        cfg.source = Some((path.to_path_buf(), text));
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve(base);
        cfg.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// The `[adapters.*]` sections read again from the file's text with
    /// each adapter's own type: the error with the file and its line, when
    /// there is one (the parsed sections have no lines any more).
    pub fn adapter_error_at_line(&self) -> Option<ConfigError> {
        let (path, text) = self.source.as_ref()?;
        super::adapters::check_sections(text)
            .err()
            .map(|e| ConfigError::Parse {
                path: path.clone(),
                message: toml_one_line(&e),
            })
    }

    fn resolve(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.data_dir);
        abs(&mut self.playbooks);
        if let Some(c) = self.catalog.as_mut() {
            abs(c);
        }
        abs(&mut self.intake.trusted_keys);
        if let Some(c) = self.intake.credential_file.as_mut() {
            abs(c);
        }
        if let Some(t) = self.api.ops_token_file.as_mut() {
            abs(t);
        }
        if let Some(k) = self.store.secrets_key_file.as_mut() {
            abs(k);
        }
        if let Some(b) = self.billing.as_mut() {
            abs(&mut b.secret_file);
            if let Some(ca) = b.ca_file.as_mut() {
                abs(ca);
            }
        }
        for hook in self.notify.values_mut() {
            abs(&mut hook.secret_file);
            if let Some(ca) = hook.ca_file.as_mut() {
                abs(ca);
            }
        }
        if let Some(tls) = self.api.tls.as_mut() {
            abs(&mut tls.cert_file);
            abs(&mut tls.key_file);
        }
        // Files that live on hostwright's side, inside the adapters' own
        // sections (paths on a backend host stay as written).
        for (adapter, section) in self.adapters.iter_mut() {
            resolve_adapter_paths(adapter, section, base);
        }
        if let Some(fleet) = self.fleet.as_mut() {
            for host in &mut fleet.hosts {
                resolve_adapter_paths("webhost", &mut host.webhost, base);
                resolve_adapter_paths("ftp", &mut host.ftp, base);
            }
        }
        if let Some(rest) = self.store.url.strip_prefix("sqlite:") {
            let p = Path::new(rest.trim_start_matches("//"));
            if p.is_relative() {
                self.store.url = format!("sqlite:{}", self.data_dir.join(p).display());
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        match &self.fleet {
            Some(fleet) => {
                super::fleet::validate(fleet)?;
                for a in super::fleet::PLACED_ADAPTERS {
                    if self.adapters.contains_key(a) {
                        return Err(format!(
                            "[adapters.{a}] and [fleet] both given: with a fleet, each host has its own `{a}` section"
                        ));
                    }
                }
            }
            None if self.provisioning.web_ipv4.is_none() => {
                return Err(
                    "provisioning.web_ipv4 is required without [fleet] (the one web host's address)"
                        .into(),
                );
            }
            None => {}
        }
        if !(self.store.url.starts_with("sqlite:") || self.store.url.starts_with("postgres://")) {
            return Err(format!(
                "store.url must start with sqlite: or postgres:// (got {:?})",
                self.store.url.split(':').next().unwrap_or("")
            ));
        }
        if let Some(b) = &self.billing {
            hostwright_tls::check_url(&b.endpoint).map_err(|e| format!("billing.endpoint: {e}"))?;
        }
        for (event, hook) in &self.notify {
            hostwright_tls::check_url(&hook.url)
                .map_err(|e| format!("notify.{}.url: {e}", event.as_str()))?;
        }
        if self.api.auth_failures_per_minute == 0 || self.api.auth_failure_burst == 0 {
            return Err(
                "api.auth_failures_per_minute and api.auth_failure_burst must be at least 1".into(),
            );
        }
        if self.workers.concurrency == 0 {
            return Err("workers.concurrency must be at least 1".into());
        }
        if self.intake.rejection_retention_days == 0 {
            return Err("intake.rejection_retention_days must be at least 1".into());
        }
        if self.workers.retry.max_attempts == 0 {
            return Err("workers.retry.max_attempts must be at least 1".into());
        }
        Ok(())
    }
}

/// A TOML error on one line: where (`line N, column M`) and what, without
/// the excerpt drawn under it (the CLI prints one line per error).
pub fn toml_one_line(e: &toml::de::Error) -> String {
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default().to_string();
    let what = lines
        .filter(|l| !l.contains('|'))
        .collect::<Vec<_>>()
        .join(" ");
    if what.is_empty() {
        first
    } else {
        format!("{first}: {what}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostwright.toml");
        std::fs::write(
            &path,
            r#"
data_dir = "data"
playbooks = "playbooks"
[store]
url = "sqlite:jobs.db"
[intake]
trusted_keys = "keys.toml"
[provisioning]
web_ipv4 = "192.0.2.10"
[adapters.scripted]
log = "calls.jsonl"
[adapters.dns]
tsig_secret_file = "keys/update.key"
zone_file_dir = "zones"
[adapters.webhost]
tls_ca_cert = "ca.crt"
[adapters.webhost.ssh]
private_key_file = "web.key"
"#,
        )
        .unwrap();
        let cfg = Config::load(&path).unwrap();
        let base = dir.path();
        assert_eq!(cfg.data_dir, base.join("data"));
        assert_eq!(cfg.intake.trusted_keys, base.join("keys.toml"));
        assert_eq!(
            cfg.store.url,
            format!("sqlite:{}", base.join("data/jobs.db").display())
        );
        let s = |a: &str, k: &str| cfg.adapters[a][k].as_str().unwrap().to_string();
        assert_eq!(
            s("scripted", "log"),
            base.join("calls.jsonl").display().to_string()
        );
        assert_eq!(
            s("dns", "tsig_secret_file"),
            base.join("keys/update.key").display().to_string()
        );
        let ssh_key = cfg.adapters["webhost"]["ssh"]["private_key_file"]
            .as_str()
            .unwrap();
        assert_eq!(ssh_key, base.join("web.key").display().to_string());
        assert_eq!(
            s("webhost", "tls_ca_cert"),
            base.join("ca.crt").display().to_string()
        );
        // A path on the BIND host is not ours to resolve.
        assert_eq!(s("dns", "zone_file_dir"), "zones");
        // No [store.retention]: the defaults.
        let r = cfg.store.retention;
        assert_eq!(
            (
                r.succeeded_attempts_days,
                r.delivered_reports_days,
                r.interval_minutes
            ),
            (90, 400, 60)
        );
    }

    #[test]
    fn store_retention_is_read_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostwright.toml");
        let write = |retention: &str| {
            std::fs::write(
                &path,
                format!(
                    "[store]\nurl = \"sqlite:jobs.db\"\n[store.retention]\n{retention}\n\
                     [intake]\ntrusted_keys = \"k.toml\"\n[provisioning]\nweb_ipv4 = \"192.0.2.10\"\n"
                ),
            )
            .unwrap();
        };
        write("succeeded_attempts_days = 7\ndelivered_reports_days = 0");
        let r = Config::load(&path).unwrap().store.retention;
        assert_eq!(r.succeeded_attempts_days, 7);
        assert_eq!(r.delivered_reports_days, 0);
        assert_eq!(r.interval_minutes, 60);
        write("attempts_days = 7");
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("attempts_days"), "{e}");
    }

    #[test]
    fn tls_paths_resolve_and_the_billing_endpoint_must_be_http_or_https() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostwright.toml");
        let write = |endpoint: &str| {
            std::fs::write(
                &path,
                format!(
                    r#"
[api]
listen = "127.0.0.1:8443"
[api.tls]
cert_file = "tls/api.crt"
key_file = "tls/api.key"
[intake]
trusted_keys = "keys.toml"
[provisioning]
web_ipv4 = "192.0.2.10"
[billing]
endpoint = "{endpoint}"
secret_file = "billing-secret"
ca_file = "ca.pem"
[adapters.securemx]
base_url = "https://mx.example"
api_key_file = "mx-key"
ca_file = "mx-ca.pem"
"#
                ),
            )
            .unwrap();
        };
        write("https://billing.example/v1/billable-states");
        let cfg = Config::load(&path).unwrap();
        let base = dir.path();
        let tls = cfg.api.tls.as_ref().unwrap();
        assert_eq!(tls.cert_file, base.join("tls/api.crt"));
        assert_eq!(tls.key_file, base.join("tls/api.key"));
        assert_eq!(
            cfg.billing.as_ref().unwrap().ca_file.as_deref(),
            Some(base.join("ca.pem").as_path())
        );
        assert_eq!(
            cfg.adapters["securemx"]["ca_file"].as_str().unwrap(),
            base.join("mx-ca.pem").display().to_string()
        );
        write("ftp://billing.example/x");
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("billing.endpoint") && e.contains("http:// or https://"),
            "{e}"
        );
    }

    #[test]
    fn a_fleet_replaces_the_one_web_host_and_its_paths_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostwright.toml");
        let write = |extra: &str| {
            std::fs::write(
                &path,
                format!(
                    r#"
[intake]
trusted_keys = "keys.toml"
[provisioning]
{extra}
[fleet]
policy = "fill_in_order"
[[fleet.hosts]]
name = "web1"
ipv4 = "192.0.2.1"
capacity_accounts = 100
capacity_disk_gb = 500
[fleet.hosts.webhost]
tls_ca_cert = "ca.crt"
[fleet.hosts.webhost.ssh]
host = "web1.internal"
private_key_file = "web1.key"
[fleet.hosts.ftp.ssh]
host = "web1.internal"
private_key_file = "/etc/hostwright/web1.key"
"#
                ),
            )
            .unwrap();
        };
        write("");
        let cfg = Config::load(&path).unwrap();
        let host = &cfg.fleet.as_ref().unwrap().hosts[0];
        let base = dir.path();
        assert_eq!(
            host.webhost["ssh"]["private_key_file"].as_str().unwrap(),
            base.join("web1.key").display().to_string()
        );
        assert_eq!(
            host.webhost["tls_ca_cert"].as_str().unwrap(),
            base.join("ca.crt").display().to_string()
        );
        assert_eq!(
            host.ftp["ssh"]["private_key_file"].as_str().unwrap(),
            "/etc/hostwright/web1.key"
        );
        assert_eq!(host.health_address().unwrap(), "web1.internal:22");
        // A fleet and a lone [adapters.webhost] contradict each other.
        write("[adapters.webhost]\nhome_root = \"/home\"");
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("[adapters.webhost] and [fleet] both given"),
            "{e}"
        );
        // Without a fleet, the one host's address is required.
        std::fs::write(&path, "[intake]\ntrusted_keys = \"k\"\n[provisioning]\n").unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("provisioning.web_ipv4 is required without [fleet]"),
            "{e}"
        );
    }
}
