//! Issue #17: the store as an operator's database. Versioned migrations
//! with checksums (an older store upgrades and keeps its data; a newer or a
//! changed one is refused, naming the version), on both back ends.

mod common;

use std::time::Duration;

use common::*;
use hostwright::engine::server::{self, StartError};
use hostwright::engine::store::{JobState, StoreError, migrate, queries as q};

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
        let script = hostwright::engine::scripted::Script::new();
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
             ALTER TABLE hw_schema_migrations DROP COLUMN checksum;",
        )
        .await;
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
        raw(&url, "DELETE FROM hw_schema_migrations WHERE version = 9999").await;

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
