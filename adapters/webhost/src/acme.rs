//! Certificates from an ACME directory (RFC 8555, `instant-acme`), for web
//! hosts whose config has `[acme]`; without it the internal CA
//! ([`crate::tls`]) issues them.
//!
//! Challenges are HTTP-01, answered by the site's own vhost: with ACME
//! configured every vhost file has a `location ^~ /.well-known/acme-challenge/`
//! served from `challenge_dir` on the web host ([`crate::render`]), and the
//! adapter writes each challenge's key authorization there over SSH before it
//! tells the directory to validate, and deletes it afterwards. A vhost's first
//! certificate is ordered after its file is in place without TLS (nginx cannot
//! serve TLS without a certificate); a renewal is answered by the vhost as it
//! runs, old certificate and all.
//!
//! The account is made on first use and kept in `account_file` (created
//! 0600; a group- or world-readable one is refused at start). Its private key
//! and every certificate key are never logged: [`Acme`]'s `Debug` shows the
//! directory only.
//!
//! HTTPS to the directory goes through hostwright's own rustls client
//! (`hostwright_tls`, with `ca_file` when the directory has a private CA).

use std::future::Future;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hostwright_adapter::AdapterError;
use http_body_util::BodyExt;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use serde::Deserialize;

/// The `[acme]` table of a web host adapter's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The directory URL (`https://`), e.g. Let's Encrypt's.
    pub directory: String,
    /// Contact URLs of the account (`mailto:ops@example.net`).
    #[serde(default)]
    pub contact: Vec<String>,
    /// The account's credentials (its private key), on hostwright's side:
    /// made on first use with mode 0600, refused when others may read it.
    pub account_file: PathBuf,
    /// PEM CA file trusted for the directory's HTTPS (system trust without).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A certificate with fewer days left is renewed (and is drift).
    #[serde(default = "default_renew_days")]
    pub renew_days: u32,
    /// On the web host: where challenge tokens are written; every vhost
    /// serves it at `/.well-known/acme-challenge/`.
    pub challenge_dir: String,
    /// How long one order may take, challenges and issuance included.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_renew_days() -> u32 {
    30
}
fn default_timeout() -> u64 {
    90
}

/// An `[acme]` table the adapter cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum AcmeConfigError {
    #[error("acme.directory {url:?}: {message}")]
    Directory { url: String, message: String },
    #[error("acme.contact {0:?} must be a mailto: URL without spaces")]
    Contact(String),
    #[error("acme.renew_days {0} must be between 1 and 3650")]
    RenewDays(u32),
    #[error("acme.ca_file: {0}")]
    CaFile(hostwright_tls::TlsError),
    #[error(
        "acme.account_file {path}: mode {mode:o} lets others read the account key; chmod 600 it"
    )]
    AccountMode { path: PathBuf, mode: u32 },
    #[error("acme.account_file {path}: {message}")]
    Account { path: PathBuf, message: String },
}

/// ACME issuance for one web host adapter.
pub struct Acme {
    cfg: AcmeConfig,
    http: reqwest::Client,
    /// Made (or read) once, then shared by every order of this adapter.
    account: tokio::sync::Mutex<Option<Account>>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("directory", &self.cfg.directory)
            .finish()
    }
}

/// A certificate chain and its fresh key. `key_pem` is a private key: never
/// log it.
pub struct AcmeIssued {
    pub chain_pem: String,
    pub key_pem: String,
    pub not_after: DateTime<Utc>,
}

