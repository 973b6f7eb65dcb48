//! The billing sink binary driven by the real `Reporter`, over HTTPS with a
//! certificate from a test CA (as in the compose stack).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hostwright_adapter::Secret;
use hostwright_billing::{DeliveryError, Reporter};
use hostwright_tls::testca::TestCa;
use serde_json::{Value, json};

const SECRET: &str = "shared-secret-for-tests";

struct Sink {
    child: Child,
    port: u16,
    /// The CA that signed this sink's certificate.
    ca_file: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sink {
    async fn start(dir: &Path, port: u16) -> Sink {
        std::fs::write(dir.join("secret"), format!("{SECRET}\n")).unwrap();
        let ca = TestCa::new("billing test CA");
        let ca_file = ca.write_ca(dir, "ca.pem");
        let tls = ca.write_server(dir, "sink");
        let child = Command::new(env!("CARGO_BIN_EXE_billing-sink"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--secret-file")
            .arg(dir.join("secret"))
            .arg("--store")
            .arg(dir.join("reports.jsonl"))
            .arg("--tls-cert")
            .arg(&tls.cert_file)
            .arg("--tls-key")
            .arg(&tls.key_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("billing-sink starts");
        let sink = Sink {
            child,
            port,
            ca_file,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = sink
                .client()
                .get(format!("{}/healthz", sink.base()))
                .send()
                .await
                && r.status().is_success()
            {
                return sink;
            }
            assert!(Instant::now() < deadline, "billing-sink did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn base(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn client(&self) -> reqwest::Client {
        TestCa::client(&self.ca_file)
    }

    fn endpoint(&self) -> String {
        format!("{}/v1/billable-states", self.base())
    }

    fn reporter(&self, secret: &str) -> Reporter {
        Reporter::new(
            self.endpoint(),
            Secret::new(secret),
            Duration::from_secs(5),
            Some(&self.ca_file),
        )
        .unwrap()
    }

    async fn records(&self) -> Vec<Value> {
        let v: Value = self
            .client()
            .get(self.endpoint())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["records"].as_array().unwrap().clone()
    }

    async fn admin(&self, body: Value) {
        let r = self
            .client()
            .post(format!("{}/admin/fail", self.base()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

fn report(contract: &str, total: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"contract_id": contract, "billable": {"monthly_total": total}}))
        .unwrap()
}

fn dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().to_path_buf();
    (d, p)
}

#[tokio::test]
async fn delivery_and_duplicate_suppression() {
    let (_d, path) = dir();
    let sink = Sink::start(&path, free_port()).await;
    let r = sink.reporter(SECRET);
    let first = r
        .deliver("job-1/report", &report("C-1", "5000"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    let again = r
        .deliver("job-1/report", &report("C-1", "5000"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.receipt_id, first.receipt_id);
    let other = r
        .deliver("job-2/report", &report("C-1", "6000"))
        .await
        .unwrap();
    assert_ne!(other.receipt_id, first.receipt_id);
    let records = sink.records().await;
    assert_eq!(records.len(), 2, "a repeat is not stored twice");
    assert_eq!(records[0]["body"]["billable"]["monthly_total"], "5000");
    assert_eq!(records[1]["idempotency_key"], "job-2/report");
    // The same key with another report is refused, not silently merged.
    let e = r
        .deliver("job-1/report", &report("C-1", "9999"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, DeliveryError::Refused { status: 409, .. }),
        "{e}"
    );
    assert!(!e.is_transient());
}

#[tokio::test]
async fn bad_signature_and_missing_key_are_permanent() {
    let (_d, path) = dir();
    let sink = Sink::start(&path, free_port()).await;
    let e = sink
        .reporter("the-wrong-secret")
        .deliver("k1", &report("C-1", "1"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, DeliveryError::Refused { status: 401, .. }),
        "{e}"
    );
    assert!(!e.is_transient());
    let body = report("C-1", "1");
    let resp = sink
        .client()
        .post(sink.endpoint())
        .header(
            "x-hostwright-signature",
            hostwright_billing::sign(SECRET.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(sink.records().await.is_empty());
}

#[tokio::test]
async fn outage_is_transient_then_delivered_after_recovery() {
    let (_d, path) = dir();
    let sink = Sink::start(&path, free_port()).await;
    let r = sink.reporter(SECRET);
    sink.admin(json!({"down": true})).await;
    for _ in 0..2 {
        let e = r
            .deliver("job-3/report", &report("C-3", "100"))
            .await
            .unwrap_err();
        assert!(e.is_transient(), "{e}");
    }
    sink.admin(json!({"down": false})).await;
    sink.admin(json!({"status": 502, "count": 1})).await;
    let e = r
        .deliver("job-3/report", &report("C-3", "100"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, DeliveryError::Refused { status: 502, .. }),
        "{e}"
    );
    let receipt = r
        .deliver("job-3/report", &report("C-3", "100"))
        .await
        .unwrap();
    assert!(!receipt.duplicate);
    assert_eq!(sink.records().await.len(), 1);
}

#[tokio::test]
async fn unreachable_billing_is_transient() {
    let r = Reporter::new(
        format!("http://127.0.0.1:{}/v1/billable-states", free_port()),
        Secret::new(SECRET),
        Duration::from_secs(2),
        None,
    )
    .unwrap();
    let e = r.deliver("k", &report("C-1", "1")).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Unreachable(_)), "{e}");
    assert!(e.is_transient());
}

#[tokio::test]
async fn a_sink_signed_by_another_ca_is_a_permanent_certificate_error() {
    let (_d, path) = dir();
    let sink = Sink::start(&path, free_port()).await;
    let other = TestCa::new("not billing's CA").write_ca(&path, "other.pem");
    let r = Reporter::new(
        sink.endpoint(),
        Secret::new(SECRET),
        Duration::from_secs(5),
        Some(&other),
    )
    .unwrap();
    let e = r.deliver("k", &report("C-1", "1")).await.unwrap_err();
    assert!(matches!(e, DeliveryError::Certificate(_)), "{e}");
    assert!(!e.is_transient());
    assert!(e.to_string().contains("not trusted"), "{e}");
    assert!(sink.records().await.is_empty());
}

#[test]
fn an_endpoint_must_be_http_or_https() {
    let e = Reporter::new(
        "ftp://billing.example/x".into(),
        Secret::new(SECRET),
        Duration::from_secs(1),
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("http:// or https://"), "{e}");
}

#[tokio::test]
async fn records_survive_a_restart() {
    let (_d, path) = dir();
    let port = free_port();
    let first = {
        let sink = Sink::start(&path, port).await;
        sink.reporter(SECRET)
            .deliver("job-4/report", &report("C-4", "700"))
            .await
            .unwrap()
    };
    let sink = Sink::start(&path, port).await;
    let records = sink.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["receipt_id"], first.receipt_id.as_str());
    let again = sink
        .reporter(SECRET)
        .deliver("job-4/report", &report("C-4", "700"))
        .await
        .unwrap();
    assert!(again.duplicate, "the key is remembered across restarts");
    assert_eq!(again.receipt_id, first.receipt_id);
    let next = sink
        .reporter(SECRET)
        .deliver("job-5/report", &report("C-5", "1"))
        .await
        .unwrap();
    assert_ne!(
        next.receipt_id, first.receipt_id,
        "receipt ids are not reused"
    );
}

#[tokio::test]
async fn a_torn_last_line_is_dropped() {
    let (_d, path) = dir();
    let port = free_port();
    {
        let sink = Sink::start(&path, port).await;
        sink.reporter(SECRET)
            .deliver("k1", &report("C-1", "1"))
            .await
            .unwrap();
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path.join("reports.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"receipt_id\":\"rc").unwrap();
    drop(f);
    {
        let sink = Sink::start(&path, port).await;
        assert_eq!(sink.records().await.len(), 1);
        sink.reporter(SECRET)
            .deliver("k2", &report("C-2", "2"))
            .await
            .unwrap();
    }
    // The record after the torn line is intact on the next start.
    let sink = Sink::start(&path, port).await;
    let records = sink.records().await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["idempotency_key"], "k2");
}
