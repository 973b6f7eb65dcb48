//! Issue #17: the store as an operator's database. Versioned migrations
//! with checksums (an older store upgrades and keeps its data; a newer or a
//! changed one is refused, naming the version); backup and restore in the
//! middle of a run; the copy to PostgreSQL; retention; on both back ends.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hostwright::engine::Engine;
use hostwright::engine::outbox::{ReportSink, SinkError, run_reporter};
use hostwright::engine::retention::{Policy, Pruned, prune};
use hostwright::engine::scripted::{Behavior, Script};
use hostwright::engine::server::{self, StartError};
use hostwright::engine::store::admin::{self, AdminError};
use hostwright::engine::store::{JobState, StepState, StoreError, migrate, queries as q};

/// Runs `sql` straight on the store at `url` (no hostwright code involved).
async fn raw(url: &str, sql: &str) {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(sql).unwrap();
    } else {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

/// The recorded (version, checksum) rows of the store at `url`.
async fn recorded(url: &str) -> Vec<(i64, Option<String>)> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut st = conn.prepare(q::APPLIED_MIGRATIONS).unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    } else {
        use sqlx::Row;
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        sqlx::query(q::APPLIED_MIGRATIONS)
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }
}

fn migrations(url: &str) -> &'static [(i64, &'static str)] {
    if url.starts_with("sqlite:") {
        q::MIGRATIONS_SQLITE
    } else {
        q::MIGRATIONS_POSTGRES
    }
}

async fn open_err(url: &str) -> StoreError {
    match server::open_store(url, 4, &secrets_key_for(url)).await {
        Err(StartError::Store(e)) => e,
        Err(other) => panic!("expected a store error, got {other}"),
        Ok(_) => panic!("the store at {url} opened"),
    }
}

#[tokio::test]
async fn a_store_of_the_previous_schema_upgrades_and_keeps_its_data() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let script = Script::new();
        // The previous release's store: its migrations (1..=6), its table of
        // applied versions without checksums, and data written by a run.
        let (job, resources) = {
            let engine = engine(&url, &script, fast_settings()).await;
            let job = accepted(&engine, &sign(&keys(), &www_contract("C-UP1", 1))).await;
            let workers = start_workers(&engine, "w", 2);
            assert_eq!(wait_final(&engine, &job, 20).await, JobState::Succeeded);
            workers.stop(Duration::from_secs(2)).await;
            let resources = engine.store.resources("C-UP1").await.unwrap();
            assert!(!resources.is_empty());
            (job, resources)
        };
        raw(
            &url,
            "DELETE FROM hw_schema_migrations WHERE version > 6; \
             DROP INDEX outbox_contract; DROP INDEX jobs_created; \
             DROP TABLE notifications; DROP TABLE repair_attempts; DROP TABLE repairs; \
             DROP TABLE placements; DROP TABLE fleet_host_states; \
             ALTER TABLE hw_schema_migrations DROP COLUMN checksum; \
             DROP INDEX jobs_revision; \
             ALTER TABLE jobs DROP COLUMN kind; ALTER TABLE jobs DROP COLUMN move_to;",
        )
        .await;
        // Its one job per revision was a table constraint (SQLite's cannot
        // be added back, and 0011 rebuilds the table there anyway).
        if backend == Backend::Postgres {
            raw(
                &url,
                "ALTER TABLE jobs ADD CONSTRAINT jobs_contract_id_revision_key \
                 UNIQUE (contract_id, revision);",
            )
            .await;
        }
        let engine = engine(&url, &script, fast_settings()).await;
        // Every version this build ships, each with its text's checksum.
        let expected: Vec<(i64, Option<String>)> = migrations(&url)
            .iter()
            .map(|(v, sql)| (*v, Some(migrate::checksum(sql))))
            .collect();
        assert_eq!(recorded(&url).await, expected, "{backend:?}");
        // The data is kept and the engine goes on from it.
        let detail = engine.store.job(&job).await.unwrap().expect("job kept");
        assert_eq!(detail.summary.state, JobState::Succeeded);
        assert_eq!(engine.store.resources("C-UP1").await.unwrap(), resources);
        let next = accepted(&engine, &sign(&keys(), &www_contract("C-UP1", 2))).await;
        let workers = start_workers(&engine, "w2", 2);
        assert_eq!(wait_final(&engine, &next, 20).await, JobState::Succeeded);
        workers.stop(Duration::from_secs(2)).await;
        drop(engine);
        // Opened again: nothing to do, nothing refused.
        server::open_store(&url, 4, &secrets_key_for(&url))
            .await
            .expect("reopens");
    }
}

