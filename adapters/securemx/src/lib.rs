//! The Secure MX adapter: a customer's Secure MX tenant (第6条–第10条) and its
//! mailboxes, managed through the provider's HTTP API (docs/securemx-api.md;
//! the `securemx-mock` binary of this crate implements it for tests).
//!
//! Kinds:
//! - `mx_tenant`: `PUT /v1/tenants/{id}` with the full desired tenant (create
//!   or update, including suspension); removal is `DELETE`, 404 = gone.
//! - `mx_mailboxes`: the full set of the tenant's mailboxes. Ensure lists what
//!   exists (paging), deletes what the spec no longer names, then creates what
//!   is missing, a bounded number of requests at a time. A create that answers
//!   409 `mailbox_exists` is done.
//!
//! Failures are classified for the engine: 429, 5xx, connection errors and
//! timeouts are transient (429 is first retried here a few times, honouring
//! `Retry-After`, since the provider asks for exactly that); other 4xx answers
//! are permanent and name the API's error code. The API key never appears in
//! errors or logs.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use hostwright_adapter::retry::RetryPolicy;
use hostwright_adapter::validate::{DomainName, MailLocalPart};
use hostwright_adapter::{
    Adapter, AdapterError, Comparison, Difference, Observation, Outcome, Resource, Secret, Spec,
    StepContext, validate,
};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The `[adapters.securemx]` config section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureMxConfig {
    /// The API's base URL, e.g. `https://api.securemx.example` (or
    /// `http://127.0.0.1:55380` for a mock on loopback).
    pub base_url: String,
    /// PEM file of the CA(s) to trust for the API instead of the system's
    /// trust store (a private CA, the compose stack's own CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// File holding the API key (first non-empty line).
    pub api_key_file: PathBuf,
    /// Requests in flight at once for mailbox work (default 16).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Per-request timeout in seconds (default 10).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// The provider's published rate limit for our API key, in requests per
    /// second. When set, requests are paced to it (see [`Pacer`]) instead of
    /// running into 429 answers, whose `Retry-After` is whole seconds.
    #[serde(default)]
    pub rate_limit_per_s: Option<f64>,
    /// The provider's published burst (requests allowed at once above the
    /// rate); 1 when absent. Only with `rate_limit_per_s`.
    #[serde(default)]
    pub burst: Option<u32>,
}

/// The resource kinds of this adapter.
pub const KIND_TENANT: &str = "mx_tenant";
pub const KIND_MAILBOXES: &str = "mx_mailboxes";

pub const DEFAULT_CONCURRENCY: usize = 16;
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// A 429 is retried here a few times under the one retry policy (never
/// sooner than the API's `Retry-After`): the provider asks for exactly that.
const RATE_LIMITED: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_delay_ms: 250,
    max_delay_ms: 2_000,
};
/// Longest `Retry-After` waited here; a longer one goes back to the engine.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(5);
const PAGE: usize = 100;

/// Why the adapter cannot be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum SecureMxError {
    #[error("securemx: reading the API key file {path}: {source}")]
    ApiKeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("securemx: the API key file {path} holds no key")]
    EmptyApiKey { path: PathBuf },
    #[error("securemx: base_url {url:?}: {message}")]
    BaseUrl { url: String, message: String },
    #[error("securemx: concurrency must be at least 1")]
    Concurrency,
    #[error(
        "securemx: rate_limit_per_s must be a positive number of requests per second, and burst at least 1 (and only with a rate)"
    )]
    RateLimit,
    #[error("securemx: building the HTTP client: {0}")]
    Client(String),
    #[error("securemx: {0}")]
    Tls(#[from] hostwright_tls::TlsError),
}

pub struct SecureMxAdapter {
    base: Url,
    key: Secret,
    http: reqwest::Client,
    concurrency: usize,
    pacer: Option<Pacer>,
}

/// Paces requests to a published rate limit: the virtual-scheduling form of
/// a token bucket (GCRA). Each request reserves the next slot `interval`
/// after the previous one; up to `burst` requests may run ahead of that
/// schedule. Slots are reserved under a lock and waited for outside it, so
/// concurrent requests line up without holding each other.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    /// How far ahead of the schedule a request may go: (burst - 1) intervals.
    tolerance: Duration,
    /// The theoretical arrival time of the next request.
    next: std::sync::Mutex<tokio::time::Instant>,
}

