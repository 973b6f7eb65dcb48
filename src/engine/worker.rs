//! Workers: claim a job, plan it once, run its steps through the adapters with
//! the retry policy, journal every attempt, and end the job with its billing
//! report in one transaction.
//!
//! A worker holds a lease on its job and renews it from a heartbeat task. If
//! the lease is lost (the worker stalled, or ops cancelled the job), every
//! store write of this worker for the job is refused and the worker walks away;
//! whoever holds the job now carries on. Because steps are idempotent, a step
//! that a dead worker had half-run is simply run again.
//!
//! Store round trips are the engine's own cost per job, so the start of a
//! step's first attempt is journaled in the transaction that stores the plan
//! (first step) or the previous step's success (the others): still before the
//! adapter is called, one write fewer per step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hostwright_adapter::{AdapterError, StepContext};
use tokio::sync::watch;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::Engine;
use super::metrics::{AdapterLabels, StepLabels};
use super::store::{
    Action, AttemptOutcome, ClaimedJob, JobEnd, RecordedResource, ResourceChange, StepRecord,
    StepState, StepSuccess, StoreError,
};

/// Why a job run stopped before its end.
#[derive(Debug)]
enum Interrupted {
    /// Shutdown: the job was released for another worker.
    Released,
    /// Lease lost or job cancelled: someone else owns the outcome now.
    LeaseLost,
    /// The store failed; the lease will expire and the job will be resumed.
    Store(StoreError),
}

impl From<StoreError> for Interrupted {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LeaseLost(_) => Interrupted::LeaseLost,
            e => Interrupted::Store(e),
        }
    }
}

/// Runs one worker loop until `shutdown` turns true. Running steps are allowed
/// to finish until `hard_stop` turns true, then the job is released.
pub async fn run(
    engine: Arc<Engine>,
    worker_id: String,
    shutdown: watch::Receiver<bool>,
    hard_stop: watch::Receiver<bool>,
) {
    let mut shutdown_rx = shutdown.clone();
    loop {
        if *shutdown.borrow() {
            break;
        }
        match engine
            .store
            .claim(&worker_id, engine.settings.lease())
            .await
        {
            Ok(Some(job)) => {
                let span = info_span!("job", job_id = %job.job_id, contract_id = %job.contract_id,
                    revision = job.revision, worker = %worker_id);
                run_job(&engine, &worker_id, job, &shutdown, &hard_stop)
                    .instrument(span)
                    .await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = tokio::time::sleep(engine.settings.poll_interval()) => {}
                    _ = engine.wake.notified() => {}
                    _ = shutdown_rx.changed() => {}
                }
            }
            Err(e) => {
                error!(error = %e, "claiming a job failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown_rx.changed() => {}
                }
            }
        }
    }
    debug!(worker = %worker_id, "worker stopped");
}

async fn run_job(
    engine: &Arc<Engine>,
    worker: &str,
    job: ClaimedJob,
    shutdown: &watch::Receiver<bool>,
    hard_stop: &watch::Receiver<bool>,
) {
    // The heartbeat runs in the same task as the job (not spawned), so a
    // worker that dies takes its heartbeat with it and the lease expires.
    let (lost_tx, lost_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = watch::channel(false);
    let job_id = job.job_id.clone();
    let heartbeat = async {
        let lease = engine.settings.lease();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(lease / 3) => {}
                _ = wait_true(&mut done_rx) => return,
            }
            match engine.store.heartbeat(&job_id, worker, lease).await {
                Ok(()) => {}
                Err(StoreError::LeaseLost(_)) => {
                    let _ = lost_tx.send(true);
                    return;
                }
                Err(e) => warn!(error = %e, "heartbeat failed"),
            }
        }
    };
    let work = async {
        let res = drive(engine, worker, job, shutdown, hard_stop, &lost_rx).await;
        let _ = done_tx.send(true);
        res
    };
    let (res, ()) = tokio::join!(work, heartbeat);
    match res {
        Ok(()) => {}
        Err(Interrupted::Released) => info!("job released at shutdown"),
        Err(Interrupted::LeaseLost) => warn!("lease lost or job cancelled; leaving the job"),
        Err(Interrupted::Store(e)) => {
            error!(error = %e, job_id = %job_id, "store failed mid-job; the lease will expire and the job resume")
        }
    }
}

