//! The engine's behaviour, on both job stores, with scripted stand-in adapters
//! (the real adapters have their own suites against real servers).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use hostwright::engine::intake::IntakeResult;
use hostwright::engine::outbox::{ReportSink, SinkError, run_reporter};
use hostwright::engine::scripted::{Behavior, Rule, Script};
use hostwright::engine::store::{Action, JobState, StepState};

fn rule(kind: &str, behavior: Behavior, times: Option<u32>) -> Rule {
    Rule {
        kind: Some(kind.into()),
        key: None,
        op: None,
        behavior,
        times,
    }
}

/// A fresh store on `backend` (its folder lives as long as the first value)
/// and an engine over it whose stand-in adapters follow `rules`.
async fn fixture(
    backend: Backend,
    rules: Vec<Rule>,
) -> (tempfile::TempDir, Script, Arc<hostwright::engine::Engine>) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(backend, dir.path()).await;
    let script = Script::new();
    for r in rules {
        script.push(r);
    }
    let engine = engine(&url, &script, fast_settings()).await;
    (dir, script, engine)
}

async fn accepted(engine: &hostwright::engine::Engine, body: &[u8]) -> String {
    match engine.intake(body, chrono::Utc::now()).await.unwrap() {
        IntakeResult::Accepted { job_id, .. } => job_id,
        other => panic!("expected acceptance, got {other:?}"),
    }
}

#[tokio::test]
async fn intake_is_idempotent_and_refuses_with_reasons() {
    for backend in BACKENDS {
        let (_dir, script, engine) = fixture(backend, vec![]).await;
        let k = keys();

        let c2 = sign(&k, &www_contract("C-1001", 2));
        let job = accepted(&engine, &c2).await;
        match engine.intake(&c2, chrono::Utc::now()).await.unwrap() {
            IntakeResult::Existing { job_id, .. } => assert_eq!(job_id, job, "{backend:?}"),
            other => panic!("{backend:?}: same revision again should answer the job: {other:?}"),
        }
        // An older revision: 409.
        let c1 = sign(&k, &www_contract("C-1001", 1));
        assert!(
            matches!(
                engine.intake(&c1, chrono::Utc::now()).await.unwrap(),
                IntakeResult::Stale { latest: 2, .. }
            ),
            "{backend:?}"
        );
        // The same revision with other content: refused, revisions are immutable.
        let mut changed = www_contract("C-1001", 2);
        changed["options"][1]["quantity"] = 3.into();
        assert!(matches!(
            engine
                .intake(&sign(&k, &changed), chrono::Utc::now())
                .await
                .unwrap(),
            IntakeResult::Stale { .. }
        ));
        // A bad signature: 401.
        let mut forged = c2.clone();
        let pos = forged.len() / 2;
        forged[pos] ^= 1;
        assert!(matches!(
            engine.intake(&forged, chrono::Utc::now()).await.unwrap(),
            IntakeResult::Unauthorized { .. } | IntakeResult::Malformed { .. }
        ));
        // Oversized: 413.
        let big = vec![b' '; 1024 * 1024 + 1];
        assert!(matches!(
            engine.intake(&big, chrono::Utc::now()).await.unwrap(),
            IntakeResult::TooLarge { .. }
        ));
        // The terms forbid it (SSL with a mail-only service, 第6条2項): 422 with findings.
        let mut bad = www_contract("C-2002", 1);
        bad["service"] = "mail_secure_mx".into();
        match engine
            .intake(&sign(&k, &bad), chrono::Utc::now())
            .await
            .unwrap()
        {
            IntakeResult::Rejected { findings, .. } => {
                assert!(!findings.is_empty());
                assert!(
                    findings.iter().any(|f| f.article.contains("第6条")),
                    "{findings:?}"
                );
            }
            other => panic!("{backend:?}: expected a rejection, got {other:?}"),
        }
        // Every refusal is recorded, none dropped.
        let rej = engine.store.rejections(100).await.unwrap();
        let kinds: Vec<&str> = rej.iter().map(|r| r.kind.as_str()).collect();
        for k in ["stale", "conflict", "too_large", "rules"] {
            assert!(
                kinds.contains(&k),
                "{backend:?}: no `{k}` rejection in {kinds:?}"
            );
        }
        assert!(kinds.contains(&"signature") || kinds.contains(&"malformed"));
        // Nothing ran: no worker was started and rejected contracts queue nothing.
        assert!(script.calls().is_empty());
        let jobs = engine.store.list_jobs(&Default::default()).await.unwrap();
        assert_eq!(jobs.len(), 1, "{backend:?}");
    }
}

