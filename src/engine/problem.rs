//! Error answers of the HTTP API as RFC 9457 problem details
//! (`application/problem+json`), one stable `type` per kind of error so
//! clients branch on the type, never on the wording of `detail`.
//!
//! Types are URNs, `urn:hostwright:problem:<kind>`; docs/api.md lists them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// Every kind of error the API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// No credential, or one the API does not know (401).
    Unauthenticated,
    /// A valid credential without the scope the route needs (403).
    Forbidden,
    /// Too many failed authentications from this address (429).
    RateLimited,
    /// No such job (404).
    JobNotFound,
    /// No such contract (404).
    ContractNotFound,
    /// No such web host, or no fleet (404).
    HostNotFound,
    /// No such route (404).
    NotFound,
    /// The route exists, the method does not (405).
    MethodNotAllowed,
    /// A query parameter or body field is invalid (400).
    InvalidRequest,
    /// A paging cursor that this API did not hand out (400).
    InvalidCursor,
    /// The job is in a state that does not allow the action (409).
    InvalidTransition,
    /// The contract cannot move to that web host now (409).
    MoveRefused,
    /// The envelope's signature or key is not trusted (401 on intake).
    BadSignature,
    /// The body is not a readable envelope or contract (400).
    Malformed,
    /// The body is larger than allowed (413).
    TooLarge,
    /// The contract breaks the terms; `findings` lists why (422).
    ContractRefused,
    /// An older or equal revision than the one recorded (409).
    StaleRevision,
    /// The contract cannot be planned (422).
    Unplannable,
    /// The store does not answer (503).
    Unavailable,
    /// Anything else on our side (500).
    Internal,
}

impl Kind {
    pub const ALL: [Kind; 20] = [
        Kind::Unauthenticated,
        Kind::Forbidden,
        Kind::RateLimited,
        Kind::JobNotFound,
        Kind::ContractNotFound,
        Kind::HostNotFound,
        Kind::NotFound,
        Kind::MethodNotAllowed,
        Kind::InvalidRequest,
        Kind::InvalidCursor,
        Kind::InvalidTransition,
        Kind::MoveRefused,
        Kind::BadSignature,
        Kind::Malformed,
        Kind::TooLarge,
        Kind::ContractRefused,
        Kind::StaleRevision,
        Kind::Unplannable,
        Kind::Unavailable,
        Kind::Internal,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Kind::Unauthenticated => "unauthenticated",
            Kind::Forbidden => "forbidden",
            Kind::RateLimited => "rate-limited",
            Kind::JobNotFound => "job-not-found",
            Kind::ContractNotFound => "contract-not-found",
            Kind::HostNotFound => "host-not-found",
            Kind::NotFound => "not-found",
            Kind::MethodNotAllowed => "method-not-allowed",
            Kind::InvalidRequest => "invalid-request",
            Kind::InvalidCursor => "invalid-cursor",
            Kind::InvalidTransition => "invalid-transition",
            Kind::MoveRefused => "move-refused",
            Kind::BadSignature => "bad-signature",
            Kind::Malformed => "malformed",
            Kind::TooLarge => "too-large",
            Kind::ContractRefused => "contract-refused",
            Kind::StaleRevision => "stale-revision",
            Kind::Unplannable => "unplannable",
            Kind::Unavailable => "unavailable",
            Kind::Internal => "internal",
        }
    }

    /// The problem's `type` URI.
    pub fn type_uri(self) -> String {
        format!("urn:hostwright:problem:{}", self.slug())
    }

    pub fn status(self) -> StatusCode {
        match self {
            Kind::Unauthenticated | Kind::BadSignature => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Kind::JobNotFound | Kind::ContractNotFound | Kind::HostNotFound | Kind::NotFound => {
                StatusCode::NOT_FOUND
            }
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::InvalidRequest | Kind::InvalidCursor | Kind::Malformed => StatusCode::BAD_REQUEST,
            Kind::InvalidTransition | Kind::StaleRevision | Kind::MoveRefused => {
                StatusCode::CONFLICT
            }
            Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::ContractRefused | Kind::Unplannable => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Kind::Unauthenticated => "Authentication required",
            Kind::Forbidden => "The credential lacks the scope this needs",
            Kind::RateLimited => "Too many failed authentications from this address",
            Kind::JobNotFound => "No such job",
            Kind::ContractNotFound => "No such contract",
            Kind::HostNotFound => "No such web host",
            Kind::NotFound => "No such resource",
            Kind::MethodNotAllowed => "Method not allowed on this resource",
            Kind::InvalidRequest => "Invalid request",
            Kind::InvalidCursor => "Invalid paging cursor",
            Kind::InvalidTransition => "The job's state does not allow this",
            Kind::MoveRefused => "The contract cannot move to that web host now",
            Kind::BadSignature => "The contract's signature is not trusted",
            Kind::Malformed => "Malformed body",
            Kind::TooLarge => "Body too large",
            Kind::ContractRefused => "The contract breaks the terms of service",
            Kind::StaleRevision => "Stale contract revision",
            Kind::Unplannable => "The contract cannot be planned",
            Kind::Unavailable => "Service unavailable",
            Kind::Internal => "Internal error",
        }
    }
}

/// One problem answer. Extension members (`findings`, `state`, ...) sit
/// beside the standard ones.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
    #[serde(skip)]
    kind: Option<Kind>,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: kind.type_uri(),
            title: kind.title(),
            status: kind.status().as_u16(),
            detail: detail.into(),
            extensions: Map::new(),
            kind: Some(kind),
            retry_after: None,
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, name: &str, value: impl Serialize) -> Problem {
        self.extensions.insert(
            name.to_string(),
            serde_json::to_value(value).expect("problem members serialize"),
        );
        self
    }

    /// Sets `Retry-After` (seconds) on the answer.
    pub fn retry_after(mut self, secs: u64) -> Problem {
        self.retry_after = Some(secs);
        self
    }

    pub fn kind(&self) -> Option<Kind> {
        self.kind
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = self.retry_after;
        let body = serde_json::to_vec(&self).expect("problem serializes");
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(s) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_type_and_an_error_status() {
        let mut seen = std::collections::BTreeSet::new();
        for k in Kind::ALL {
            assert!(seen.insert(k.type_uri()), "{k:?} shares its type");
            assert!(k.status().is_client_error() || k.status().is_server_error());
        }
    }

    #[test]
    fn extensions_sit_beside_the_standard_members() {
        let p = Problem::new(Kind::ContractRefused, "2 findings").with("findings", ["a", "b"]);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "urn:hostwright:problem:contract-refused");
        assert_eq!(v["status"], 422);
        assert_eq!(v["findings"][1], "b");
    }
}
