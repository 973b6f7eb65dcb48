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
//! Steps of one job run concurrently as far as the plan allows: every step
//! whose dependencies (`PlannedStep::after`) succeeded is started, each
//! journaling its attempt before its adapter call. When a step fails for good,
//! no new step starts and the running ones finish their attempt in flight
//! (journaled, no retry); the job then fails at the first failed step in plan
//! order. A lost lease stops everything at once. At shutdown no new step
//! starts; running ones get the grace period, then are journaled as abandoned,
//! and the job is released with its unfinished steps pending. The steps run
//! in the job's own task (not spawned), so a worker that dies takes them
//! along, as it takes its heartbeat.
//!
//! Store round trips are the engine's own cost per job, so the start of a
//! step's first attempt is journaled in the transaction that stores the plan
//! (the steps that can start at once) or with the success of the step before
//! it (when that step was the only one running: then its success decides
//! alone which steps become ready, and nothing concurrent can change that
//! before they start). Still before the adapter is called, and one write
//! fewer per step; a step that becomes ready while others run journals its
//! own start.
//!
//! The contract's resources read for planning are kept up to date in memory
//! with each step's change and feed the job's billable report, so a job
//! planned in this run reads them once.

mod schedule;
mod step;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::Engine;
use super::notify::Event;
use super::store::{
    AttemptOutcome, ClaimedJob, JobEnd, JobState, NewNotification, RecordedResource,
    ResourceChange, StepRecord, StepState, StoreError,
};
use crate::contract::Contract;
use schedule::{Sched, Slot, dependencies, owned_names, roots};
use step::{Signals, StepEnd, StepRun};

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
    let started = std::time::Instant::now();
    let work = async {
        let res = drive(engine, worker, job, shutdown, hard_stop, &lost_rx).await;
        let _ = done_tx.send(true);
        res
    };
    let (res, ()) = tokio::join!(work, heartbeat);
    match res {
        // This run's time, from claim to end (a resumed job's earlier runs
        // are their own).
        Ok(state) => engine.metrics.job_ended(state.as_str(), started.elapsed()),
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
) -> Result<JobState, Interrupted> {
    let store = &engine.store;
    // The job's contract, parsed once for its plan and its report.
    let contract = match Contract::from_json(&job.payload) {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "the recorded contract does not parse");
            store
                .finish_job(
                    &job.job_id,
                    worker,
                    failed(
                        engine,
                        &job,
                        None,
                        format!("the recorded contract does not parse: {e}"),
                    ),
                )
                .await?;
            return Ok(JobState::Failed);
        }
    };
    // The contract's resources as this run's steps leave them, when this run
    // planned the job (a resumed job reads them at its end).
    let mut known: Option<BTreeMap<(String, String), RecordedResource>> = None;
    let mut first_started: Vec<u32> = Vec::new();
    let steps: Vec<StepRecord> = match job.plan.clone() {
        Some(steps) => steps,
        None => match engine
            .plan_recorded(&contract, job.move_to.as_deref())
            .await
        {
            Ok((planned, recorded)) => {
                // The first attempts of the steps that can start at once are
                // journaled with the plan.
                let roots = roots(&planned);
                let owned = owned_names(&planned);
                match store
                    .set_plan(&job.job_id, worker, &planned, &roots, &owned)
                    .await
                {
                    Ok(()) => {}
                    Err(e @ StoreError::NotOwner { .. }) => {
                        error!(error = %e, "plan refused: it touches what another contract owns");
                        store
                            .finish_job(
                                &job.job_id,
                                worker,
                                failed(engine, &job, None, format!("planning refused: {e}")),
                            )
                            .await?;
                        return Ok(JobState::Failed);
                    }
                    Err(e) => return Err(e.into()),
                }
                first_started = roots;
                known = Some(
                    recorded
                        .into_iter()
                        .map(|r| ((r.kind.clone(), r.key.clone()), r))
                        .collect(),
                );
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
                        failed(engine, &job, None, format!("planning failed: {e}")),
                    )
                    .await?;
                return Ok(JobState::Failed);
            }
        },
    };
    let deps = match dependencies(&steps) {
        Ok(d) => d,
        Err(e) => {
            error!(error = %e, "stored plan is corrupt");
            store
                .finish_job(
                    &job.job_id,
                    worker,
                    failed(engine, &job, None, e.to_string()),
                )
                .await?;
            return Ok(JobState::Failed);
        }
    };

    let sched = Sched::new(&steps, &deps, &first_started);
    // Told to the running steps once a step failed for good: they finish the
    // attempt in flight but start no retry.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut running = Running::default();
    // (plan position, error) of the steps that failed for good.
    let mut failures: Vec<(usize, String)> = Vec::new();
    let mut hard_stopped = false;
    loop {
        if *lost.borrow() {
            return Err(Interrupted::LeaseLost);
        }
        if failures.is_empty() && !hard_stopped {
            let stopping = *shutdown.borrow();
            for pos in sched.ready() {
                let prestarted = sched.slot(pos) == Slot::PreStarted;
                if stopping {
                    if prestarted {
                        // Journaled with the previous success but never
                        // called: close it before the job is given back.
                        let rec = &steps[pos];
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
                        sched.set(pos, Slot::Pending);
                    }
                    continue;
                }
                sched.set(pos, Slot::Running);
                let rec = &steps[pos];
                let span = info_span!("step", step = %rec.step.id, adapter = %rec.step.adapter);
                let step = StepRun {
                    engine,
                    worker,
                    job_id: &job.job_id,
                    pos,
                    sched: &sched,
                    signals: Signals {
                        hard_stop,
                        lost,
                        stop: &stop_rx,
                        shutdown,
                    },
                };
                running.push(Box::pin(
                    async move { (pos, step.run(prestarted).await) }.instrument(span),
                ));
            }
        }
        let Some((pos, res)) = running.next().await else {
            break;
        };
        match res {
            Ok(StepEnd::Succeeded(change)) => {
                sched.set(pos, Slot::Done);
                if let Some(known) = known.as_mut() {
                    match change {
                        ResourceChange::Upsert(r) => {
                            known.insert((r.kind.clone(), r.key.clone()), r);
                        }
                        ResourceChange::Delete { kind, key } => {
                            known.remove(&(kind, key));
                        }
                        ResourceChange::Keep => {}
                    }
                }
            }
            Ok(StepEnd::Failed(error)) => {
                sched.set(pos, Slot::Failed);
                failures.push((pos, error));
                let _ = stop_tx.send(true);
            }
            Ok(StepEnd::Stopped) => sched.set(pos, Slot::Pending),
            // The grace period is over: every running step sees it and
            // journals its abandonment; the job is released once they all did.
            Err(Interrupted::Released) => {
                sched.set(pos, Slot::Pending);
                hard_stopped = true;
            }
            // Lease lost or the store failed: stop everything (dropping the
            // other steps' futures ends their adapter calls).
            Err(e) => return Err(e),
        }
    }

    if let Some((pos, error)) = failures.into_iter().min_by_key(|(pos, _)| *pos) {
        let rec = &steps[pos];
        store
            .finish_job(
                &job.job_id,
                worker,
                failed(engine, &job, Some(rec.index), error),
            )
            .await?;
        warn!(step = %rec.step.id, "job failed");
        return Ok(JobState::Failed);
    }
    if *lost.borrow() {
        return Err(Interrupted::LeaseLost);
    }
    if hard_stopped || !sched.all_done() {
        // Shutdown: no new step started; what ran has finished or was
        // abandoned. The rest waits for the next worker.
        store.release_job(&job.job_id, worker).await?;
        return Err(Interrupted::Released);
    }

    let resources = known.map(|k| k.into_values().collect());
    let end = match engine.success_report(&job, &contract, resources).await {
        Ok((result, outbox, keep)) => JobEnd::Succeeded {
            result,
            outbox,
            keep,
            notify: recovered(engine, &job).await.into_iter().collect(),
        },
        Err(e) => failed(
            engine,
            &job,
            None,
            format!("computing the billable state failed: {e}"),
        ),
    };
    let state = match &end {
        JobEnd::Succeeded { .. } => JobState::Succeeded,
        JobEnd::Failed { .. } => JobState::Failed,
    };
    store.finish_job(&job.job_id, worker, end).await?;
    engine.wake_reporter();
    engine.notify_wake.notify_one();
    info!("job finished");
    Ok(state)
}

