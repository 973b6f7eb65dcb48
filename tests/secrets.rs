//! Issue #11 part 3: secrets are sealed at rest with a key kept outside the
//! store, wiped for real when taken or cancelled, handed out once with a
//! record of who took them; the store's files are the owner's alone.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hostwright::engine::Engine;
use hostwright::engine::scripted::Behavior;
use hostwright::engine::store::{JobState, StoreError};

/// Whether `needle` occurs in any of the store's files (database, WAL).
fn in_files(db: &Path, needle: &[u8]) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", db.display())))
        .filter(|p| {
            std::fs::read(p)
                .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .collect()
}

/// The sealed bytes of a job's secrets, straight from the table.
fn sealed_rows(db: &Path, job: &str) -> Vec<Vec<u8>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare("SELECT sealed FROM secrets WHERE job_id = ?1")
        .unwrap();
    st.query_map([job], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

async fn sqlite_engine(
    dir: &Path,
    rules: Vec<hostwright::engine::scripted::Rule>,
) -> (PathBuf, Arc<Engine>) {
    let db = dir.join("data/jobs.db");
    let url = format!("sqlite:{}", db.display());
    let script = hostwright::engine::scripted::Script::new();
    for r in rules {
        script.push(r);
    }
    (db, engine(&url, &script, fast_settings()).await)
}

#[tokio::test]
async fn a_password_is_never_in_the_store_files_and_its_sealed_form_is_gone_after_the_take() {
    let dir = tempfile::tempdir().unwrap();
    let (db, engine) = sqlite_engine(dir.path(), vec![]).await;
    let job = accepted(&engine, &sign(&keys(), &www_contract("C-S1", 1))).await;
    let workers = start_workers(&engine, "w", 2);
    assert_eq!(wait_final(&engine, &job, 20).await, JobState::Succeeded);
    workers.stop(Duration::from_secs(2)).await;

    // The scripted FTP adapter hands back `pw-<login>`.
    let password = b"pw-c-s1";
    assert!(in_files(&db, password).is_empty(), "clear text at rest");
    let sealed = sealed_rows(&db, &job);
    assert_eq!(
        sealed.len(),
        3,
        "three FTP accounts, three sealed passwords"
    );

    let taken = engine.store.take_secrets(&job, "alice").await.unwrap();
    assert_eq!(
        taken["ftp_account/c-s1/password"].expose(),
        "pw-c-s1",
        "opened for its one reader"
    );
    assert!(in_files(&db, password).is_empty());
    for s in &sealed {
        assert!(
            in_files(&db, s).is_empty(),
            "the sealed value is wiped from the database and its WAL"
        );
    }
    // Once only; the hand-out is in the ops log with who took it.
    assert!(
        engine
            .store
            .take_secrets(&job, "bob")
            .await
            .unwrap()
            .is_empty()
    );
    let detail = engine.store.job(&job).await.unwrap().unwrap();
    let handouts: Vec<_> = detail
        .ops
        .iter()
        .filter(|o| o.action.starts_with("secrets taken"))
        .collect();
    assert_eq!(handouts.len(), 2, "{:?}", detail.ops);
    assert_eq!(handouts[0].actor, "alice");
    assert_eq!(handouts[0].action, "secrets taken (3)");
    assert!(
        !detail.ops.iter().any(|o| o.action.contains("pw-")),
        "never the value"
    );
    // An unknown job is not an empty answer.
    assert!(matches!(
        engine.store.take_secrets("no-such-job", "alice").await,
        Err(StoreError::JobNotFound(_))
    ));
}

#[tokio::test]
async fn a_cancelled_jobs_secrets_are_wiped() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let script = hostwright::engine::scripted::Script::new();
        // The vhost fails for good after the FTP accounts made passwords.
        script.push(rule("vhost", Behavior::Permanent, None));
        let engine = engine(&url, &script, fast_settings()).await;
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-S2", 1))).await;
        let workers = start_workers(&engine, "w", 2);
        assert_eq!(wait_final(&engine, &job, 20).await, JobState::Failed);
        workers.stop(Duration::from_secs(2)).await;
        let sealed = if backend == Backend::Sqlite {
            let db = PathBuf::from(url.strip_prefix("sqlite:").unwrap());
            let s = sealed_rows(&db, &job);
            assert!(!s.is_empty(), "the FTP steps ran first");
            Some((db, s))
        } else {
            None
        };
        engine.store.cancel(&job, "ops").await.unwrap();
        assert!(
            engine
                .store
                .take_secrets(&job, "x")
                .await
                .unwrap()
                .is_empty(),
            "{backend:?}: nothing left to take"
        );
        if let Some((db, sealed)) = sealed {
            for s in &sealed {
                assert!(in_files(&db, s).is_empty(), "wiped from the files");
            }
        } else {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM secrets WHERE job_id = $1")
                .bind(&job)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(n, 0);
        }
    }
}