#[tokio::test]
async fn a_newer_or_changed_schema_is_refused_naming_the_version() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        drop(
            server::open_store(&url, 4, &secrets_key_for(&url))
                .await
                .unwrap(),
        );
        let newest = migrations(&url).iter().map(|(v, _)| *v).max().unwrap();

        // A migration of a newer build.
        raw(
            &url,
            "INSERT INTO hw_schema_migrations (version, applied_at, checksum) \
             VALUES (9999, 0, 'abc')",
        )
        .await;
        let e = open_err(&url).await;
        assert!(
            matches!(e, StoreError::SchemaNewer { version: 9999, known } if known == newest),
            "{backend:?}: {e:?}"
        );
        assert!(e.to_string().contains("migration 9999"), "{e}");
        raw(
            &url,
            "DELETE FROM hw_schema_migrations WHERE version = 9999",
        )
        .await;

        // An applied migration whose text is not this build's.
        raw(
            &url,
            "UPDATE hw_schema_migrations SET checksum = 'tampered' WHERE version = 3",
        )
        .await;
        let e = open_err(&url).await;
        assert!(
            matches!(&e, StoreError::MigrationChanged { version: 3, recorded, .. } if recorded == "tampered"),
            "{backend:?}: {e:?}"
        );
        assert!(e.to_string().contains("migration 3"), "{e}");
        // Nothing was changed by the refusals: the recorded checksum stays.
        assert!(
            recorded(&url)
                .await
                .contains(&(3, Some("tampered".to_string())))
        );
    }
}

// --- backup and restore ----------------------------------------------------------

/// A billing endpoint that records what it accepted, by idempotency key.
#[derive(Default)]
struct Billing {
    received: std::sync::Mutex<std::collections::BTreeMap<String, u32>>,
}

#[async_trait::async_trait]
impl ReportSink for Billing {
    async fn deliver(&self, key: &str, _body: &[u8]) -> Result<(), SinkError> {
        *self
            .received
            .lock()
            .unwrap()
            .entry(key.to_string())
            .or_default() += 1;
        Ok(())
    }
}

impl Billing {
    fn keys(&self) -> std::collections::BTreeMap<String, u32> {
        self.received.lock().unwrap().clone()
    }
}

/// Runs the reporter until the outbox is empty.
async fn drain_outbox(engine: &Arc<Engine>, sink: &Arc<Billing>) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reporter = tokio::spawn(run_reporter(engine.clone(), sink.clone(), stop_rx));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while engine.store.stats().await.unwrap().outbox_backlog > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox never drained"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    engine.wake_reporter();
    reporter.await.unwrap();
}

