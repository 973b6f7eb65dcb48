//! One step of a job run: its attempts, each journaled before its adapter
//! call, retried under the one retry driver ([`Backoff`]) while the failure
//! is transient, until success, a failure for good, or a signal (another
//! step failed, the grace period ran out, the lease was lost).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hostwright_adapter::{Adapter, AdapterError, Outcome, Secret, StepContext};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::schedule::{Sched, step_names};
use super::{Interrupted, wait_true};
use crate::engine::Engine;
use crate::engine::metrics::{AdapterLabels, StepLabels};
use crate::engine::store::{
    Action, AttemptOutcome, PlannedStep, RecordedResource, ResourceChange, StepRecord, StepSuccess,
    StoreError,
};

/// How a step's run in this job run ended.
#[derive(Debug)]
pub enum StepEnd {
    /// Recorded with the resource change it made.
    Succeeded(ResourceChange),
    /// Failed for good (permanent, or out of retries), journaled.
    Failed(String),
    /// Another step failed for good: its attempt in flight finished and was
    /// journaled; no retry was started. The step stays pending.
    Stopped,
}

/// The signals a running step heeds.
pub struct Signals<'a> {
    /// The grace period after a shutdown is over: abandon the attempt.
    pub hard_stop: &'a watch::Receiver<bool>,
    /// The lease is gone: leave at once, record nothing.
    pub lost: &'a watch::Receiver<bool>,
    /// Another step failed for good: finish this attempt, retry nothing.
    pub stop: &'a watch::Receiver<bool>,
    /// A shutdown is under way (no first attempts ride on this success).
    pub shutdown: &'a watch::Receiver<bool>,
}

/// One step of a job run and what it needs.
pub struct StepRun<'a> {
    pub engine: &'a Arc<Engine>,
    pub worker: &'a str,
    pub job_id: &'a str,
    pub pos: usize,
    pub sched: &'a Sched<'a>,
    pub signals: Signals<'a>,
}

/// How one attempt ended, before it is journaled.
enum Tried {
    Done(Result<Outcome, AdapterError>, Duration),
    /// The grace period ran out mid-call; the attempt is abandoned.
    HardStopped(Duration),
}