#[tokio::test]
async fn postgres_holds_only_sealed_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(Backend::Postgres, dir.path()).await;
    let script = hostwright::engine::scripted::Script::new();
    let engine = engine(&url, &script, fast_settings()).await;
    let job = accepted(&engine, &sign(&keys(), &www_contract("C-S3", 1))).await;
    let workers = start_workers(&engine, "w", 2);
    assert_eq!(wait_final(&engine, &job, 20).await, JobState::Succeeded);
    workers.stop(Duration::from_secs(2)).await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let sealed: Vec<Vec<u8>> = sqlx::query_scalar("SELECT sealed FROM secrets WHERE job_id = $1")
        .bind(&job)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(sealed.len(), 3);
    for s in &sealed {
        assert!(!s.windows(7).any(|w| w == b"pw-c-s3"), "sealed");
    }
    let taken = engine.store.take_secrets(&job, "alice").await.unwrap();
    assert_eq!(taken["ftp_account/c-s3/password"].expose(), "pw-c-s3");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM secrets")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "the rows are gone");
}

#[tokio::test]
async fn the_data_folder_the_store_and_the_key_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (db, engine) = sqlite_engine(dir.path(), vec![]).await;
    // Make the WAL exist.
    accepted(&engine, &sign(&keys(), &www_contract("C-S4", 1))).await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(db.parent().unwrap()), 0o700, "data folder");
    assert_eq!(mode(&db), 0o600, "database");
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    assert!(wal.exists());
    assert_eq!(mode(&wal), 0o600, "WAL");
    let key = secrets_key_for(&format!("sqlite:{}", db.display()));
    assert_eq!(mode(&key), 0o600, "secrets key");
}

#[tokio::test]
async fn a_store_from_before_sealing_gets_its_clear_secrets_sealed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    {
        // A store as release 0002 wrote it, with a password waiting.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(include_str!("../migrations/sqlite/0001_init.sql"))
            .unwrap();
        conn.execute_batch(include_str!("../migrations/sqlite/0002_claim_index.sql"))
            .unwrap();
        conn.execute_batch(
            "CREATE TABLE hw_schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
             INSERT INTO hw_schema_migrations VALUES (1, 0), (2, 0);
             INSERT INTO secrets (job_id, name, value) VALUES ('J-OLD', 'ftp_account/c-old/password', 'old-clear-password-42');",
        )
        .unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").ok();
    }
    assert!(!in_files(&db, b"old-clear-password-42").is_empty());
    let url = format!("sqlite:{}", db.display());
    let store = hostwright::engine::server::open_store(&url, 1, &secrets_key_for(&url))
        .await
        .unwrap();
    assert!(
        in_files(&db, b"old-clear-password-42").is_empty(),
        "the clear text is gone from the files"
    );
    // The job row does not exist in this hand-made store: the secret is
    // readable through the table only.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM secrets WHERE job_id = 'J-OLD'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1, "sealed, not lost");
    drop(store);
}
