//! Notifications: webhooks that tell someone when a job failed, when a job
//! succeeded after a failure, and when a contract was refused, instead of
//! waiting for someone to look (issue #16).
//!
//! An event is queued in the store's `notifications` table (migration 0008)
//! in the same transaction as what it announces where that is a job's end,
//! and delivered by the outbox (`outbox::run_notifier`): at least once, each
//! delivery of an event with the same idempotency key, retried with the one
//! retry policy until the receiver answers 2xx. Only events with an endpoint
//! in the config (`[notify.<event>]`) are queued at all.
//!
//! Each request is signed: `X-Hostwright-Signature: v1=<hex HMAC-SHA256>`
//! over `<timestamp>.<body>` with the endpoint's secret, the timestamp (Unix
//! seconds) in `X-Hostwright-Timestamp`, so a receiver can refuse replays
//! older than it likes. docs/notifications.md has a verification example.
//!
//! A new kind of event is a new [`Event`] variant and a call to
//! [`Notifier::event`] where it happens (as `drift_found`, #14, in
//! `Engine::reconcile`); config, queue, delivery and signing stay as they
//! are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::outbox::SinkError;
use super::store::{NewNotification, NotificationItem};

pub const SIGNATURE_HEADER: &str = "X-Hostwright-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Hostwright-Timestamp";
pub const EVENT_HEADER: &str = "X-Hostwright-Event";
/// The same on every delivery of one event: the receiver's deduplication key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// What can be announced. The config names them in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A job ended failed (its retries spent, or a permanent error).
    JobFailed,
    /// A job that had failed was rerun and succeeded.
    JobRecovered,
    /// Intake refused a contract against the terms (the findings) or
    /// because what it needs belongs to someone else.
    ContractRefused,
    /// `serve`'s drift scan found something it had not found before (once
    /// per new finding, where it is logged).
    DriftFound,
}

impl Event {
    pub const ALL: [Event; 4] = [
        Event::JobFailed,
        Event::JobRecovered,
        Event::ContractRefused,
        Event::DriftFound,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::JobFailed => "job_failed",
            Event::JobRecovered => "job_recovered",
            Event::ContractRefused => "contract_refused",
            Event::DriftFound => "drift_found",
        }
    }

    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// `[notify.<event>]`: where one event goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// `https://` (or `http://` on loopback and in tests).
    pub url: String,
    /// A CA file (PEM) for a receiver whose certificate comes from a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The file holding the HMAC secret the receiver verifies with.
    pub secret_file: PathBuf,
    /// How long one delivery may take.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    10
}

/// Which events are configured: the engine queues only these.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    events: Vec<Event>,
}

impl Notifier {
    pub fn new(events: impl IntoIterator<Item = Event>) -> Notifier {
        let mut events: Vec<Event> = events.into_iter().collect();
        events.sort();
        events.dedup();
        Notifier { events }
    }

    pub fn wants(&self, event: Event) -> bool {
        self.events.contains(&event)
    }

    /// The notification to queue for `event`, or `None` when nobody is to
    /// be told. `key` makes the idempotency key (`<event>:<key>`): the same
    /// occurrence must give the same key. `data` becomes the body's `data`.
    pub fn event(
        &self,
        event: Event,
        key: &str,
        data: serde_json::Value,
    ) -> Option<NewNotification> {
        if !self.wants(event) {
            return None;
        }
        let idempotency_key = format!("{}:{key}", event.as_str());
        let body = serde_json::json!({
            "event": event.as_str(),
            "id": idempotency_key,
            "occurred_at": chrono::Utc::now(),
            "data": data,
        });
        Some(NewNotification {
            idempotency_key,
            event: event.as_str().to_string(),
            body: serde_json::to_vec(&body).expect("an event serializes"),
        })
    }
}

