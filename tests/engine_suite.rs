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
use hostwright::engine::scripted::{Behavior, Script};
use hostwright::engine::store::{Action, JobState, StepState, StoreError};

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
        let big = vec![b' '; hostwright::signing::MAX_ENVELOPE_BYTES + 1];
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

// --- hostile and oversized input (issue 11, part 4) ------------------------------

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

const PEER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

/// One submission from `peer` the way the webhook takes it (body unread).
async fn submit(
    engine: &hostwright::engine::Engine,
    peer: std::net::IpAddr,
    body: axum::body::Body,
) -> IntakeResult {
    engine.submit(peer, body, chrono::Utc::now()).await.unwrap()
}

/// `r` is a refusal at the signature check (401).
#[track_caller]
fn assert_unauthorized(r: &IntakeResult, backend: Backend) {
    assert!(
        matches!(r, IntakeResult::Unauthorized { .. }),
        "{backend:?}: {r:?}"
    );
}

#[tokio::test]
async fn refusals_keep_a_digest_size_and_prefix_not_the_body() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        // Junk posts of 1 MB each: the store keeps 512 bytes of each.
        let junk: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        for _ in 0..20 {
            let r = engine.intake(&junk, chrono::Utc::now()).await.unwrap();
            assert_unauthorized(&r, backend);
        }
        let rej = engine.store.rejections(1000).await.unwrap();
        assert_eq!(rej.len(), 20, "{backend:?}");
        for r in &rej {
            assert_eq!(r.received, &junk[..512], "{backend:?}");
            assert_eq!(r.received_size, Some(1_000_000), "{backend:?}");
            assert_eq!(
                r.received_sha256.as_deref(),
                Some(sha256_hex(&junk).as_str()),
                "{backend:?}"
            );
        }
        // A refusal by the rules keeps its findings and the same record of the body.
        let mut bad = www_contract("C-3101", 1);
        bad["service"] = "mail_secure_mx".into();
        let body = sign(&keys(), &bad);
        engine.intake(&body, chrono::Utc::now()).await.unwrap();
        let r = &engine.store.rejections(1).await.unwrap()[0];
        assert_eq!(r.kind, "rules", "{backend:?}");
        assert_eq!(r.received_size, Some(body.len() as u64), "{backend:?}");
        assert_eq!(r.received, &body[..512.min(body.len())], "{backend:?}");
        assert!(
            r.reasons.as_array().is_some_and(|f| !f.is_empty()),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn a_body_far_over_the_limit_is_read_to_the_limit_then_refused_and_recorded() {
    use hostwright::signing::MAX_ENVELOPE_BYTES;
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        // A body that never ends: the webhook reads one byte past the limit.
        let endless =
            futures_util::stream::repeat_with(|| Ok::<_, std::io::Error>(vec![b'{'; 64 * 1024]));
        let started = std::time::Instant::now();
        let r = submit(&engine, PEER, axum::body::Body::from_stream(endless)).await;
        assert!(started.elapsed() < Duration::from_secs(10), "{backend:?}");
        assert!(
            matches!(r, IntakeResult::TooLarge { limit } if limit == MAX_ENVELOPE_BYTES),
            "{backend:?}: {r:?}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["outcome"], "too_large");
        assert_eq!(json["limit"], MAX_ENVELOPE_BYTES);
        let rej = &engine.store.rejections(10).await.unwrap()[0];
        assert_eq!(rej.kind, "too_large", "{backend:?}");
        assert_eq!(rej.reasons["size_at_least"], MAX_ENVELOPE_BYTES + 1);
        assert_eq!(rej.received_size, Some(MAX_ENVELOPE_BYTES as u64 + 1));
        assert_eq!(rej.received.len(), 512);
        // Exactly at the limit is not "too large": it is read and judged.
        let at_limit = vec![b' '; MAX_ENVELOPE_BYTES];
        let r = submit(&engine, PEER, axum::body::Body::from(at_limit)).await;
        assert_unauthorized(&r, backend);
    }
}

#[tokio::test]
async fn an_address_refused_too_often_is_answered_429_and_nothing_more_is_recorded() {
    use hostwright::engine::guard::{RefusalBudget, RefusalLimiter};
    use std::num::NonZeroU32;
    for backend in BACKENDS {
        let (_dir, _script, mut engine) = fixture(backend, vec![]).await;
        Arc::get_mut(&mut engine).expect("a fresh engine").refusals =
            RefusalLimiter::new(RefusalBudget {
                burst: NonZeroU32::new(3).unwrap(),
                per_minute: NonZeroU32::new(1).unwrap(),
            });
        let junk = || axum::body::Body::from(b"{\"key_id\": 1}".to_vec());
        // Accepted submissions spend nothing.
        for i in 0..5 {
            let body = sign(&keys(), &www_contract(&format!("C-32{i:02}"), 1));
            let r = submit(&engine, PEER, axum::body::Body::from(body)).await;
            assert!(
                matches!(r, IntakeResult::Accepted { .. }),
                "{backend:?}: {r:?}"
            );
        }
        for _ in 0..3 {
            assert_unauthorized(&submit(&engine, PEER, junk()).await, backend);
        }
        // The budget is spent: 429, even for a good contract, unread.
        let good = sign(&keys(), &www_contract("C-3299", 1));
        for body in [junk(), axum::body::Body::from(good)] {
            let r = submit(&engine, PEER, body).await;
            match &r {
                IntakeResult::RateLimited {
                    retry_after_seconds,
                    error,
                } => {
                    assert!(
                        (1..=60).contains(retry_after_seconds),
                        "{retry_after_seconds}"
                    );
                    assert!(error.contains("too many refused submissions"), "{error}");
                }
                other => panic!("{backend:?}: {other:?}"),
            }
            assert_eq!(serde_json::to_value(&r).unwrap()["outcome"], "rate_limited");
        }
        assert_eq!(
            engine.store.rejections(100).await.unwrap().len(),
            3,
            "{backend:?}"
        );
        assert_eq!(
            engine
                .store
                .list_jobs(&Default::default())
                .await
                .unwrap()
                .len(),
            5
        );
        let stats = engine.store.stats().await.unwrap();
        assert!(
            engine
                .metrics
                .render(&stats)
                .contains("hostwright_intake_rate_limited_total 2"),
            "{backend:?}"
        );
        // Another address has its own budget.
        let other = std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        assert_unauthorized(&submit(&engine, other, junk()).await, backend);
    }
}

#[tokio::test]
async fn refusals_past_their_retention_are_pruned_in_batches() {
    use hostwright::engine::guard::prune_rejections;
    use hostwright::engine::store::Rejection;
    let retention = Duration::from_secs(90 * 86_400);
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let now = chrono::Utc::now();
        let old = now - chrono::Duration::days(91);
        let recent = now - chrono::Duration::days(89);
        // More old ones than one batch deletes (1,000).
        let writes = (0..2_300).map(|i| {
            let at = if i < 2_250 { old } else { recent };
            let kind = if i < 2_250 { "old" } else { "recent" };
            engine.store.record_rejection(Rejection::of_body(
                None,
                None,
                kind,
                serde_json::json!({}),
                b"x",
                at,
            ))
        });
        for r in futures_util::future::join_all(writes).await {
            r.unwrap();
        }
        assert_eq!(
            prune_rejections(&engine, retention, now).await.unwrap(),
            2_250,
            "{backend:?}"
        );
        let left = engine.store.rejections(10_000).await.unwrap();
        assert_eq!(left.len(), 50, "{backend:?}");
        assert!(left.iter().all(|r| r.kind == "recent"), "{backend:?}");
        assert_eq!(prune_rejections(&engine, retention, now).await.unwrap(), 0);
    }
}