impl Pacer {
    fn new(per_s: f64, burst: u32) -> Option<Pacer> {
        if !(per_s.is_finite() && per_s > 0.0) || burst == 0 {
            return None;
        }
        let interval = Duration::from_secs_f64(1.0 / per_s);
        Some(Pacer {
            interval,
            tolerance: interval * (burst - 1),
            next: std::sync::Mutex::new(tokio::time::Instant::now()),
        })
    }

    /// Waits for this request's slot.
    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().expect("pacer lock");
            let now = tokio::time::Instant::now();
            let tat = (*next).max(now);
            *next = tat + self.interval;
            tat.checked_sub(self.tolerance).unwrap_or(now).max(now)
        };
        tokio::time::sleep_until(at).await;
    }
}

impl std::fmt::Debug for SecureMxAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureMxAdapter")
            .field("base", &self.base.as_str())
            .field("key", &self.key)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// `mx_tenant` spec; the key is the tenant id, which is the contract id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// The target domains (第8条); mailboxes live under the first.
    pub domains: Vec<DomainName>,
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    pub administrator: Administrator,
    pub accounts_limit: u32,
    pub disk_units: u32,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub iij_id: Option<String>,
    #[serde(default)]
    pub dox: Option<String>,
    #[serde(default)]
    pub suspended: bool,
    /// Every mailbox address the contract keeps (`local@domain`). When
    /// present, mailboxes outside it are deleted before the tenant is
    /// updated, so that lowering `accounts_limit` or dropping a target domain
    /// in the same revision that drops mailboxes is not refused by the API
    /// (the `mx_mailboxes` step, which runs after this one, would delete them
    /// anyway; new mailboxes are still created there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailboxes: Option<Vec<Mailbox>>,
}

impl Spec for TenantSpec {
    const KIND: &'static str = KIND_TENANT;
    const LEGACY_FIELDS: &'static [&'static str] = &["tenant"];
}

/// The operations administrator (第9条).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Administrator {
    pub name: String,
    pub email: String,
}

/// A mailbox address, `local@domain`, each part validated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mailbox {
    pub local_part: MailLocalPart,
    pub domain: DomainName,
}

impl Mailbox {
    pub fn new(local_part: MailLocalPart, domain: DomainName) -> Mailbox {
        Mailbox { local_part, domain }
    }
}

impl std::fmt::Display for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.local_part, self.domain)
    }
}

impl TryFrom<String> for Mailbox {
    type Error = String;
    fn try_from(s: String) -> Result<Mailbox, String> {
        let (lp, d) = s
            .split_once('@')
            .ok_or_else(|| format!("mailbox {s:?} is not local@domain"))?;
        Ok(Mailbox {
            local_part: MailLocalPart::parse(lp).map_err(|e| e.to_string())?,
            domain: DomainName::parse(d).map_err(|e| e.to_string())?,
        })
    }
}

impl From<Mailbox> for String {
    fn from(m: Mailbox) -> String {
        m.to_string()
    }
}

/// `mx_mailboxes` spec; the key is the tenant id (the contract id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxesSpec {
    pub domain: DomainName,
    #[serde(default)]
    pub local_parts: Vec<MailLocalPart>,
}

impl Spec for MailboxesSpec {
    const KIND: &'static str = KIND_MAILBOXES;
    const LEGACY_FIELDS: &'static [&'static str] = &["tenant"];
}

/// An answer from the API that was neither 429 nor 5xx.
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("unknown")
    }

    /// A permanent error naming the operation, status and the API's code.
    fn permanent(&self, op: &str) -> AdapterError {
        AdapterError::permanent(format!(
            "securemx {op}: HTTP {} {}: {}",
            self.status.as_u16(),
            self.code(),
            self.body["error"]["message"].as_str().unwrap_or("")
        ))
    }
}

/// A tenant is one contract's: its id is the resource's key and must be
/// the contract the step runs for (a spec naming another would change
/// someone else's mail).
/// The tenant as `PUT /v1/tenants/{id}` sends it (and `GET` answers it).
fn tenant_body(spec: &TenantSpec) -> Value {
    json!({
        "domains": spec.domains,
        "ips": spec.ips,
        "administrator": spec.administrator,
        "accounts_limit": spec.accounts_limit,
        "disk_units": spec.disk_units,
        "options": spec.options,
        "iij_id": spec.iij_id,
        "dox": spec.dox,
        "suspended": spec.suspended,
    })
}