fn run_tool(cmd: &str, args: &[&str]) {
    let out = std::process::Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_backup_taken_mid_run_restores_and_the_engine_resumes() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let script = Script::new();
        let engine = engine(&url, &script, fast_settings()).await;
        let billing = Arc::new(Billing::default());

        // A: done, reported to billing, its FTP password not yet taken.
        let a = accepted(&engine, &sign(&keys(), &www_contract("C-BK1", 1))).await;
        let workers = start_workers(&engine, "w", 2);
        assert_eq!(wait_final(&engine, &a, 20).await, JobState::Succeeded);
        drain_outbox(&engine, &billing).await;
        assert_eq!(billing.keys().len(), 1, "{backend:?}");

        // B: in flight, its vhost step hanging when the backup is taken.
        script.push(rule("vhost", Behavior::Hang { ms: 600_000 }, None));
        let b = accepted(&engine, &sign(&keys(), &www_contract("C-BK2", 1))).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !script
            .calls()
            .iter()
            .any(|c| c.job_id == b && c.kind == "vhost" && c.op == "hang")
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "B's vhost never ran"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let backup = dir.path().join("backup.db");
        let restored_dir = tempfile::tempdir().unwrap();
        let restored_url = match backend {
            Backend::Sqlite => {
                let db = admin::sqlite_path(&url).unwrap();
                let snap = admin::backup_sqlite(&db, &backup).unwrap();
                assert!(snap.tables.iter().any(|(t, n)| t == "jobs" && *n == 2));
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(
                    std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
                    0o600
                );
                // A second backup never overwrites the first.
                assert!(matches!(
                    admin::backup_sqlite(&db, &backup),
                    Err(AdminError::NotEmpty(_))
                ));
                // Restore refuses the store a hostwright has open...
                assert!(
                    matches!(
                        admin::restore_sqlite(&backup, &db, true),
                        Err(AdminError::InUse(_))
                    ),
                    "restore over a running store"
                );
                // ...and one with content unless told.
                let target = fresh_store_url(backend, restored_dir.path()).await;
                drop(
                    server::open_store(&target, 4, &secrets_key_for(&target))
                        .await
                        .unwrap(),
                );
                let target_db = admin::sqlite_path(&target).unwrap();
                assert!(matches!(
                    admin::restore_sqlite(&backup, &target_db, false),
                    Err(AdminError::NotEmpty(_))
                ));
                admin::restore_sqlite(&backup, &target_db, true).unwrap();
                target
            }
            Backend::Postgres => {
                let dump = backup.to_str().unwrap();
                run_tool("pg_dump", &["--format=custom", "--file", dump, &url]);
                let target = fresh_store_url(backend, restored_dir.path()).await;
                run_tool(
                    "pg_restore",
                    &["--no-owner", "--exit-on-error", "--dbname", &target, dump],
                );
                target
            }
        };
        // The old engine dies mid-step (its backends keep what it did).
        workers.kill();
        // The restored store is opened with the same secrets key.
        std::fs::copy(secrets_key_for(&url), secrets_key_for(&restored_url)).unwrap();
        let script2 = Script::new();
        let engine2 = common::engine(&restored_url, &script2, fast_settings()).await;
        let done_before: Vec<(String, String)> = engine2
            .store
            .job(&b)
            .await
            .unwrap()
            .unwrap()
            .steps
            .iter()
            .filter(|s| s.state == StepState::Succeeded)
            .map(|s| (s.step.resource.kind.clone(), s.step.resource.key.clone()))
            .collect();
        assert!(
            !done_before.is_empty(),
            "{backend:?}: B had finished steps at the backup"
        );
        let w2 = start_workers(&engine2, "w2", 2);
        assert_eq!(
            wait_final(&engine2, &b, 30).await,
            JobState::Succeeded,
            "{backend:?}"
        );
        // Only B's unfinished steps ran again; A was not touched.
        let rerun: Vec<(String, String)> = script2
            .calls()
            .iter()
            .filter(|c| c.op == "ensure")
            .map(|c| {
                assert_eq!(c.job_id, b, "{backend:?}: only B runs: {c:?}");
                (c.kind.clone(), c.key.clone())
            })
            .collect();
        assert!(rerun.iter().any(|(k, _)| k == "vhost"), "{rerun:?}");
        for step in &done_before {
            assert!(
                !rerun.contains(step),
                "{backend:?}: {step:?} was done before the backup and ran again"
            );
        }
        // Billing gets B's report, and A's (delivered before) not again.
        let billing2 = Arc::new(Billing::default());
        drain_outbox(&engine2, &billing2).await;
        let again = billing2.keys();
        assert_eq!(again.len(), 1, "{backend:?}: {again:?}");
        assert!(
            again.keys().all(|k| !billing.keys().contains_key(k)),
            "{backend:?}: reported twice: {again:?}"
        );
        // A's password, sealed before the backup, opens with the key.
        let secrets = engine2.store.take_secrets(&a, "ops").await.unwrap();
        assert!(!secrets.is_empty(), "{backend:?}");
        w2.stop(Duration::from_secs(2)).await;
    }
}