/// A failed end, with its `job_failed` notification when one is wanted.
/// Each failure of a job is its own occurrence (a rerun job can fail
/// again), so its key carries a fresh id; a retried write of this same end
/// keeps it.
fn failed(engine: &Engine, job: &ClaimedJob, step_index: Option<u32>, error: String) -> JobEnd {
    let notify = engine.notifier.event(
        Event::JobFailed,
        &format!("{}:{}", job.job_id, uuid::Uuid::new_v4()),
        serde_json::json!({
            "job_id": job.job_id,
            "contract_id": job.contract_id,
            "revision": job.revision,
            "step_index": step_index,
            "error": error,
        }),
    );
    JobEnd::Failed {
        step_index,
        error,
        notify: notify.into_iter().collect(),
    }
}

/// The `job_recovered` notification when the job failed before (ops reran
/// it) and one is wanted; the job's ops log is read only then.
async fn recovered(engine: &Engine, job: &ClaimedJob) -> Option<NewNotification> {
    if !engine.notifier.wants(Event::JobRecovered) {
        return None;
    }
    let detail = match engine.store.job(&job.job_id).await {
        Ok(Some(d)) => d,
        Ok(None) => return None,
        Err(e) => {
            warn!(error = %e, "reading the job's ops log failed; no job_recovered notification");
            return None;
        }
    };
    let reruns: Vec<&str> = detail
        .ops
        .iter()
        .filter(|o| o.action == "rerun")
        .map(|o| o.actor.as_str())
        .collect();
    let rerun_by = reruns.last()?;
    engine.notifier.event(
        Event::JobRecovered,
        &job.job_id,
        serde_json::json!({
            "job_id": job.job_id,
            "contract_id": job.contract_id,
            "revision": job.revision,
            "reruns": reruns.len(),
            "rerun_by": rerun_by,
        }),
    )
}

type StepFuture<'a> =
    Pin<Box<dyn Future<Output = (usize, Result<StepEnd, Interrupted>)> + Send + 'a>>;

/// The steps of one job running at once, polled in the job's own task (not
/// spawned: they borrow the run's plan, and a worker that dies takes them
/// with it). A plan is a handful of steps, so a vector polled in turn does.
#[derive(Default)]
struct Running<'a> {
    futures: Vec<StepFuture<'a>>,
}

impl<'a> Running<'a> {
    fn push(&mut self, f: StepFuture<'a>) {
        self.futures.push(f);
    }
    /// The next step to end; `None` when none is running.
    async fn next(&mut self) -> Option<(usize, Result<StepEnd, Interrupted>)> {
        if self.futures.is_empty() {
            return None;
        }
        std::future::poll_fn(|cx| {
            for i in 0..self.futures.len() {
                if let Poll::Ready(out) = self.futures[i].as_mut().poll(cx) {
                    drop(self.futures.swap_remove(i));
                    return Poll::Ready(Some(out));
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Resolves when the watched flag is (or becomes) true; never if the sender is
/// gone while it is false.
async fn wait_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}
