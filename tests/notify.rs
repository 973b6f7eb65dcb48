//! Webhook notifications end to end, with a receiver in the test (axum on
//! loopback), on both store back ends:
//! - a failed job, a refused contract and a job that succeeded after its
//!   failure each reach the receiver once, signed (HMAC-SHA256 over
//!   `timestamp.body`, verified here as docs/notifications.md tells a
//!   receiver to), with the idempotency key the body names;
//! - while the receiver is down (nothing listens) the event waits in the
//!   outbox and is delivered once it is back;
//! - a receiver that took an event but failed to answer gets it again with
//!   the same idempotency key (at least once);
//! - the metrics count what happened;
//! - `serve`'s drift scan announces each new finding once (`drift_found`,
//!   with the finding's fields), not on every scan.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use hostwright::engine::intake::IntakeResult;
use hostwright::engine::notify::{self, EndpointConfig, Event, Notifier, Webhooks};
use hostwright::engine::scripted::Behavior;
use hostwright::engine::store::JobState;
use serde_json::Value;

const SECRET: &str = "webhook-secret-for-tests";

#[derive(Clone, Debug)]
struct Received {
    key: String,
    event: String,
    signature_ok: bool,
    body: Value,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Take the next this many requests, then answer 503 (the receiver
    /// crashed before its answer).
    fail_after_taking: Arc<Mutex<u32>>,
}

impl Receiver {
    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
    fn of(&self, event: &str) -> Vec<Received> {
        self.got()
            .into_iter()
            .filter(|r| r.event == event)
            .collect()
    }
    async fn wait_for(&self, event: &str, n: usize, secs: u64) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.of(event);
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{event}: {} of {n} deliveries after {secs} s: {:?}",
                got.len(),
                self.got()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    axum::extract::State(r): axum::extract::State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let signature_ok = notify::verify(
        SECRET.as_bytes(),
        &h(notify::TIMESTAMP_HEADER),
        &body,
        &h(notify::SIGNATURE_HEADER),
    );
    r.got.lock().unwrap().push(Received {
        key: h(notify::IDEMPOTENCY_HEADER),
        event: h(notify::EVENT_HEADER),
        signature_ok,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let mut fail = r.fail_after_taking.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::NO_CONTENT
}

/// Serves the receiver on `addr` until the handle is aborted.
async fn serve_receiver(addr: SocketAddr, r: Receiver) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

fn metric(text: &str, event: &str, outcome: &str) -> u64 {
    let needle =
        format!("hostwright_notifications_total{{event=\"{event}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

#[tokio::test]
async fn each_event_reaches_the_receiver_once_signed_and_again_after_it_was_down() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let secret_file = dir.path().join("hook.secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();

        let addr: SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let receiver = Receiver::default();
        let mut server = serve_receiver(addr, receiver.clone()).await;

        let endpoints: BTreeMap<Event, EndpointConfig> = Event::ALL
            .into_iter()
            .map(|e| {
                (
                    e,
                    EndpointConfig {
                        url: format!("http://{addr}/hook"),
                        ca_file: None,
                        secret_file: secret_file.clone(),
                        timeout_seconds: 5,
                    },
                )
            })
            .collect();
        let hooks = Arc::new(Webhooks::new(&endpoints).unwrap());
        let script = hostwright::engine::scripted::Script::new();
        script.push(rule("ftp_account", Behavior::Permanent, Some(1)));
        let engine =
            engine_notifying(&url, &script, fast_settings(), Notifier::new(Event::ALL)).await;
        let workers = start_workers(&engine, "w", 2);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let notifier = tokio::spawn(hostwright::engine::outbox::run_notifier(
            engine.clone(),
            hooks,
            stop_rx,
        ));

        // A job fails: job_failed, once, signed.
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-7001", 1))).await;
        assert_eq!(wait_final(&engine, &job, 20).await, JobState::Failed);
        let failed = receiver.wait_for("job_failed", 1, 10).await;
        let f = &failed[0];
        assert!(f.signature_ok, "{backend:?}: {f:?}");
        assert_eq!(f.body["event"], "job_failed");
        assert_eq!(f.body["id"], f.key.as_str());
        assert!(
            f.key.starts_with(&format!("job_failed:{job}:")),
            "{}",
            f.key
        );
        assert_eq!(f.body["data"]["job_id"], job.as_str());
        assert_eq!(f.body["data"]["contract_id"], "C-7001");
        assert!(
            f.body["data"]["error"]
                .as_str()
                .unwrap()
                .contains("scripted permanent")
        );

        // A contract refused against the terms: contract_refused with findings.
        let mut bad = www_contract("C-7002", 1);
        bad["service"] = "mail_secure_mx".into();
        let body = sign(&keys(), &bad);
        assert!(matches!(
            engine.intake(&body, chrono::Utc::now()).await.unwrap(),
            IntakeResult::Rejected { .. }
        ));
        let refused = receiver.wait_for("contract_refused", 1, 10).await;
        assert!(refused[0].signature_ok);
        assert_eq!(refused[0].body["data"]["contract_id"], "C-7002");
        assert!(
            refused[0].body["data"]["findings"]
                .as_array()
                .is_some_and(|f| !f.is_empty())
        );
        // The same body refused again is the same refusal: not announced twice.
        engine.intake(&body, chrono::Utc::now()).await.unwrap();

        // The receiver goes down; the job is rerun and succeeds: its
        // job_recovered waits in the outbox, retried, until the receiver is
        // back, and arrives once.
        server.abort();
        let _ = (&mut server).await;
        engine.store.rerun(&job, "token:tanaka").await.unwrap();
        engine.wake_workers();
        assert_eq!(wait_final(&engine, &job, 20).await, JobState::Succeeded);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while metric(
            &engine.metrics.render(&Default::default()),
            "job_recovered",
            "retry",
        ) == 0
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no failed delivery while down"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(receiver.of("job_recovered").is_empty());
        let stats = engine.store.stats().await.unwrap();
        assert_eq!(stats.notify_backlog, 1, "{backend:?}");

        // Back up, but it takes the next delivery and fails to answer: it
        // gets it again, with the same key.
        *receiver.fail_after_taking.lock().unwrap() = 1;
        let server = serve_receiver(addr, receiver.clone()).await;
        let recovered = receiver.wait_for("job_recovered", 2, 20).await;
        assert_eq!(recovered.len(), 2);
        assert_eq!(recovered[0].key, recovered[1].key);
        assert_eq!(recovered[0].key, format!("job_recovered:{job}"));
        assert!(recovered.iter().all(|r| r.signature_ok));
        assert_eq!(recovered[0].body, recovered[1].body, "the same event");
        assert_eq!(recovered[0].body["data"]["rerun_by"], "token:tanaka");

        // Everything delivered, nothing more comes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while engine.store.stats().await.unwrap().notify_backlog > 0 {
            assert!(tokio::time::Instant::now() < deadline, "backlog stays");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(receiver.of("job_failed").len(), 1, "{backend:?}");
        assert_eq!(receiver.of("contract_refused").len(), 1, "{backend:?}");
        assert_eq!(receiver.of("job_recovered").len(), 2, "{backend:?}");
        let text = engine.metrics.render(&engine.store.stats().await.unwrap());
        assert_eq!(metric(&text, "job_failed", "delivered"), 1, "{text}");
        assert_eq!(metric(&text, "contract_refused", "delivered"), 1);
        assert_eq!(metric(&text, "job_recovered", "delivered"), 1);
        assert!(metric(&text, "job_recovered", "retry") >= 2);
        assert!(text.contains("hostwright_notify_backlog 0"), "{text}");

        let _ = stop_tx.send(true);
        let _ = notifier.await;
        server.abort();
        workers.stop(Duration::from_secs(2)).await;
    }
}

/// `drift_found`: each finding a scan sees for the first time is announced
/// once, signed, with the finding's fields; the same finding on the next
/// scans is not announced again, a new one is, and one that went away and
/// came back is new again.
#[tokio::test]
async fn each_new_drift_finding_is_announced_once() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let secret_file = dir.path().join("hook.secret");
        std::fs::write(&secret_file, SECRET).unwrap();
        let addr: SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let receiver = Receiver::default();
        let server = serve_receiver(addr, receiver.clone()).await;
        let endpoints = BTreeMap::from([(
            Event::DriftFound,
            EndpointConfig {
                url: format!("http://{addr}/hook"),
                ca_file: None,
                secret_file: secret_file.clone(),
                timeout_seconds: 5,
            },
        )]);
        let hooks = Arc::new(Webhooks::new(&endpoints).unwrap());
        let script = hostwright::engine::scripted::Script::new();
        let engine = engine_notifying(
            &url,
            &script,
            fast_settings(),
            Notifier::new([Event::DriftFound]),
        )
        .await;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let notifier = tokio::spawn(hostwright::engine::outbox::run_notifier(
            engine.clone(),
            hooks,
            stop_rx,
        ));
        let job = accepted(&engine, &sign(&keys(), &www_contract("C-7101", 1))).await;
        let workers = start_workers(&engine, "w", 2);
        assert_eq!(wait_final(&engine, &job, 20).await, JobState::Succeeded);
        workers.stop(Duration::from_secs(2)).await;
        assert!(engine.reconcile(false).await.unwrap().is_clean());

        // A vhost disappears behind the engine's back: two scans, one event.
        let all = script.resources();
        let vhost = all.keys().find(|(k, _)| k == "vhost").cloned().unwrap();
        let (ws_key, ws_spec) = all
            .iter()
            .find(|((k, _), _)| k == "webspace")
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap();
        script.tamper(&vhost.0, &vhost.1, None);
        let first = engine.reconcile(false).await.unwrap();
        assert_eq!(first.findings.len(), 1, "{backend:?}");
        engine.reconcile(false).await.unwrap();
        let got = receiver.wait_for("drift_found", 1, 10).await;
        let d = &got[0];
        assert!(d.signature_ok, "{backend:?}: {d:?}");
        assert_eq!(d.body["event"], "drift_found");
        assert_eq!(d.body["id"], d.key.as_str());
        assert!(d.key.starts_with("drift_found:"), "{}", d.key);
        let data = &d.body["data"];
        assert_eq!(data["contract_id"], "C-7101");
        assert_eq!(data["revision"], 1);
        assert_eq!(data["kind"], "vhost");
        assert_eq!(data["key"], vhost.1.as_str());
        assert_eq!(data["state"], "missing");
        assert_eq!(data["adapter"], first.findings[0].adapter.as_str());
        assert_eq!(data["host"], first.findings[0].host.as_str());
        assert_eq!(data["says"], first.findings[0].says.as_str());
        assert!(data["differences"].as_array().unwrap().is_empty());
        assert_eq!(
            data["scanned_at"],
            serde_json::to_value(first.scanned_at).unwrap()
        );

        // A second finding joins: only it is announced, with its differences.
        let mut changed = ws_spec.clone();
        changed["quota_mb"] = 1.into();
        script.tamper(&ws_key.0, &ws_key.1, Some(changed));
        assert_eq!(engine.reconcile(false).await.unwrap().findings.len(), 2);
        let got = receiver.wait_for("drift_found", 2, 10).await;
        assert_eq!(got[1].body["data"]["kind"], "webspace");
        assert_eq!(got[1].body["data"]["state"], "changed");
        assert_eq!(got[1].body["data"]["differences"][0]["field"], "quota_mb");

        // Both repaired: nothing announced; the vhost goes again: new again.
        engine.reconcile(true).await.unwrap();
        assert!(engine.reconcile(false).await.unwrap().is_clean());
        script.tamper(&vhost.0, &vhost.1, None);
        engine.reconcile(false).await.unwrap();
        let got = receiver.wait_for("drift_found", 3, 10).await;
        assert_eq!(got[2].body["data"]["key"], vhost.1.as_str());
        assert_ne!(got[2].key, got[0].key, "a new appearance, a new event");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(receiver.of("drift_found").len(), 3, "{backend:?}");

        let _ = stop_tx.send(true);
        let _ = notifier.await;
        server.abort();
    }
}

#[test]
fn a_bad_secret_file_or_url_stops_the_start_naming_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut endpoints = BTreeMap::new();
    endpoints.insert(
        Event::JobFailed,
        EndpointConfig {
            url: "https://hooks.example/x".into(),
            ca_file: None,
            secret_file: dir.path().join("missing"),
            timeout_seconds: 5,
        },
    );
    let e = Webhooks::new(&endpoints).err().unwrap().to_string();
    assert!(e.starts_with("notify.job_failed.secret_file"), "{e}");
    endpoints.get_mut(&Event::JobFailed).unwrap().url = "ftp://x".into();
    let e = Webhooks::new(&endpoints).err().unwrap().to_string();
    assert!(e.starts_with("notify.job_failed.url"), "{e}");
}
