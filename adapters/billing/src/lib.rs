//! Billing: the reporter that delivers billable-state reports, and the shared
//! signature scheme of the billing endpoint.
//!
//! A report is POSTed as JSON with two headers: `Idempotency-Key` (the same
//! for every retry of one report, so billing records it once) and
//! `X-Hostwright-Signature` (hex HMAC-SHA256 of the body with the shared
//! secret). The engine's outbox calls [`Reporter::deliver`] and retries;
//! the reporter itself never retries.

use std::time::Duration;

use hmac::{Hmac, Mac};
use hostwright_adapter::Secret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-hostwright-signature";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Constant-time check of a hex signature.
pub fn verify(secret: &[u8], body: &[u8], signature_hex: &str) -> bool {
    let Ok(sig) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Billing's acknowledgement of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub receipt_id: String,
    /// True when billing had already recorded this idempotency key.
    #[serde(default)]
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("billing unreachable: {0}")]
    Unreachable(String),
    #[error("billing answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("billing answered with an unreadable receipt: {0}")]
    BadReceipt(String),
    /// The endpoint's certificate was refused: the configuration's CA file
    /// (or someone in the middle), not an outage.
    #[error("billing {0}")]
    Certificate(String),
}

impl DeliveryError {
    /// Connection problems, timeouts, 5xx and 429 are worth retrying soon;
    /// other refusals (bad signature, bad report) need ops.
    pub fn is_transient(&self) -> bool {
        match self {
            DeliveryError::Unreachable(_) | DeliveryError::BadReceipt(_) => true,
            DeliveryError::Refused { status, .. } => *status >= 500 || *status == 429,
            DeliveryError::Certificate(_) => false,
        }
    }
}

/// Delivers reports to billing's endpoint.
pub struct Reporter {
    endpoint: String,
    secret: Secret,
    http: reqwest::Client,
}

impl Reporter {
    /// A reporter for `endpoint` (`http://` or `https://`), trusting only
    /// `ca_file`'s certificates when one is given.
    pub fn new(
        endpoint: String,
        secret: Secret,
        timeout: Duration,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Reporter, hostwright_tls::TlsError> {
        hostwright_tls::check_url(&endpoint)?;
        let http = hostwright_tls::client_builder(ca_file)?
            .timeout(timeout)
            .build()
            .map_err(|e| hostwright_tls::TlsError::Url {
                url: endpoint.clone(),
                message: format!("building the HTTP client: {e}"),
            })?;
        Ok(Reporter {
            endpoint,
            secret,
            http,
        })
    }

    pub async fn deliver(
        &self,
        idempotency_key: &str,
        body: &[u8],
    ) -> Result<Receipt, DeliveryError> {
        let resp = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .header(IDEMPOTENCY_HEADER, idempotency_key)
            .header(
                SIGNATURE_HEADER,
                sign(self.secret.expose().as_bytes(), body),
            )
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| match hostwright_tls::certificate_error(&e) {
                Some(tls) => DeliveryError::Certificate(tls),
                None => DeliveryError::Unreachable(e.to_string()),
            })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(DeliveryError::Refused {
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        serde_json::from_str(&text).map_err(|e| DeliveryError::BadReceipt(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let s = sign(b"secret", b"{\"a\":1}");
        assert!(verify(b"secret", b"{\"a\":1}", &s));
        assert!(!verify(b"secret", b"{\"a\":2}", &s));
        assert!(!verify(b"other", b"{\"a\":1}", &s));
        assert!(!verify(b"secret", b"{\"a\":1}", "zz"));
    }

    #[test]
    fn classification() {
        assert!(
            DeliveryError::Refused {
                status: 503,
                body: String::new()
            }
            .is_transient()
        );
        assert!(
            DeliveryError::Refused {
                status: 429,
                body: String::new()
            }
            .is_transient()
        );
        assert!(
            !DeliveryError::Refused {
                status: 401,
                body: String::new()
            }
            .is_transient()
        );
        assert!(DeliveryError::Unreachable("x".into()).is_transient());
        assert!(!DeliveryError::Certificate("TLS: not trusted".into()).is_transient());
    }
}