/// A store as a release before migration 0006 left it (migrations 1 and 2),
/// holding one refusal with 64 KiB of its body.
async fn store_before_0006(backend: Backend, dir: &std::path::Path, body: &[u8]) -> String {
    use hostwright::engine::store::migrate::checksum;
    use hostwright::engine::store::queries::{
        Dialect, MIGRATIONS_POSTGRES, MIGRATIONS_SQLITE, MIGRATIONS_TABLE, RECORD_MIGRATION,
    };
    const OLD_INSERT: &str = "INSERT INTO rejections (contract_id, revision, kind, reasons, received, received_at) \
         VALUES ('C-OLD', 1, 'malformed', '{\"error\": \"old\"}', $1, 1000)";
    let url = fresh_store_url(backend, dir).await;
    match backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(url.strip_prefix("sqlite:").unwrap()).unwrap();
            conn.execute_batch(MIGRATIONS_TABLE).unwrap();
            for (v, sql) in MIGRATIONS_SQLITE.iter().filter(|(v, _)| *v <= 2) {
                conn.execute_batch(sql).unwrap();
                conn.execute(
                    &Dialect::Sqlite.render(RECORD_MIGRATION),
                    rusqlite::params![v, checksum(sql)],
                )
                .unwrap();
            }
            conn.execute(&Dialect::Sqlite.render(OLD_INSERT), [body])
                .unwrap();
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(MIGRATIONS_TABLE)
                .execute(&mut conn)
                .await
                .unwrap();
            for (v, sql) in MIGRATIONS_POSTGRES.iter().filter(|(v, _)| *v <= 2) {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(
                    Dialect::Postgres.render(RECORD_MIGRATION).into_owned(),
                ))
                .bind(*v)
                .bind(checksum(sql))
                .execute(&mut conn)
                .await
                .unwrap();
            }
            sqlx::query(sqlx::AssertSqlSafe(OLD_INSERT))
                .bind(body)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    url
}

