//! Who may call the API, and the audit trail of what they did.
//!
//! - **Ops credentials** are per person: named tokens (`hwt_<id>_<secret>`)
//!   with scopes, stored as a SHA-256 hash, with an optional expiry. They are
//!   looked up in the store on every request, so `hostwright tokens create`
//!   and `revoke` take effect at once on a running system. The legacy
//!   `api.ops_token_file` still works, with every scope, as the actor
//!   `ops-token-file` (a bootstrap; prefer named tokens).
//! - **The intake credential** (`intake.credential_file`) is the contract
//!   system's: it only opens `POST /v1/contracts` (the signed envelope stays
//!   the proof of the contract; the credential says which system may submit).
//!   Ops tokens do not open intake, and the intake credential opens nothing
//!   else.
//! - The actor of everything is the credential's name, never a header.
//! - **Brute force** is slowed per client address: failed authentications
//!   are counted by a `governor` keyed rate limiter; past it, the address is
//!   refused (429, `Retry-After`) before any credential is even looked at,
//!   until the limiter lets it try again.
//! - **Audit**: every ops action (every request that is not a GET) and every
//!   refused attempt is appended to the store's audit log: who, what, which
//!   job or contract, from which address, when, outcome.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};

use super::store::ops::{NewAuditEntry, NewToken, TokenRecord};
use super::store::{Store, StoreError};

/// What an ops credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read jobs, rejections, contracts, the audit log; plan.
    Read,
    /// Rerun and cancel jobs.
    Operate,
    /// Take the credentials a job created.
    Secrets,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Operate, Scope::Secrets];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Secrets => "secrets",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Why a token cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "token name {0:?}: must match [a-z0-9][a-z0-9._@-]{{0,63}} (a person, e.g. tanaka or tanaka@laptop)"
    )]
    Name(String),
    #[error("unknown scope `{0}` (read, operate, secrets)")]
    Scope(String),
    #[error("a token needs at least one scope (read, operate, secrets)")]
    NoScope,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub const TOKEN_PREFIX: &str = "hwt_";

/// Hex SHA-256 of a whole token: what the store keeps. Tokens carry 256
/// random bits, so a fast hash is enough (nothing to guess a password from).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Parses `read,operate` into scopes, refusing unknown ones.
pub fn parse_scopes(text: &str) -> Result<Vec<Scope>, TokenError> {
    let mut out = Vec::new();
    for s in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let scope = Scope::parse(s).ok_or_else(|| TokenError::Scope(s.to_string()))?;
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    if out.is_empty() {
        return Err(TokenError::NoScope);
    }
    out.sort();
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'@' | b'-')
        })
}

/// Makes and records a new token; returns its record and the token itself,
/// which exists nowhere else afterwards.
pub async fn create_token(
    store: &dyn Store,
    name: &str,
    scopes: &[Scope],
    expires_at: Option<DateTime<Utc>>,
    created_by: &str,
) -> Result<(TokenRecord, String), TokenError> {
    if !valid_name(name) {
        return Err(TokenError::Name(name.to_string()));
    }
    if scopes.is_empty() {
        return Err(TokenError::NoScope);
    }
    let mut id = [0u8; 8];
    rand::fill(&mut id);
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let id = hex::encode(id);
    let token = format!("{TOKEN_PREFIX}{id}_{}", hex::encode(secret));
    let record = store
        .create_token(NewToken {
            id,
            name: name.to_string(),
            scopes: scopes.iter().map(|s| s.as_str().to_string()).collect(),
            hash: hash_token(&token),
            created_by: created_by.to_string(),
            expires_at,
        })
        .await?;
    Ok((record, token))
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// For the ops log and the audit log: `token:NAME`, `ops-token-file`.
    pub actor: String,
    pub scopes: Vec<Scope>,
}

/// Why a request was refused before reaching its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A bearer value no credential matches.
    Unknown,
    /// A token that was revoked (named, for the audit log).
    Revoked(String),
    /// A token past its expiry.
    Expired(String),
    /// The intake credential where an ops one is needed, or the reverse.
    WrongCredential,
    /// A valid credential without the scope.
    Scope { actor: String, needed: Scope },
    /// This address failed too often; it may try again after this long.
    RateLimited(Duration),
}

impl Refusal {
    /// The actor the audit log names for this refusal.
    pub fn actor(&self) -> String {
        match self {
            Refusal::Revoked(n) | Refusal::Expired(n) => format!("token:{n}"),
            Refusal::Scope { actor, .. } => actor.clone(),
            _ => "anonymous".into(),
        }
    }

    /// Short reason, for metrics labels and the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Unknown => "unknown",
            Refusal::Revoked(_) => "revoked",
            Refusal::Expired(_) => "expired",
            Refusal::WrongCredential => "wrong_credential",
            Refusal::Scope { .. } => "scope",
            Refusal::RateLimited(_) => "rate_limited",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Refusal::Missing => "this needs `Authorization: Bearer <token>`".into(),
            Refusal::Unknown => "the bearer token is not a valid credential".into(),
            Refusal::Revoked(n) => format!("the token `{n}` was revoked"),
            Refusal::Expired(n) => format!("the token `{n}` has expired"),
            Refusal::WrongCredential => {
                "this credential is not for this endpoint (intake and ops credentials are separate)"
                    .into()
            }
            Refusal::Scope { actor, needed } => {
                format!("{actor} lacks the `{}` scope", needed.as_str())
            }
            Refusal::RateLimited(d) => format!(
                "too many failed authentications from this address; try again in {} s",
                d.as_secs().max(1)
            ),
        }
    }
}

type Limiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

