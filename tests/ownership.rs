//! Issue #11: no contract can touch another's resources, the rules hold under
//! concurrent submissions, and secrets do not outlive their hand-out. On both
//! job stores, with the scripted stand-in adapters.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hostwright::engine::Engine;
use hostwright::engine::intake::IntakeResult;
use hostwright::engine::store::{JobState, StoreError};

fn with_domain(id: &str, customer: &str, domain: &str) -> serde_json::Value {
    let mut c = www_contract(id, 1);
    c["customer"]["id"] = customer.into();
    c["domains"][0]["name"] = domain.into();
    c
}

fn rules_of(result: &IntakeResult) -> Vec<&'static str> {
    match result {
        IntakeResult::Rejected { findings, .. } => findings.iter().map(|f| f.rule).collect(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn submit(engine: &Engine, contract: &serde_json::Value) -> IntakeResult {
    engine
        .intake(&sign(&keys(), contract), chrono::Utc::now())
        .await
        .unwrap()
}

/// Runs the workers until `job` ends; returns its state.
async fn run(engine: &Arc<Engine>, job: &str) -> JobState {
    let workers = start_workers(engine, "w", 2);
    let state = wait_final(engine, job, 20).await;
    workers.stop(Duration::from_secs(2)).await;
    state
}

#[tokio::test]
async fn a_domain_another_customer_holds_is_refused_at_intake_and_named_not_its_holder() {
    for backend in BACKENDS {
        let (_dir, script, engine) = fixture(backend, vec![]).await;
        accepted(
            &engine,
            &sign(&keys(), &with_domain("C-A1", "CU-A", "shared.example.jp")),
        )
        .await;
        for (id, domain) in [
            ("C-B1", "shared.example.jp"),
            // Below it: a zone for www.shared.example.jp on our name
            // servers would answer for the holder's www.
            ("C-B2", "www.shared.example.jp"),
            ("C-B3", "shop.shared.example.jp"),
            // Above it.
            ("C-B4", "example.jp"),
        ] {
            let res = submit(&engine, &with_domain(id, "CU-B", domain)).await;
            let rules = rules_of(&res);
            assert!(
                rules.contains(&"domain-taken"),
                "{backend:?} {domain}: {res:?}"
            );
            let IntakeResult::Rejected { findings, .. } = &res else {
                unreachable!()
            };
            for f in findings {
                assert!(
                    !f.message.contains("C-A1") && !f.message.contains("CU-A"),
                    "a refusal never names the holder: {f:?}"
                );
            }
        }
        // A sibling is no one's business but its own.
        let sibling = submit(&engine, &with_domain("C-B5", "CU-B", "other.example.jp")).await;
        assert!(
            matches!(sibling, IntakeResult::Accepted { .. }),
            "{backend:?}: {sibling:?}"
        );
        let rejections = engine.store.rejections(100).await.unwrap();
        assert_eq!(
            rejections.iter().filter(|r| r.kind == "rules").count(),
            4,
            "{backend:?}: every refusal is recorded"
        );
        assert!(script.calls().is_empty(), "nothing ran");
    }
}

#[tokio::test]
async fn one_contract_of_the_holder_keeps_every_backend_name_to_itself() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        accepted(
            &engine,
            &sign(&keys(), &with_domain("C-A1", "CU-A", "a.example.jp")),
        )
        .await;
        // The same customer's second contract for the same domain would
        // need the same virtual host and zone: each has one owner.
        let res = submit(&engine, &with_domain("C-A2", "CU-A", "a.example.jp")).await;
        let rules = rules_of(&res);
        assert!(rules.contains(&"resource-taken"), "{backend:?}: {res:?}");
        assert!(!rules.contains(&"domain-taken"), "{backend:?}: {res:?}");
        // A sub-domain of its own domain in another contract: its own
        // vhost and zone, the customer holds the domain anyway.
        let mut sub = with_domain("C-A3", "CU-A", "shop.a.example.jp");
        sub["service"] = "pack_secure_mx".into();
        sub["secure_mx"] = serde_json::json!({
            "target_domains": ["shop.a.example.jp"],
            "target_ips": ["192.0.2.1"],
            "administrator": {"name": "Admin", "email": "admin@shop.a.example.jp"},
        });
        let res = submit(&engine, &sub).await;
        assert!(
            !matches!(&res, IntakeResult::Rejected { findings, .. }
                if findings.iter().any(|f| f.rule == "domain-taken" || f.rule == "resource-taken")),
            "{backend:?}: {res:?}"
        );
    }
}