impl StepRun<'_> {
    fn record(&self) -> &StepRecord {
        &self.sched.steps[self.pos]
    }

    /// Runs the step to success or failure. `started`: its first attempt is
    /// journaled already. `Err(Released)` when the grace period ran out
    /// (the attempt is journaled as abandoned; the caller releases the job).
    pub async fn run(self, started: bool) -> Result<StepEnd, Interrupted> {
        let rec = self.record();
        let step = &rec.step;
        let Some(adapter) = self.engine.adapters.get(&step.adapter).cloned() else {
            let error = format!("no adapter `{}` is configured", step.adapter);
            if started {
                self.journal_failure(
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
        // The journal numbers attempts across runs; the retry budget counts
        // this run's tries only, so a rerun gets a fresh budget.
        let mut backoff = self.engine.settings.retry.backoff();
        let mut attempt = rec.attempts + 1;
        let mut journaled = started;
        loop {
            if !journaled && let Some(refused) = self.journal_start(attempt).await? {
                return Ok(refused);
            }
            journaled = false;
            let (result, elapsed) = match self.attempt(adapter.as_ref(), attempt).await? {
                Tried::Done(r, elapsed) => (r, elapsed),
                Tried::HardStopped(elapsed) => {
                    self.journal_failure(
                        attempt,
                        AttemptOutcome::Abandoned {
                            error: "shutdown grace period over".into(),
                        },
                        elapsed,
                    )
                    .await?;
                    return Err(Interrupted::Released);
                }
            };
            match result {
                Ok(outcome) => return self.succeeded(attempt, outcome, elapsed).await,
                Err(AdapterError::Permanent { message }) => {
                    self.journal_failure(
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
                    self.journal_failure(
                        attempt,
                        AttemptOutcome::Transient {
                            error: message.clone(),
                        },
                        elapsed,
                    )
                    .await?;
                    let tries = backoff.tries();
                    let Some(delay) = backoff.next(retry_after) else {
                        warn!(attempt, error = %message, "step failed; retry budget spent");
                        return Ok(StepEnd::Failed(format!(
                            "{message} (gave up after {tries} attempts)"
                        )));
                    };
                    if *self.signals.stop.borrow() {
                        info!(attempt, error = %message, "another step failed; not retrying");
                        return Ok(StepEnd::Stopped);
                    }
                    self.engine
                        .metrics
                        .retries
                        .get_or_create(&AdapterLabels {
                            adapter: step.adapter.clone(),
                        })
                        .inc();
                    info!(attempt, error = %message, delay_ms = delay.as_millis() as u64, "transient failure; retrying");
                    let (mut hard, mut lost, mut stop) = (
                        self.signals.hard_stop.clone(),
                        self.signals.lost.clone(),
                        self.signals.stop.clone(),
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = wait_true(&mut hard) => return Err(Interrupted::Released),
                        _ = wait_true(&mut lost) => return Err(Interrupted::LeaseLost),
                        _ = wait_true(&mut stop) => return Ok(StepEnd::Stopped),
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Journals the start of `attempt` (a removal's, with its ownership
    /// check). `Some(end)` when the store refused it: nothing was tried.
    async fn journal_start(&self, attempt: u32) -> Result<Option<StepEnd>, Interrupted> {
        let rec = self.record();
        let owned = if rec.step.action.removes() {
            step_names(&rec.step)
        } else {
            Vec::new()
        };
        match self
            .engine
            .store
            .attempt_started(self.job_id, self.worker, rec.index, attempt, &owned)
            .await
        {
            Ok(()) => Ok(None),
            Err(e @ StoreError::NotOwner { .. }) => {
                warn!(error = %e, "removal refused");
                Ok(Some(StepEnd::Failed(e.to_string())))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn journal_failure(
        &self,
        attempt: u32,
        outcome: AttemptOutcome,
        elapsed: Duration,
    ) -> Result<(), Interrupted> {
        let rec = self.record();
        self.engine
            .store
            .attempt_failed(
                self.job_id,
                self.worker,
                rec.index,
                attempt,
                outcome,
                elapsed,
            )
            .await?;
        Ok(())
    }

    /// One adapter call under the step timeout, measured.
    async fn attempt(&self, adapter: &dyn Adapter, attempt: u32) -> Result<Tried, Interrupted> {
        let step = &self.record().step;
        let ctx = StepContext {
            job_id: self.job_id.to_string(),
            step_id: step.id.clone(),
            attempt,
        };
        let timeout = self.engine.settings.step_timeout();
        let began = Instant::now();
        let call = async {
            match step.action {
                Action::Delete | Action::Retire => adapter.remove(&ctx, &step.resource).await,
                Action::Relocate => self.relocate(adapter, &ctx, step).await,
                _ => adapter.ensure(&ctx, &step.resource).await,
            }
        };
        let (mut hard, mut lost) = (self.signals.hard_stop.clone(), self.signals.lost.clone());
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, call) => r.unwrap_or_else(|_| Err(AdapterError::transient(
                format!("step timed out after {} s", timeout.as_secs())))),
            _ = wait_true(&mut hard) => return Ok(Tried::HardStopped(began.elapsed())),
            _ = wait_true(&mut lost) => return Err(Interrupted::LeaseLost),
        };
        let elapsed = began.elapsed();
        let outcome = match &result {
            Ok(_) => "succeeded",
            Err(e) if e.is_transient() => "transient",
            Err(_) => "permanent",
        };
        self.engine
            .metrics
            .step_seconds
            .get_or_create(&StepLabels {
                adapter: step.adapter.clone(),
                action: step.action.as_str().to_string(),
                outcome: outcome.to_string(),
            })
            .observe(elapsed.as_secs_f64());
        Ok(Tried::Done(result, elapsed))
    }

    /// A relocation: what the instance the resource is on now exports
    /// (the home's files, an FTP password hash), imported by `adapter`.
    /// Both ends are idempotent, so a relocation cut short is simply done
    /// again.
    async fn relocate(
        &self,
        adapter: &dyn Adapter,
        ctx: &StepContext,
        step: &PlannedStep,
    ) -> Result<Outcome, AdapterError> {
        let from = step.from.as_deref().ok_or_else(|| {
            AdapterError::permanent(format!("relocation step {} names no source", step.id))
        })?;
        let source = self.engine.adapters.get(from).cloned().ok_or_else(|| {
            AdapterError::permanent(format!(
                "no adapter `{from}` is configured: {} {} cannot be taken over from it",
                step.resource.kind, step.resource.key
            ))
        })?;
        let export = source.export(&step.resource).await?;
        adapter.import(ctx, &step.resource, export).await
    }

    /// Records the success with the resource change it made and its secrets,
    /// and the first attempts it alone makes ready, in one transaction.
    async fn succeeded(
        &self,
        attempt: u32,
        outcome: Outcome,
        elapsed: Duration,
    ) -> Result<StepEnd, Interrupted> {
        let rec = self.record();
        let step = &rec.step;
        let change = resource_change(step, &outcome);
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
        let next = self
            .sched
            .then_start(self.pos, *self.signals.shutdown.borrow());
        let recorded = self
            .engine
            .store
            .step_succeeded(
                self.job_id,
                self.worker,
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
            self.sched.unstart(&next);
            return Err(e.into());
        }
        debug!(attempt, ms = elapsed.as_millis() as u64, "step succeeded");
        Ok(StepEnd::Succeeded(change))
    }
}

/// What a successful step changes in the contract's recorded resources.
fn resource_change(step: &PlannedStep, outcome: &Outcome) -> ResourceChange {
    match step.action {
        Action::Delete => ResourceChange::Delete {
            kind: step.resource.kind.clone(),
            key: step.resource.key.clone(),
        },
        Action::Retire => ResourceChange::Keep,
        _ => ResourceChange::Upsert(RecordedResource {
            kind: step.resource.kind.clone(),
            key: step.resource.key.clone(),
            adapter: step.adapter.clone(),
            spec: step.resource.spec.clone(),
            facts: outcome.facts.clone(),
        }),
    }
}
