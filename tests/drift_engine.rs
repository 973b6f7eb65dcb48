//! Drift and repair in the engine, with scripted stand-in adapters, on both
//! store back ends: a resource deleted or changed behind the engine's back
//! is found (exactly it), a repair job is queued once (audited with who
//! asked), journaled and run through the adapter's `ensure`, can be rerun
//! after a failure, and a second scan finds nothing. The same against the
//! real backends: tests/drift.rs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hostwright::engine::Engine;
use hostwright::engine::drift::DriftState;
use hostwright::engine::scripted::{Behavior, Rule};
use hostwright::engine::store::JobState;
use hostwright::engine::store::ops::AuditFilter;
use hostwright::engine::store::repairs::RepairState;

/// `behavior` for the next `ensure` of `kind` (scans only observe).
fn on_ensure(kind: &str, behavior: Behavior) -> Rule {
    Rule {
        op: Some("ensure".into()),
        ..rule(kind, behavior, Some(1))
    }
}

async fn provision(engine: &Arc<Engine>, id: &str) {
    let job = accepted(engine, &sign(&keys(), &www_contract(id, 1))).await;
    let workers = start_workers(engine, "w", 2);
    assert_eq!(wait_final(engine, &job, 20).await, JobState::Succeeded);
    workers.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn drift_is_found_repaired_once_and_gone_on_both_back_ends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let script = hostwright::engine::scripted::Script::new();
        let engine = engine(&url, &script, fast_settings()).await;
        provision(&engine, "C-DE1").await;
        provision(&engine, "C-DE2").await;

        let clean = engine.drift(&[]).await.unwrap();
        assert!(clean.is_clean(), "{backend:?}: {clean:#?}");
        assert!(clean.resources > 4);
        assert_eq!(clean.contracts, 2);
        // Scripted stand-ins cannot list what they hold: said, not "none".
        assert_eq!(clean.unlisted, ["dns", "ftp", "securemx", "webhost"]);

        // One resource deleted, one changed (its quota), behind our back.
        let (vhost, ws) = {
            let all = script.resources();
            let vhost = all
                .keys()
                .find(|(k, _)| k == "vhost")
                .cloned()
                .expect("a vhost");
            let ws = all
                .iter()
                .find(|((k, key), _)| k == "webspace" && key == "c-de2")
                .map(|(k, v)| (k.clone(), v.clone()))
                .expect("c-de2's web space");
            (vhost, ws)
        };
        script.tamper(&vhost.0, &vhost.1, None);
        let mut changed = ws.1.clone();
        changed["quota_mb"] = 1.into();
        script.tamper(&ws.0.0, &ws.0.1, Some(changed));

        let report = engine.drift(&[]).await.unwrap();
        let found: Vec<(String, String, DriftState)> = report
            .findings
            .iter()
            .map(|f| (f.kind.clone(), f.key.clone(), f.state))
            .collect();
        assert_eq!(
            found,
            vec![
                (vhost.0.clone(), vhost.1.clone(), DriftState::Missing),
                ("webspace".into(), "c-de2".into(), DriftState::Changed),
            ],
            "{backend:?}"
        );
        let quota = &report.findings[1].differences;
        assert_eq!(quota.len(), 1);
        assert_eq!(quota[0].field, "quota_mb");
        assert_eq!(quota[0].have, serde_json::json!(1));
        // Only the named contract: its finding alone, no orphan search.
        let one = engine.drift(&["C-DE2".to_string()]).await.unwrap();
        assert_eq!(one.findings.len(), 1);
        assert!(!one.full);

        // The first ensure of the repair fails (transient): the attempt is
        // journaled and retried by the retry policy.
        script.push(on_ensure("webspace", Behavior::Transient));
        let (queued, already) = engine
            .queue_repairs(&report.findings, "token:tanaka")
            .await
            .unwrap();
        assert_eq!((queued.len(), already.len()), (2, 0));
        let (again, already) = engine
            .queue_repairs(&report.findings, "token:tanaka")
            .await
            .unwrap();
        assert_eq!((again.len(), already.len()), (0, 2), "never queued twice");
        let (ran, deferred) = engine.run_repairs("test").await.unwrap();
        assert!(deferred.is_empty());
        assert_eq!(ran.len(), 2);
        for r in &ran {
            assert_eq!(r.state, RepairState::Succeeded, "{r:#?}");
            assert_eq!(r.requested_by, "token:tanaka");
        }
        let ws_repair = ran.iter().find(|r| r.kind == "webspace").unwrap();
        assert_eq!(ws_repair.attempts, 2, "{ws_repair:#?}");
        assert!(engine.drift(&[]).await.unwrap().is_clean(), "{backend:?}");
        assert_eq!(script.resources()[&ws.0], ws.1);

        // A failed repair stays failed until rerun.
        script.tamper(&vhost.0, &vhost.1, None);
        script.push(on_ensure("vhost", Behavior::Permanent));
        let report = engine.drift(&[]).await.unwrap();
        let (queued, _) = engine
            .queue_repairs(&report.findings, "token:tanaka")
            .await
            .unwrap();
        let (ran, _) = engine.run_repairs("test").await.unwrap();
        assert_eq!(ran[0].state, RepairState::Failed);
        assert!(ran[0].last_error.is_some());
        assert!(engine.store.rerun_repair(&queued[0]).await.unwrap());
        let (ran, _) = engine.run_repairs("test").await.unwrap();
        assert_eq!(ran[0].state, RepairState::Succeeded);
        assert!(engine.drift(&[]).await.unwrap().is_clean());

        // serve's scheduled scan: metrics by kind and state, the report
        // kept for GET /v1/drift, and, when configured, repairs (actor
        // `reconcile`).
        script.tamper(&vhost.0, &vhost.1, None);
        let seen = engine.reconcile(false).await.unwrap();
        assert_eq!(seen.findings.len(), 1);
        let text = engine.metrics.render(&engine.store.stats().await.unwrap());
        assert!(
            text.contains(r#"hostwright_drift_resources{kind="vhost",state="missing"} 1"#),
            "{text}"
        );
        assert!(text.contains("hostwright_drift_last_scan_timestamp_seconds"));
        assert!(text.contains("hostwright_drift_scan_duration_seconds"));
        assert_eq!(engine.last_drift().await.unwrap(), seen);
        let fixed = engine.reconcile(true).await.unwrap();
        assert_eq!(
            fixed.findings.len(),
            1,
            "the scan that repairs reports what it found"
        );
        assert!(engine.reconcile(false).await.unwrap().is_clean());
        let text = engine.metrics.render(&engine.store.stats().await.unwrap());
        assert!(
            text.contains(r#"hostwright_drift_resources{kind="vhost",state="missing"} 0"#),
            "{text}"
        );
        let by_reconcile = engine
            .store
            .repairs(Some(RepairState::Succeeded), None, 100)
            .await
            .unwrap();
        assert_eq!(
            by_reconcile
                .iter()
                .filter(|r| r.requested_by == "reconcile")
                .count(),
            1
        );

        let audit = engine
            .store
            .audit(&AuditFilter {
                actor: Some("token:tanaka".into()),
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            audit
                .iter()
                .filter(|a| a.action == "drift repair" && a.outcome == "ok")
                .count(),
            3,
            "{audit:#?}"
        );
    }
}

/// A scan while a job runs: the contract is listed as pending, not
/// compared (its half-made resources are no drift, and what it is making
/// is no orphan), and the job ends as it would have.
#[tokio::test]
async fn a_scan_while_a_job_runs_leaves_the_job_alone() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let script = hostwright::engine::scripted::Script::new();
        let engine = engine(&url, &script, fast_settings()).await;
        script.push(on_ensure("vhost", Behavior::Hang { ms: 1500 }));
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-DE3", 1))).await;
        let workers = start_workers(&engine, "w", 2);
        // Until the web space exists and the vhost hangs.
        for _ in 0..100 {
            if script.resources().keys().any(|(k, _)| k == "webspace") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let report = engine.drift(&[]).await.unwrap();
        assert!(report.findings.is_empty(), "{report:#?}");
        assert_eq!(report.pending.len(), 1, "{report:#?}");
        assert_eq!(report.pending[0].contract_id, "C-DE3");
        assert_eq!(report.pending[0].job_id, job);
        assert_eq!(report.contracts, 0);
        assert_eq!(wait_final(&engine, &job, 20).await, JobState::Succeeded);
        workers.stop(Duration::from_secs(2)).await;
        assert!(engine.drift(&[]).await.unwrap().is_clean());
        assert_eq!(
            script.creations().values().copied().max(),
            Some(1),
            "nothing made twice"
        );
    }
}

/// `POST /v1/drift/repair` over real HTTP: operate scope only, a scan now,
/// a repair queued per finding (audited with the token's name as who
/// asked), run in the background until the backends match; named contracts
/// limit it to theirs; an unknown contract or a bad body is refused.
#[tokio::test]
async fn repairs_are_queued_through_the_api_on_both_back_ends() {
    use hostwright::engine::auth::{self, Authenticator, FailureLimit, Scope};
    use std::num::NonZeroU32;
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let script = hostwright::engine::scripted::Script::new();
        let engine = engine(&url, &script, fast_settings()).await;
        provision(&engine, "C-DA1").await;
        provision(&engine, "C-DA2").await;
        let (_, reader) = auth::create_token(&*engine.store, "reader", &[Scope::Read], None, "t")
            .await
            .unwrap();
        let (_, operator) = auth::create_token(
            &*engine.store,
            "tanaka",
            &[Scope::Read, Scope::Operate],
            None,
            "t",
        )
        .await
        .unwrap();
        let authn = Authenticator::new(
            None,
            None,
            FailureLimit {
                per_minute: NonZeroU32::new(60).unwrap(),
                burst: NonZeroU32::new(60).unwrap(),
            },
        );
        let app = hostwright::engine::api::router(engine.clone(), authn);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(hostwright_tls::server::serve(
            listener,
            app,
            None,
            std::future::pending(),
        ));
        let http = hostwright_tls::client();
        let post = |token: &str, body: &'static str| {
            http.post(format!("{base}/v1/drift/repair"))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
        };

        // Both contracts lose their vhost behind the engine's back.
        let vhosts: Vec<(String, String)> = script
            .resources()
            .keys()
            .filter(|(k, _)| k == "vhost")
            .cloned()
            .collect();
        assert_eq!(vhosts.len(), 2);
        for (k, key) in &vhosts {
            script.tamper(k, key, None);
        }

        assert_eq!(post(&reader, "").await.unwrap().status(), 403);
        let bad = post(&operator, "{\"contract\": \"C-DA1\"}").await.unwrap();
        assert_eq!(bad.status(), 400);
        let unknown = post(&operator, "{\"contracts\": [\"C-NOPE\"]}")
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404);
        let p: serde_json::Value = unknown.json().await.unwrap();
        assert!(
            p["type"].as_str().unwrap().ends_with("contract-not-found"),
            "{p}"
        );

        // One contract named: its repair alone.
        let resp = post(&operator, "{\"contracts\": [\"C-DA1\"]}")
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{backend:?}");
        let q: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(q["findings"], 1, "{q:#}");
        let queued = q["queued"].as_array().unwrap();
        assert_eq!(queued.len(), 1, "{q:#}");
        assert_eq!(queued[0]["contract_id"], "C-DA1");
        assert_eq!(queued[0]["kind"], "vhost");
        let first = queued[0]["id"].as_str().unwrap().to_string();
        assert!(first.starts_with("rep-"), "{first}");

        // It runs in the background.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while engine.store.repair(&first).await.unwrap().unwrap().state != RepairState::Succeeded {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend:?}: {first} did not run"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // No body: every contract. The repairs run until the backends match.
        let resp = post(&operator, "").await.unwrap();
        assert_eq!(resp.status(), 202);
        let all: serde_json::Value = resp.json().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let report = engine.drift(&[]).await.unwrap();
            if report.is_clean() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend:?}: repairs did not bring the backends back: {report:#?} after {all:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let repairs = engine
            .store
            .repairs(Some(RepairState::Succeeded), None, 100)
            .await
            .unwrap();
        assert_eq!(repairs.len(), 2, "{backend:?}: {repairs:#?}");
        assert!(repairs.iter().all(|r| r.requested_by == "token:tanaka"));
        assert!(repairs.iter().any(|r| r.id == first));
        let audit = engine
            .store
            .audit(&AuditFilter {
                actor: Some("token:tanaka".into()),
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            audit
                .iter()
                .filter(|a| a.action == "drift repair" && a.outcome == "ok")
                .count(),
            2,
            "{audit:#?}"
        );
        assert!(
            audit.iter().any(|a| a.action == "POST /v1/drift/repair"),
            "{audit:#?}"
        );
        // Nothing left: a repair request now queues nothing.
        let resp = post(&operator, "{}").await.unwrap();
        let none: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(none["findings"], 0);
        assert_eq!(none["queued"], serde_json::json!([]));
    }
}