/// Settings of the failed-authentication limit.
#[derive(Debug, Clone, Copy)]
pub struct FailureLimit {
    pub per_minute: NonZeroU32,
    pub burst: NonZeroU32,
}

/// Checks credentials and slows down guessing.
pub struct Authenticator {
    legacy: Option<String>,
    intake: Option<String>,
    limiter: Limiter,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl Authenticator {
    pub fn new(legacy: Option<String>, intake: Option<String>, limit: FailureLimit) -> Arc<Self> {
        Arc::new(Authenticator {
            legacy,
            intake,
            limiter: RateLimiter::keyed(
                Quota::per_minute(limit.per_minute).allow_burst(limit.burst),
            ),
            blocked: Mutex::new(HashMap::new()),
        })
    }

    pub fn intake_required(&self) -> bool {
        self.intake.is_some()
    }

    /// Refuses an address that is serving a block for failed attempts.
    pub fn check_blocked(&self, addr: Option<IpAddr>) -> Result<(), Refusal> {
        let Some(ip) = addr else { return Ok(()) };
        let mut blocked = self.blocked.lock().expect("auth block list");
        match blocked.get(&ip) {
            Some(until) if *until > Instant::now() => {
                Err(Refusal::RateLimited(*until - Instant::now()))
            }
            Some(_) => {
                blocked.remove(&ip);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed attempt; when it tips the address over its limit,
    /// blocks the address and says for how long.
    pub fn failed(&self, addr: Option<IpAddr>) -> Option<Duration> {
        let ip = addr?;
        match self.limiter.check_key(&ip) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until
                    .wait_time_from(DefaultClock::default().now())
                    .max(Duration::from_secs(1));
                let mut blocked = self.blocked.lock().expect("auth block list");
                blocked.insert(ip, Instant::now() + wait);
                // Forget addresses whose blocks ended, now and then.
                if blocked.len() > 1024 {
                    let now = Instant::now();
                    blocked.retain(|_, until| *until > now);
                    self.limiter.retain_recent();
                }
                Some(wait)
            }
        }
    }

    /// The ops caller behind a bearer value.
    pub async fn ops(&self, store: &dyn Store, bearer: Option<&str>) -> Result<Caller, Refusal> {
        let given = bearer.ok_or(Refusal::Missing)?;
        if let Some(legacy) = &self.legacy
            && constant_time_eq(legacy.as_bytes(), given.as_bytes())
        {
            return Ok(Caller {
                actor: "ops-token-file".into(),
                scopes: Scope::ALL.to_vec(),
            });
        }
        if let Some(intake) = &self.intake
            && constant_time_eq(intake.as_bytes(), given.as_bytes())
        {
            return Err(Refusal::WrongCredential);
        }
        let id = given
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .ok_or(Refusal::Unknown)?;
        let (record, hash) = match store.token(id).await {
            Ok(Some(t)) => t,
            // A store that does not answer refuses; it never lets through.
            Ok(None) | Err(_) => return Err(Refusal::Unknown),
        };
        if !constant_time_eq(hash.as_bytes(), hash_token(given).as_bytes()) {
            return Err(Refusal::Unknown);
        }
        if record.revoked_at.is_some() {
            return Err(Refusal::Revoked(record.name));
        }
        if record.expires_at.is_some_and(|e| e <= Utc::now()) {
            return Err(Refusal::Expired(record.name));
        }
        Ok(Caller {
            actor: format!("token:{}", record.name),
            scopes: record
                .scopes
                .iter()
                .filter_map(|s| Scope::parse(s))
                .collect(),
        })
    }

    /// Checks the intake credential (when one is configured).
    pub fn intake(&self, bearer: Option<&str>) -> Result<(), Refusal> {
        let Some(want) = &self.intake else {
            return Ok(());
        };
        let given = bearer.ok_or(Refusal::Missing)?;
        if constant_time_eq(want.as_bytes(), given.as_bytes()) {
            Ok(())
        } else if given.starts_with(TOKEN_PREFIX)
            || self
                .legacy
                .as_ref()
                .is_some_and(|l| constant_time_eq(l.as_bytes(), given.as_bytes()))
        {
            Err(Refusal::WrongCredential)
        } else {
            Err(Refusal::Unknown)
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Appends to the audit log; a store that fails is logged, not fatal to
/// the answer (the action itself is in the store already or failed).
pub async fn audit(store: &dyn Store, entry: NewAuditEntry) {
    if let Err(e) = store.record_audit(entry).await {
        tracing::error!(error = %e, "writing the audit log failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_names() {
        assert_eq!(
            parse_scopes("operate, read,read").unwrap(),
            vec![Scope::Read, Scope::Operate]
        );
        assert!(matches!(parse_scopes("root"), Err(TokenError::Scope(s)) if s == "root"));
        assert!(matches!(parse_scopes(" , "), Err(TokenError::NoScope)));
        assert!(valid_name("tanaka@laptop"));
        assert!(!valid_name("Tanaka"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
    }

    #[test]
    fn failures_past_the_burst_block_the_address() {
        let a = Authenticator::new(
            None,
            None,
            FailureLimit {
                per_minute: NonZeroU32::new(1).unwrap(),
                burst: NonZeroU32::new(3).unwrap(),
            },
        );
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(a.failed(Some(ip)), None);
            assert!(a.check_blocked(Some(ip)).is_ok());
        }
        let wait = a.failed(Some(ip)).expect("the fourth failure blocks");
        assert!(wait > Duration::from_secs(10), "{wait:?}");
        assert!(matches!(
            a.check_blocked(Some(ip)),
            Err(Refusal::RateLimited(_))
        ));
        assert!(a.check_blocked(Some(other)).is_ok(), "per address");
    }
}
