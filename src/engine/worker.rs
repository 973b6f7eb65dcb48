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

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use hostwright_adapter::{AdapterError, Secret, StepContext};
use tokio::sync::watch;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::Engine;
use super::claims::{self, Claim};
use super::metrics::{AdapterLabels, StepLabels};
use super::store::{
    Action, AttemptOutcome, ClaimedJob, JobEnd, PlannedStep, RecordedResource, ResourceChange,
    StepRecord, StepState, StepSuccess, StoreError,
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
    // The contract's resources as this run's steps leave them, when this run
    // planned the job (a resumed job reads them at its end).
    let mut known: Option<BTreeMap<(String, String), RecordedResource>> = None;
    let mut first_started: Vec<u32> = Vec::new();
    let steps: Vec<StepRecord> = match job.plan.clone() {
        Some(steps) => steps,
        None => match engine.plan_claimed(&job).await {
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
                                JobEnd::Failed {
                                    step_index: None,
                                    error: format!("planning refused: {e}"),
                                },
                            )
                            .await?;
                        return Ok(());
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
    let deps = match dependencies(&steps) {
        Ok(d) => d,
        Err(error) => {
            error!(%error, "stored plan is corrupt");
            store
                .finish_job(
                    &job.job_id,
                    worker,
                    JobEnd::Failed {
                        step_index: None,
                        error,
                    },
                )
                .await?;
            return Ok(());
        }
    };

    let mut slots: Vec<Slot> = steps
        .iter()
        .map(|s| match s.state {
            StepState::Succeeded => Slot::Done,
            _ => Slot::Pending,
        })
        .collect();
    for &i in &first_started {
        slots[i as usize] = Slot::PreStarted;
    }
    let sched = Sched {
        steps: &steps,
        deps: &deps,
        slots: Mutex::new(slots),
        shutdown: shutdown.clone(),
    };
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
                    hard_stop,
                    lost,
                    stop: &stop_rx,
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
                JobEnd::Failed {
                    step_index: Some(rec.index),
                    error,
                },
            )
            .await?;
        warn!(step = %rec.step.id, "job failed");
        return Ok(());
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
    let end = match engine.success_report(&job, resources).await {
        Ok((result, outbox, keep)) => JobEnd::Succeeded {
            result,
            outbox,
            keep,
        },
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

/// The steps of a fresh plan that can start at once (no dependencies), by
/// index: their first attempts are journaled with the plan. Removals are
/// not: each journals its own start with its ownership check.
fn roots(planned: &[PlannedStep]) -> Vec<u32> {
    planned
        .iter()
        .enumerate()
        .filter(|(_, s)| s.action != Action::Delete)
        .filter(|(i, s)| match &s.after {
            Some(after) => after.is_empty(),
            None => *i == 0,
        })
        .map(|(i, _)| i as u32)
        .collect()
}

/// Every backend name a plan's steps touch: its job's contract must own
/// each before the plan is stored.
fn owned_names(planned: &[PlannedStep]) -> Vec<Claim> {
    let mut names: Vec<Claim> = planned.iter().flat_map(step_names).collect();
    names.sort();
    names.dedup();
    names
}

/// The backend names one step touches.
fn step_names(step: &PlannedStep) -> Vec<Claim> {
    claims::of_resource(&step.resource.kind, &step.resource.key, &step.resource.spec)
        .names
        .into_iter()
        .collect()
}

/// Each step's dependencies as positions in `steps`. A step without recorded
/// dependencies (a plan stored before they were) depends on the previous
/// one. A dependency must come earlier in the plan, which rules out cycles:
/// the scheduler can always make progress.
fn dependencies(steps: &[StepRecord]) -> Result<Vec<Vec<usize>>, String> {
    let pos: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.step.id.as_str(), i))
        .collect();
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| match &s.step.after {
            None => Ok(if i == 0 { Vec::new() } else { vec![i - 1] }),
            Some(after) => after
                .iter()
                .map(|id| match pos.get(id.as_str()) {
                    Some(&p) if p < i => Ok(p),
                    _ => Err(format!(
                        "step {} waits for `{id}`, which is not an earlier step of its plan",
                        s.step.id
                    )),
                })
                .collect(),
        })
        .collect()
}

/// Where a step of the plan stands in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Succeeded (in this run or before).
    Done,
    /// Not started in this run.
    Pending,
    /// Its first attempt was journaled with the plan or with the success of
    /// the step before it; not called yet.
    PreStarted,
    Running,
    /// Failed for good in this run.
    Failed,
}

/// The run's view of its plan, shared by the scheduler and the steps it runs
/// (all in the job's task: the lock is never held across an await).
struct Sched<'a> {
    steps: &'a [StepRecord],
    deps: &'a [Vec<usize>],
    slots: Mutex<Vec<Slot>>,
    shutdown: watch::Receiver<bool>,
}