#[tokio::test]
async fn refusals_recorded_before_migration_0006_stay_readable() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let body = vec![b'z'; 64 * 1024];
        let url = store_before_0006(backend, dir.path(), &body).await;
        let engine = engine(&url, &Script::new(), fast_settings()).await;
        engine.intake(b"junk", chrono::Utc::now()).await.unwrap();
        let rej = engine.store.rejections(10).await.unwrap();
        assert_eq!(rej.len(), 2, "{backend:?}");
        let (new, old) = (&rej[0], &rej[1]);
        assert_eq!(old.contract_id.as_deref(), Some("C-OLD"), "{backend:?}");
        assert_eq!(
            old.received, body,
            "{backend:?}: the old row keeps what it had"
        );
        assert_eq!(
            (old.received_size, old.received_sha256.as_deref()),
            (None, None)
        );
        assert_eq!(old.reasons["error"], "old");
        assert_eq!(new.received_size, Some(4), "{backend:?}");
        // Old rows age out like the others.
        let pruned = hostwright::engine::guard::prune_rejections(
            &engine,
            Duration::from_secs(86_400),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(pruned, 1, "{backend:?}");
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
        // The FTP accounts do not wait for the vhost (both only need the web
        // space), so they may have run beside it; nothing failed but the vhost.
        assert!(
            d.steps
                .iter()
                .filter(|s| s.index != vhost.index)
                .all(|s| matches!(s.state, StepState::Pending | StepState::Succeeded)),
            "{backend:?}: {:?}",
            d.steps
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
        assert_eq!(j2_calls[0].key, "c-7001_4");
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
                store.attempt_started(&a1, "w1", 0, 1, &[]).await,
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
            vec![rule("webspace", Behavior::Hang { ms: 400 }, Some(1))],
        )
        .await;
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-9001", 1))).await;
        let w = start_workers(&engine, "a", 1);
        while !script
            .calls()
            .iter()
            .any(|c| c.kind == "webspace" && c.op == "hang")
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        w.stop(Duration::from_secs(5)).await;
        let d = engine.store.job(&job).await.unwrap().unwrap();
        // The web space is what the vhost and the FTP accounts wait for.
        let webspace = d
            .steps
            .iter()
            .find(|s| s.step.resource.kind == "webspace")
            .unwrap();
        assert_eq!(
            webspace.state,
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
        let webspace_calls = script
            .calls()
            .iter()
            .filter(|c| c.kind == "webspace" && c.op == "ensure")
            .count();
        assert_eq!(
            webspace_calls, 1,
            "{backend:?}: the finished web space step was not redone"
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

// --- concurrent steps within a job --------------------------------------------

/// The journal of one job by step kind: (started, finished) of every attempt.
fn windows(
    d: &hostwright::engine::store::JobDetail,
    kind: &str,
) -> Vec<(
    chrono::DateTime<chrono::Utc>,
    Option<chrono::DateTime<chrono::Utc>>,
)> {
    let idx: Vec<u32> = d
        .steps
        .iter()
        .filter(|s| s.step.resource.kind == kind)
        .map(|s| s.index)
        .collect();
    d.attempts
        .iter()
        .filter(|a| idx.contains(&a.step_index))
        .map(|a| (a.started_at, a.finished_at))
        .collect()
}

fn step_of<'a>(
    d: &'a hostwright::engine::store::JobDetail,
    kind: &str,
) -> &'a hostwright::engine::store::StepRecord {
    d.steps
        .iter()
        .find(|s| s.step.resource.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} step in {:?}", d.steps))
}

/// Waits until the scripted adapter is inside a hanging call for each kind.
async fn wait_hanging(script: &Script, kinds: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !kinds.iter().all(|k| {
        script
            .calls()
            .iter()
            .any(|c| c.kind == *k && c.op == "hang")
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kinds:?} never all started: {:?}",
            script.calls()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_plan_records_each_steps_dependencies_from_the_playbook() {
    let (_dir, _script, engine) = fixture(Backend::Sqlite, vec![]).await;
    let mut c = www_contract("C-7001", 1);
    let contract = |c: &serde_json::Value| {
        hostwright::contract::Contract::from_json(&serde_json::to_vec(c).unwrap()).unwrap()
    };
    let plan = engine.plan_contract(&contract(&c)).await.unwrap();
    let after = |kind: &str| -> Vec<String> {
        let mut kinds: Vec<String> = plan
            .iter()
            .filter(|s| s.resource.kind == kind)
            .flat_map(|s| s.after.clone().expect("new plans record dependencies"))
            .map(|id| id.split(':').nth(1).unwrap().to_string())
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    };
    assert!(after("dns_zone").is_empty(), "{plan:?}");
    assert!(after("webspace").is_empty(), "{plan:?}");
    assert_eq!(after("vhost"), ["dns_zone", "webspace"]);
    assert_eq!(after("ftp_account"), ["webspace"]);
    // Every dependency is an earlier step of the plan (a sequential order stays valid).
    for (i, s) in plan.iter().enumerate() {
        for id in s.after.as_ref().unwrap() {
            let p = plan.iter().position(|x| &x.id == id).unwrap();
            assert!(p < i, "{} waits for a later step {id}", s.id);
        }
    }

    // Removal is the reverse: a terminated contract removes the dependents first.
    let recorded: Vec<hostwright::engine::store::RecordedResource> = plan
        .iter()
        .map(|s| hostwright::engine::store::RecordedResource {
            kind: s.resource.kind.clone(),
            key: s.resource.key.clone(),
            adapter: s.adapter.clone(),
            spec: s.resource.spec.clone(),
            facts: serde_json::json!({}),
        })
        .collect();
    c["status"] = serde_json::json!({"state": "terminated", "on": "2027-01-31"});
    let playbook = engine.playbooks.for_service("www").unwrap();
    let removal = hostwright::engine::plan::diff("C-7001", playbook, &[], &recorded);
    assert!(removal.iter().all(|s| s.action == Action::Delete));
    let waits = |kind: &str| -> Vec<String> {
        let mut kinds: Vec<String> = removal
            .iter()
            .filter(|s| s.resource.kind == kind)
            .flat_map(|s| s.after.clone().unwrap())
            .map(|id| id.split(':').nth(1).unwrap().to_string())
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    };
    assert!(waits("vhost").is_empty(), "{removal:?}");
    assert!(waits("ftp_account").is_empty(), "{removal:?}");
    assert_eq!(waits("webspace"), ["ftp_account", "vhost"]);
    assert_eq!(waits("dns_zone"), ["vhost"]);
}

#[tokio::test]
async fn independent_steps_run_concurrently_in_either_order_of_completion() {
    for backend in BACKENDS {
        // First the zone is slow (the web space finishes first), then the other way round.
        for slow in ["dns_zone", "webspace"] {
            let fast = if slow == "dns_zone" {
                "webspace"
            } else {
                "dns_zone"
            };
            // The fast one takes a little time too, so that the journal shows
            // the overlap whichever start is written first.
            let (_dir, script, engine) = fixture(
                backend,
                vec![
                    rule(slow, Behavior::Hang { ms: 400 }, Some(1)),
                    rule(fast, Behavior::Hang { ms: 100 }, Some(1)),
                ],
            )
            .await;
            let job = accepted(&engine, &sign(&keys(), &www_contract("C-7101", 1))).await;
            let workers = start_workers(&engine, "w", 1);
            assert_eq!(
                wait_final(&engine, &job, 20).await,
                JobState::Succeeded,
                "{backend:?} slow {slow}"
            );
            let d = engine.store.job(&job).await.unwrap().unwrap();
            assert!(d.steps.iter().all(|s| s.state == StepState::Succeeded));
            assert!(
                d.steps.iter().all(|s| s.attempts == 1),
                "{backend:?}: {:?}",
                d.steps
            );
            let (slow_start, slow_end) = windows(&d, slow)[0];
            let (fast_start, fast_end) = windows(&d, fast)[0];
            let (slow_end, fast_end) = (slow_end.unwrap(), fast_end.unwrap());
            // Both ran at once: the fast one started before the slow one ended.
            assert!(
                fast_start < slow_end && slow_start < fast_end,
                "{backend:?}: {slow} and {fast} did not overlap: {:?}",
                d.attempts
            );
            // The vhost waits for both.
            for (start, _) in windows(&d, "vhost") {
                assert!(start >= slow_end && start >= fast_end, "{backend:?}");
            }
            let ws_end = windows(&d, "webspace")[0].1.unwrap();
            for (start, _) in windows(&d, "ftp_account") {
                assert!(
                    start >= ws_end,
                    "{backend:?}: an FTP account before its web space"
                );
                if slow == "dns_zone" {
                    // The FTP accounts need only the web space: they ran beside the slow zone.
                    assert!(
                        start < slow_end,
                        "{backend:?}: the FTP accounts waited for the zone"
                    );
                }
            }
            for (res, n) in script.creations() {
                assert_eq!(n, 1, "{backend:?}: {res:?} created {n} times");
            }
            workers.stop(Duration::from_secs(2)).await;
        }
    }
}

#[tokio::test]
async fn a_failure_lets_the_running_steps_finish_and_starts_nothing_new() {
    for backend in BACKENDS {
        let (_dir, script, engine) = fixture(
            backend,
            vec![
                rule("webspace", Behavior::Hang { ms: 400 }, Some(1)),
                rule("dns_zone", Behavior::Permanent, Some(1)),
            ],
        )
        .await;
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-7201", 1))).await;
        let workers = start_workers(&engine, "w", 1);
        assert_eq!(
            wait_final(&engine, &job, 20).await,
            JobState::Failed,
            "{backend:?}"
        );
        let d = engine.store.job(&job).await.unwrap().unwrap();
        assert_eq!(step_of(&d, "dns_zone").state, StepState::Failed);
        // The web space was running when the zone failed: it finished, journaled.
        let ws = step_of(&d, "webspace");
        assert_eq!(ws.state, StepState::Succeeded, "{backend:?}");
        assert!(windows(&d, "webspace").iter().all(|(_, end)| end.is_some()));
        // Nothing new started after the failure, although the FTP accounts were ready.
        for kind in ["vhost", "ftp_account"] {
            assert!(
                !script.calls().iter().any(|c| c.kind == kind),
                "{backend:?}: {kind} ran after the failure"
            );
            assert!(
                d.steps
                    .iter()
                    .filter(|s| s.step.resource.kind == kind)
                    .all(|s| s.state == StepState::Pending)
            );
        }
        let error = d.summary.error.clone().unwrap_or_default();
        assert!(error.contains("dns_zone"), "{backend:?}: {error}");

        // A rerun resumes with only the unfinished steps.
        engine.store.rerun(&job, "ops@test").await.unwrap();
        engine.wake_workers();
        assert_eq!(wait_final(&engine, &job, 20).await, JobState::Succeeded);
        let ws_calls = script
            .calls()
            .iter()
            .filter(|c| c.kind == "webspace" && c.op == "ensure")
            .count();
        assert_eq!(ws_calls, 1, "{backend:?}: the web space was redone");
        workers.stop(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn when_two_concurrent_steps_fail_the_first_in_plan_order_is_the_jobs() {
    for backend in BACKENDS {
        // The web space fails at once; the zone, earlier in the plan, fails
        // a second later (its call times out, with a budget of one attempt).
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let script = Script::new();
        script.push(rule("webspace", Behavior::Permanent, Some(1)));
        script.push(rule("dns_zone", Behavior::Hang { ms: 5_000 }, Some(1)));
        let mut settings = fast_settings();
        settings.retry.max_attempts = 1;
        settings.step_timeout_seconds = 1;
        let engine = engine(&url, &script, settings).await;
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-7301", 1))).await;
        let workers = start_workers(&engine, "w", 1);
        assert_eq!(
            wait_final(&engine, &job, 20).await,
            JobState::Failed,
            "{backend:?}"
        );
        let d = engine.store.job(&job).await.unwrap().unwrap();
        let zone = step_of(&d, "dns_zone");
        let ws = step_of(&d, "webspace");
        assert!(zone.index < ws.index, "the zone comes first in the plan");
        assert_eq!(zone.state, StepState::Failed, "{backend:?}");
        let ws_end = windows(&d, "webspace")[0].1.unwrap();
        let zone_end = windows(&d, "dns_zone")[0].1.unwrap();
        assert!(ws_end < zone_end, "{backend:?}: the web space failed first");
        // The job failed at the zone, the first failed step in plan order.
        let error = d.summary.error.clone().unwrap_or_default();
        assert!(error.contains("timed out"), "{backend:?}: {error}");
        workers.stop(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn a_lost_lease_stops_every_running_step() {
    for backend in BACKENDS {
        let (_dir, script, engine) = fixture(
            backend,
            vec![
                rule("webspace", Behavior::Hang { ms: 60_000 }, Some(1)),
                rule("dns_zone", Behavior::Hang { ms: 60_000 }, Some(1)),
            ],
        )
        .await;
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-7401", 1))).await;
        let workers = start_workers(&engine, "w", 1);
        wait_hanging(&script, &["webspace", "dns_zone"]).await;
        // Ops cancel the running job: the worker's lease is gone.
        engine.store.cancel(&job, "ops@test").await.unwrap();
        // The one worker walks away from both hung steps and takes the next job.
        let other = accepted(&engine, &sign(&keys(), &www_contract("C-7402", 1))).await;
        engine.wake_workers();
        assert_eq!(
            wait_final(&engine, &other, 15).await,
            JobState::Succeeded,
            "{backend:?}: the worker was still stuck in the cancelled job"
        );
        let d = engine.store.job(&job).await.unwrap().unwrap();
        assert_eq!(d.summary.state, JobState::Cancelled);
        let cancelled_calls: Vec<_> = script
            .calls()
            .into_iter()
            .filter(|c| c.job_id == job && c.op != "hang")
            .collect();
        assert!(
            cancelled_calls.is_empty(),
            "{backend:?}: the cancelled job went on: {cancelled_calls:?}"
        );
        workers.stop(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn shutdown_mid_flight_abandons_the_running_steps_then_a_new_worker_resumes() {
    for backend in BACKENDS {
        let (_dir, script, engine) = fixture(
            backend,
            vec![
                rule("webspace", Behavior::Hang { ms: 60_000 }, Some(1)),
                rule("dns_zone", Behavior::Hang { ms: 60_000 }, Some(1)),
            ],
        )
        .await;
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-7501", 1))).await;
        let w = start_workers(&engine, "a", 1);
        wait_hanging(&script, &["webspace", "dns_zone"]).await;
        // The grace period runs out with both steps hung.
        w.stop(Duration::from_millis(300)).await;
        let d = engine.store.job(&job).await.unwrap().unwrap();
        assert_eq!(d.summary.state, JobState::Queued, "{backend:?}: released");
        assert!(
            d.steps.iter().all(|s| s.state == StepState::Pending),
            "{backend:?}: {:?}",
            d.steps
        );
        let abandoned = d
            .attempts
            .iter()
            .filter(|a| {
                matches!(
                    a.outcome,
                    Some(hostwright::engine::store::AttemptOutcome::Abandoned { .. })
                )
            })
            .count();
        assert_eq!(
            abandoned, 2,
            "{backend:?}: both hung attempts journaled as abandoned"
        );
        assert!(d.attempts.iter().all(|a| a.finished_at.is_some()));

        // A new worker resumes the half-done plan at once and finishes it.
        let w2 = start_workers(&engine, "b", 1);
        assert_eq!(wait_final(&engine, &job, 10).await, JobState::Succeeded);
        for (res, n) in script.creations() {
            assert_eq!(n, 1, "{backend:?}: {res:?} created {n} times");
        }
        w2.stop(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn a_plan_stored_without_dependencies_runs_sequentially() {
    for backend in BACKENDS {
        let (_dir, script, engine) = fixture(
            backend,
            vec![
                rule("dns_zone", Behavior::Hang { ms: 150 }, Some(1)),
                rule("webspace", Behavior::Hang { ms: 150 }, Some(1)),
            ],
        )
        .await;
        let c = www_contract("C-7601", 1);
        let job = accepted(&engine, &sign(&keys(), &c)).await;
        // Store the plan as a version before dependencies would have: the
        // JSON of each step without `after`.
        let plan: Vec<hostwright::engine::store::PlannedStep> = engine
            .plan_contract(
                &hostwright::contract::Contract::from_json(&serde_json::to_vec(&c).unwrap())
                    .unwrap(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|s| {
                let mut json = serde_json::to_value(&s).unwrap();
                json.as_object_mut().unwrap().remove("after");
                serde_json::from_value(json).unwrap()
            })
            .collect();
        assert!(plan.iter().all(|s| s.after.is_none()));
        let claimed = engine
            .store
            .claim("old", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.job_id, job);
        engine
            .store
            .set_plan(&job, "old", &plan, &[], &[])
            .await
            .unwrap();
        engine.store.release_job(&job, "old").await.unwrap();

        let workers = start_workers(&engine, "w", 1);
        assert_eq!(wait_final(&engine, &job, 20).await, JobState::Succeeded);
        let d = engine.store.job(&job).await.unwrap().unwrap();
        assert!(d.steps.iter().all(|s| s.step.after.is_none()));
        // One step after the other, in plan order.
        let mut by_step: Vec<_> = d.attempts.iter().collect();
        by_step.sort_by_key(|a| a.step_index);
        assert_eq!(
            by_step.len(),
            d.steps.len(),
            "{backend:?}: one attempt each"
        );
        // The next attempt's start is journaled in the statement that ends
        // the previous one; PostgreSQL reads its clock per expression there,
        // so allow a few ms. Concurrent steps would overlap by the 150 ms hang.
        let slack = chrono::Duration::milliseconds(5);
        for pair in by_step.windows(2) {
            assert!(
                pair[1].started_at + slack >= pair[0].finished_at.unwrap(),
                "{backend:?}: step {} started before step {} ended",
                pair[1].step_index,
                pair[0].step_index
            );
        }
        drop(script);
        workers.stop(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn concurrent_intake_of_one_revision_queues_one_job() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let body = sign(&keys(), &www_contract("C-7701", 1));
        let posts: Vec<_> = (0..8)
            .map(|_| {
                let (engine, body) = (engine.clone(), body.clone());
                tokio::spawn(async move { engine.intake(&body, chrono::Utc::now()).await })
            })
            .collect();
        let mut created = Vec::new();
        let mut existing = Vec::new();
        for p in posts {
            match p.await.unwrap().unwrap() {
                IntakeResult::Accepted { job_id, .. } => created.push(job_id),
                IntakeResult::Existing { job_id, .. } => existing.push(job_id),
                other => panic!("{backend:?}: {other:?}"),
            }
        }
        assert_eq!(created.len(), 1, "{backend:?}: {created:?}");
        assert!(existing.iter().all(|j| *j == created[0]), "{backend:?}");
        let jobs = engine.store.list_jobs(&Default::default()).await.unwrap();
        assert_eq!(jobs.len(), 1, "{backend:?}");
        // The next revision goes through (the one-statement path on PostgreSQL).
        let next = accepted(&engine, &sign(&keys(), &www_contract("C-7701", 2))).await;
        assert_ne!(next, created[0]);
    }
}

#[tokio::test]
async fn ops_transitions_refuse_a_job_in_the_wrong_state_and_name_it() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-7901", 1))).await;
        // A queued job is not failed: it cannot be rerun.
        match engine.store.rerun(&job, "ops@test").await {
            Err(StoreError::InvalidTransition { state, action, .. }) => {
                assert_eq!(state, JobState::Queued, "{backend:?}");
                assert!(action.starts_with("rerun"), "{backend:?}: {action}");
            }
            other => panic!("{backend:?}: rerun of a queued job: {other:?}"),
        }
        let workers = start_workers(&engine, "w", 1);
        assert_eq!(wait_final(&engine, &job, 15).await, JobState::Succeeded);
        workers.stop(Duration::from_secs(2)).await;
        // A job that ended cannot be cancelled; nothing about it changed.
        match engine.store.cancel(&job, "ops@test").await {
            Err(StoreError::InvalidTransition { state, action, .. }) => {
                assert_eq!(state, JobState::Succeeded, "{backend:?}");
                assert_eq!(action, "cancelled", "{backend:?}");
            }
            other => panic!("{backend:?}: cancel of a finished job: {other:?}"),
        }
        let d = engine.store.job(&job).await.unwrap().unwrap();
        assert_eq!(d.summary.state, JobState::Succeeded, "{backend:?}");
        assert!(
            d.ops.is_empty(),
            "{backend:?}: refusals are not ops: {:?}",
            d.ops
        );
        assert!(
            matches!(
                engine.store.cancel("no-such-job", "ops@test").await,
                Err(StoreError::JobNotFound(_))
            ),
            "{backend:?}"
        );
    }
}

// --- the monthly close for billing ---------------------------------------------------------

/// The close reports in the outbox (key → body), in order.
async fn close_reports(engine: &hostwright::engine::Engine) -> Vec<(String, serde_json::Value)> {
    engine
        .store
        .outbox_due(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.idempotency_key.starts_with("close:"))
        .map(|o| (o.idempotency_key, serde_json::from_slice(&o.body).unwrap()))
        .collect()
}

#[tokio::test]
async fn the_monthly_close_reports_each_month_once_and_corrects_a_revised_contract() {
    use hostwright::calendar::YearMonth;
    use hostwright::engine::close::{close_month, export_lines, latest_versions};
    let jan = YearMonth::parse("2027-01").unwrap();
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let k = keys();
        accepted(&engine, &sign(&k, &www_contract("C-5001", 1))).await;
        accepted(&engine, &sign(&k, &www_contract("C-5002", 1))).await;
        let store = engine.store.as_ref();
        // January 2027: 10,000 + SSL 1,000 + FTP 1,000 + DNS 1,000 = 13,000,
        // tax 1,300: 14,300 each.
        let s = close_month(store, &engine.catalog, jan).await.unwrap();
        assert_eq!(
            (s.contracts, s.closed, s.corrected),
            (2, 2, 0),
            "{backend:?} {s:?}"
        );
        let reports = close_reports(&engine).await;
        assert_eq!(reports.len(), 2, "{backend:?}");
        let (key, body) = &reports[0];
        assert_eq!(key, "close:C-5001:2027-01:v1");
        assert_eq!(body["kind"], "monthly_statement");
        assert_eq!(body["version"], 1);
        assert!(body["replaces"].is_null());
        assert_eq!(body["statement"]["total"], "14300");
        assert_eq!(body["customer_id"], "CU-C-5001");
        // A rerun sends nothing.
        let s = close_month(store, &engine.catalog, jan).await.unwrap();
        assert_eq!(
            (s.closed, s.corrected, s.unchanged),
            (0, 0, 2),
            "{backend:?}"
        );
        assert_eq!(close_reports(&engine).await.len(), 2);
        // C-5001 revised after the close, by a revision requested in January:
        // a DNS forward change on 2027-01-25 (3,000): 16,000 + 1,600.
        let mut r2 = www_contract("C-5001", 2);
        r2["requested_on"] = "2027-01-20".into();
        r2["one_time"] = serde_json::json!([
            {"item": "dns_forward_change", "date": "2027-01-25", "domain": "c-5001.example.jp"}
        ]);
        accepted(&engine, &sign(&k, &r2)).await;
        let s = close_month(store, &engine.catalog, jan).await.unwrap();
        assert_eq!(
            (s.closed, s.corrected, s.unchanged),
            (0, 1, 1),
            "{backend:?}"
        );
        let reports = close_reports(&engine).await;
        assert_eq!(reports.len(), 3);
        let (key, body) = &reports[2];
        assert_eq!(key, "close:C-5001:2027-01:v2");
        assert_eq!(body["version"], 2);
        assert_eq!(body["based_on_revision"], 2);
        assert_eq!(
            body["replaces"],
            serde_json::json!({"version": 1, "idempotency_key": "close:C-5001:2027-01:v1", "total": "14300"})
        );
        assert_eq!(body["statement"]["total"], "17600");
        // ... once.
        let s = close_month(store, &engine.catalog, jan).await.unwrap();
        assert_eq!((s.closed, s.corrected), (0, 0), "{backend:?}");
        // A revision requested after January changes nothing in January.
        let mut r3 = www_contract("C-5002", 2);
        r3["requested_on"] = "2027-02-10".into();
        r3["options"][1]["quantity"] = 3.into();
        r3["options"][1]["effective"] = "2027-03-01".into();
        accepted(&engine, &sign(&k, &r3)).await;
        let s = close_month(store, &engine.catalog, jan).await.unwrap();
        assert_eq!(
            (s.closed, s.corrected, s.unchanged),
            (0, 0, 2),
            "{backend:?}"
        );
        // A month before any revision or service: nothing to bill, nothing sent.
        let s = close_month(store, &engine.catalog, YearMonth::parse("2026-10").unwrap())
            .await
            .unwrap();
        assert_eq!((s.closed, s.skipped), (0, 2), "{backend:?}");
        // The export: each contract's latest version, line by line, then tax;
        // the amounts add up to the totals.
        let latest = latest_versions(store.statements_of_month("2027-01").await.unwrap());
        assert_eq!(
            latest
                .iter()
                .map(|s| (s.contract_id.as_str(), s.version))
                .collect::<Vec<_>>(),
            [("C-5001", 2), ("C-5002", 1)]
        );
        let lines = export_lines(&latest).unwrap();
        let sum = |cid: &str| -> i64 {
            lines
                .iter()
                .filter(|l| l.contract_id == cid)
                .map(|l| l.amount.parse::<i64>().unwrap())
                .sum()
        };
        assert_eq!((sum("C-5001"), sum("C-5002")), (17600, 14300));
        assert!(lines.iter().all(|l| !l.article.is_empty()));
        assert!(
            lines
                .iter()
                .any(|l| l.row == "consumption_tax" && l.article == "第36条" && l.amount == "1600")
        );
    }
}

#[tokio::test]
async fn two_closes_at_once_send_each_statement_once() {
    use hostwright::calendar::YearMonth;
    use hostwright::engine::close::close_month;
    let jan = YearMonth::parse("2027-01").unwrap();
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let k = keys();
        for i in 0..8 {
            accepted(&engine, &sign(&k, &www_contract(&format!("C-60{i:02}"), 1))).await;
        }
        let (a, b) = tokio::join!(
            close_month(engine.store.as_ref(), &engine.catalog, jan),
            close_month(engine.store.as_ref(), &engine.catalog, jan)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.closed + b.closed, 8, "{backend:?} {a:?} {b:?}");
        let reports = close_reports(&engine).await;
        assert_eq!(reports.len(), 8, "{backend:?}");
        let keys: std::collections::BTreeSet<&String> = reports.iter().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), 8);
    }
}

#[tokio::test]
async fn billing_close_and_export_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let engine = engine(&url, &Script::new(), fast_settings()).await;
    accepted(&engine, &sign(&keys(), &www_contract("C-7001", 1))).await;
    drop(engine);
    let cfg = dir.path().join("hostwright.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"{url}\"\n[intake]\ntrusted_keys = \"keys.toml\"\n[provisioning]\nweb_ipv4 = \"192.0.2.10\"\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_hostwright"))
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["billing", "close", "--month", "2027-01"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("close 2027-01: 1 contract(s): 1 closed, 0 corrected, 0 unchanged"),
        "{out}"
    );
    let (_, out, _) = run(&["billing", "close", "--month", "2027-01"]);
    assert!(out.contains("0 closed, 0 corrected, 1 unchanged"), "{out}");
    let (code, csv, err) = run(&["billing", "export", "--month", "2027-01", "--format", "csv"]);
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "month,contract_id,customer_id,version,replaces,based_on_revision,row,article,description,quantity,unit_price,amount"
    );
    // 10,000 + 1,000 + 1,000 + 1,000 and the tax: five lines.
    assert_eq!(rows.len(), 1 + 5, "{csv}");
    assert!(
        rows[1].starts_with(
            "2027-01,C-7001,CU-C-7001,1,,1,service:www,\"第30条, 第5条, 別表①, 別表②1\","
        ),
        "{csv}"
    );
    assert!(
        rows[5].ends_with(",consumption_tax,第36条,消費税 10.00%,1,1300,1300"),
        "{csv}"
    );
    let (_, json, _) = run(&[
        "billing", "export", "--month", "2027-01", "--format", "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 5);
    assert_eq!(v[0]["article"], "第30条, 第5条, 別表①, 別表②1");
    // A bad month: exit 2.
    let (code, _, _) = run(&["billing", "close", "--month", "2027-1"]);
    assert_eq!(code, Some(2));
}

#[tokio::test]
async fn serve_closes_the_previous_month_on_its_schedule() {
    use hostwright::engine::close::month_to_close;
    use hostwright::engine::config::CloseConfig;
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        // A contract that started the month before the month to close, so
        // that month bills its monthly fees whenever this test runs.
        let last = month_to_close(chrono::Utc::now());
        let start = last.prev().first_day();
        let mut c = www_contract("C-8001", 1);
        c["service_start"] = start.to_string().into();
        c["requested_on"] = (start - chrono::Days::new(10)).to_string().into();
        for o in c["options"].as_array_mut().unwrap() {
            o["effective"] = start.to_string().into();
        }
        accepted(&engine, &sign(&keys(), &c)).await;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let cfg = CloseConfig {
            enabled: true,
            interval_minutes: 60,
            recheck_months: 1,
        };
        let task = tokio::spawn(hostwright::engine::server::run_close_schedule(
            engine.clone(),
            cfg,
            rx,
        ));
        let want = format!("close:C-8001:{last}:v1");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let keys: Vec<String> = close_reports(&engine)
                .await
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            if keys.contains(&want) {
                // The month before it (the start month) was closed too:
                // 加入料 and the SSL fees.
                assert!(
                    keys.contains(&format!("close:C-8001:{}:v1", last.prev())),
                    "{keys:?}"
                );
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend:?}: no close report: {keys:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = tx.send(true);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// 別表②2: a service type change plans the side it adds or drops (#15).
#[tokio::test]
async fn a_service_type_change_adds_or_removes_the_mail_side() {
    for backend in BACKENDS {
        let (_dir, script, engine) = fixture(backend, vec![]).await;
        let k = keys();
        let mail = serde_json::json!({
            "target_domains": ["tc1.example.jp"],
            "target_ips": ["203.0.113.25"],
            "administrator": {"name": "Admin", "email": "admin@tc1.example.jp"},
            "mailboxes": ["info", "sales"],
        });
        // WWW → パック: the mail side comes.
        let mut www = www_contract("C-TC1", 1);
        www["domains"][0]["name"] = "tc1.example.jp".into();
        let j1 = accepted(&engine, &sign(&k, &www)).await;
        let workers = start_workers(&engine, "w", 2);
        assert_eq!(wait_final(&engine, &j1, 20).await, JobState::Succeeded);
        let mut pack = www.clone();
        pack["revision"] = 2.into();
        pack["requested_on"] = "2026-11-20".into();
        pack["service"] = "pack_secure_mx".into();
        pack["service_change"] = serde_json::json!({"from": "www", "effective": "2026-12-15"});
        pack["secure_mx"] = mail.clone();
        let j2 = match engine
            .intake(&sign(&k, &pack), chrono::Utc::now())
            .await
            .unwrap()
        {
            IntakeResult::Accepted { job_id, .. } => job_id,
            other => panic!("{backend:?}: {other:?}"),
        };
        assert_eq!(wait_final(&engine, &j2, 20).await, JobState::Succeeded);
        let steps: Vec<(String, String)> = engine
            .store
            .job(&j2)
            .await
            .unwrap()
            .unwrap()
            .steps
            .iter()
            .map(|s| {
                (
                    s.step.action.as_str().to_string(),
                    s.step.resource.kind.clone(),
                )
            })
            .collect();
        for want in [
            ("create", "mx_tenant"),
            ("create", "mx_mailboxes"),
            ("update", "dns_zone"),
        ] {
            assert!(
                steps.contains(&(want.0.to_string(), want.1.to_string())),
                "{backend:?}: {want:?} not in {steps:?}"
            );
        }
        assert!(
            !steps.iter().any(|(a, _)| a == "delete"),
            "{backend:?}: the web side stays: {steps:?}"
        );

        // パック → WWW: the mail side goes, the web side stays.
        let mut back = pack.clone();
        back["revision"] = 3.into();
        back["requested_on"] = "2026-12-20".into();
        back["service"] = "www".into();
        back["service_change"] =
            serde_json::json!({"from": "pack_secure_mx", "effective": "2027-03-01"});
        back.as_object_mut().unwrap().remove("secure_mx");
        let j3 = match engine
            .intake(&sign(&k, &back), chrono::Utc::now())
            .await
            .unwrap()
        {
            IntakeResult::Accepted { job_id, .. } => job_id,
            other => panic!("{backend:?}: {other:?}"),
        };
        assert_eq!(wait_final(&engine, &j3, 20).await, JobState::Succeeded);
        let steps: Vec<(String, String)> = engine
            .store
            .job(&j3)
            .await
            .unwrap()
            .unwrap()
            .steps
            .iter()
            .map(|s| {
                (
                    s.step.action.as_str().to_string(),
                    s.step.resource.kind.clone(),
                )
            })
            .collect();
        for want in [
            ("delete", "mx_mailboxes"),
            ("delete", "mx_tenant"),
            ("update", "dns_zone"),
        ] {
            assert!(
                steps.contains(&(want.0.to_string(), want.1.to_string())),
                "{backend:?}: {want:?} not in {steps:?}"
            );
        }
        let removed: Vec<_> = script
            .calls()
            .into_iter()
            .filter(|c| c.job_id == j3 && c.op == "remove")
            .map(|c| c.kind)
            .collect();
        assert!(
            removed.iter().all(|k| k.starts_with("mx_")),
            "{backend:?}: only the mail side is removed: {removed:?}"
        );
        workers.stop(Duration::from_secs(2)).await;
    }
}
