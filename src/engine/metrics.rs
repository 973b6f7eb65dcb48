//! Prometheus metrics (`/metrics`): jobs by state and the age of the oldest
//! queued and failed job (read from the store at scrape time, so every
//! worker process reports the same truth), build info, intake outcomes, job
//! and step duration histograms, retries, outbox and notification backlogs,
//! HTTP requests by route and status.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::store::StoreStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub adapter: String,
    pub action: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdapterLabels {
    pub adapter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriftLabels {
    pub kind: String,
    /// `in_sync`, `missing`, `changed`, `orphan`, `unknown`.
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route's pattern (`/v1/jobs/{id}`), never the raw path, so a
    /// scan of made-up paths cannot grow the label set: `unmatched` then.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifyLabels {
    pub event: String,
    /// `delivered`, `retry` (transient failure), `refused` (the receiver
    /// said no or its certificate was refused; retried slowly), `dropped`
    /// (no endpoint configured any more), `lost` (could not be queued).
    pub outcome: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub step_seconds: Family<StepLabels, Histogram>,
    pub retries: Family<AdapterLabels, Counter>,
    pub jobs: Family<StateLabels, Gauge>,
    pub outbox_backlog: Gauge,
    pub reports_delivered: Counter,
    /// Revisions judged again because a concurrent revision of their
    /// contract or customer was recorded first.
    pub intake_rejudged: Counter,
    /// Requests refused before their handler, by reason (`missing`,
    /// `unknown`, `revoked`, `expired`, `wrong_credential`, `scope`,
    /// `rate_limited`): guessing shows here.
    pub auth_refusals: Family<ReasonLabels, Counter>,
    /// Submissions answered 429: their address was refused too often.
    pub intake_rate_limited: Counter,
    /// Notifications by event and outcome.
    pub notifications: Family<NotifyLabels, Counter>,
    pub notify_backlog: Gauge,
    /// Intake answers by outcome (`accepted`, `existing`, `rejected`,
    /// `stale`, `unauthorized`, `malformed`, `too_large`, `busy`,
    /// `rate_limited`).
    pub intake_outcomes: Family<OutcomeLabels, Counter>,
    /// A job run's time from claim to end, by how it ended.
    pub job_seconds: Family<OutcomeLabels, Histogram>,
    pub oldest_queued_age: Gauge,
    pub oldest_failed_age: Gauge,
    pub http_requests: Family<HttpLabels, Counter>,
    /// Resources of the last full drift scan, by kind and drift state.
    pub drift_resources: Family<DriftLabels, Gauge>,
    /// When the last full drift scan ended (unix seconds).
    pub drift_last_scan: Gauge,
    /// How long the last full drift scan took.
    pub drift_scan_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hostwright");
        let step_seconds = Family::<StepLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let retries = Family::<AdapterLabels, Counter>::default();
        let jobs = Family::<StateLabels, Gauge>::default();
        let outbox_backlog = Gauge::default();
        let reports_delivered = Counter::default();
        let intake_rejudged = Counter::default();
        registry.register(
            "intake_rejudged",
            "Revisions judged again because a concurrent revision of their contract or customer was recorded first",
            intake_rejudged.clone(),
        );
        let auth_refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "auth_refusals",
            "API requests refused for their credential, by reason (rate_limited: the address failed too often)",
            auth_refusals.clone(),
        );
        let intake_rate_limited = Counter::default();
        registry.register(
            "step_duration_seconds",
            "Duration of step attempts",
            step_seconds.clone(),
        );
        registry.register(
            "step_retries",
            "Step attempts that failed transiently and were retried",
            retries.clone(),
        );
        registry.register("jobs", "Jobs by state", jobs.clone());
        registry.register(
            "outbox_backlog",
            "Billing reports not yet acknowledged",
            outbox_backlog.clone(),
        );
        registry.register(
            "billing_reports_delivered",
            "Billing reports acknowledged by billing",
            reports_delivered.clone(),
        );
        registry.register(
            "intake_rate_limited",
            "Contract submissions answered 429, unread and unrecorded, because their address was refused too often",
            intake_rate_limited.clone(),
        );
        let notifications = Family::<NotifyLabels, Counter>::default();
        registry.register(
            "notifications",
            "Webhook notifications by event and outcome (delivered, retry, refused, dropped, lost)",
            notifications.clone(),
        );
        let notify_backlog = Gauge::default();
        registry.register(
            "notify_backlog",
            "Notifications not yet delivered",
            notify_backlog.clone(),
        );
        let build = prometheus_client::metrics::info::Info::new(BuildLabels {
            version: env!("CARGO_PKG_VERSION").to_string(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_string(),
        });
        registry.register(
            "build",
            "The running hostwright's version and build profile",
            build,
        );
        let intake_outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "intake_outcomes",
            "Contract submissions by intake's answer",
            intake_outcomes.clone(),
        );
        let job_seconds = Family::<OutcomeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.05, 2.0, 14))
        });
        registry.register(
            "job_duration_seconds",
            "A job run's time from claim to end, by outcome (succeeded, failed)",
            job_seconds.clone(),
        );
        let oldest_queued_age = Gauge::default();
        registry.register(
            "oldest_queued_job_age_seconds",
            "Age of the oldest queued job (0: none queued)",
            oldest_queued_age.clone(),
        );
        let oldest_failed_age = Gauge::default();
        registry.register(
            "oldest_failed_job_age_seconds",
            "How long the job failed longest ago has been failed (0: none failed)",
            oldest_failed_age.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "API requests by method, route pattern and status",
            http_requests.clone(),
        );
        let drift_resources = Family::<DriftLabels, Gauge>::default();
        registry.register(
            "drift_resources",
            "Resources of the last full drift scan, by kind and drift state (in_sync, missing, changed, orphan, unknown)",
            drift_resources.clone(),
        );
        let drift_last_scan = Gauge::default();
        registry.register(
            "drift_last_scan_timestamp_seconds",
            "When the last full drift scan ended (unix time)",
            drift_last_scan.clone(),
        );
        let drift_scan_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "drift_scan_duration_seconds",
            "How long the last full drift scan took",
            drift_scan_seconds.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            drift_resources,
            drift_last_scan,
            drift_scan_seconds,
            step_seconds,
            retries,
            jobs,
            outbox_backlog,
            reports_delivered,
            intake_rejudged,
            auth_refusals,
            intake_rate_limited,
            notifications,
            notify_backlog,
            intake_outcomes,
            job_seconds,
            oldest_queued_age,
            oldest_failed_age,
            http_requests,
        }
    }

    pub fn intake_outcome(&self, outcome: &str) {
        self.intake_outcomes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn job_ended(&self, state: &str, took: std::time::Duration) {
        self.job_seconds
            .get_or_create(&OutcomeLabels {
                outcome: state.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn http_request(&self, method: &str, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
    }

    pub fn notification(&self, event: &str, outcome: &str) {
        self.notifications
            .get_or_create(&NotifyLabels {
                event: event.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn auth_refused(&self, reason: &str) {
        self.auth_refusals
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Records a full drift scan's counts (every kind and state is set, so
    /// a state that went back to zero shows zero).
    pub fn drift_scanned(&self, report: &super::drift::DriftReport) {
        for (kind, c) in &report.by_kind {
            for (state, n) in [
                ("in_sync", c.in_sync),
                ("missing", c.missing),
                ("changed", c.changed),
                ("orphan", c.orphan),
                ("unknown", c.unknown),
            ] {
                self.drift_resources
                    .get_or_create(&DriftLabels {
                        kind: kind.clone(),
                        state: state.to_string(),
                    })
                    .set(n as i64);
            }
        }
        self.drift_last_scan.set(
            (report.scanned_at + chrono::Duration::milliseconds(report.duration_ms as i64))
                .timestamp(),
        );
        self.drift_scan_seconds
            .set(report.duration_ms as f64 / 1000.0);
    }

    /// Refreshes the store-derived gauges and renders the text exposition.
    pub fn render(&self, stats: &StoreStats) -> String {
        for state in super::store::JobState::ALL {
            let n = stats
                .jobs_by_state
                .get(state.as_str())
                .copied()
                .unwrap_or(0);
            self.jobs
                .get_or_create(&StateLabels {
                    state: state.as_str().to_string(),
                })
                .set(n as i64);
        }
        self.outbox_backlog.set(stats.outbox_backlog as i64);
        self.notify_backlog.set(stats.notify_backlog as i64);
        let now = chrono::Utc::now().timestamp_millis();
        let age = |at: Option<i64>| at.map_or(0, |t| (now - t).max(0) / 1000);
        self.oldest_queued_age.set(age(stats.oldest_queued_at));
        self.oldest_failed_age.set(age(stats.oldest_failed_at));
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry poisoned");
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}
