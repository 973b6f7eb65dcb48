//! Crash recovery with real processes: a `hostwright serve` worker process is
//! killed with SIGKILL in the middle of a step, a second process takes the job
//! over when the lease expires, and every resource ends up created exactly once.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use hostwright::engine::scripted::{Call, read_log};

fn write_config(dir: &Path, store_url: &str, port: u16) -> std::path::PathBuf {
    write_scripted_config(
        dir,
        store_url,
        port,
        "test-ops-token",
        r#"
[workers]
concurrency = 2
lease_seconds = 2
poll_interval_ms = 50
step_timeout_seconds = 30
shutdown_grace_seconds = 2

[adapters.scripted]
log = "calls.jsonl"
control_file = "control.json"
"#,
    )
}

/// The calls the serve processes logged so far. A line still being written
/// is left for the next look; a torn line (two writes mixed) fails the test
/// with what it was, as it would make every count below wrong.
fn calls(dir: &Path) -> Vec<Call> {
    let log = read_log(&dir.join("calls.jsonl")).unwrap();
    assert_eq!(
        log.torn,
        0,
        "the scripted call log has torn lines: {:?}",
        std::fs::read_to_string(dir.join("calls.jsonl"))
    );
    log.calls
}

#[tokio::test]
async fn kill_9_mid_step_then_another_process_finishes_the_job_exactly_once() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        // The first process stalls in the vhost step; we kill it there.
        std::fs::write(
            dir.path().join("control.json"),
            r#"[{"kind": "vhost", "do": "hang", "ms": 60000, "times": 1}]"#,
        )
        .unwrap();
        let port = free_port();
        let config = write_config(dir.path(), &url, port);
        let mut first = Serve::start(&config);
        wait_http(port, "/healthz").await;

        let body = sign(&keys(), &www_contract("C-K001", 1));
        let resp = hostwright_tls::client()
            .post(format!("http://127.0.0.1:{port}/v1/contracts"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{backend:?}");
        let job: serde_json::Value = resp.json().await.unwrap();
        let job_id = job["job_id"].as_str().unwrap().to_string();

        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !calls(dir.path())
            .iter()
            .any(|c| c.kind == "vhost" && c.op == "hang")
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "vhost step never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The FTP accounts do not wait for the vhost (the playbook's
        // `after`): they run beside the hung step. Kill only once the journal
        // holds every other step as succeeded, so what counts as "finished
        // before the kill" is exact (a step killed between its adapter call
        // and its journal entry would rightly run again).
        let client = hostwright_tls::client();
        loop {
            let base = format!("http://127.0.0.1:{port}");
            let d = job_detail(&client, &base, "test-ops-token", &job_id).await;
            let steps = d["steps"].as_array().cloned().unwrap_or_default();
            let others_done = !steps.is_empty()
                && steps
                    .iter()
                    .filter(|s| s["step"]["resource"]["kind"] != "vhost")
                    .all(|s| s["state"] == "succeeded");
            if others_done {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend:?}: the steps beside the vhost did not finish: {d}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        first.kill_9();

        let port2 = free_port();
        let config2 = write_config(dir.path(), &url, port2);
        let mut second = Serve::start(&config2);
        wait_http(port2, "/healthz").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let detail = loop {
            let base = format!("http://127.0.0.1:{port2}");
            let d = job_detail(&client, &base, "test-ops-token", &job_id).await;
            if d["summary"]["state"] == "succeeded" {
                break d;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend:?}: job did not finish: {d}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        second.kill_9();

        // Steps finished before the kill were not redone; the killed step ran
        // again; nothing was created twice (creations are per process memory,
        // so count ensures of finished steps instead).
        let all = calls(dir.path());
        let count = |kind: &str| {
            all.iter()
                .filter(|c| c.kind == kind && c.op == "ensure")
                .count()
        };
        assert_eq!(count("webspace"), 1, "{backend:?}: {all:?}");
        assert_eq!(count("dns_zone"), 1, "{backend:?}");
        assert_eq!(
            count("vhost"),
            1,
            "{backend:?}: the killed call never completed; the rerun did, once"
        );
        assert_eq!(
            count("ftp_account"),
            3,
            "{backend:?}: three accounts, once each"
        );
        let attempts = detail["attempts"].as_array().unwrap();
        assert!(
            attempts
                .iter()
                .any(|a| a["outcome"].is_null() || a["outcome"].get("abandoned").is_some()),
            "{backend:?}: the killed attempt is journaled as abandoned: {attempts:?}"
        );
    }
}