async fn drive(
    engine: &Arc<Engine>,
    worker: &str,
    job: ClaimedJob,
    shutdown: &watch::Receiver<bool>,
    hard_stop: &watch::Receiver<bool>,
    lost: &watch::Receiver<bool>,
) -> Result<(), Interrupted> {
    let store = &engine.store;
    let mut first_started = false;
    let steps: Vec<StepRecord> = match job.plan.clone() {
        Some(steps) => steps,
        None => match engine.plan_claimed(&job).await {
            Ok(planned) => {
                // The first step's first attempt is journaled with the plan.
                store.set_plan(&job.job_id, worker, &planned, true).await?;
                first_started = !planned.is_empty();
                info!(steps = planned.len(), "planned");
                planned
                    .into_iter()
                    .enumerate()
                    .map(|(i, step)| StepRecord {
                        index: i as u32,
                        step,
                        state: StepState::Pending,
                        attempts: 0,
                        last_error: None,
                        facts: None,
                    })
                    .collect()
            }
            Err(e) => {
                error!(error = %e, "planning failed");
                store
                    .finish_job(
                        &job.job_id,
                        worker,
                        JobEnd::Failed {
                            step_index: None,
                            error: format!("planning failed: {e}"),
                        },
                    )
                    .await?;
                return Ok(());
            }
        },
    };

    let pending: Vec<&StepRecord> = steps
        .iter()
        .filter(|s| s.state != StepState::Succeeded)
        .collect();
    // Whether the current step's first attempt was journaled already (with
    // the previous step's success, in one transaction).
    let mut started = first_started;
    for (i, rec) in pending.iter().copied().enumerate() {
        if *shutdown.borrow() {
            if started {
                // Journaled but never called: close it, then give the job back.
                store
                    .attempt_failed(
                        &job.job_id,
                        worker,
                        rec.index,
                        rec.attempts + 1,
                        AttemptOutcome::Abandoned {
                            error: "shutdown before the adapter was called".into(),
                        },
                        Duration::ZERO,
                    )
                    .await?;
            }
            store.release_job(&job.job_id, worker).await?;
            return Err(Interrupted::Released);
        }
        if *lost.borrow() {
            return Err(Interrupted::LeaseLost);
        }
        let next = pending.get(i + 1).map(|n| (n.index, n.attempts + 1));
        let span = info_span!("step", step = %rec.step.id, adapter = %rec.step.adapter);
        let (failed, next_started) = run_step(
            engine,
            worker,
            &job.job_id,
            rec,
            started,
            next,
            hard_stop,
            lost,
        )
        .instrument(span)
        .await?;
        started = next_started;
        if let Some(error) = failed {
            store
                .finish_job(
                    &job.job_id,
                    worker,
                    JobEnd::Failed {
                        step_index: Some(rec.index),
                        error,
                    },
                )
                .await?;
            warn!(step = %rec.step.id, "job failed");
            return Ok(());
        }
    }

    let end = match engine.success_report(&job).await {
        Ok((result, outbox)) => JobEnd::Succeeded { result, outbox },
        Err(e) => JobEnd::Failed {
            step_index: None,
            error: format!("computing the billable state failed: {e}"),
        },
    };
    store.finish_job(&job.job_id, worker, end).await?;
    engine.wake_reporter();
    info!("job finished");
    Ok(())
}

