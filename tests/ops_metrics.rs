//! What an operator's dashboards read: build info, intake outcomes, job
//! duration, the age of the oldest queued and failed job, HTTP requests by
//! route pattern and status; and the access log line with its request id,
//! answered in `X-Request-Id`.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hostwright::engine::auth::{Authenticator, FailureLimit};
use hostwright::engine::scripted::{Behavior, Script};
use hostwright::engine::store::JobState;

const TOKEN: &str = "ops-token-for-metrics";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_and_the_access_log_tell_an_operator_what_happens() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let script = Script::new();
    script.push(rule("ftp_account", Behavior::Permanent, Some(1)));
    let engine = engine(&url, &script, fast_settings()).await;
    let authn = Authenticator::new(
        Some(TOKEN.into()),
        None,
        FailureLimit {
            per_minute: NonZeroU32::new(60).unwrap(),
            burst: NonZeroU32::new(100).unwrap(),
        },
    );
    let app = hostwright::engine::api::router(engine.clone(), authn);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(hostwright_tls::server::serve(
        listener,
        app,
        None,
        std::future::pending(),
    ));
    let http = hostwright_tls::client();
    let base = format!("http://{addr}");

    // One job fails (run by workers), then one waits in the queue (none run).
    let workers = start_workers(&engine, "w", 1);
    let resp = http
        .post(format!("{base}/v1/contracts"))
        .body(sign(&keys(), &www_contract("C-9001", 1)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let failed: serde_json::Value = resp.json().await.unwrap();
    let failed = failed["job_id"].as_str().unwrap().to_string();
    assert_eq!(wait_final(&engine, &failed, 20).await, JobState::Failed);
    workers.stop(Duration::from_secs(2)).await;
    let mut bad = www_contract("C-9002", 1);
    bad["service"] = "mail_secure_mx".into();
    let resp = http
        .post(format!("{base}/v1/contracts"))
        .body(sign(&keys(), &bad))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let resp = http
        .post(format!("{base}/v1/contracts"))
        .body(sign(&keys(), &www_contract("C-9003", 1)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    // Request ids: the caller's when it is a plain token, else a new one.
    let resp = http
        .get(format!("{base}/v1/jobs/no-such-job"))
        .bearer_auth(TOKEN)
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-request-id"], "trace-42");
    let resp = http
        .get(format!("{base}/no/such/route"))
        .header("x-request-id", "bad id\twith spaces")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.lines().any(|l| l.starts_with("hostwright_build_info{")
            && l.contains(version)
            && l.ends_with(" 1")),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "hostwright_intake_outcomes_total{outcome=\"accepted\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "hostwright_intake_outcomes_total{outcome=\"rejected\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "hostwright_job_duration_seconds_count{outcome=\"failed\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(&text, "hostwright_oldest_queued_job_age_seconds").unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        value(&text, "hostwright_oldest_failed_job_age_seconds").unwrap() >= 1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "hostwright_http_requests_total{method=\"POST\",route=\"/v1/contracts\",status=\"202\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "hostwright_http_requests_total{method=\"GET\",route=\"/v1/jobs/{id}\",status=\"404\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "hostwright_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ),
        Some(1.0),
        "{text}"
    );

    // One access line per request, with its id, route and status; never
    // the token.
    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains("request_id=trace-42"))
        .unwrap_or_else(|| panic!("no access line for trace-42:\n{logged}"));
    assert!(
        line.contains("access") && line.contains("status=404"),
        "{line}"
    );
    assert!(line.contains("route=/v1/jobs/{id}"), "{line}");
    assert!(
        logged.contains(&format!("request_id={generated}")),
        "{logged}"
    );
    assert!(!logged.contains(TOKEN), "the token was logged");
}