#[tokio::test]
async fn derived_ftp_logins_of_two_contracts_never_collide() {
    for backend in BACKENDS {
        let (_dir, script, engine) = fixture(backend, vec![]).await;
        // C-COL's second FTP login was once `c-col-2`: C-COL-2's first.
        let col = with_domain("C-COL", "CU-1", "col.example.jp");
        let col2 = with_domain("C-COL-2", "CU-2", "col2.example.jp");
        let j1 = accepted(&engine, &sign(&keys(), &col)).await;
        let j2 = accepted(&engine, &sign(&keys(), &col2)).await;
        assert_eq!(run(&engine, &j1).await, JobState::Succeeded);
        assert_eq!(run(&engine, &j2).await, JobState::Succeeded);
        let mut logins: Vec<(String, String)> = script
            .calls()
            .iter()
            .filter(|c| c.kind == "ftp_account")
            .map(|c| (c.key.clone(), c.job_id.clone()))
            .collect();
        logins.sort();
        let names: Vec<&str> = logins.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"c-col_2"), "{names:?}");
        assert!(names.contains(&"c-col-2"), "{names:?}");
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{backend:?}: {logins:?}");
    }
}

#[tokio::test]
async fn a_derived_name_over_its_limit_is_refused_at_intake_naming_field_and_limit() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        // 32 characters: `{user}_2` would be 34, over the 32 of an FTP login.
        let id = "C-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123";
        assert_eq!(id.len(), 32);
        let res = submit(&engine, &with_domain(id, "CU-LONG", "long.example.jp")).await;
        let IntakeResult::Rejected { findings, .. } = &res else {
            panic!("{backend:?}: {res:?}");
        };
        let f = findings
            .iter()
            .find(|f| f.rule == "derived-name")
            .unwrap_or_else(|| panic!("{findings:?}"));
        assert_eq!(f.path, "/contract_id");
        assert!(f.message.contains("0,31"), "names the limit: {f:?}");
    }
}

#[tokio::test]
async fn a_terminated_contract_frees_its_domain_once_its_resources_are_gone() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let a = with_domain("C-A1", "CU-A", "moving.example.jp");
        let j1 = accepted(&engine, &sign(&keys(), &a)).await;
        assert_eq!(run(&engine, &j1).await, JobState::Succeeded);
        let mut end = a.clone();
        end["revision"] = 2.into();
        end["requested_on"] = "2026-11-20".into();
        end["status"] = serde_json::json!({
            "state": "terminated", "effective": "2026-12-31", "notified_on": "2026-11-20"
        });
        let j2 = accepted(&engine, &sign(&keys(), &end)).await;
        // Until the removal ran, the domain is still held.
        let early = submit(&engine, &with_domain("C-B1", "CU-B", "moving.example.jp")).await;
        assert!(rules_of(&early).contains(&"domain-taken"), "{backend:?}");
        assert_eq!(run(&engine, &j2).await, JobState::Succeeded);
        let mut later = with_domain("C-B1", "CU-B", "moving.example.jp");
        later["revision"] = 2.into();
        let res = submit(&engine, &later).await;
        assert!(
            matches!(res, IntakeResult::Accepted { .. }),
            "{backend:?}: {res:?}"
        );
    }
}