#[tokio::test]
async fn plan_follows_the_playbook_and_a_no_op_revision_plans_nothing() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let k = keys();
        let job = accepted(&engine, &sign(&k, &www_contract("C-3001", 1))).await;
        let workers = start_workers(&engine, "w", 2);
        assert_eq!(
            wait_final(&engine, &job, 20).await,
            JobState::Succeeded,
            "{backend:?}"
        );
        let detail = engine.store.job(&job).await.unwrap().unwrap();
        let order: Vec<(Action, &str)> = detail
            .steps
            .iter()
            .map(|s| (s.step.action, s.step.resource.kind.as_str()))
            .collect();
        let pos = |kind: &str| order.iter().position(|(_, k)| *k == kind).unwrap();
        assert!(pos("dns_zone") < pos("vhost"), "{order:?}");
        assert!(pos("webspace") < pos("vhost"), "{order:?}");
        assert!(pos("webspace") < pos("ftp_account"), "{order:?}");
        assert!(order.iter().all(|(a, _)| *a == Action::Create));
        // One FTP account with WWW and one with SSL (別表② ※1), plus one additional.
        assert_eq!(order.iter().filter(|(_, k)| *k == "ftp_account").count(), 3);
        // Revision 2 with the same content plans nothing.
        let again = engine
            .plan_contract(
                &hostwright::contract::Contract::from_json(
                    &serde_json::to_vec(&www_contract("C-3001", 2)).unwrap(),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        assert!(again.is_empty(), "{backend:?}: {again:?}");
        workers.stop(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn transient_failures_are_retried_then_succeed() {
    for backend in BACKENDS {
        let (_dir, _script, engine) =
            fixture(backend, vec![rule("vhost", Behavior::Transient, Some(2))]).await;
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-4001", 1))).await;
        let workers = start_workers(&engine, "w", 1);
        assert_eq!(
            wait_final(&engine, &job, 20).await,
            JobState::Succeeded,
            "{backend:?}"
        );
        let d = engine.store.job(&job).await.unwrap().unwrap();
        let vhost = d
            .steps
            .iter()
            .find(|s| s.step.resource.kind == "vhost")
            .unwrap();
        assert_eq!(vhost.attempts, 3, "{backend:?}");
        let journal: Vec<_> = d
            .attempts
            .iter()
            .filter(|a| a.step_index == vhost.index)
            .collect();
        assert_eq!(journal.len(), 3, "every attempt journaled");
        workers.stop(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn a_step_out_of_retries_fails_the_job_at_that_step() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let script = Script::new();
        script.push(rule("vhost", Behavior::Transient, None));
        let settings = fast_settings();
        let budget = settings.retry.max_attempts;
        let engine = engine(&url, &script, settings).await;
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-4101", 1))).await;
        let workers = start_workers(&engine, "w", 1);
        assert_eq!(
            wait_final(&engine, &job, 20).await,
            JobState::Failed,
            "{backend:?}"
        );
        let d = engine.store.job(&job).await.unwrap().unwrap();
        let vhost = d
            .steps
            .iter()
            .find(|s| s.step.resource.kind == "vhost")
            .unwrap();
        assert_eq!(vhost.state, StepState::Failed, "{backend:?}");
        assert_eq!(
            vhost.attempts, budget,
            "{backend:?}: the whole budget, no more"
        );
        let error = d.summary.error.unwrap_or_default();
        assert!(error.contains("gave up after"), "{backend:?}: {error}");
        let later = d.steps.iter().filter(|s| s.index > vhost.index);
        assert!(
            later.clone().all(|s| s.state == StepState::Pending),
            "{backend:?}: nothing after the failed step ran"
        );
        workers.stop(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn permanent_failure_then_rerun_resumes_without_redoing_finished_steps() {
    for backend in BACKENDS {
        let (_dir, script, engine) = fixture(
            backend,
            vec![rule("ftp_account", Behavior::Permanent, Some(1))],
        )
        .await;
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-5001", 1))).await;
        let workers = start_workers(&engine, "w", 2);
        assert_eq!(
            wait_final(&engine, &job, 20).await,
            JobState::Failed,
            "{backend:?}"
        );
        let d = engine.store.job(&job).await.unwrap().unwrap();
        assert!(
            d.summary
                .error
                .as_deref()
                .unwrap_or("")
                .contains("scripted permanent")
        );
        let before: BTreeMap<_, _> = d
            .steps
            .iter()
            .map(|s| (s.step.id.clone(), s.state))
            .collect();
        assert!(before.values().any(|s| *s == StepState::Failed));

        engine.store.rerun(&job, "ops@test").await.unwrap();
        engine.wake_workers();
        assert_eq!(
            wait_final(&engine, &job, 20).await,
            JobState::Succeeded,
            "{backend:?}"
        );
        // Steps that had succeeded were not called again.
        let calls = script.calls();
        for (id, state) in before {
            if state == StepState::Succeeded {
                let key = id.splitn(3, ':').nth(2).unwrap();
                let kind = id.split(':').nth(1).unwrap();
                let n = calls
                    .iter()
                    .filter(|c| c.kind == kind && c.key == key)
                    .count();
                assert_eq!(n, 1, "{backend:?}: {id} was redone");
            }
        }
        let d = engine.store.job(&job).await.unwrap().unwrap();
        assert!(
            d.ops
                .iter()
                .any(|o| o.action == "rerun" && o.actor == "ops@test")
        );
        workers.stop(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn a_worker_killed_mid_step_is_replaced_and_the_job_finishes_once() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let script = Script::new();
        // The first vhost call hangs long enough for us to kill its worker.
        script.push(rule("vhost", Behavior::Hang { ms: 60_000 }, Some(1)));
        let engine_a = engine(&url, &script, fast_settings()).await;
        let job = accepted(&engine_a, &sign(&keys(), &www_contract("C-6001", 1))).await;
        let a = start_workers(&engine_a, "a", 1);
        // Wait until worker a is inside the vhost step.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !script
            .calls()
            .iter()
            .any(|c| c.kind == "vhost" && c.op == "hang")
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "vhost step never started"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        a.kill();
        // Another worker (another engine on the same store) takes over once the lease expires.
        let engine_b = engine(&url, &script, fast_settings()).await;
        let b = start_workers(&engine_b, "b", 1);
        assert_eq!(
            wait_final(&engine_b, &job, 30).await,
            JobState::Succeeded,
            "{backend:?}"
        );
        for (res, n) in script.creations() {
            assert_eq!(n, 1, "{backend:?}: {res:?} created {n} times");
        }
        let d = engine_b.store.job(&job).await.unwrap().unwrap();
        let webspace_calls = script
            .calls()
            .iter()
            .filter(|c| c.kind == "webspace" && c.op == "ensure")
            .count();
        assert_eq!(webspace_calls, 1, "finished steps are not redone");
        assert!(d.attempts.iter().any(|a| a.worker.starts_with("b-")));
        b.stop(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn revisions_of_one_contract_run_in_order() {
    for backend in BACKENDS {
        let (_dir, script, engine) = fixture(
            backend,
            vec![rule("vhost", Behavior::Hang { ms: 300 }, Some(1))],
        )
        .await;
        let k = keys();
        let j1 = accepted(&engine, &sign(&k, &www_contract("C-7001", 1))).await;
        let mut r2 = www_contract("C-7001", 2);
        r2["options"][1]["quantity"] = 2.into();
        r2["requested_on"] = "2026-11-02".into();
        let j2 = accepted(&engine, &sign(&k, &r2)).await;
        let workers = start_workers(&engine, "w", 4);
        assert_eq!(wait_final(&engine, &j2, 20).await, JobState::Succeeded);
        assert_eq!(wait_final(&engine, &j1, 1).await, JobState::Succeeded);
        let calls = script.calls();
        let last_j1 = calls.iter().rposition(|c| c.job_id == j1).unwrap();
        let first_j2 = calls.iter().position(|c| c.job_id == j2).unwrap();
        assert!(
            last_j1 < first_j2,
            "{backend:?}: revision 2 started before revision 1 ended"
        );
        // Revision 2 only adds the fourth FTP account (2 included + 2 additional).
        let j2_calls: Vec<_> = calls.iter().filter(|c| c.job_id == j2).collect();
        assert_eq!(j2_calls.len(), 1, "{j2_calls:?}");
        assert_eq!(j2_calls[0].key, "c-7001-4");
        workers.stop(Duration::from_secs(2)).await;
    }
}

/// The claim is two look-ups (queued jobs; running jobs whose lease
/// expired): the older candidate must still win, revision order must hold,
/// and a worker whose lease was taken over can record nothing more.
#[tokio::test]
async fn claims_keep_revision_order_and_take_over_expired_leases() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let store = &engine.store;
        let k = keys();
        // Distinct creation times (milliseconds), oldest first.
        let a1 = accepted(&engine, &sign(&k, &www_contract("C-8001", 1))).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let b1 = accepted(&engine, &sign(&k, &www_contract("C-8002", 1))).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut r2 = www_contract("C-8001", 2);
        r2["options"][1]["quantity"] = 2.into();
        r2["requested_on"] = "2026-11-02".into();
        let a2 = accepted(&engine, &sign(&k, &r2)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let c1 = accepted(&engine, &sign(&k, &www_contract("C-8003", 1))).await;

        let long = Duration::from_secs(60);
        let claim = |w: &'static str, lease: Duration| {
            let store = store.clone();
            async move { store.claim(w, lease).await.unwrap().map(|j| j.job_id) }
        };
        assert_eq!(
            claim("w1", Duration::from_secs(2)).await,
            Some(a1.clone()),
            "{backend:?}"
        );
        assert_eq!(claim("w2", long).await, Some(b1.clone()), "{backend:?}");
        // a2 waits for a1 (running), so the next runnable job is c1: leave it.
        tokio::time::sleep(Duration::from_millis(2200)).await;
        // a1's lease expired: it is older than the queued c1, so it wins.
        assert_eq!(claim("w3", long).await, Some(a1.clone()), "{backend:?}");
        assert!(
            matches!(
                store.attempt_started(&a1, "w1", 0, 1).await,
                Err(hostwright::engine::store::StoreError::LeaseLost(_))
            ),
            "{backend:?}: the old lease holder could still write"
        );
        assert!(
            store.heartbeat(&a1, "w3", long).await.is_ok(),
            "{backend:?}"
        );
        assert_eq!(claim("w4", long).await, Some(c1.clone()), "{backend:?}");
        assert_eq!(
            claim("w5", long).await,
            None,
            "{backend:?}: a2 ran before a1 ended"
        );
        store.cancel(&a1, "test").await.unwrap();
        assert_eq!(claim("w5", long).await, Some(a2.clone()), "{backend:?}");
    }
}

#[tokio::test]
async fn two_engines_on_one_postgres_never_run_a_job_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(Backend::Postgres, dir.path()).await;
    let script = Script::new();
    let e1 = engine(&url, &script, fast_settings()).await;
    let e2 = engine(&url, &script, fast_settings()).await;
    let k = keys();
    let mut jobs = Vec::new();
    for i in 0..30 {
        jobs.push(accepted(&e1, &sign(&k, &www_contract(&format!("C-8{i:03}"), 1))).await);
    }
    let w1 = start_workers(&e1, "m1", 4);
    let w2 = start_workers(&e2, "m2", 4);
    for j in &jobs {
        assert_eq!(wait_final(&e1, j, 60).await, JobState::Succeeded);
    }
    for (res, n) in script.creations() {
        assert_eq!(n, 1, "{res:?} created {n} times");
    }
    // Each job was run by exactly one worker.
    for j in &jobs {
        let d = e1.store.job(j).await.unwrap().unwrap();
        let workers: std::collections::BTreeSet<_> =
            d.attempts.iter().map(|a| a.worker.clone()).collect();
        assert_eq!(workers.len(), 1, "{j}: {workers:?}");
    }
    let calls = script.calls();
    let by_m1 = calls.iter().filter(|c| jobs.contains(&c.job_id)).count();
    assert!(by_m1 > 0);
    w1.stop(Duration::from_secs(2)).await;
    w2.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn graceful_shutdown_lets_the_running_step_finish_and_releases_the_job() {
    for backend in BACKENDS {
        let (_dir, script, engine) = fixture(
            backend,
            vec![rule("vhost", Behavior::Hang { ms: 400 }, Some(1))],
        )
        .await;
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-9001", 1))).await;
        let w = start_workers(&engine, "a", 1);
        while !script
            .calls()
            .iter()
            .any(|c| c.kind == "vhost" && c.op == "hang")
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        w.stop(Duration::from_secs(5)).await;
        let d = engine.store.job(&job).await.unwrap().unwrap();
        let vhost = d
            .steps
            .iter()
            .find(|s| s.step.resource.kind == "vhost")
            .unwrap();
        assert_eq!(
            vhost.state,
            StepState::Succeeded,
            "{backend:?}: the running step finished"
        );
        assert_eq!(
            d.summary.state,
            JobState::Queued,
            "{backend:?}: the rest was released"
        );
        // Another worker finishes it at once, without waiting for a lease.
        let w2 = start_workers(&engine, "b", 1);
        assert_eq!(wait_final(&engine, &job, 5).await, JobState::Succeeded);
        let vhost_calls = script
            .calls()
            .iter()
            .filter(|c| c.kind == "vhost" && c.op == "ensure")
            .count();
        assert_eq!(
            vhost_calls, 1,
            "{backend:?}: the finished vhost step was not redone"
        );
        w2.stop(Duration::from_secs(2)).await;
    }
}

/// A billing endpoint that is down for its first `down` calls, and records
/// what it accepted by idempotency key.
struct FlakyBilling {
    down: AtomicU32,
    received: std::sync::Mutex<BTreeMap<String, u32>>,
}

#[async_trait::async_trait]
impl ReportSink for FlakyBilling {
    async fn deliver(&self, key: &str, _body: &[u8]) -> Result<(), SinkError> {
        if self.down.load(Ordering::SeqCst) > 0 {
            self.down.fetch_sub(1, Ordering::SeqCst);
            return Err(SinkError {
                transient: true,
                message: "503 billing down".into(),
            });
        }
        *self
            .received
            .lock()
            .unwrap()
            .entry(key.to_string())
            .or_default() += 1;
        Ok(())
    }
}

#[tokio::test]
async fn billing_outage_loses_and_duplicates_nothing() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let k = keys();
        let mut jobs = Vec::new();
        for i in 0..5 {
            jobs.push(accepted(&engine, &sign(&k, &www_contract(&format!("C-B{i:03}"), 1))).await);
        }
        let w = start_workers(&engine, "w", 2);
        for j in &jobs {
            assert_eq!(wait_final(&engine, j, 20).await, JobState::Succeeded);
        }
        assert_eq!(
            engine.store.stats().await.unwrap().outbox_backlog,
            5,
            "{backend:?}"
        );
        let sink = Arc::new(FlakyBilling {
            down: AtomicU32::new(3),
            received: Default::default(),
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let reporter = tokio::spawn(run_reporter(engine.clone(), sink.clone(), stop_rx));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while engine.store.stats().await.unwrap().outbox_backlog > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend:?}: outbox never drained"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = sink.received.lock().unwrap().clone();
        assert_eq!(got.len(), 5, "{backend:?}: {got:?}");
        assert!(got.values().all(|n| *n == 1), "{backend:?}: {got:?}");
        let _ = stop_tx.send(true);
        reporter.await.unwrap();
        w.stop(Duration::from_secs(2)).await;
    }
}