/// The characters of an ACME token (base64url): it names a file on the host.
fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Acme {
    pub fn new(cfg: AcmeConfig) -> Result<Acme, AcmeConfigError> {
        let url =
            hostwright_tls::check_url(&cfg.directory).map_err(|e| AcmeConfigError::Directory {
                url: cfg.directory.clone(),
                message: e.to_string(),
            })?;
        if url.scheme() != "https" || cfg.directory.contains(char::is_whitespace) {
            return Err(AcmeConfigError::Directory {
                url: cfg.directory.clone(),
                message: "must be an https:// URL".into(),
            });
        }
        for c in &cfg.contact {
            if !c.starts_with("mailto:") || c.len() < 8 || c.contains(char::is_whitespace) {
                return Err(AcmeConfigError::Contact(c.clone()));
            }
        }
        if !(1..=3650).contains(&cfg.renew_days) {
            return Err(AcmeConfigError::RenewDays(cfg.renew_days));
        }
        match std::fs::metadata(&cfg.account_file) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                return Err(AcmeConfigError::AccountMode {
                    path: cfg.account_file.clone(),
                    mode: m.permissions().mode() & 0o777,
                });
            }
            Ok(_) => {
                // Unreadable credentials fail at start, not at the first order.
                drop(read_credentials(&cfg.account_file)?);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(AcmeConfigError::Account {
                    path: cfg.account_file.clone(),
                    message: e.to_string(),
                });
            }
        }
        let http = hostwright_tls::client_builder(cfg.ca_file.as_deref())
            .map_err(AcmeConfigError::CaFile)?
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| AcmeConfigError::Directory {
                url: cfg.directory.clone(),
                message: e.to_string(),
            })?;
        Ok(Acme {
            cfg,
            http,
            account: tokio::sync::Mutex::new(None),
        })
    }

    pub fn config(&self) -> &AcmeConfig {
        &self.cfg
    }

    /// What `.meta` files name as the issuer of this directory's certificates.
    pub fn source(&self) -> String {
        format!("acme:{}", self.cfg.directory)
    }

    fn client(&self) -> Box<dyn HttpClient> {
        Box::new(ReqwestHttp(self.http.clone()))
    }

    /// The account: read from `account_file`, or registered and written
    /// there (0600, never overwritten: another adapter of this process may
    /// have written it first, then that one is used).
    async fn account(&self) -> Result<Account, AdapterError> {
        let mut slot = self.account.lock().await;
        if let Some(a) = slot.as_ref() {
            return Ok(a.clone());
        }
        let path = &self.cfg.account_file;
        let account = if path.exists() {
            let creds = read_credentials(path).map_err(|e| perm(e.to_string()))?;
            Account::builder_with_http(self.client())
                .from_credentials(creds)
                .await
                .map_err(acme_error)?
        } else {
            let contact: Vec<&str> = self.cfg.contact.iter().map(String::as_str).collect();
            let (account, creds) = Account::builder_with_http(self.client())
                .create(
                    &NewAccount {
                        contact: &contact,
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    self.cfg.directory.clone(),
                    None,
                )
                .await
                .map_err(acme_error)?;
            match write_credentials(path, &creds) {
                Ok(()) => account,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let creds = read_credentials(path).map_err(|e| perm(e.to_string()))?;
                    Account::builder_with_http(self.client())
                        .from_credentials(creds)
                        .await
                        .map_err(acme_error)?
                }
                Err(e) => {
                    return Err(perm(format!(
                        "cannot write acme.account_file {}: {e}",
                        path.display()
                    )));
                }
            }
        };
        *slot = Some(account.clone());
        Ok(account)
    }

    /// Orders a certificate for `names` (the first is the vhost's domain).
    /// `publish(token, key_authorization)` must make the token answerable at
    /// `http://NAME/.well-known/acme-challenge/TOKEN` for every name;
    /// `withdraw(tokens)` is called with every published token at the end,
    /// whatever the outcome.
    pub async fn issue<P, PF, W, WF>(
        &self,
        names: &[String],
        publish: P,
        withdraw: W,
    ) -> Result<AcmeIssued, AdapterError>
    where
        P: Fn(String, String) -> PF,
        PF: Future<Output = Result<(), AdapterError>>,
        W: FnOnce(Vec<String>) -> WF,
        WF: Future<Output = ()>,
    {
        let deadline = Duration::from_secs(self.cfg.timeout_seconds);
        let mut tokens = Vec::new();
        let res = tokio::time::timeout(deadline, self.order(names, &publish, &mut tokens))
            .await
            .unwrap_or_else(|_| {
                Err(AdapterError::transient(format!(
                    "the ACME order for {} took longer than {} s",
                    names.join(","),
                    self.cfg.timeout_seconds
                )))
            });
        if !tokens.is_empty() {
            withdraw(tokens).await;
        }
        res
    }

    async fn order<P, PF>(
        &self,
        names: &[String],
        publish: &P,
        tokens: &mut Vec<String>,
    ) -> Result<AcmeIssued, AdapterError>
    where
        P: Fn(String, String) -> PF,
        PF: Future<Output = Result<(), AdapterError>>,
    {
        let account = self.account().await?;
        let ids: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let mut order = account
            .new_order(&NewOrder::new(&ids))
            .await
            .map_err(acme_error)?;
        let mut auths = order.authorizations();
        while let Some(auth) = auths.next().await {
            let mut auth = auth.map_err(acme_error)?;
            match auth.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                s => {
                    return Err(AdapterError::transient(format!(
                        "the ACME authorization for {} is {s:?}",
                        auth.identifier()
                    )));
                }
            }
            let mut ch = auth.challenge(ChallengeType::Http01).ok_or_else(|| {
                perm("the ACME directory offers no http-01 challenge for this vhost")
            })?;
            let token = ch.token.clone();
            if !valid_token(&token) {
                return Err(perm(
                    "the ACME directory sent a challenge token that is not base64url",
                ));
            }
            tokens.push(token.clone());
            publish(token, ch.key_authorization().as_str().to_string()).await?;
            ch.set_ready().await.map_err(acme_error)?;
        }
        let poll = RetryPolicy::new()
            .initial_delay(Duration::from_millis(100))
            .backoff(1.5)
            .timeout(Duration::from_secs(self.cfg.timeout_seconds));
        let status = order.poll_ready(&poll).await.map_err(acme_error)?;
        if status != OrderStatus::Ready {
            return Err(AdapterError::transient(format!(
                "the ACME order for {} became {status:?} (a challenge failed: is the vhost reachable over HTTP at these names?)",
                names.join(",")
            )));
        }
        let key = rcgen::KeyPair::generate().map_err(|e| perm(format!("key: {e}")))?;
        let mut params =
            rcgen::CertificateParams::new(names.to_vec()).map_err(|e| perm(format!("CSR: {e}")))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| perm(format!("CSR: {e}")))?;
        order.finalize_csr(csr.der()).await.map_err(acme_error)?;
        let chain_pem = order.poll_certificate(&poll).await.map_err(acme_error)?;
        let not_after = leaf_not_after(&chain_pem)?;
        Ok(AcmeIssued {
            chain_pem,
            key_pem: key.serialize_pem(),
            not_after,
        })
    }
}

