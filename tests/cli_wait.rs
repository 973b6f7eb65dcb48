//! `hostwright jobs rerun --wait` against a running API: it polls with one
//! list request per poll (never one request per job), prints a plain line
//! per change when stderr is not a terminal, answers one JSON shape with
//! `--json`, exits 1 when a job did not succeed, and `--timeout` gives up
//! (exit 2, saying how many jobs have not ended). `GET /v1/jobs?ids=`
//! lists exactly the jobs asked for.

mod common;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hostwright::engine::auth::{Authenticator, FailureLimit};
use hostwright::engine::scripted::{Behavior, Script};
use hostwright::engine::store::JobState;
use serde_json::Value;

const TOKEN: &str = "ops-token-for-cli-tests";

/// Serves the API and records each request's method and path.
async fn serve(
    engine: Arc<hostwright::engine::Engine>,
    seen: Arc<Mutex<Vec<String>>>,
) -> SocketAddr {
    let authn = Authenticator::new(
        Some(TOKEN.into()),
        None,
        FailureLimit {
            per_minute: NonZeroU32::new(60).unwrap(),
            burst: NonZeroU32::new(100).unwrap(),
        },
    );
    let app = hostwright::engine::api::router(engine, authn).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push(format!("{} {}", req.method(), req.uri().path()));
                next.run(req).await
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hostwright_tls::server::serve(
        listener,
        app,
        None,
        std::future::pending(),
    ));
    addr
}

async fn cli(addr: SocketAddr, token_file: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(args)
        .arg("--url")
        .arg(format!("http://{addr}"))
        .arg("--token-file")
        .arg(token_file)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn rerun_wait_polls_one_list_request_and_reports_one_shape() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let script = Script::new();
    // Each rule fails one FTP account call permanently (its job fails).
    script.push(rule("ftp_account", Behavior::Permanent, Some(1)));
    let engine = engine(&url, &script, fast_settings()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = serve(engine.clone(), seen.clone()).await;
    let workers = start_workers(&engine, "w", 2);

    let a = accepted(&engine, &sign(&keys(), &www_contract("C-8001", 1))).await;
    assert_eq!(wait_final(&engine, &a, 20).await, JobState::Failed);
    script.push(rule("ftp_account", Behavior::Permanent, Some(1)));
    let b = accepted(&engine, &sign(&keys(), &www_contract("C-8002", 1))).await;
    assert_eq!(wait_final(&engine, &b, 20).await, JobState::Failed);

    // ?ids= lists exactly those jobs.
    let v: Value = hostwright_tls::client()
        .get(format!("http://{addr}/v1/jobs?ids={a}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["job_id"], a.as_str());

    // Plain lines when stderr is not a terminal; the first rerun succeeds.
    seen.lock().unwrap().clear();
    let (code, out, err) = cli(addr, &token_file, &["jobs", "rerun", &a, "--wait"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("1/1 jobs ended"), "{err}");
    assert!(
        !err.contains('\r') && !err.contains('\x1b'),
        "no bar off a terminal: {err:?}"
    );
    assert!(out.contains(&a) && out.contains("succeeded"), "{out}");
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests.iter().all(|r| !r.starts_with("GET /v1/jobs/")),
        "one list request per poll, never one per job: {requests:?}"
    );
    assert!(requests.iter().any(|r| r == "GET /v1/jobs"), "{requests:?}");

    // --json: {"rerun": [...], "jobs": [...]}; a job that failed again: exit 1.
    script.push(rule("ftp_account", Behavior::Permanent, Some(1)));
    let (code, out, err) = cli(
        addr,
        &token_file,
        &["jobs", "rerun", &b, "--wait", "--json"],
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rerun"][0], b.as_str());
    assert_eq!(v["jobs"][0]["job_id"], b.as_str());
    assert_eq!(v["jobs"][0]["state"], "failed");
    assert!(err.is_empty(), "--json prints no progress: {err}");
    // Without --wait, the same shape with `jobs: null`.
    let (code, out, _) = cli(addr, &token_file, &["jobs", "rerun", &b, "--json"]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rerun"][0], b.as_str());
    assert!(v["jobs"].is_null());
    assert_eq!(wait_final(&engine, &b, 20).await, JobState::Succeeded);

    // --timeout: a failed job put back in the queue that no worker runs;
    // the wait gives up, exit 2, and says how many jobs have not ended.
    script.push(rule("ftp_account", Behavior::Permanent, Some(1)));
    let c = accepted(&engine, &sign(&keys(), &www_contract("C-8003", 1))).await;
    assert_eq!(wait_final(&engine, &c, 20).await, JobState::Failed);
    workers.stop(Duration::from_secs(2)).await;
    let started = std::time::Instant::now();
    let (code, out, err) = cli(
        addr,
        &token_file,
        &["jobs", "rerun", &c, "--wait", "--timeout", "1"],
    )
    .await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("gave up waiting after 1 s: 1 of 1 job(s)"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn the_jobs_page_filters_by_ids_on_both_back_ends() {
    use hostwright::engine::store::ops::JobsPage;
    for backend in BACKENDS {
        let (_dir, _script, engine) = fixture(backend, vec![]).await;
        let a = accepted(&engine, &sign(&keys(), &www_contract("C-8101", 1))).await;
        let b = accepted(&engine, &sign(&keys(), &www_contract("C-8102", 1))).await;
        let _c = accepted(&engine, &sign(&keys(), &www_contract("C-8103", 1))).await;
        let page = |ids: Vec<String>| JobsPage {
            limit: 10,
            ids,
            ..Default::default()
        };
        let got = engine
            .store
            .jobs_page(&page(vec![a.clone(), b.clone()]))
            .await
            .unwrap();
        let mut ids: Vec<_> = got.iter().map(|j| j.job_id.clone()).collect();
        ids.sort();
        let mut want = vec![a.clone(), b.clone()];
        want.sort();
        assert_eq!(ids, want, "{backend:?}");
        assert_eq!(
            engine.store.jobs_page(&page(vec![])).await.unwrap().len(),
            3
        );
        // A prefix of an id is not that id.
        let prefix = a[..8].to_string();
        assert!(
            engine
                .store
                .jobs_page(&page(vec![prefix]))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