/// The tenant's settings that differ between what hostwright sends and
/// what the API answers (options and addresses compared as sets).
fn tenant_differences(want: &Value, have: &Value) -> Vec<Difference> {
    let norm = |k: &str, v: &Value| match (k, v.as_array()) {
        ("options" | "ips", Some(a)) => {
            let mut a = a.clone();
            a.sort_by_key(|x| x.to_string());
            Value::Array(a)
        }
        _ => v.clone(),
    };
    let mut out = Vec::new();
    if let Some(want) = want.as_object() {
        for (k, w) in want {
            let h = have.get(k).cloned().unwrap_or(Value::Null);
            if norm(k, w) != norm(k, &h) {
                out.push(Difference::of(k.clone(), w, h));
            }
        }
    }
    out
}

fn tenant_of(resource: &Resource) -> Result<&str, AdapterError> {
    let tenant = validate::contract_id(&resource.key)
        .map_err(|e| AdapterError::permanent(format!("securemx: tenant {e}")))?;
    if tenant != resource.contract_id {
        return Err(AdapterError::permanent(format!(
            "securemx: tenant {tenant:?} is not the contract {:?}",
            resource.contract_id
        )));
    }
    Ok(tenant)
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Combines the failures of concurrent requests: permanent wins (a retry
/// cannot fix the step), else the transient one with the longest hint.
fn worst(errors: Vec<AdapterError>) -> Option<AdapterError> {
    let n = errors.len();
    let mut permanent = None;
    let mut transient: Option<AdapterError> = None;
    for e in errors {
        match &e {
            AdapterError::Permanent { .. } => {
                permanent.get_or_insert(e);
            }
            AdapterError::Transient { retry_after, .. } => {
                let longer = match &transient {
                    Some(AdapterError::Transient {
                        retry_after: prev, ..
                    }) => retry_after > prev,
                    _ => true,
                };
                if longer {
                    transient = Some(e);
                }
            }
        }
    }
    let e = permanent.or(transient)?;
    if n <= 1 {
        return Some(e);
    }
    Some(match e {
        AdapterError::Permanent { message } => AdapterError::Permanent {
            message: format!("{message} (and {} more failures)", n - 1),
        },
        AdapterError::Transient {
            message,
            retry_after,
        } => AdapterError::Transient {
            message: format!("{message} (and {} more failures)", n - 1),
            retry_after,
        },
    })
}

impl SecureMxAdapter {
    pub fn new(cfg: SecureMxConfig) -> Result<Self, SecureMxError> {
        let text = std::fs::read_to_string(&cfg.api_key_file).map_err(|source| {
            SecureMxError::ApiKeyFile {
                path: cfg.api_key_file.clone(),
                source,
            }
        })?;
        let key = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .ok_or_else(|| SecureMxError::EmptyApiKey {
                path: cfg.api_key_file.clone(),
            })?;
        let base =
            hostwright_tls::check_url(&cfg.base_url).map_err(|e| SecureMxError::BaseUrl {
                url: cfg.base_url.clone(),
                message: match e {
                    hostwright_tls::TlsError::Url { message, .. } => message,
                    other => other.to_string(),
                },
            })?;
        let concurrency = cfg.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(SecureMxError::Concurrency);
        }
        let pacer = match (cfg.rate_limit_per_s, cfg.burst) {
            (None, None) => None,
            (None, Some(_)) => return Err(SecureMxError::RateLimit),
            (Some(rate), burst) => {
                Some(Pacer::new(rate, burst.unwrap_or(1)).ok_or(SecureMxError::RateLimit)?)
            }
        };
        let timeout = Duration::from_secs(cfg.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS).max(1));
        let http = hostwright_tls::client_builder(cfg.ca_file.as_deref())?
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(concurrency)
            .build()
            .map_err(|e| SecureMxError::Client(e.to_string()))?;
        Ok(SecureMxAdapter {
            base,
            key: Secret::new(key),
            http,
            concurrency,
            pacer,
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new: http(s) URLs can be a base")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// Sends one request; 429 is retried here (honouring `Retry-After`) a few
    /// times; 429, 5xx and transport failures end as transient errors.
    async fn call(
        &self,
        op: &str,
        method: Method,
        url: Url,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, AdapterError> {
        let mut backoff = RATE_LIMITED.backoff();
        loop {
            if let Some(pacer) = &self.pacer {
                pacer.wait().await;
            }
            let mut rb = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.key.expose());
            if let Some(k) = idempotency_key {
                rb = rb.header("idempotency-key", k);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let resp = rb.send().await.map_err(|e| {
                // A certificate we do not trust will not become trusted by
                // retrying: that is the configuration's ca_file (or a
                // man in the middle), for ops to look at.
                if let Some(tls) = hostwright_tls::certificate_error(&e) {
                    return AdapterError::permanent(format!(
                        "securemx {op}: {tls} ({})",
                        self.base
                    ));
                }
                AdapterError::transient(format!(
                    "securemx {op}: {}",
                    if e.is_timeout() {
                        "request timed out".to_string()
                    } else if e.is_connect() {
                        format!("cannot connect to {}", self.base)
                    } else {
                        e.without_url().to_string()
                    }
                ))
            })?;
            let status = resp.status();
            let hint = retry_after(resp.headers());
            let text = resp.text().await.map_err(|e| {
                AdapterError::transient(format!(
                    "securemx {op}: reading the answer: {}",
                    e.without_url()
                ))
            })?;
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let answer = Answer { status, body };
            if status == StatusCode::TOO_MANY_REQUESTS {
                let hint = hint.unwrap_or(Duration::from_secs(1));
                if hint <= MAX_INLINE_WAIT
                    && let Some(wait) = backoff.next(Some(hint))
                {
                    tracing::debug!(
                        op,
                        wait_ms = wait.as_millis() as u64,
                        tries = backoff.tries(),
                        "securemx rate limited; waiting"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(AdapterError::Transient {
                    message: format!("securemx {op}: rate limited (HTTP 429 {})", answer.code()),
                    retry_after: Some(hint),
                });
            }
            if status.is_server_error() {
                return Err(AdapterError::Transient {
                    message: format!("securemx {op}: HTTP {} {}", status.as_u16(), answer.code()),
                    retry_after: hint,
                });
            }
            return Ok(answer);
        }
    }

    async fn ensure_tenant(&self, resource: &Resource) -> Result<Outcome, AdapterError> {
        let spec: TenantSpec = resource.spec()?;
        let tenant = tenant_of(resource)?;
        if spec.domains.is_empty() {
            return Err(AdapterError::permanent(
                "securemx: a tenant needs at least one target domain (第8条)",
            ));
        }
        if let Some(keep) = &spec.mailboxes {
            let keep: Vec<String> = keep.iter().map(Mailbox::to_string).collect();
            self.retire_mailboxes(tenant, &keep).await?;
        }
        let body = tenant_body(&spec);
        let op = format!("put tenant {tenant}");
        let a = self
            .call(
                &op,
                Method::PUT,
                self.url(&["v1", "tenants", tenant]),
                Some(&body),
                None,
            )
            .await?;
        match a.status {
            StatusCode::OK | StatusCode::CREATED => Ok(Outcome::with_facts(json!({
                "tenant": tenant,
                "suspended": a.body["suspended"],
                "disk_units": a.body["disk_units"],
                "accounts_limit": a.body["accounts_limit"],
                "options": a.body["options"],
            }))),
            _ => Err(a.permanent(&op)),
        }
    }

    /// Deletes the tenant's mailboxes that `keep` does not name (nothing when
    /// the tenant does not exist yet).
    async fn retire_mailboxes(&self, tenant: &str, keep: &[String]) -> Result<(), AdapterError> {
        let Some(have) = self.list_mailboxes(tenant).await? else {
            return Ok(());
        };
        let keep: BTreeSet<&str> = keep.iter().map(String::as_str).collect();
        let extra: Vec<String> = have
            .into_iter()
            .filter(|a| !keep.contains(a.as_str()))
            .collect();
        self.each(extra, |addr| async move {
            self.delete_mailbox(tenant, &addr).await
        })
        .await
    }

    async fn remove_tenant(&self, resource: &Resource) -> Result<Outcome, AdapterError> {
        let tenant = tenant_of(resource)?;
        let op = format!("delete tenant {tenant}");
        let a = self
            .call(
                &op,
                Method::DELETE,
                self.url(&["v1", "tenants", tenant]),
                None,
                None,
            )
            .await?;
        match a.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(Outcome::with_facts(
                json!({"tenant": tenant, "removed": true}),
            )),
            StatusCode::NOT_FOUND => Ok(Outcome::with_facts(
                json!({"tenant": tenant, "removed": false}),
            )),
            _ => Err(a.permanent(&op)),
        }
    }

    /// Every mailbox address of the tenant, or `None` when the tenant is absent.
    async fn list_mailboxes(&self, tenant: &str) -> Result<Option<BTreeSet<String>>, AdapterError> {
        let mut out = BTreeSet::new();
        let mut cursor: Option<String> = None;
        let op = format!("list mailboxes of {tenant}");
        loop {
            let mut url = self.url(&["v1", "tenants", tenant, "mailboxes"]);
            url.query_pairs_mut()
                .append_pair("limit", &PAGE.to_string());
            if let Some(c) = &cursor {
                url.query_pairs_mut().append_pair("cursor", c);
            }
            let a = self.call(&op, Method::GET, url, None, None).await?;
            match a.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND if a.code() == "tenant_not_found" => return Ok(None),
                _ => return Err(a.permanent(&op)),
            }
            let Some(page) = a.body["mailboxes"].as_array() else {
                return Err(AdapterError::transient(format!(
                    "securemx {op}: answer without a mailbox list"
                )));
            };
            for m in page {
                if let Some(addr) = m["address"].as_str() {
                    out.insert(addr.to_string());
                }
            }
            match a.body["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
                _ => return Ok(Some(out)),
            }
        }
    }

    async fn create_mailbox(
        &self,
        ctx: &StepContext,
        tenant: &str,
        address: &str,
    ) -> Result<(), AdapterError> {
        let op = format!("create mailbox {address}");
        let key = format!("{}/{address}", ctx.idempotency_key());
        let a = self
            .call(
                &op,
                Method::POST,
                self.url(&["v1", "tenants", tenant, "mailboxes"]),
                Some(&json!({ "address": address })),
                Some(&key),
            )
            .await?;
        match (a.status, a.code()) {
            (StatusCode::CREATED | StatusCode::OK, _) => Ok(()),
            (StatusCode::CONFLICT, "mailbox_exists") => Ok(()),
            _ => Err(a.permanent(&op)),
        }
    }

    async fn delete_mailbox(&self, tenant: &str, address: &str) -> Result<(), AdapterError> {
        let op = format!("delete mailbox {address}");
        let a = self
            .call(
                &op,
                Method::DELETE,
                self.url(&["v1", "tenants", tenant, "mailboxes", address]),
                None,
                None,
            )
            .await?;
        match a.status {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(a.permanent(&op)),
        }
    }

    /// Runs `f` over `items`, `self.concurrency` at a time, and combines failures.
    async fn each<'a, F, Fut>(&'a self, items: Vec<String>, f: F) -> Result<(), AdapterError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<(), AdapterError>> + 'a,
    {
        let errors: Vec<AdapterError> = stream::iter(items.into_iter().map(f))
            .buffer_unordered(self.concurrency)
            .filter_map(|r| async move { r.err() })
            .collect()
            .await;
        match worst(errors) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn ensure_mailboxes(
        &self,
        ctx: &StepContext,
        resource: &Resource,
    ) -> Result<Outcome, AdapterError> {
        let spec: MailboxesSpec = resource.spec()?;
        let tenant = tenant_of(resource)?;
        let want: BTreeSet<String> = spec
            .local_parts
            .iter()
            .map(|lp| format!("{lp}@{}", spec.domain))
            .collect();
        let Some(have) = self.list_mailboxes(tenant).await? else {
            return Err(AdapterError::permanent(format!(
                "securemx: tenant {tenant} does not exist; its mx_tenant step must run first"
            )));
        };
        // The tenant's mailboxes are all the contract's: anything not named goes.
        // Deletions first, so freed accounts count before new ones are created.
        let extra: Vec<String> = have.difference(&want).cloned().collect();
        let missing: Vec<String> = want.difference(&have).cloned().collect();
        self.each(extra, |addr| async move {
            self.delete_mailbox(tenant, &addr).await
        })
        .await?;
        self.each(missing, |addr| async move {
            self.create_mailbox(ctx, tenant, &addr).await
        })
        .await?;
        Ok(Outcome::with_facts(json!({ "mailboxes": want.len() })))
    }

    async fn remove_mailboxes(&self, resource: &Resource) -> Result<Outcome, AdapterError> {
        let t = tenant_of(resource)?;
        let Some(have) = self.list_mailboxes(t).await? else {
            return Ok(Outcome::with_facts(json!({ "mailboxes": 0 })));
        };
        self.each(have.into_iter().collect(), |addr| async move {
            self.delete_mailbox(t, &addr).await
        })
        .await?;
        Ok(Outcome::with_facts(json!({ "mailboxes": 0 })))
    }
}

/// The tenant a resource names (for removal, only the tenant is needed).
fn unknown_kind(resource: &Resource) -> AdapterError {
    AdapterError::permanent(format!(
        "securemx: unknown resource kind {:?}",
        resource.kind
    ))
}

#[async_trait::async_trait]
impl Adapter for SecureMxAdapter {
    fn name(&self) -> &'static str {
        "securemx"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[KIND_TENANT, KIND_MAILBOXES]
    }

    async fn ensure(
        &self,
        ctx: &StepContext,
        resource: &Resource,
    ) -> Result<Outcome, AdapterError> {
        match resource.kind.as_str() {
            KIND_TENANT => self.ensure_tenant(resource).await,
            KIND_MAILBOXES => self.ensure_mailboxes(ctx, resource).await,
            _ => Err(unknown_kind(resource)),
        }
    }

    async fn remove(
        &self,
        _ctx: &StepContext,
        resource: &Resource,
    ) -> Result<Outcome, AdapterError> {
        match resource.kind.as_str() {
            KIND_TENANT => self.remove_tenant(resource).await,
            KIND_MAILBOXES => self.remove_mailboxes(resource).await,
            _ => Err(unknown_kind(resource)),
        }
    }

    async fn observe(&self, resource: &Resource) -> Result<Observation, AdapterError> {
        let tenant = tenant_of(resource)?;
        match resource.kind.as_str() {
            KIND_TENANT => {
                let op = format!("get tenant {tenant}");
                let a = self
                    .call(
                        &op,
                        Method::GET,
                        self.url(&["v1", "tenants", tenant]),
                        None,
                        None,
                    )
                    .await?;
                match a.status {
                    StatusCode::OK => Ok(Observation::Present { facts: a.body }),
                    StatusCode::NOT_FOUND => Ok(Observation::Absent),
                    _ => Err(a.permanent(&op)),
                }
            }
            KIND_MAILBOXES => match self.list_mailboxes(tenant).await? {
                None => Ok(Observation::Absent),
                Some(all) => Ok(Observation::Present {
                    facts: json!({ "mailboxes": all.len(), "addresses": all }),
                }),
            },
            _ => Err(unknown_kind(resource)),
        }
    }

    /// A tenant per request, a tenant's mailboxes per listing (paged), the
    /// adapter's `concurrency` at a time.
    async fn compare(&self, resources: &[Resource]) -> Vec<Result<Comparison, AdapterError>> {
        // Owned items: a borrowed one trips the async-trait future's
        // lifetime inference.
        stream::iter(resources.iter().cloned())
            .map(|r| async move { self.compare_one(&r).await })
            .buffered(self.concurrency)
            .collect()
            .await
    }

    fn location(&self) -> String {
        self.base.to_string()
    }
}

impl SecureMxAdapter {
    async fn compare_one(&self, resource: &Resource) -> Result<Comparison, AdapterError> {
        let tenant = tenant_of(resource)?;
        match resource.kind.as_str() {
            KIND_TENANT => {
                let spec: TenantSpec = resource.spec()?;
                match self.observe(resource).await? {
                    Observation::Absent => Ok(Comparison::Missing),
                    Observation::Present { facts } => Ok(Comparison::from_differences(
                        tenant_differences(&tenant_body(&spec), &facts),
                    )),
                }
            }
            KIND_MAILBOXES => {
                let spec: MailboxesSpec = resource.spec()?;
                let want: BTreeSet<String> = spec
                    .local_parts
                    .iter()
                    .map(|lp| format!("{lp}@{}", spec.domain))
                    .collect();
                let Some(have) = self.list_mailboxes(tenant).await? else {
                    return Ok(Comparison::Missing);
                };
                let mut d = Vec::new();
                let missing: Vec<&String> = want.difference(&have).collect();
                let extra: Vec<&String> = have.difference(&want).collect();
                if !missing.is_empty() || !extra.is_empty() {
                    let mut says = Vec::new();
                    if !missing.is_empty() {
                        says.push(format!("missing mailboxes {missing:?}"));
                    }
                    if !extra.is_empty() {
                        says.push(format!("mailboxes no contract names {extra:?}"));
                    }
                    d.push(Difference::of("mailboxes", &want, &have).says(says.join("; ")));
                }
                Ok(Comparison::from_differences(d))
            }
            _ => Err(unknown_kind(resource)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_settings_compare_options_as_sets() {
        let want = json!({"options": ["a", "b"], "disk_units": 2, "domains": ["x.jp"]});
        let have =
            json!({"options": ["b", "a"], "disk_units": 2, "domains": ["x.jp"], "id": "C-1"});
        assert!(tenant_differences(&want, &have).is_empty());
        let have = json!({"options": ["a"], "disk_units": 3, "domains": ["x.jp"]});
        let d = tenant_differences(&want, &have);
        let fields: Vec<&str> = d.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["disk_units", "options"]);
    }

    fn cfg(dir: &std::path::Path, url: &str) -> SecureMxConfig {
        let key = dir.join("key");
        std::fs::write(&key, "k-123\n").unwrap();
        SecureMxConfig {
            base_url: url.into(),
            ca_file: None,
            api_key_file: key,
            concurrency: None,
            timeout_secs: None,
            rate_limit_per_s: None,
            burst: None,
        }
    }

    #[test]
    fn a_rate_limit_must_make_sense() {
        let dir = tempfile::tempdir().unwrap();
        let with = |rate: Option<f64>, burst: Option<u32>| {
            SecureMxAdapter::new(SecureMxConfig {
                rate_limit_per_s: rate,
                burst,
                ..cfg(dir.path(), "http://127.0.0.1:1")
            })
        };
        for (rate, burst) in [
            (Some(0.0), None),
            (Some(-5.0), None),
            (Some(f64::NAN), None),
            (Some(f64::INFINITY), None),
            (Some(10.0), Some(0)),
            (None, Some(10)),
        ] {
            assert!(
                matches!(with(rate, burst), Err(SecureMxError::RateLimit)),
                "{rate:?} {burst:?}"
            );
        }
        assert!(with(Some(2000.0), Some(500)).unwrap().pacer.is_some());
        assert!(with(None, None).unwrap().pacer.is_none());
    }

    #[tokio::test]
    async fn the_pacer_lets_a_burst_through_then_holds_the_rate() {
        // 200/s with a burst of 5: 25 requests at once need at least the 20
        // beyond the burst × 5 ms = 100 ms; without pacing they take ~0.
        let pacer = Pacer::new(200.0, 5).unwrap();
        let start = tokio::time::Instant::now();
        let mut burst_done = Duration::ZERO;
        let waits: Vec<_> = (0..25).map(|_| pacer.wait()).collect();
        for (i, w) in waits.into_iter().enumerate() {
            w.await;
            if i == 4 {
                burst_done = start.elapsed();
            }
        }
        let all = start.elapsed();
        assert!(all >= Duration::from_millis(99), "25 requests in {all:?}");
        assert!(
            burst_done < all,
            "the burst ({burst_done:?}) did not go ahead of the paced rest ({all:?})"
        );
    }

    #[test]
    fn config_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SecureMxAdapter::new(cfg(dir.path(), "http://127.0.0.1:1")).is_ok());
        assert!(SecureMxAdapter::new(cfg(dir.path(), "https://mx.example")).is_ok());
        assert!(matches!(
            SecureMxAdapter::new(cfg(dir.path(), "ftp://mx.example")),
            Err(SecureMxError::BaseUrl { .. })
        ));
        let mut c = cfg(dir.path(), "https://mx.example");
        c.ca_file = Some(dir.path().join("no-such-ca.pem"));
        let e = SecureMxAdapter::new(c).unwrap_err().to_string();
        assert!(e.contains("CA file") && e.contains("no-such-ca.pem"), "{e}");
        assert!(matches!(
            SecureMxAdapter::new(cfg(dir.path(), "not a url")),
            Err(SecureMxError::BaseUrl { .. })
        ));
        let mut c = cfg(dir.path(), "http://127.0.0.1:1");
        c.concurrency = Some(0);
        assert!(matches!(
            SecureMxAdapter::new(c),
            Err(SecureMxError::Concurrency)
        ));
        let mut c = cfg(dir.path(), "http://127.0.0.1:1");
        std::fs::write(&c.api_key_file, "\n  \n").unwrap();
        assert!(matches!(
            SecureMxAdapter::new(c.clone()),
            Err(SecureMxError::EmptyApiKey { .. })
        ));
        c.api_key_file = dir.path().join("missing");
        assert!(matches!(
            SecureMxAdapter::new(c),
            Err(SecureMxError::ApiKeyFile { .. })
        ));
        let toml_like: SecureMxConfig = serde_json::from_value(json!({
            "base_url": "http://127.0.0.1:55380", "api_key_file": "/x"}))
        .unwrap();
        assert_eq!(toml_like.concurrency, None);
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecureMxAdapter::new(cfg(dir.path(), "http://127.0.0.1:1")).unwrap();
        assert!(!format!("{a:?}").contains("k-123"));
    }

    #[test]
    fn urls_escape_segments_under_a_base_path() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecureMxAdapter::new(cfg(dir.path(), "http://h:1/api/")).unwrap();
        assert_eq!(
            a.url(&["v1", "tenants", "C-1", "mailboxes", "a/b?c@d.jp"])
                .as_str(),
            "http://h:1/api/v1/tenants/C-1/mailboxes/a%2Fb%3Fc@d.jp"
        );
    }

    #[test]
    fn hostile_values_are_refused() {
        for t in ["", "../x", "C 1", "a;b", "Ｃ-1", "c-1"] {
            let r = Resource {
                kind: KIND_TENANT.into(),
                key: t.into(),
                contract_id: t.into(),
                spec: json!({}),
            };
            assert!(tenant_of(&r).is_err(), "{t:?}");
        }
        // Another contract's tenant.
        let r = Resource {
            kind: KIND_TENANT.into(),
            key: "C-2".into(),
            contract_id: "C-1".into(),
            spec: json!({}),
        };
        assert!(tenant_of(&r).is_err());
        for lp in [
            "", "A", ".a", "a..b", "a.", "a b", "$(id)", "a/b", "a@b", "-info",
        ] {
            let spec = json!({"domain": "kaede.jp", "local_parts": [lp]});
            assert!(MailboxesSpec::from_stored(&spec).is_err(), "{lp:?}");
        }
        for lp in ["info", "sales.team", "a+b", "0x"] {
            let spec = json!({"tenant": "C-1", "domain": "kaede.jp", "local_parts": [lp]});
            assert!(MailboxesSpec::from_stored(&spec).is_ok(), "{lp:?}");
        }
        let bad_domain = json!({"domain": "kaede;rm.jp", "local_parts": []});
        assert!(MailboxesSpec::from_stored(&bad_domain).is_err());
    }

    #[test]
    fn permanent_failures_win_over_transient_ones() {
        let e = worst(vec![
            AdapterError::transient("t"),
            AdapterError::permanent("p"),
            AdapterError::Transient {
                message: "t2".into(),
                retry_after: Some(Duration::from_secs(3)),
            },
        ])
        .unwrap();
        assert!(matches!(e, AdapterError::Permanent { ref message } if message.starts_with("p")));
        let e = worst(vec![
            AdapterError::transient("t"),
            AdapterError::Transient {
                message: "t2".into(),
                retry_after: Some(Duration::from_secs(3)),
            },
        ])
        .unwrap();
        assert!(
            matches!(e, AdapterError::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(3))
        );
        assert!(worst(vec![]).is_none());
    }
}
