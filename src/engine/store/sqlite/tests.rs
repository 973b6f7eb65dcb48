//! The writer thread's contract: group commit, per-op savepoints, answers
//! only after the commit; and migration of a schema-0001 store.

use std::sync::mpsc as std_mpsc;

use super::*;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("jobs.db"), SecretKeys::ephemeral())
        .await
        .unwrap();
    (dir, store)
}

fn rejection(kind: &str) -> Rejection {
    Rejection {
        contract_id: Some("C-1".into()),
        revision: Some(1),
        kind: kind.into(),
        reasons: serde_json::json!([]),
        received: b"x".to_vec(),
        received_sha256: None,
        received_size: None,
        received_at: Utc::now(),
    }
}

fn insert_rejection(conn: &Connection, kind: &str) -> Result<()> {
    exec(
        conn,
        q::INSERT_REJECTION,
        params![
            "C-1",
            1,
            kind,
            "[]",
            b"x".to_vec(),
            0,
            None::<String>,
            None::<i64>
        ],
    )
    .map(drop)
}

async fn kinds(store: &SqliteStore) -> Vec<String> {
    let mut k: Vec<String> = store
        .rejections(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    k.sort();
    k
}

/// Submits an op that holds the writer thread until the returned sender is
/// dropped or sent to; `running` is told when it has started.
fn hold_writer(
    store: &SqliteStore,
) -> (
    std_mpsc::Sender<()>,
    std_mpsc::Receiver<()>,
    oneshot::Receiver<Result<()>>,
) {
    let (release, wait) = std_mpsc::channel::<()>();
    let (started, running) = std_mpsc::channel::<()>();
    let answer = store
        .submit(
            move |_conn| {
                let _ = started.send(());
                let _ = wait.recv();
                Ok(())
            },
            false,
            Durability::Acknowledged,
        )
        .unwrap();
    (release, running, answer)
}

#[tokio::test]
async fn ops_queued_while_the_writer_is_busy_share_one_commit() {
    let (_dir, store) = store().await;
    let (release, running, held) = hold_writer(&store);
    running.recv().unwrap();
    let before = store.transactions();
    let answers: Vec<_> = (0..100)
        .map(|i| {
            let kind = format!("k{i:03}");
            store
                .submit(
                    move |conn| insert_rejection(conn, &kind),
                    false,
                    Durability::Acknowledged,
                )
                .unwrap()
        })
        .collect();
    release.send(()).unwrap();
    held.await.unwrap().unwrap();
    for a in answers {
        a.await.unwrap().unwrap();
    }
    assert_eq!(kinds(&store).await.len(), 100);
    // The held op's own transaction, then one for all 100.
    assert_eq!(store.transactions() - before, 2);
}

#[tokio::test]
async fn many_concurrent_callers_all_get_their_own_answer() {
    let (_dir, store) = store().await;
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(
                async move { store.record_rejection(rejection(&format!("c{i:03}"))).await },
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(kinds(&store).await.len(), 200);
    assert!(store.transactions() <= 200);
}

#[tokio::test]
async fn a_refused_op_undoes_only_itself() {
    let (_dir, store) = store().await;
    let (release, running, held) = hold_writer(&store);
    running.recv().unwrap();
    let a = store
        .submit(
            |conn| insert_rejection(conn, "a"),
            false,
            Durability::Acknowledged,
        )
        .unwrap();
    let b = store
        .submit(
            |conn| {
                insert_rejection(conn, "b")?;
                Err::<(), _>(StoreError::LeaseLost("J-1".into()))
            },
            false,
            Durability::Acknowledged,
        )
        .unwrap();
    let panics = store
        .submit(
            |conn| -> Result<()> {
                insert_rejection(conn, "p")?;
                panic!("an op that panics")
            },
            false,
            Durability::Acknowledged,
        )
        .unwrap();
    let c = store
        .submit(
            |conn| insert_rejection(conn, "c"),
            false,
            Durability::Acknowledged,
        )
        .unwrap();
    release.send(()).unwrap();
    held.await.unwrap().unwrap();
    a.await.unwrap().unwrap();
    assert!(matches!(b.await.unwrap(), Err(StoreError::LeaseLost(_))));
    assert!(matches!(
        panics.await.unwrap(),
        Err(StoreError::Database(_))
    ));
    c.await.unwrap().unwrap();
    assert_eq!(kinds(&store).await, ["a", "c"]);
    // The writer thread survived the panic.
    store.record_rejection(rejection("d")).await.unwrap();
}

#[tokio::test]
async fn an_op_is_answered_only_after_its_transaction_committed() {
    let (_dir, store) = store().await;
    let (release_first, running_first, first) = hold_writer(&store);
    running_first.recv().unwrap();
    // Both land in the next transaction: `written`, then an op that holds
    // the transaction open after `written` ran.
    let mut written = store
        .submit(
            |conn| insert_rejection(conn, "w"),
            false,
            Durability::Acknowledged,
        )
        .unwrap();
    let (release, running, held) = hold_writer(&store);
    release_first.send(()).unwrap();
    first.await.unwrap().unwrap();
    running.recv().unwrap();
    // `written` ran, but its transaction is still open: no answer yet, and
    // no other connection sees the row.
    assert!(matches!(
        written.try_recv(),
        Err(oneshot::error::TryRecvError::Empty)
    ));
    assert!(kinds(&store).await.is_empty());
    release.send(()).unwrap();
    held.await.unwrap().unwrap();
    written.await.unwrap().unwrap();
    assert_eq!(kinds(&store).await, ["w"]);
}

#[tokio::test]
async fn a_schema_0001_store_migrates_and_keeps_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    {
        // A store as an early release left it: only migration 1, recorded
        // in the table as it was before checksums.
        let conn = open_conn(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE hw_schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .unwrap();
        conn.execute_batch(q::MIGRATIONS_SQLITE[0].1).unwrap();
        conn.execute(
            "INSERT INTO hw_schema_migrations (version, applied_at) VALUES (1, 0)",
            [],
        )
        .unwrap();
        conn.execute(
            &D.render(q::INSERT_REVISION),
            params![
                "C-OLD",
                1,
                "K-1",
                "www",
                1,
                b"e".to_vec(),
                b"{}".to_vec(),
                0
            ],
        )
        .unwrap();
        conn.execute(&D.render(q::INSERT_JOB), params!["J-OLD", "C-OLD", 1])
            .unwrap();
    }
    let store = SqliteStore::open(&path, SecretKeys::ephemeral())
        .await
        .unwrap();
    let (versions, indexes) = store
        .read(|conn| {
            let v = rows(conn, q::APPLIED_MIGRATIONS, [], |r| {
                Ok((get::<i64>(r, 0)?, get::<Option<String>>(r, 1)?))
            })?;
            let i = rows(
                conn,
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' ORDER BY name",
                [],
                |r| get::<String>(r, 0),
            )?;
            Ok((v, i))
        })
        .await
        .unwrap();
    // Every version there is, whichever were added after 0002.
    // ...each with the checksum of its text (1 recorded at the upgrade).
    let all: Vec<(i64, Option<String>)> = q::MIGRATIONS_SQLITE
        .iter()
        .map(|(v, sql)| (*v, Some(super::super::migrate::checksum(sql))))
        .collect();
    assert_eq!(versions, all);
    assert!(indexes.contains(&"jobs_claim".to_string()), "{indexes:?}");
    assert!(!indexes.contains(&"jobs_state".to_string()), "{indexes:?}");
    let job = store
        .claim("w1", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the old queue is claimable");
    assert_eq!(job.job_id, "J-OLD");
    drop(store);
    // Opening again applies nothing twice.
    SqliteStore::open(&path, SecretKeys::ephemeral())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_claim_look_ups_use_the_claim_index() {
    let (_dir, store) = store().await;
    let plans = store
        .read(|conn| {
            let mut out = Vec::new();
            for sql in [q::claim_queued(), q::claim_expired()] {
                let explain = format!("EXPLAIN QUERY PLAN {sql}");
                out.push(rows(conn, &explain, [], |r| get::<String>(r, 3))?.join(" | "));
            }
            Ok(out)
        })
        .await
        .unwrap();
    for plan in plans {
        assert!(plan.contains("jobs_claim"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}

/// What `PRAGMA synchronous` a write op's transaction runs under.
fn sync_level(store: &SqliteStore, durability: Durability) -> oneshot::Receiver<Result<i64>> {
    store
        .submit(
            |conn| {
                conn.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
                    .map_err(db)
            },
            false,
            durability,
        )
        .unwrap()
}

#[tokio::test]
async fn acknowledged_writes_are_synced_and_a_batch_of_progress_only_is_not() {
    let (_dir, store) = store().await;
    // FULL = 2, NORMAL = 1.
    assert_eq!(
        sync_level(&store, Durability::Acknowledged)
            .await
            .unwrap()
            .unwrap(),
        2
    );
    assert_eq!(
        sync_level(&store, Durability::Progress)
            .await
            .unwrap()
            .unwrap(),
        1
    );
    // One acknowledged op in a batch makes its commit synced.
    let (release, running, held) = hold_writer(&store);
    running.recv().unwrap();
    let progress = sync_level(&store, Durability::Progress);
    let acked = sync_level(&store, Durability::Acknowledged);
    release.send(()).unwrap();
    held.await.unwrap().unwrap();
    assert_eq!(progress.await.unwrap().unwrap(), 2);
    assert_eq!(acked.await.unwrap().unwrap(), 2);
    assert_eq!(
        sync_level(&store, Durability::Acknowledged)
            .await
            .unwrap()
            .unwrap(),
        2
    );
}