/// Runs one step to success or failure. `Ok(None)` on success,
/// `Ok(Some(error))` when the step failed for good; with it, whether the
/// first attempt of `next` (step index, attempt) was journaled with the
/// success. `started`: this step's first attempt is journaled already.
#[allow(clippy::too_many_arguments)]
async fn run_step(
    engine: &Arc<Engine>,
    worker: &str,
    job_id: &str,
    rec: &StepRecord,
    started: bool,
    next: Option<(u32, u32)>,
    hard_stop: &watch::Receiver<bool>,
    lost: &watch::Receiver<bool>,
) -> Result<(Option<String>, bool), Interrupted> {
    let store = &engine.store;
    let step = &rec.step;
    let Some(adapter) = engine.adapters.get(&step.adapter).cloned() else {
        if started {
            let error = format!("no adapter `{}` is configured", step.adapter);
            store
                .attempt_failed(
                    job_id,
                    worker,
                    rec.index,
                    rec.attempts + 1,
                    AttemptOutcome::Permanent { error },
                    Duration::ZERO,
                )
                .await?;
        }
        return Ok((
            Some(format!("no adapter `{}` is configured", step.adapter)),
            false,
        ));
    };
    let policy = engine.settings.retry;
    // The journal numbers attempts across runs; the retry budget counts this
    // run's tries only, so a rerun gets a fresh budget.
    let mut attempt = rec.attempts;
    let mut tries = 0;
    loop {
        attempt += 1;
        tries += 1;
        if !(started && tries == 1) {
            store
                .attempt_started(job_id, worker, rec.index, attempt)
                .await?;
        }
        let ctx = StepContext {
            job_id: job_id.to_string(),
            step_id: step.id.clone(),
            attempt,
        };
        let started = Instant::now();
        let call = async {
            match step.action {
                Action::Delete => adapter.remove(&ctx, &step.resource).await,
                _ => adapter.ensure(&ctx, &step.resource).await,
            }
        };
        let mut hard = hard_stop.clone();
        let mut lost_rx = lost.clone();
        let result = tokio::select! {
            r = tokio::time::timeout(engine.settings.step_timeout(), call) => match r {
                Ok(r) => r,
                Err(_) => Err(AdapterError::transient(format!(
                    "step timed out after {} s", engine.settings.step_timeout().as_secs()))),
            },
            _ = wait_true(&mut hard) => {
                store.attempt_failed(job_id, worker, rec.index, attempt,
                    AttemptOutcome::Abandoned { error: "shutdown grace period over".into() },
                    started.elapsed()).await?;
                store.release_job(job_id, worker).await?;
                return Err(Interrupted::Released);
            }
            _ = wait_true(&mut lost_rx) => return Err(Interrupted::LeaseLost),
        };
        let elapsed = started.elapsed();
        let outcome_label = match &result {
            Ok(_) => "succeeded",
            Err(e) if e.is_transient() => "transient",
            Err(_) => "permanent",
        };
        engine
            .metrics
            .step_seconds
            .get_or_create(&StepLabels {
                adapter: step.adapter.clone(),
                action: step.action.as_str().to_string(),
                outcome: outcome_label.to_string(),
            })
            .observe(elapsed.as_secs_f64());
        match result {
            Ok(outcome) => {
                let change = match step.action {
                    Action::Delete => ResourceChange::Delete {
                        kind: step.resource.kind.clone(),
                        key: step.resource.key.clone(),
                    },
                    _ => ResourceChange::Upsert(RecordedResource {
                        kind: step.resource.kind.clone(),
                        key: step.resource.key.clone(),
                        adapter: step.adapter.clone(),
                        spec: step.resource.spec.clone(),
                        facts: outcome.facts.clone(),
                    }),
                };
                let secrets: BTreeMap<String, String> = outcome
                    .secrets
                    .iter()
                    .map(|(name, s)| {
                        (
                            format!("{}/{}/{}", step.resource.kind, step.resource.key, name),
                            s.expose().to_string(),
                        )
                    })
                    .collect();
                store
                    .step_succeeded(
                        job_id,
                        worker,
                        rec.index,
                        attempt,
                        StepSuccess {
                            duration: elapsed,
                            facts: outcome.facts,
                            change,
                            secrets,
                            then_start: next,
                        },
                    )
                    .await?;
                debug!(attempt, ms = elapsed.as_millis() as u64, "step succeeded");
                return Ok((None, next.is_some()));
            }
            Err(AdapterError::Permanent { message }) => {
                store
                    .attempt_failed(
                        job_id,
                        worker,
                        rec.index,
                        attempt,
                        AttemptOutcome::Permanent {
                            error: message.clone(),
                        },
                        elapsed,
                    )
                    .await?;
                warn!(attempt, error = %message, "step failed permanently");
                return Ok((Some(message), false));
            }
            Err(AdapterError::Transient {
                message,
                retry_after,
            }) => {
                store
                    .attempt_failed(
                        job_id,
                        worker,
                        rec.index,
                        attempt,
                        AttemptOutcome::Transient {
                            error: message.clone(),
                        },
                        elapsed,
                    )
                    .await?;
                if tries >= policy.max_attempts {
                    warn!(attempt, error = %message, "step failed; retry budget spent");
                    return Ok((
                        Some(format!("{message} (gave up after {tries} attempts)")),
                        false,
                    ));
                }
                engine
                    .metrics
                    .retries
                    .get_or_create(&AdapterLabels {
                        adapter: step.adapter.clone(),
                    })
                    .inc();
                let delay = policy.delay(tries + 1, retry_after);
                info!(attempt, error = %message, delay_ms = delay.as_millis() as u64, "transient failure; retrying");
                let mut hard = hard_stop.clone();
                let mut lost_rx = lost.clone();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = wait_true(&mut hard) => {
                        store.release_job(job_id, worker).await?;
                        return Err(Interrupted::Released);
                    }
                    _ = wait_true(&mut lost_rx) => return Err(Interrupted::LeaseLost),
                }
            }
        }
    }
}

/// Resolves when the watched flag is (or becomes) true; never if the sender is
/// gone while it is false.
async fn wait_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}