impl Sched<'_> {
    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn slot(&self, pos: usize) -> Slot {
        self.slots()[pos]
    }
    fn set(&self, pos: usize, slot: Slot) {
        self.slots()[pos] = slot;
    }
    fn all_done(&self) -> bool {
        self.slots().iter().all(|s| *s == Slot::Done)
    }
    /// Steps not running whose dependencies all succeeded, in plan order.
    fn ready(&self) -> Vec<usize> {
        let slots = self.slots();
        (0..slots.len())
            .filter(|&p| matches!(slots[p], Slot::Pending | Slot::PreStarted))
            .filter(|&p| self.deps[p].iter().all(|&d| slots[d] == Slot::Done))
            .collect()
    }
    /// The steps whose first attempts to journal with `pos`'s success: those
    /// its success makes ready, but only when `pos` is the one step running
    /// and no shutdown is under way. Then nothing concurrent (another
    /// success, a failure) can change the picture before the scheduler
    /// starts them; with other steps running, each start is its own write.
    /// The steps are marked pre-started at once.
    fn then_start(&self, pos: usize) -> Vec<(u32, u32)> {
        if *self.shutdown.borrow() {
            return Vec::new();
        }
        let mut slots = self.slots();
        let others_busy = slots
            .iter()
            .enumerate()
            .any(|(p, s)| p != pos && matches!(s, Slot::Running | Slot::PreStarted | Slot::Failed));
        if others_busy {
            return Vec::new();
        }
        let done = |d: usize| d == pos || slots[d] == Slot::Done;
        let ready: Vec<usize> = (0..slots.len())
            .filter(|&p| p != pos && slots[p] == Slot::Pending)
            // A removal journals its own start, with its ownership check.
            .filter(|&p| self.steps[p].step.action != Action::Delete)
            .filter(|&p| self.deps[p].iter().all(|&d| done(d)))
            .collect();
        ready
            .into_iter()
            .map(|p| {
                slots[p] = Slot::PreStarted;
                let rec = &self.steps[p];
                (rec.index, rec.attempts + 1)
            })
            .collect()
    }
    /// Undoes [`Sched::then_start`] when the success it rode on was not
    /// recorded (the run stops anyway; this keeps the view honest).
    fn unstart(&self, next: &[(u32, u32)]) {
        let mut slots = self.slots();
        for &(index, _) in next {
            if let Some(p) = self.steps.iter().position(|s| s.index == index)
                && slots[p] == Slot::PreStarted
            {
                slots[p] = Slot::Pending;
            }
        }
    }
}

/// How a step's run in this job run ended.
#[derive(Debug)]
enum StepEnd {
    /// Recorded with the resource change it made.
    Succeeded(ResourceChange),
    /// Failed for good (permanent, or out of retries), journaled.
    Failed(String),
    /// Another step failed for good: its attempt in flight finished and was
    /// journaled; no retry was started. The step stays pending.
    Stopped,
}

/// One step of a job run and what it needs.
struct StepRun<'a> {
    engine: &'a Arc<Engine>,
    worker: &'a str,
    job_id: &'a str,
    pos: usize,
    sched: &'a Sched<'a>,
    hard_stop: &'a watch::Receiver<bool>,
    lost: &'a watch::Receiver<bool>,
    stop: &'a watch::Receiver<bool>,
}

impl StepRun<'_> {
    /// Runs the step to success or failure. `started`: its first attempt is
    /// journaled already. `Err(Released)` when the grace period ran out
    /// (the attempt is journaled as abandoned; the caller releases the job).
    async fn run(self, started: bool) -> Result<StepEnd, Interrupted> {
        let StepRun {
            engine,
            worker,
            job_id,
            pos,
            sched,
            hard_stop,
            lost,
            stop,
        } = self;
        let store = &engine.store;
        let rec = &sched.steps[pos];
        let step = &rec.step;
        let Some(adapter) = engine.adapters.get(&step.adapter).cloned() else {
            let error = format!("no adapter `{}` is configured", step.adapter);
            if started {
                store
                    .attempt_failed(
                        job_id,
                        worker,
                        rec.index,
                        rec.attempts + 1,
                        AttemptOutcome::Permanent {
                            error: error.clone(),
                        },
                        Duration::ZERO,
                    )
                    .await?;
            }
            return Ok(StepEnd::Failed(error));
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
                let owned = match step.action {
                    Action::Delete => step_names(step),
                    _ => Vec::new(),
                };
                match store
                    .attempt_started(job_id, worker, rec.index, attempt, &owned)
                    .await
                {
                    Ok(()) => {}
                    // Not journaled: nothing was tried, nothing will be.
                    Err(e @ StoreError::NotOwner { .. }) => {
                        warn!(error = %e, "removal refused");
                        return Ok(StepEnd::Failed(e.to_string()));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let ctx = StepContext {
                job_id: job_id.to_string(),
                step_id: step.id.clone(),
                attempt,
            };
            let began = Instant::now();
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
                        began.elapsed()).await?;
                    return Err(Interrupted::Released);
                }
                _ = wait_true(&mut lost_rx) => return Err(Interrupted::LeaseLost),
            };
            let elapsed = began.elapsed();
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
                    let secrets: BTreeMap<String, Secret> = outcome
                        .secrets
                        .into_iter()
                        .map(|(name, s)| {
                            (
                                format!("{}/{}/{}", step.resource.kind, step.resource.key, name),
                                s,
                            )
                        })
                        .collect();
                    let next = sched.then_start(pos);
                    let recorded = store
                        .step_succeeded(
                            job_id,
                            worker,
                            rec.index,
                            attempt,
                            StepSuccess {
                                duration: elapsed,
                                facts: outcome.facts,
                                change: change.clone(),
                                secrets,
                                then_start: next.clone(),
                            },
                        )
                        .await;
                    if let Err(e) = recorded {
                        sched.unstart(&next);
                        return Err(e.into());
                    }
                    debug!(attempt, ms = elapsed.as_millis() as u64, "step succeeded");
                    return Ok(StepEnd::Succeeded(change));
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
                    return Ok(StepEnd::Failed(message));
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
                        return Ok(StepEnd::Failed(format!(
                            "{message} (gave up after {tries} attempts)"
                        )));
                    }
                    if *stop.borrow() {
                        info!(attempt, error = %message, "another step failed; not retrying");
                        return Ok(StepEnd::Stopped);
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
                    let mut stop_rx = stop.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = wait_true(&mut hard) => return Err(Interrupted::Released),
                        _ = wait_true(&mut lost_rx) => return Err(Interrupted::LeaseLost),
                        _ = wait_true(&mut stop_rx) => return Ok(StepEnd::Stopped),
                    }
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
