//! Billable state back to billing: the report a successful job leaves in the
//! outbox (written in the same transaction as the job's end) and the reporter
//! that delivers it, retrying until billing acknowledges. Each report carries
//! an idempotency key, so a report delivered twice (acknowledgement lost) is
//! recorded once by billing. Notifications (`notify.rs`) go out the same
//! way from their own table ([`run_notifier`]).

use std::sync::Arc;
use std::time::Duration;

use hostwright_adapter::retry::RetryPolicy;

use chrono::NaiveDate;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use super::Engine;
use super::store::RecordedResource;
use crate::catalog::Catalog;
use crate::contract::Contract;

/// What billing receives after a job succeeded.
#[derive(Debug, Serialize)]
pub struct BillableReport<'a> {
    pub contract_id: &'a str,
    pub revision: u32,
    pub job_id: &'a str,
    pub customer_id: &'a str,
    pub service: &'a str,
    /// Service start as actually provisioned.
    pub service_start: NaiveDate,
    pub status: &'a crate::contract::Status,
    pub provisioned: Vec<String>,
    pub billable: crate::billing::BillableState,
}

pub fn billable_report(
    contract: &Contract,
    catalog: &Catalog,
    job_id: &str,
    resources: &[RecordedResource],
    today: NaiveDate,
) -> serde_json::Value {
    let report = BillableReport {
        contract_id: contract.contract_id.as_str(),
        revision: contract.revision,
        job_id,
        customer_id: &contract.customer.id,
        service: contract.service.code(),
        service_start: contract.service_start,
        status: &contract.status,
        provisioned: resources
            .iter()
            .map(|r| format!("{}/{}", r.kind, r.key))
            .collect(),
        billable: crate::billing::billable_state(contract, catalog, today),
    };
    serde_json::to_value(report).expect("report serializes")
}

/// What billing receives from the monthly close (`engine::close`): a
/// contract's statement of a month, version 1 or a correction saying which
/// version and report it replaces.
pub fn monthly_statement_report(
    statement: &crate::billing::Statement,
    customer_id: &str,
    version: u32,
    replaces: Option<&super::store::ClosedStatement>,
    based_on_revision: u32,
) -> serde_json::Value {
    serde_json::json!({
        "kind": "monthly_statement",
        "contract_id": statement.contract_id,
        "customer_id": customer_id,
        "month": statement.month,
        "version": version,
        "replaces": replaces.map(|r| serde_json::json!({
            "version": r.version,
            "idempotency_key": r.idempotency_key,
            "total": r.total,
        })),
        "based_on_revision": based_on_revision,
        "statement": statement,
    })
}

/// A delivery failure, classified like adapter errors.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub transient: bool,
    pub message: String,
}

/// Where reports go (billing's HTTP endpoint in production).
#[async_trait::async_trait]
pub trait ReportSink: Send + Sync + 'static {
    async fn deliver(&self, idempotency_key: &str, body: &[u8]) -> Result<(), SinkError>;
}

#[async_trait::async_trait]
impl ReportSink for hostwright_billing::Reporter {
    async fn deliver(&self, idempotency_key: &str, body: &[u8]) -> Result<(), SinkError> {
        hostwright_billing::Reporter::deliver(self, idempotency_key, body)
            .await
            .map(|_| ())
            .map_err(|e| SinkError {
                transient: e.is_transient(),
                message: e.to_string(),
            })
    }
}

/// Deliveries of one report are spaced by the one retry policy: from about
/// a second, doubling, to five minutes, never giving up (a report must never
/// be dropped).
const DELIVERY: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    base_delay_ms: 1_000,
    max_delay_ms: 300_000,
};

/// The wait before the next delivery of a report tried `attempts` times.
/// Permanent refusals are retried too, at the slowest pace: a refused report
/// shows in the backlog metric until ops act.
fn backoff(attempts: u32, transient: bool) -> Duration {
    if transient {
        DELIVERY.delay(attempts.saturating_add(2), None)
    } else {
        Duration::from_millis(DELIVERY.max_delay_ms)
    }
}

/// Delivers due reports until `shutdown`.
pub async fn run_reporter(
    engine: Arc<Engine>,
    sink: Arc<dyn ReportSink>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let due = match engine.store.outbox_due(64).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "reading the outbox failed");
                Vec::new()
            }
        };
        for item in &due {
            match sink.deliver(&item.idempotency_key, &item.body).await {
                Ok(()) => {
                    engine.metrics.reports_delivered.inc();
                    info!(contract_id = %item.contract_id, key = %item.idempotency_key, "billable state delivered");
                    if let Err(e) = engine.store.outbox_delivered(item.id).await {
                        warn!(error = %e, "recording a delivery failed; it will be sent again (idempotent)");
                    }
                }
                Err(e) => {
                    let after = backoff(item.attempts, e.transient);
                    warn!(contract_id = %item.contract_id, error = %e, retry_in_s = after.as_secs(), "billing delivery failed");
                    if let Err(e) = engine
                        .store
                        .outbox_retry_later(item.id, &e.to_string(), after)
                        .await
                    {
                        warn!(error = %e, "recording a delivery failure failed");
                    }
                }
            }
        }
        if due.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = engine.report_wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Delivers due notifications (webhooks, `notify.rs`) until `shutdown`:
/// the same outbox discipline as billing reports — at least once, the same
/// idempotency key on every delivery, spaced by [`backoff`].
pub async fn run_notifier(
    engine: Arc<Engine>,
    hooks: Arc<super::notify::Webhooks>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let due = match engine.store.notifications_due(64).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "reading the notifications failed");
                Vec::new()
            }
        };
        for item in &due {
            match hooks.deliver(item).await {
                Ok(sent) => {
                    engine
                        .metrics
                        .notification(&item.event, if sent { "delivered" } else { "dropped" });
                    if sent {
                        info!(event = %item.event, key = %item.idempotency_key, "notification delivered");
                    } else {
                        warn!(event = %item.event, key = %item.idempotency_key, "no endpoint is configured for this event any more; notification dropped");
                    }
                    if let Err(e) = engine.store.notification_delivered(item.id).await {
                        warn!(error = %e, "recording a delivery failed; it will be sent again (same key)");
                    }
                }
                Err(e) => {
                    engine
                        .metrics
                        .notification(&item.event, if e.transient { "retry" } else { "refused" });
                    let after = backoff(item.attempts, e.transient);
                    warn!(event = %item.event, key = %item.idempotency_key, error = %e, retry_in_s = after.as_secs(), "notification delivery failed");
                    if let Err(e) = engine
                        .store
                        .notification_retry_later(item.id, &e.to_string(), after)
                        .await
                    {
                        warn!(error = %e, "recording a delivery failure failed");
                    }
                }
            }
        }
        if due.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = engine.notify_wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let within = |d: Duration, lo: u64, hi: u64| (lo..=hi).contains(&(d.as_millis() as u64));
        for _ in 0..100 {
            assert!(within(backoff(0, true), 500, 1_000));
            assert!(within(backoff(3, true), 4_000, 8_000));
            assert!(within(backoff(20, true), 150_000, 300_000));
        }
        assert_eq!(backoff(0, false), Duration::from_secs(300));
    }
}
