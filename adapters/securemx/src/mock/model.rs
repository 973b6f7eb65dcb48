//! The mock's data: tenants, mailboxes, remembered idempotent responses, and
//! the validation a real Secure MX service applies to them (第6条–第10条).

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Every option the service knows. `account_extra` and `disk_extra` are
/// counters already folded into `accounts_limit` / `disk_units`: accepted and
/// not stored.
pub const OPTIONS: &[&str] = &[
    "mailing_list",
    "archive",
    "audit",
    "spare_mail",
    "sandbox",
    "private_relay",
    "iij_id_link",
    "dox_link",
    "account_api",
    "account_extra",
    "disk_extra",
];

/// How many idempotent responses are remembered (oldest forgotten first).
pub const IDEMPOTENCY_CAPACITY: usize = 20_000;

/// An API error as the service reports it: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra top-level members of the error body (e.g. the existing mailbox).
    pub extra: Option<(&'static str, Value)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    pub fn body(&self) -> Value {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let Some((k, v)) = &self.extra {
            body[*k] = v.clone();
        }
        body
    }
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Administrator {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
}

fn yes() -> bool {
    true
}

/// The body of `PUT /v1/tenants/{id}`: the full desired tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub ips: Vec<String>,
    #[serde(default)]
    pub administrator: Option<Administrator>,
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
    /// Mailbox Plus is part of the basic plan, so on unless said otherwise.
    #[serde(default = "yes")]
    pub mailbox_plus: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mailbox {
    pub address: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub domains: Vec<String>,
    pub ips: Vec<String>,
    pub administrator: Administrator,
    pub accounts_limit: u32,
    pub disk_units: u32,
    pub options: Vec<String>,
    pub iij_id: Option<String>,
    pub dox: Option<String>,
    pub suspended: bool,
    pub mailbox_plus: bool,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub mailboxes: BTreeMap<String, Mailbox>,
}

impl Tenant {
    /// The tenant as the API shows it (mailboxes only counted).
    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "domains": self.domains,
            "ips": self.ips,
            "administrator": self.administrator,
            "accounts_limit": self.accounts_limit,
            "disk_units": self.disk_units,
            "options": self.options,
            "iij_id": self.iij_id,
            "dox": self.dox,
            "suspended": self.suspended,
            "mailbox_plus": self.mailbox_plus,
            "mailbox_count": self.mailboxes.len(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    /// True when `req` (already validated and normalised) changes nothing.
    fn same_as(&self, req: &TenantRequest) -> bool {
        self.domains == req.domains
            && self.ips == req.ips
            && Some(&self.administrator) == req.administrator.as_ref()
            && self.accounts_limit == req.accounts_limit
            && self.disk_units == req.disk_units
            && self.options == req.options
            && self.iij_id == req.iij_id
            && self.dox == req.dox
            && self.suspended == req.suspended
            && self.mailbox_plus == req.mailbox_plus
    }
}

/// A remembered response to a POST with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remembered {
    /// SHA-256 of method, path and body: the same key with another request is refused.
    pub fingerprint: String,
    pub status: u16,
    pub body: Value,
    pub seq: u64,
}

/// Everything the mock persists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub tenants: BTreeMap<String, Tenant>,
    #[serde(default)]
    pub idempotency: BTreeMap<String, Remembered>,
    #[serde(default)]
    pub idempotency_seq: u64,
}

impl State {
    pub fn remember(&mut self, key: String, fingerprint: String, status: u16, body: Value) {
        self.idempotency_seq += 1;
        let seq = self.idempotency_seq;
        self.idempotency.insert(
            key,
            Remembered {
                fingerprint,
                status,
                body,
                seq,
            },
        );
        while self.idempotency.len() > IDEMPOTENCY_CAPACITY {
            let oldest = self
                .idempotency
                .iter()
                .min_by_key(|(_, r)| r.seq)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.idempotency.remove(&k),
                None => break,
            };
        }
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Tenant ids are the customer's contract ids: `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`.
pub fn check_tenant_id(id: &str) -> Result<(), ApiError> {
    let b = id.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_tenant_id",
            "tenant ids match [A-Za-z0-9][A-Za-z0-9_-]{0,63}",
        ))
    }
}