/// The signature header's value for a body sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a receiver does: recompute and compare in constant time.
pub fn verify(secret: &[u8], timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(sig) = header
        .trim()
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.trim().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyConfigError {
    #[error("notify.{event}.url: {source}")]
    Url {
        event: &'static str,
        source: hostwright_tls::TlsError,
    },
    #[error("notify.{event}.ca_file: {source}")]
    Ca {
        event: &'static str,
        source: hostwright_tls::TlsError,
    },
    #[error("notify.{event}.secret_file {path}: {message}")]
    Secret {
        event: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("notify.{event}: {message}")]
    Client {
        event: &'static str,
        message: String,
    },
}

struct Endpoint {
    url: reqwest::Url,
    secret: hostwright_adapter::Secret,
    http: reqwest::Client,
}

/// Delivers notifications to the configured endpoints over HTTP(S).
pub struct Webhooks {
    endpoints: BTreeMap<Event, Endpoint>,
}

impl Webhooks {
    /// Reads every endpoint's secret and CA file now, so a bad one stops
    /// the start rather than the first delivery.
    pub fn new(config: &BTreeMap<Event, EndpointConfig>) -> Result<Webhooks, NotifyConfigError> {
        let mut endpoints = BTreeMap::new();
        for (&event, c) in config {
            let name = event.as_str();
            let url =
                hostwright_tls::check_url(&c.url).map_err(|source| NotifyConfigError::Url {
                    event: name,
                    source,
                })?;
            let secret =
                read_secret(&c.secret_file).map_err(|message| NotifyConfigError::Secret {
                    event: name,
                    path: c.secret_file.clone(),
                    message,
                })?;
            let http = hostwright_tls::client_builder(c.ca_file.as_deref())
                .map_err(|source| NotifyConfigError::Ca {
                    event: name,
                    source,
                })?
                .timeout(Duration::from_secs(c.timeout_seconds.max(1)))
                .build()
                .map_err(|e| NotifyConfigError::Client {
                    event: name,
                    message: e.to_string(),
                })?;
            endpoints.insert(event, Endpoint { url, secret, http });
        }
        Ok(Webhooks { endpoints })
    }

    /// The events that have an endpoint.
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        self.endpoints.keys().copied()
    }

    /// One delivery. `Ok(false)`: the event has no endpoint any more (the
    /// config changed since it was queued); nothing to send it to.
    pub async fn deliver(&self, item: &NotificationItem) -> Result<bool, SinkError> {
        let Some(ep) = Event::parse(&item.event).and_then(|e| self.endpoints.get(&e)) else {
            return Ok(false);
        };
        let timestamp = chrono::Utc::now().timestamp();
        let resp = ep
            .http
            .post(ep.url.clone())
            .header("content-type", "application/json")
            .header(EVENT_HEADER, &item.event)
            .header(IDEMPOTENCY_HEADER, &item.idempotency_key)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                sign(ep.secret.expose().as_bytes(), timestamp, &item.body),
            )
            .body(item.body.clone())
            .send()
            .await
            .map_err(|e| match hostwright_tls::certificate_error(&e) {
                Some(tls) => SinkError {
                    transient: false,
                    message: format!("{}: certificate refused: {tls}", ep.url),
                },
                None => SinkError {
                    transient: true,
                    message: format!("{}: {}", ep.url, chain(&e)),
                },
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(true);
        }
        // 4xx other than 408/429 will not change by itself: retried at the
        // slowest pace, visible in the backlog metric.
        let transient = status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        Err(SinkError {
            transient,
            message: format!("{}: answered {}", ep.url, status.as_u16()),
        })
    }
}

/// An error with its sources, each once (reqwest's own message is terse:
/// "error sending request").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

fn read_secret(path: &Path) -> Result<hostwright_adapter::Secret, String> {
    let text = crate::input::read_text(path, crate::input::MAX_SECRET_FILE_BYTES, "a secret file")
        .map_err(|e| e.to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty".into());
    }
    Ok(hostwright_adapter::Secret::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let s = sign(b"secret", 1_700_000_000, b"{\"a\":1}");
        assert!(s.starts_with("v1="));
        assert!(verify(b"secret", "1700000000", b"{\"a\":1}", &s));
        assert!(!verify(b"secret", "1700000001", b"{\"a\":1}", &s));
        assert!(!verify(b"secret", "1700000000", b"{\"a\":2}", &s));
        assert!(!verify(b"other", "1700000000", b"{\"a\":1}", &s));
        assert!(!verify(b"secret", "1700000000", b"{\"a\":1}", "zz"));
        assert!(!verify(b"secret", "1700000000", b"{\"a\":1}", &s[3..]));
    }

    #[test]
    fn only_configured_events_are_queued_with_stable_keys() {
        let n = Notifier::new([Event::JobFailed]);
        assert!(
            n.event(Event::ContractRefused, "x", serde_json::json!({}))
                .is_none()
        );
        let a = n
            .event(
                Event::JobFailed,
                "job-1:1",
                serde_json::json!({"job_id": "job-1"}),
            )
            .unwrap();
        assert_eq!(a.idempotency_key, "job_failed:job-1:1");
        assert_eq!(a.event, "job_failed");
        let body: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(body["event"], "job_failed");
        assert_eq!(body["id"], "job_failed:job-1:1");
        assert_eq!(body["data"]["job_id"], "job-1");
    }

    #[test]
    fn event_names_round_trip_and_parse_from_config() {
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(e));
        }
        let t: BTreeMap<Event, EndpointConfig> =
            toml::from_str("[job_failed]\nurl = \"https://h.example/x\"\nsecret_file = \"s\"\n")
                .unwrap();
        assert!(t.contains_key(&Event::JobFailed));
        let bad = toml::from_str::<BTreeMap<Event, EndpointConfig>>(
            "[job_exploded]\nurl = \"https://h.example/x\"\nsecret_file = \"s\"\n",
        );
        assert!(bad.is_err());
    }
}