/// The expiry of the first certificate of a PEM chain.
pub fn leaf_not_after(chain_pem: &str) -> Result<DateTime<Utc>, AdapterError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes())
        .map_err(|e| perm(format!("the ACME directory sent no PEM certificate: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| perm(format!("the ACME certificate does not parse: {e}")))?;
    DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .ok_or_else(|| perm("the ACME certificate's expiry is out of range"))
}

fn read_credentials(path: &Path) -> Result<AccountCredentials, AcmeConfigError> {
    let text = std::fs::read(path).map_err(|e| AcmeConfigError::Account {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    // serde_json's message names a position, never the file's contents.
    serde_json::from_slice(&text).map_err(|e| AcmeConfigError::Account {
        path: path.to_path_buf(),
        message: format!("not ACME account credentials: {e}"),
    })
}

fn write_credentials(path: &Path, creds: &AccountCredentials) -> std::io::Result<()> {
    let json = serde_json::to_vec(creds).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(&json)?;
    f.sync_all()
}

fn perm(msg: impl std::fmt::Display) -> AdapterError {
    AdapterError::permanent(msg.to_string())
}

/// Problems the directory answers that no retry changes (RFC 8555 §6.7);
/// everything else (rate limits, a failed validation, an outage) may pass.
const PERMANENT_PROBLEMS: &[&str] = &[
    "accountDoesNotExist",
    "badCSR",
    "badSignatureAlgorithm",
    "caa",
    "externalAccountRequired",
    "invalidContact",
    "malformed",
    "rejectedIdentifier",
    "unsupportedContact",
    "unsupportedIdentifier",
    "userActionRequired",
];

fn acme_error(e: instant_acme::Error) -> AdapterError {
    if let Some(refused) = hostwright_tls::certificate_error(&e) {
        return perm(format!("ACME directory: {refused}"));
    }
    match &e {
        instant_acme::Error::Api(p) => {
            let kind = p
                .r#type
                .as_deref()
                .and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:"))
                .unwrap_or("");
            let msg = format!("ACME directory: {e}");
            if PERMANENT_PROBLEMS.contains(&kind) {
                perm(msg)
            } else {
                AdapterError::transient(msg)
            }
        }
        instant_acme::Error::Crypto | instant_acme::Error::KeyRejected => {
            perm(format!("ACME account key: {e}"))
        }
        _ => AdapterError::transient(format!("ACME: {e}")),
    }
}

/// instant-acme's HTTP through hostwright's reqwest client.
struct ReqwestHttp(reqwest::Client);

impl HttpClient for ReqwestHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(b) => b.to_bytes(),
                Err(never) => match never {},
            };
            let rsp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let mut out = http::Response::builder().status(rsp.status());
            if let Some(h) = out.headers_mut() {
                *h = rsp.headers().clone();
            }
            let bytes = rsp
                .bytes()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let rsp = out.body(http_body_util::Full::new(bytes))?;
            Ok(BytesResponse::from(rsp))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> AcmeConfig {
        AcmeConfig {
            directory: "https://acme.example.net/dir".into(),
            contact: vec!["mailto:ops@example.net".into()],
            account_file: dir.join("account.json"),
            ca_file: None,
            renew_days: 30,
            challenge_dir: "/srv/acme".into(),
            timeout_seconds: 90,
        }
    }

    #[test]
    fn the_config_is_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Acme::new(cfg(dir.path())).is_ok());
        let mut c = cfg(dir.path());
        c.directory = "http://acme.example.net/dir".into();
        assert!(matches!(
            Acme::new(c),
            Err(AcmeConfigError::Directory { .. })
        ));
        let mut c = cfg(dir.path());
        c.contact = vec!["ops@example.net".into()];
        assert!(matches!(Acme::new(c), Err(AcmeConfigError::Contact(_))));
        let mut c = cfg(dir.path());
        c.renew_days = 0;
        assert!(matches!(Acme::new(c), Err(AcmeConfigError::RenewDays(0))));
        // An account file others may read is refused; 0600 is read.
        let c = cfg(dir.path());
        std::fs::write(&c.account_file, b"{}").unwrap();
        std::fs::set_permissions(&c.account_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Acme::new(c.clone()),
            Err(AcmeConfigError::AccountMode { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&c.account_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Acme::new(c).unwrap_err().to_string();
        assert!(e.contains("not ACME account credentials"), "{e}");
    }

    #[test]
    fn tokens_are_base64url_only() {
        assert!(valid_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        for bad in ["", "../etc", "a/b", "a b", "a.b", &"x".repeat(129)] {
            assert!(!valid_token(bad), "{bad}");
        }
    }

    #[test]
    fn debug_shows_the_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = Acme::new(cfg(dir.path())).unwrap();
        let d = format!("{a:?}");
        assert!(
            d.contains("acme.example.net") && !d.contains("account"),
            "{d}"
        );
    }
}