// --- copy into PostgreSQL --------------------------------------------------------

/// (id, idempotency key, delivered) of every outbox row, by id.
async fn outbox_rows(url: &str) -> Vec<(i64, String, bool)> {
    if let Some(path) = admin::sqlite_path(url) {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut st = conn
            .prepare("SELECT id, idempotency_key, delivered_at IS NOT NULL FROM outbox ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    } else {
        use sqlx::Row;
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        sqlx::query("SELECT id, idempotency_key, delivered_at IS NOT NULL FROM outbox ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }
}

/// How many contracts the copy test provisions before copying.
const COPIED_CONTRACTS: usize = 1_000;

#[tokio::test]
async fn a_store_of_many_contracts_copies_to_postgresql_and_goes_on_there() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let script = Script::new();
    let mut settings = fast_settings();
    settings.lease_seconds = 30;
    let engine = engine(&url, &script, settings).await;
    let k = keys();
    // Many provisioned contracts, their reports delivered...
    let bodies: Vec<Vec<u8>> = (0..COPIED_CONTRACTS)
        .map(|i| sign(&k, &www_contract(&format!("C-CP{i:05}"), 1)))
        .collect();
    let mut intakes = Vec::new();
    for chunk in bodies.chunks(COPIED_CONTRACTS.div_ceil(4)) {
        let engine = engine.clone();
        let chunk = chunk.to_vec();
        intakes.push(tokio::spawn(async move {
            let mut jobs = Vec::new();
            for body in chunk {
                jobs.push(accepted(&engine, &body).await);
            }
            jobs
        }));
    }
    let workers = start_workers(&engine, "w", 4);
    let mut jobs = Vec::new();
    for t in intakes {
        jobs.extend(t.await.unwrap());
    }
    for j in &jobs {
        assert_eq!(wait_final(&engine, j, 120).await, JobState::Succeeded);
    }
    let billing = Arc::new(Billing::default());
    drain_outbox(&engine, &billing).await;
    // ...one that failed (to be rerun on PostgreSQL), and five whose
    // reports are not delivered yet.
    script.push(rule("dns_zone", Behavior::Permanent, Some(1)));
    let failed = accepted(&engine, &sign(&k, &www_contract("C-CPFAIL", 1))).await;
    assert_eq!(wait_final(&engine, &failed, 20).await, JobState::Failed);
    for i in 0..5 {
        let j = accepted(&engine, &sign(&k, &www_contract(&format!("C-CPNEW{i}"), 1))).await;
        assert_eq!(wait_final(&engine, &j, 20).await, JobState::Succeeded);
    }
    workers.stop(Duration::from_secs(2)).await;
    let before = outbox_rows(&url).await;
    assert_eq!(before.iter().filter(|r| !r.2).count(), 5);
    let db = admin::sqlite_path(&url).unwrap();

    // A running store is not copied.
    let pg_dir = tempfile::tempdir().unwrap();
    let pg = fresh_store_url(Backend::Postgres, pg_dir.path()).await;
    assert!(matches!(
        admin::copy_sqlite_to_postgres(&db, &pg).await,
        Err(AdminError::InUse(_))
    ));
    drop(engine);
    let report = admin::copy_sqlite_to_postgres(&db, &pg).await.unwrap();
    let rows = |t: &str| {
        report
            .tables
            .iter()
            .find(|c| c.table == t)
            .unwrap_or_else(|| panic!("{t} not copied: {report:?}"))
            .rows
    };
    assert_eq!(rows("jobs"), COPIED_CONTRACTS as u64 + 6);
    assert_eq!(rows("revisions"), COPIED_CONTRACTS as u64 + 6);
    assert_eq!(rows("outbox"), before.len() as u64);
    for t in [
        "steps",
        "attempts",
        "resources",
        "claims",
        "secrets",
        "ops_log",
        "audit_log",
        "rejections",
    ] {
        rows(t);
    }
    // A database with tables is refused, named.
    match admin::copy_sqlite_to_postgres(&db, &pg).await {
        Err(AdminError::TargetNotEmpty { database, .. }) => {
            assert!(pg.ends_with(&format!("/{database}")), "{database}")
        }
        other => panic!("copy into a non-empty database: {other:?}"),
    }

    // The engine on PostgreSQL: nothing is provisioned again.
    std::fs::copy(secrets_key_for(&url), secrets_key_for(&pg)).unwrap();
    let script2 = Script::new();
    let engine2 = common::engine(&pg, &script2, settings).await;
    let w2 = start_workers(&engine2, "pg", 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(script2.calls().is_empty(), "{:?}", script2.calls());
    // The undelivered reports go out, the delivered ones not again.
    let billing2 = Arc::new(Billing::default());
    drain_outbox(&engine2, &billing2).await;
    let got = billing2.keys();
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got.keys().all(|k| !billing.keys().contains_key(k)));
    // A new revision and a rerun work, touching only their own contracts.
    let next = accepted(&engine2, &sign(&k, &www_contract("C-CP00007", 2))).await;
    assert_eq!(wait_final(&engine2, &next, 20).await, JobState::Succeeded);
    engine2.store.rerun(&failed, "ops").await.unwrap();
    engine2.wake_workers();
    assert_eq!(wait_final(&engine2, &failed, 20).await, JobState::Succeeded);
    for c in script2.calls() {
        assert!(c.job_id == next || c.job_id == failed, "{c:?}");
    }
    drain_outbox(&engine2, &billing2).await;
    // The outbox goes on after the copied ids: no gap, no duplicate.
    let after = outbox_rows(&pg).await;
    assert_eq!(after.len(), before.len() + 2);
    assert_eq!(
        &after[..before.len()],
        &before
            .iter()
            .map(|(i, k, _)| (*i, k.clone(), true))
            .collect::<Vec<_>>()[..]
    );
    for w in after.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "ids: {:?}", &after[after.len() - 4..]);
    }
    let keys: std::collections::BTreeSet<_> = after.iter().map(|r| r.1.clone()).collect();
    assert_eq!(keys.len(), after.len());
    assert!(after.iter().all(|r| r.2), "everything delivered");
    w2.stop(Duration::from_secs(2)).await;
}