/// A mailbox local part as the provider accepts it: the rule hostwright's
/// contract and planner apply too (`validate::mail_local_part`, written to
/// match the provider's documentation).
pub fn local_part_ok(lp: &str) -> bool {
    hostwright_adapter::validate::mail_local_part(lp).is_ok()
}

/// Checks and normalises a tenant request (第6条 options, 第8条 targets, 第9条 administrator).
pub fn validate_tenant(req: &mut TenantRequest) -> Result<(), ApiError> {
    if req.domains.is_empty() {
        return Err(unprocessable(
            "domains_required",
            "at least one target domain is required (第8条)",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in &req.domains {
        if hostwright_adapter::validate::domain_name(d).is_err() {
            return Err(unprocessable(
                "invalid_domain",
                format!("{d:?} is not a lower-case ASCII domain name"),
            ));
        }
        if !seen.insert(d.clone()) {
            return Err(unprocessable(
                "duplicate_domain",
                format!("{d} is listed twice"),
            ));
        }
    }
    for ip in req.ips.iter_mut() {
        match ip.parse::<IpAddr>() {
            Ok(a) => *ip = a.to_string(),
            Err(_) => {
                return Err(unprocessable(
                    "invalid_ip",
                    format!("{ip:?} is not an IP address"),
                ));
            }
        }
    }
    match &req.administrator {
        Some(a) if !a.name.trim().is_empty() => {
            let (user, host) = a.email.split_once('@').unwrap_or(("", ""));
            if user.is_empty() || !host.contains('.') || a.email.chars().any(char::is_whitespace) {
                return Err(unprocessable(
                    "invalid_administrator_email",
                    "the administrator's email address is not valid (第9条)",
                ));
            }
        }
        _ => {
            return Err(unprocessable(
                "administrator_required",
                "an operations administrator with a name is required (第9条)",
            ));
        }
    }
    if req.disk_units == 0 {
        return Err(unprocessable(
            "invalid_disk_units",
            "disk_units must be at least 1 (the basic 10GB unit)",
        ));
    }
    let mut options = Vec::new();
    for o in &req.options {
        if !OPTIONS.contains(&o.as_str()) {
            return Err(unprocessable(
                "unknown_option",
                format!("unknown option {o:?} (known: {})", OPTIONS.join(", ")),
            ));
        }
        if o == "account_extra" || o == "disk_extra" {
            continue;
        }
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        let missing = match o.as_str() {
            "mailing_list" | "private_relay" if !req.mailbox_plus => {
                Some(("mailbox_plus", "Mailbox Plus (part of the basic plan)"))
            }
            "iij_id_link" if blank(&req.iij_id) => Some(("iij_id", "an IIJ ID subscription")),
            "dox_link" if blank(&req.dox) => Some(("dox", "a DOX subscription")),
            _ => None,
        };
        if let Some((field, what)) = missing {
            let mut e = unprocessable(
                "option_prerequisite",
                format!("option {o} needs {field}: {what} (第6条3項)"),
            );
            e.extra = Some(("prerequisite", json!(field)));
            return Err(e);
        }
        options.push(o.clone());
    }
    options.sort();
    options.dedup();
    req.options = options;
    Ok(())
}

/// Creates or updates a tenant. Returns the status (201 created, 200 updated
/// or unchanged), the view, and whether anything changed.
pub fn put_tenant(
    state: &mut State,
    id: &str,
    req: TenantRequest,
) -> Result<(StatusCode, Value, bool), ApiError> {
    // A mail domain routes to one tenant: another tenant's domain is refused.
    if let Some((other, d)) = state.tenants.values().find_map(|t| {
        (t.id != id)
            .then(|| req.domains.iter().find(|d| t.domains.contains(d)))
            .flatten()
            .map(|d| (t.id.clone(), d.clone()))
    }) {
        return Err(conflict(
            "domain_taken",
            format!("domain {d} belongs to another tenant ({other})"),
        ));
    }
    let now = now();
    let Some(t) = state.tenants.get_mut(id) else {
        let t = Tenant {
            id: id.to_string(),
            domains: req.domains,
            ips: req.ips,
            administrator: req.administrator.expect("validated"),
            accounts_limit: req.accounts_limit,
            disk_units: req.disk_units,
            options: req.options,
            iij_id: req.iij_id,
            dox: req.dox,
            suspended: req.suspended,
            mailbox_plus: req.mailbox_plus,
            created_at: now.clone(),
            updated_at: now,
            mailboxes: BTreeMap::new(),
        };
        let view = t.view();
        state.tenants.insert(id.to_string(), t);
        return Ok((StatusCode::CREATED, view, true));
    };
    if t.same_as(&req) {
        return Ok((StatusCode::OK, t.view(), false));
    }
    if req.disk_units < t.disk_units {
        return Err(conflict(
            "disk_not_reducible",
            format!(
                "disk units cannot be reduced ({} → {})",
                t.disk_units, req.disk_units
            ),
        ));
    }
    if (req.accounts_limit as usize) < t.mailboxes.len() {
        return Err(conflict(
            "accounts_below_usage",
            format!(
                "accounts_limit {} is below the {} mailboxes that exist; delete mailboxes first",
                req.accounts_limit,
                t.mailboxes.len()
            ),
        ));
    }
    if let Some(m) = t.mailboxes.values().find(|m| {
        !req.domains
            .iter()
            .any(|d| m.address.ends_with(&format!("@{d}")))
    }) {
        return Err(conflict(
            "domain_in_use",
            format!(
                "mailbox {} still uses a domain the request drops; delete it first",
                m.address
            ),
        ));
    }
    t.domains = req.domains;
    t.ips = req.ips;
    t.administrator = req.administrator.expect("validated");
    t.accounts_limit = req.accounts_limit;
    t.disk_units = req.disk_units;
    t.options = req.options;
    t.iij_id = req.iij_id;
    t.dox = req.dox;
    t.suspended = req.suspended;
    t.mailbox_plus = req.mailbox_plus;
    t.updated_at = now;
    Ok((StatusCode::OK, t.view(), true))
}

pub fn tenant_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "tenant_not_found",
        format!("no tenant {id}"),
    )
}

/// Creates one mailbox; a mailbox that exists is a 409 carrying it.
pub fn create_mailbox(state: &mut State, id: &str, address: &str) -> Result<Value, ApiError> {
    let t = state
        .tenants
        .get_mut(id)
        .ok_or_else(|| tenant_not_found(id))?;
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(unprocessable(
            "invalid_address",
            "address must be local-part@domain",
        ));
    };
    if !local_part_ok(local) {
        return Err(unprocessable(
            "invalid_address",
            format!("{local:?} is not an allowed local part ([a-z0-9][a-z0-9._+-]{{0,63}})"),
        ));
    }
    if !t.domains.iter().any(|d| d == domain) {
        return Err(unprocessable(
            "domain_not_in_tenant",
            format!("{domain:?} is not one of the tenant's domains"),
        ));
    }
    if let Some(existing) = t.mailboxes.get(address) {
        let mut e = conflict("mailbox_exists", format!("{address} already exists"));
        e.extra = Some(("mailbox", json!(existing)));
        return Err(e);
    }
    if t.mailboxes.len() >= t.accounts_limit as usize {
        return Err(conflict(
            "account_limit",
            format!("the tenant's {} accounts are all in use", t.accounts_limit),
        ));
    }
    let m = Mailbox {
        address: address.to_string(),
        created_at: now(),
    };
    let view = json!(m);
    t.mailboxes.insert(address.to_string(), m);
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(options: &[&str]) -> TenantRequest {
        serde_json::from_value(json!({
            "domains": ["kaede-design.jp"], "ips": ["203.0.113.25"],
            "administrator": {"name": "Kaede", "email": "ops@kaede-design.jp"},
            "accounts_limit": 2, "disk_units": 3, "options": options,
        }))
        .unwrap()
    }

    #[test]
    fn prerequisites_are_named() {
        let mut r = req(&["iij_id_link"]);
        let e = validate_tenant(&mut r).unwrap_err();
        assert_eq!(e.code, "option_prerequisite");
        assert!(e.message.contains("iij_id"), "{}", e.message);
        let mut r = req(&["dox_link"]);
        assert!(validate_tenant(&mut r).unwrap_err().message.contains("dox"));
        let mut r = req(&["mailing_list"]);
        r.mailbox_plus = false;
        assert!(
            validate_tenant(&mut r)
                .unwrap_err()
                .message
                .contains("mailbox_plus")
        );
        let mut r = req(&["mailing_list", "private_relay", "disk_extra"]);
        validate_tenant(&mut r).unwrap();
        assert_eq!(r.options, vec!["mailing_list", "private_relay"]);
        let mut r = req(&["iij_id_link"]);
        r.iij_id = Some("IIJ-1".into());
        validate_tenant(&mut r).unwrap();
    }

    #[test]
    fn targets_and_administrator_are_required() {
        let mut r = req(&[]);
        r.domains.clear();
        assert_eq!(
            validate_tenant(&mut r).unwrap_err().code,
            "domains_required"
        );
        let mut r = req(&[]);
        r.administrator = None;
        assert_eq!(
            validate_tenant(&mut r).unwrap_err().code,
            "administrator_required"
        );
        let mut r = req(&[]);
        r.domains = vec!["a;b.jp".into()];
        assert_eq!(validate_tenant(&mut r).unwrap_err().code, "invalid_domain");
        let mut r = req(&["bogus"]);
        assert_eq!(validate_tenant(&mut r).unwrap_err().code, "unknown_option");
    }

    #[test]
    fn limits_hold() {
        let mut s = State::default();
        let mut r = req(&[]);
        validate_tenant(&mut r).unwrap();
        put_tenant(&mut s, "C-1", r.clone()).unwrap();
        create_mailbox(&mut s, "C-1", "a@kaede-design.jp").unwrap();
        create_mailbox(&mut s, "C-1", "b@kaede-design.jp").unwrap();
        let e = create_mailbox(&mut s, "C-1", "c@kaede-design.jp").unwrap_err();
        assert_eq!(e.code, "account_limit");
        let e = create_mailbox(&mut s, "C-1", "a@kaede-design.jp").unwrap_err();
        assert_eq!(e.code, "mailbox_exists");
        assert_eq!(e.body()["mailbox"]["address"], "a@kaede-design.jp");
        let e = create_mailbox(&mut s, "C-1", "x@other.jp").unwrap_err();
        assert_eq!(e.code, "domain_not_in_tenant");
        let e = create_mailbox(&mut s, "C-1", "$(id)@kaede-design.jp").unwrap_err();
        assert_eq!(e.code, "invalid_address");
        let mut smaller = r.clone();
        smaller.disk_units = 2;
        assert_eq!(
            put_tenant(&mut s, "C-1", smaller).unwrap_err().code,
            "disk_not_reducible"
        );
        let mut fewer = r.clone();
        fewer.accounts_limit = 1;
        assert_eq!(
            put_tenant(&mut s, "C-1", fewer).unwrap_err().code,
            "accounts_below_usage"
        );
        let (status, _, changed) = put_tenant(&mut s, "C-1", r.clone()).unwrap();
        assert_eq!((status, changed), (StatusCode::OK, false));
        // A mail domain routes to one tenant.
        let e = put_tenant(&mut s, "C-2", r).unwrap_err();
        assert_eq!(e.code, "domain_taken");
        assert!(!s.tenants.contains_key("C-2"));
    }

    #[test]
    fn idempotency_memory_is_bounded() {
        let mut s = State::default();
        for i in 0..IDEMPOTENCY_CAPACITY + 5 {
            s.remember(format!("k{i}"), String::new(), 201, Value::Null);
        }
        assert_eq!(s.idempotency.len(), IDEMPOTENCY_CAPACITY);
        assert!(!s.idempotency.contains_key("k0"));
        assert!(
            s.idempotency
                .contains_key(&format!("k{}", IDEMPOTENCY_CAPACITY + 4))
        );
    }
}