/// Moves the claims of `from`'s names to contract `to`, as a store written
/// before claims existed could have them (two contracts recorded one vhost;
/// the adoption gave it to the other).
async fn give_claims_away(url: &str, from: &str, to: &str) {
    let sql = "UPDATE claims SET contract_id = $2 WHERE contract_id = $1";
    if let Some(path) = url.strip_prefix("sqlite:") {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute(&sql.replace('$', "?"), [from, to]).unwrap();
    } else {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        sqlx::query(sql)
            .bind(from)
            .bind(to)
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_removal_never_touches_what_another_contract_owns_even_when_asked() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let script = hostwright::engine::scripted::Script::new();
        let engine = engine(&url, &script, fast_settings()).await;
        let a = with_domain("C-A1", "CU-A", "owned.example.jp");
        let j1 = accepted(&engine, &sign(&keys(), &a)).await;
        assert_eq!(run(&engine, &j1).await, JobState::Succeeded);
        give_claims_away(&url, "C-A1", "C-OTHER").await;
        let mut end = a.clone();
        end["revision"] = 2.into();
        end["requested_on"] = "2026-11-20".into();
        end["status"] = serde_json::json!({
            "state": "terminated", "effective": "2026-12-31", "notified_on": "2026-11-20"
        });
        let removals_before = script.calls().iter().filter(|c| c.op == "remove").count();
        let j2 = accepted(&engine, &sign(&keys(), &end)).await;
        assert_eq!(run(&engine, &j2).await, JobState::Failed, "{backend:?}");
        let detail = engine.store.job(&j2).await.unwrap().unwrap();
        let error = detail.summary.error.unwrap_or_default();
        assert!(
            error.contains("contract C-A1 does not own"),
            "{backend:?}: {error}"
        );
        assert_eq!(
            script.calls().iter().filter(|c| c.op == "remove").count(),
            removals_before,
            "{backend:?}: no removal reached an adapter"
        );
        // Asked directly, the store refuses the removal's start too, and
        // journals nothing.
        let claim = hostwright::engine::claims::Claim::new(
            hostwright::engine::claims::Space::Vhost,
            "owned.example.jp",
        );
        let store = &engine.store;
        store.rerun(&j2, "test").await.unwrap();
        let job = store
            .claim("probe", Duration::from_secs(30))
            .await
            .unwrap()
            .expect("the rerun job is claimable");
        assert_eq!(job.job_id, j2);
        let refused = store
            .set_plan(&job.job_id, "probe", &[], &[], std::slice::from_ref(&claim))
            .await;
        assert!(
            matches!(refused, Err(StoreError::NotOwner { .. })),
            "{backend:?}: {refused:?}"
        );
        store
            .set_plan(&job.job_id, "probe", &[], &[], &[])
            .await
            .unwrap();
        let refused = store
            .attempt_started(&job.job_id, "probe", 0, 1, &[claim])
            .await;
        assert!(
            matches!(refused, Err(StoreError::NotOwner { .. })),
            "{backend:?}: {refused:?}"
        );
        let detail = store.job(&j2).await.unwrap().unwrap();
        assert!(
            detail.attempts.iter().all(|a| a.worker != "probe"),
            "{backend:?}: nothing journaled"
        );
    }
}

