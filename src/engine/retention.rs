//! Retention: how long history is kept (`[store.retention]`, docs/schema.md).
//!
//! History grows with every job: the attempts journal (one row per step
//! attempt), every report delivered to billing, every refusal. What a
//! prune deletes: the attempts of succeeded jobs that ended before the
//! cut-off (the job, its steps and their outcome stay: `jobs show` still
//! says what was done, only the per-attempt timings go), reports billing
//! acknowledged before the cut-off except each contract's newest, and
//! refusals older than `[intake] rejection_retention_days`. Never: the
//! latest state of a contract (revisions, resources, ownership), jobs that
//! did not succeed (their attempts are what ops debug from), undelivered
//! reports, secrets, the ops and audit logs. Deletes go in batches, so the
//! SQLite writer's transactions stay short and intake is not held up.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use super::Engine;
use super::config::RetentionConfig;
use super::store::{Store, StoreError};

/// Rows per delete: bounds one transaction.
const BATCH: u32 = 500;

/// What to keep, as durations (`None`: forever).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub succeeded_attempts: Option<Duration>,
    pub delivered_reports: Option<Duration>,
    pub rejections: Duration,
}

impl Policy {
    pub fn new(cfg: &RetentionConfig, rejection_retention: Duration) -> Policy {
        let days = |d: u32| (d > 0).then(|| Duration::from_secs(u64::from(d) * 86_400));
        Policy {
            succeeded_attempts: days(cfg.succeeded_attempts_days),
            delivered_reports: days(cfg.delivered_reports_days),
            rejections: rejection_retention,
        }
    }
}

/// Rows one prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub attempts: u64,
    pub delivered_reports: u64,
    pub rejections: u64,
}

fn cutoff(now: DateTime<Utc>, keep: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX)
}

/// Deletes what `policy` no longer keeps, as of `now`.
pub async fn prune(
    store: &dyn Store,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Pruned, StoreError> {
    let mut done = Pruned::default();
    if let Some(keep) = policy.succeeded_attempts {
        let before = cutoff(now, keep);
        let mut after = String::new();
        loop {
            let (n, next) = store.prune_attempts(before, &after, BATCH).await?;
            done.attempts += n;
            match next {
                Some(id) => after = id,
                None => break,
            }
            tokio::task::yield_now().await;
        }
    }
    if let Some(keep) = policy.delivered_reports {
        let before = cutoff(now, keep);
        loop {
            let n = store.prune_delivered_reports(before, BATCH).await?;
            done.delivered_reports += n;
            if n < u64::from(BATCH) {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    let before = cutoff(now, policy.rejections);
    loop {
        let n = store.prune_rejections(before, BATCH).await?;
        done.rejections += n;
        if n < u64::from(BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(done)
}

/// Serve's prune: at start, then every `every`, until shutdown.
pub async fn run_schedule(
    engine: Arc<Engine>,
    policy: Policy,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(60)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        match prune(engine.store.as_ref(), &policy, Utc::now()).await {
            Ok(p) if p == Pruned::default() => {}
            Ok(p) => info!(
                attempts = p.attempts,
                delivered_reports = p.delivered_reports,
                rejections = p.rejections,
                "retention: old history deleted"
            ),
            Err(e) => warn!(error = %e, "retention prune failed; next run retries"),
        }
    }
}