// --- the commands ------------------------------------------------------------------

fn hostwright(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn store_backup_and_restore_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/jobs.db");
    let cfg = write_scripted_config(
        dir.path(),
        &format!("sqlite:{}", db.display()),
        free_port(),
        "t0ken-store-admin-0123456789abcdef",
        "\n[adapters.scripted]\n",
    );
    let cfg = cfg.to_str().unwrap();
    let mut serve = Serve::start(std::path::Path::new(cfg));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(format!("{}-wal", db.display())).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "serve never opened the store"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let backup = dir.path().join("backup.db");
    let b = backup.to_str().unwrap();
    let out = hostwright(&["store", "backup", b, "--config", cfg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backed up to"));
    // A running store is not replaced, even with --force.
    let out = hostwright(&["store", "restore", b, "--force", "--config", cfg]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by a running hostwright"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serve.kill_9();
    let out = hostwright(&["store", "restore", b, "--config", cfg]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hostwright(&["store", "restore", b, "--force", "--config", cfg, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["tables"].as_array().is_some_and(|t| !t.is_empty()), "{v}");
    // copy takes a sqlite: URL to copy from.
    let out = hostwright(&[
        "store",
        "copy",
        "--from",
        "jobs.db",
        "--to",
        "postgres://x/y",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite:PATH"));
}

// --- retention ----------------------------------------------------------------------

/// One number from the store at `url` (a `SELECT COUNT(*) ...`).
async fn count(url: &str, sql: &str) -> i64 {
    if let Some(path) = admin::sqlite_path(url) {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    } else {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut conn)
            .await
            .unwrap()
    }
}

async fn attempts_of(engine: &Engine, job: &str) -> usize {
    engine.store.job(job).await.unwrap().unwrap().attempts.len()
}

#[tokio::test]
async fn prune_deletes_old_history_and_never_the_state_or_what_is_undelivered() {
    const DAY_MS: i64 = 86_400_000;
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let script = Script::new();
        let engine = engine(&url, &script, fast_settings()).await;
        let k = keys();
        let workers = start_workers(&engine, "w", 2);
        let mut jobs = std::collections::BTreeMap::new();
        for (name, id, rev) in [
            ("r1a", "C-R1", 1),
            ("r1b", "C-R1", 2),
            ("r2", "C-R2", 1),
            ("r3", "C-R3", 1),
        ] {
            let j = accepted(&engine, &sign(&k, &www_contract(id, rev))).await;
            assert_eq!(wait_final(&engine, &j, 20).await, JobState::Succeeded);
            jobs.insert(name, j);
        }
        script.push(rule("dns_zone", Behavior::Permanent, Some(1)));
        let failed = accepted(&engine, &sign(&k, &www_contract("C-R4", 1))).await;
        assert_eq!(wait_final(&engine, &failed, 20).await, JobState::Failed);
        let billing = Arc::new(Billing::default());
        drain_outbox(&engine, &billing).await;
        // Ended after the delivery: its report is still waiting.
        let undelivered = accepted(&engine, &sign(&k, &www_contract("C-R5", 1))).await;
        assert_eq!(
            wait_final(&engine, &undelivered, 20).await,
            JobState::Succeeded
        );
        workers.stop(Duration::from_secs(2)).await;
        // A refusal, recorded.
        engine
            .intake(b"not an envelope", chrono::Utc::now())
            .await
            .unwrap();
        assert_eq!(count(&url, "SELECT COUNT(*) FROM rejections").await, 1);
        // Everything is old but C-R3's job.
        raw(
            &url,
            &format!(
                "UPDATE jobs SET updated_at = updated_at - {} WHERE contract_id <> 'C-R3'; \
                 UPDATE outbox SET delivered_at = delivered_at - {} WHERE delivered_at IS NOT NULL; \
                 UPDATE rejections SET received_at = received_at - {};",
                100 * DAY_MS,
                500 * DAY_MS,
                200 * DAY_MS
            ),
        )
        .await;
        let resources_before = count(&url, "SELECT COUNT(*) FROM resources").await;
        let audit_before = count(&url, "SELECT COUNT(*) FROM audit_log").await;
        let steps_before = count(&url, "SELECT COUNT(*) FROM steps").await;
        let policy = Policy {
            succeeded_attempts: Some(Duration::from_secs(90 * 86_400)),
            delivered_reports: Some(Duration::from_secs(400 * 86_400)),
            rejections: Duration::from_secs(90 * 86_400),
        };
        let now = chrono::Utc::now();

        // The attempts go in batches walked by job id: one job a batch here.
        let before = now - chrono::Duration::days(90);
        let (mut cursor, mut calls, mut deleted) = (String::new(), 0, 0);
        loop {
            calls += 1;
            let (n, next) = engine
                .store
                .prune_attempts(before, &cursor, 1)
                .await
                .unwrap();
            deleted += n;
            match next {
                Some(id) => cursor = id,
                None => break,
            }
        }
        assert_eq!(calls, 5, "{backend:?}: 4 old succeeded jobs, then the end");
        assert!(deleted >= 16, "{backend:?}: 4 steps each: {deleted}");
        for name in ["r1a", "r1b", "r2"] {
            assert_eq!(
                attempts_of(&engine, &jobs[name]).await,
                0,
                "{backend:?} {name}"
            );
        }
        assert_eq!(attempts_of(&engine, &undelivered).await, 0);
        // Recent, or not succeeded: kept.
        assert!(attempts_of(&engine, &jobs["r3"]).await >= 4, "{backend:?}");
        assert!(attempts_of(&engine, &failed).await >= 1, "{backend:?}");

        let pruned = prune(engine.store.as_ref(), &policy, now).await.unwrap();
        assert_eq!(
            pruned,
            Pruned {
                attempts: 0,
                // C-R1's first report; its second is C-R1's newest.
                delivered_reports: 1,
                rejections: 1,
            },
            "{backend:?}"
        );
        let left = outbox_rows(&url).await;
        assert_eq!(left.len(), 4, "{backend:?}: {left:?}");
        assert_eq!(left.iter().filter(|r| !r.2).count(), 1, "undelivered kept");
        // The state, the plans and the audit trail are all there.
        assert_eq!(
            count(&url, "SELECT COUNT(*) FROM resources").await,
            resources_before
        );
        assert_eq!(
            count(&url, "SELECT COUNT(*) FROM audit_log").await,
            audit_before
        );
        assert_eq!(
            count(&url, "SELECT COUNT(*) FROM steps").await,
            steps_before
        );
        assert_eq!(count(&url, "SELECT COUNT(*) FROM rejections").await, 0);
        let d = engine.store.job(&jobs["r1a"]).await.unwrap().unwrap();
        assert_eq!(d.summary.state, JobState::Succeeded);
        assert!(d.steps.iter().all(|s| s.state == StepState::Succeeded));
        // Nothing more to do; and the engine goes on.
        assert_eq!(
            prune(engine.store.as_ref(), &policy, now).await.unwrap(),
            Pruned::default()
        );
        let workers = start_workers(&engine, "w2", 2);
        let next = accepted(&engine, &sign(&k, &www_contract("C-R2", 2))).await;
        assert_eq!(wait_final(&engine, &next, 20).await, JobState::Succeeded);
        workers.stop(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn serve_prunes_on_its_schedule_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/jobs.db");
    let url = format!("sqlite:{}", db.display());
    let (old, recent) = {
        let script = Script::new();
        let engine = engine(&url, &script, fast_settings()).await;
        let old = accepted(&engine, &sign(&keys(), &www_contract("C-SCH1", 1))).await;
        let recent = accepted(&engine, &sign(&keys(), &www_contract("C-SCH2", 1))).await;
        let workers = start_workers(&engine, "w", 2);
        for j in [&old, &recent] {
            assert_eq!(wait_final(&engine, j, 20).await, JobState::Succeeded);
        }
        workers.stop(Duration::from_secs(2)).await;
        (old, recent)
    };
    raw(
        &url,
        &format!("UPDATE jobs SET updated_at = updated_at - 8640000000 WHERE id = '{old}'"),
    )
    .await;
    let attempts_of = |job: &str| -> i64 {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM attempts WHERE job_id = ?1",
                [job],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert!(attempts_of(&old) >= 4);
    // The key the library engine used, where serve looks for it.
    std::fs::copy(secrets_key_for(&url), dir.path().join("data/secrets.key")).unwrap();
    let cfg = write_scripted_config(
        dir.path(),
        &url,
        free_port(),
        "t0ken-store-admin-0123456789abcdef",
        "\n[adapters.scripted]\n",
    );
    let _serve = Serve::start(&cfg);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while attempts_of(&old) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not prune the 100-day-old job's attempts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        attempts_of(&recent) >= 4,
        "a recent job's attempts are kept"
    );
}