/// Submissions at the same moment; the answers, in order.
async fn race_all(engine: &Arc<Engine>, contracts: &[serde_json::Value]) -> Vec<IntakeResult> {
    let barrier = Arc::new(tokio::sync::Barrier::new(contracts.len()));
    let tasks: Vec<_> = contracts
        .iter()
        .map(|c| {
            let (engine, barrier) = (engine.clone(), barrier.clone());
            let body = sign(&keys(), c);
            tokio::spawn(async move {
                barrier.wait().await;
                engine.intake(&body, chrono::Utc::now()).await.unwrap()
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Two submissions at the same moment.
async fn race(
    engine: &Arc<Engine>,
    a: &serde_json::Value,
    b: &serde_json::Value,
) -> (IntakeResult, IntakeResult) {
    let mut r = race_all(engine, &[a.clone(), b.clone()]).await;
    let b = r.pop().unwrap();
    (r.pop().unwrap(), b)
}

fn is_accepted(r: &IntakeResult) -> bool {
    matches!(r, IntakeResult::Accepted { .. })
}

const RACES: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_termination_and_a_later_revision_sent_together_never_both_pass() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let mut both = 0;
        for i in 0..RACES {
            let id = format!("C-RT{i}");
            let base = with_domain(&id, &format!("CU-RT{i}"), &format!("rt{i}.example.jp"));
            accepted(&engine, &sign(&keys(), &base)).await;
            let mut terminated = base.clone();
            terminated["revision"] = 2.into();
            terminated["requested_on"] = "2026-11-20".into();
            terminated["status"] = serde_json::json!({
                "state": "terminated", "effective": "2026-12-31", "notified_on": "2026-11-20"
            });
            // The termination and three later revisions, all at once.
            let mut sent = vec![terminated];
            for rev in 3..6u32 {
                let mut active = base.clone();
                active["revision"] = rev.into();
                active["requested_on"] = "2026-11-02".into();
                active["options"][1]["quantity"] = rev.into();
                sent.push(active);
            }
            let answers = race_all(&engine, &sent).await;
            if is_accepted(&answers[0]) && answers[1..].iter().any(is_accepted) {
                both += 1;
            }
            assert!(
                answers.iter().any(is_accepted),
                "{backend:?}: one of them passes: {answers:?}"
            );
        }
        assert_eq!(
            both, 0,
            "{backend:?}: a terminated revision and a later active one both accepted {both} of {RACES} times (第25条)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_contracts_of_one_service_type_sent_together_never_both_pass() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let mut both = 0;
        for i in 0..RACES {
            let customer = format!("CU-TW{i}");
            let a = with_domain(
                &format!("C-TWA{i}"),
                &customer,
                &format!("twa{i}.example.jp"),
            );
            let b = with_domain(
                &format!("C-TWB{i}"),
                &customer,
                &format!("twb{i}.example.jp"),
            );
            let (ra, rb) = race(&engine, &a, &b).await;
            if is_accepted(&ra) && is_accepted(&rb) {
                both += 1;
            }
            assert!(
                is_accepted(&ra) || is_accepted(&rb),
                "{backend:?}: one of them passes: {ra:?} {rb:?}"
            );
            let loser = if is_accepted(&ra) { &rb } else { &ra };
            assert!(
                rules_of(loser).contains(&"one-contract-per-service"),
                "{backend:?}: the loser is refused by the rule (第11条1項): {loser:?}"
            );
        }
        assert_eq!(
            both, 0,
            "{backend:?}: two `www` contracts of one customer both accepted {both} of {RACES} times (第11条1項)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_customers_racing_for_one_domain_leave_exactly_one_holder() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        for i in 0..RACES {
            let domain = format!("race{i}.example.jp");
            let a = with_domain(&format!("C-DA{i}"), &format!("CU-DA{i}"), &domain);
            let b = with_domain(&format!("C-DB{i}"), &format!("CU-DB{i}"), &domain);
            let (ra, rb) = race(&engine, &a, &b).await;
            assert!(
                is_accepted(&ra) != is_accepted(&rb),
                "{backend:?} {domain}: exactly one holder: {ra:?} {rb:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_conflict_answer_is_recorded_as_a_refusal() {
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let mut stale = 0;
        for i in 0..20 {
            // The same revision with two contents at once: one is recorded,
            // the other is a conflict, wherever it is found.
            let a = with_domain(
                &format!("C-CF{i}"),
                &format!("CU-CF{i}"),
                &format!("cf{i}.example.jp"),
            );
            let mut b = a.clone();
            b["options"][1]["quantity"] = 2.into();
            let (ra, rb) = race(&engine, &a, &b).await;
            stale += [ra, rb]
                .iter()
                .filter(|r| matches!(r, IntakeResult::Stale { .. }))
                .count();
        }
        let recorded = engine
            .store
            .rejections(1000)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.kind == "stale" || r.kind == "conflict")
            .count();
        assert!(stale >= 20, "{backend:?}: {stale}");
        assert_eq!(
            recorded, stale,
            "{backend:?}: every 409 is a recorded refusal"
        );
    }
}

#[tokio::test]
async fn a_store_from_before_ownership_gives_a_doubly_recorded_name_to_the_older_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let older = with_domain("C-OLD1", "CU-1", "dup.example.jp");
    let mut younger = with_domain("C-OLD2", "CU-2", "dup.example.jp");
    younger["requested_on"] = "2026-11-03".into();
    {
        // Release 0002's schema, where both contracts were accepted and
        // both recorded the same virtual host and zone.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(include_str!("../migrations/sqlite/0001_init.sql"))
            .unwrap();
        conn.execute_batch(include_str!("../migrations/sqlite/0002_claim_index.sql"))
            .unwrap();
        conn.execute_batch(
            "CREATE TABLE hw_schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
             INSERT INTO hw_schema_migrations VALUES (1, 0), (2, 0);",
        )
        .unwrap();
        for (i, c) in [&older, &younger].into_iter().enumerate() {
            let id = c["contract_id"].as_str().unwrap();
            let customer = c["customer"]["id"].as_str().unwrap();
            let payload = serde_json::to_vec(c).unwrap();
            conn.execute(
                "INSERT INTO revisions VALUES (?1, 1, ?2, 'www', 1, x'00', ?3, ?4)",
                rusqlite::params![id, customer, payload, i as i64],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO jobs (id, contract_id, revision, state, planned, created_at, updated_at) \
                 VALUES (?1, ?2, 1, 'succeeded', 1, ?3, ?3)",
                rusqlite::params![format!("J-{id}"), id, i as i64],
            )
            .unwrap();
            for (kind, key, adapter) in [
                ("vhost", "dup.example.jp", "webhost"),
                ("dns_zone", "dup.example.jp", "dns"),
                ("webspace", &id.to_ascii_lowercase()[..], "webhost"),
            ] {
                conn.execute(
                    "INSERT INTO resources VALUES (?1, ?2, ?3, ?4, '{}', '{}', 0)",
                    rusqlite::params![id, kind, key, adapter],
                )
                .unwrap();
            }
        }
    }
    let url = format!("sqlite:{}", db.display());
    let script = hostwright::engine::scripted::Script::new();
    let engine = engine(&url, &script, fast_settings()).await;
    hostwright::engine::server::adopt_legacy_claims(&engine)
        .await
        .unwrap();
    // The younger contract's termination would remove the shared vhost
    // and zone: refused before any adapter is called.
    let mut end = younger.clone();
    end["revision"] = 2.into();
    end["requested_on"] = "2026-11-20".into();
    end["status"] = serde_json::json!({
        "state": "terminated", "effective": "2026-12-31", "notified_on": "2026-11-20"
    });
    let job = accepted(&engine, &sign(&keys(), &end)).await;
    assert_eq!(run(&engine, &job).await, JobState::Failed);
    let error = engine.store.job(&job).await.unwrap().unwrap().summary.error;
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("C-OLD2 does not own")),
        "{error:?}"
    );
    assert!(script.calls().iter().all(|c| c.op != "remove"));
    // The older one still owns them: its own termination removes them.
    let mut end = older.clone();
    end["revision"] = 2.into();
    end["requested_on"] = "2026-11-20".into();
    end["status"] = serde_json::json!({
        "state": "terminated", "effective": "2026-12-31", "notified_on": "2026-11-20"
    });
    let job = accepted(&engine, &sign(&keys(), &end)).await;
    assert_eq!(run(&engine, &job).await, JobState::Succeeded);
    let removed: Vec<String> = script
        .calls()
        .iter()
        .filter(|c| c.op == "remove")
        .map(|c| format!("{}/{}", c.kind, c.key))
        .collect();
    assert!(
        removed.contains(&"vhost/dup.example.jp".to_string()),
        "{removed:?}"
    );
    // Adoption runs once.
    hostwright::engine::server::adopt_legacy_claims(&engine)
        .await
        .unwrap();
}
