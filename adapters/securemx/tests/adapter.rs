//! The adapter against the real `securemx-mock` binary, started per test on a
//! free port with its own state file and key, serving HTTPS with a
//! certificate from a test CA (as in the compose stack).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hostwright_adapter::{Adapter, AdapterError, Observation, Resource, StepContext};
use hostwright_securemx::{SecureMxAdapter, SecureMxConfig};
use hostwright_tls::testca::TestCa;
use serde_json::{Value, json};

const KEY: &str = "0123456789abcdef0123456789abcdef";

struct Mock {
    child: Child,
    port: u16,
    dir: PathBuf,
    ca_file: PathBuf,
}

impl Drop for Mock {
    /// SIGTERM (the mock flushes its state and exits), SIGKILL after 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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

impl Mock {
    async fn start(dir: &Path, rate: &str, burst: Option<u32>) -> Mock {
        Self::start_on(dir, free_port(), rate, burst).await
    }

    async fn start_on(dir: &Path, port: u16, rate: &str, burst: Option<u32>) -> Mock {
        std::fs::write(dir.join("api-key"), format!("{KEY}\n")).unwrap();
        let ca = TestCa::new("securemx test CA");
        let ca_file = ca.write_ca(dir, "ca.pem");
        let tls = ca.write_server(dir, "mock");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_securemx-mock"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--state")
            .arg(dir.join("state.json"))
            .arg("--api-key-file")
            .arg(dir.join("api-key"))
            .arg("--rate-limit")
            .arg(rate)
            .arg("--tls-cert")
            .arg(&tls.cert_file)
            .arg("--tls-key")
            .arg(&tls.key_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(b) = burst {
            cmd.arg("--burst").arg(b.to_string());
        }
        let child = cmd.spawn().expect("securemx-mock starts");
        let mock = Mock {
            child,
            port,
            dir: dir.to_path_buf(),
            ca_file,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = mock
                .client()
                .get(format!("{}/healthz", mock.url()))
                .send()
                .await
                && r.status().is_success()
            {
                return mock;
            }
            assert!(Instant::now() < deadline, "securemx-mock did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn client(&self) -> reqwest::Client {
        TestCa::client(&self.ca_file)
    }

    fn adapter(&self) -> SecureMxAdapter {
        self.adapter_with_key(&self.dir.join("api-key"))
    }

    fn adapter_with_key(&self, key_file: &Path) -> SecureMxAdapter {
        self.adapter_trusting(key_file, &self.ca_file)
    }

    fn adapter_trusting(&self, key_file: &Path, ca_file: &Path) -> SecureMxAdapter {
        SecureMxAdapter::new(SecureMxConfig {
            base_url: self.url(),
            ca_file: Some(ca_file.to_path_buf()),
            api_key_file: key_file.to_path_buf(),
            concurrency: None,
            timeout_secs: Some(5),
            rate_limit_per_s: None,
            burst: None,
        })
        .unwrap()
    }

    async fn admin(&self, body: Value) {
        let r = self
            .client()
            .post(format!("{}/admin/faults", self.url()))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
}

fn ctx(step: &str) -> StepContext {
    StepContext {
        job_id: "job-1".into(),
        step_id: step.into(),
        attempt: 1,
    }
}

fn tenant(disk: u32, accounts: u32, options: &[&str]) -> Resource {
    Resource {
        kind: "mx_tenant".into(),
        key: "C-2001".into(),
        contract_id: "C-2001".into(),
        spec: json!({
            "tenant": "C-2001", "domains": ["kaede-design.jp"], "ips": ["203.0.113.25"],
            "administrator": {"name": "楓 デザイン", "email": "ops@kaede-design.jp"},
            "accounts_limit": accounts, "disk_units": disk, "options": options,
            "iij_id": null, "dox": null, "suspended": false,
        }),
    }
}

fn mailboxes(local_parts: Vec<String>) -> Resource {
    Resource {
        kind: "mx_mailboxes".into(),
        key: "C-2001".into(),
        contract_id: "C-2001".into(),
        spec: json!({"tenant": "C-2001", "domain": "kaede-design.jp", "local_parts": local_parts}),
    }
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i:04}")).collect()
}

fn permanent_message(e: AdapterError) -> String {
    match e {
        AdapterError::Permanent { message } => message,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[tokio::test]
async fn tenant_create_update_idempotent_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(dir.path(), "200/s", None).await;
    let a = mock.adapter();
    let out = a
        .ensure(&ctx("t"), &tenant(3, 15, &["mailing_list"]))
        .await
        .unwrap();
    assert_eq!(out.facts["tenant"], "C-2001");
    let again = a
        .ensure(&ctx("t"), &tenant(3, 15, &["mailing_list"]))
        .await
        .unwrap();
    assert_eq!(again.facts, out.facts, "ensure twice equals once");
    let mut suspended = tenant(4, 20, &["mailing_list", "archive"]);
    suspended.spec["suspended"] = json!(true);
    a.ensure(&ctx("t2"), &suspended).await.unwrap();
    match a.observe(&tenant(4, 20, &[])).await.unwrap() {
        Observation::Present { facts } => {
            assert_eq!(facts["disk_units"], 4);
            assert_eq!(facts["accounts_limit"], 20);
            assert_eq!(facts["suspended"], true);
            assert_eq!(facts["options"], json!(["archive", "mailing_list"]));
        }
        Observation::Absent => panic!("tenant missing"),
    }
    let r = a.remove(&ctx("rm"), &tenant(4, 20, &[])).await.unwrap();
    assert_eq!(r.facts["removed"], true);
    let r = a.remove(&ctx("rm"), &tenant(4, 20, &[])).await.unwrap();
    assert_eq!(r.facts["removed"], false, "removing what is gone succeeds");
    assert_eq!(
        a.observe(&tenant(4, 20, &[])).await.unwrap(),
        Observation::Absent
    );
}

#[tokio::test]
async fn refusals_are_permanent_and_name_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(dir.path(), "200/s", None).await;
    let a = mock.adapter();
    a.ensure(&ctx("t"), &tenant(3, 15, &[])).await.unwrap();
    let m = permanent_message(a.ensure(&ctx("t"), &tenant(2, 15, &[])).await.unwrap_err());
    assert!(m.contains("409") && m.contains("disk_not_reducible"), "{m}");
    let m = permanent_message(
        a.ensure(&ctx("t"), &tenant(3, 15, &["iij_id_link"]))
            .await
            .unwrap_err(),
    );
    assert!(
        m.contains("422") && m.contains("option_prerequisite") && m.contains("iij_id"),
        "{m}"
    );
    // Validated before anything is sent.
    let mut hostile = tenant(3, 15, &[]);
    hostile.spec["domains"] = json!(["kaede;rm -rf.jp"]);
    assert!(
        !a.ensure(&ctx("t"), &hostile)
            .await
            .unwrap_err()
            .is_transient()
    );
    let m = permanent_message(
        a.ensure(&ctx("m"), &mailboxes(vec!["Bad Name".into()]))
            .await
            .unwrap_err(),
    );
    assert!(m.contains("local part"), "{m}");
    // A spec for another contract's tenant is refused.
    let mut other = tenant(3, 15, &[]);
    other.contract_id = "C-9999".into();
    assert!(
        !a.ensure(&ctx("t"), &other)
            .await
            .unwrap_err()
            .is_transient()
    );
    // A mail domain of another tenant is refused by the provider.
    let mut rival = tenant(3, 15, &[]);
    rival.key = "C-2002".into();
    rival.contract_id = "C-2002".into();
    rival.spec["tenant"] = json!("C-2002");
    let m = permanent_message(a.ensure(&ctx("t"), &rival).await.unwrap_err());
    assert!(m.contains("409") && m.contains("domain_taken"), "{m}");
    // Too many mailboxes for the accounts limit.
    let m = permanent_message(
        a.ensure(&ctx("m"), &mailboxes(names(16)))
            .await
            .unwrap_err(),
    );
    assert!(m.contains("account_limit"), "{m}");
}

#[tokio::test]
async fn a_thousand_mailboxes_then_ten() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(dir.path(), "100000/s", Some(100000)).await;
    let a = mock.adapter();
    a.ensure(&ctx("t"), &tenant(3, 1000, &[])).await.unwrap();
    let started = Instant::now();
    let out = a.ensure(&ctx("m1"), &mailboxes(names(1000))).await.unwrap();
    let elapsed = started.elapsed();
    println!("created 1000 mailboxes in {elapsed:?}");
    assert_eq!(out.facts, json!({"mailboxes": 1000}));
    match a.observe(&mailboxes(vec![])).await.unwrap() {
        Observation::Present { facts } => assert_eq!(facts["mailboxes"], 1000),
        Observation::Absent => panic!("absent"),
    }
    // Again: nothing to do.
    let started = Instant::now();
    a.ensure(&ctx("m1"), &mailboxes(names(1000))).await.unwrap();
    println!(
        "ensure of 1000 existing mailboxes took {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let out = a.ensure(&ctx("m2"), &mailboxes(names(10))).await.unwrap();
    println!("reduced to 10 mailboxes in {:?}", started.elapsed());
    assert_eq!(out.facts, json!({"mailboxes": 10}));
    match a.observe(&mailboxes(vec![])).await.unwrap() {
        Observation::Present { facts } => {
            assert_eq!(facts["mailboxes"], 10);
            assert_eq!(facts["addresses"][0], "user0000@kaede-design.jp");
            assert_eq!(facts["addresses"][9], "user0009@kaede-design.jp");
        }
        Observation::Absent => panic!("absent"),
    }
    // With fewer mailboxes, the accounts limit can now go down.
    a.ensure(&ctx("t"), &tenant(3, 10, &[])).await.unwrap();
    a.remove(&ctx("rm"), &mailboxes(vec![])).await.unwrap();
    match a.observe(&mailboxes(vec![])).await.unwrap() {
        Observation::Present { facts } => assert_eq!(facts["mailboxes"], 0),
        Observation::Absent => panic!("absent"),
    }
}

#[tokio::test]
async fn rate_limit_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    // 4 requests at once, then 5 per second.
    let mock = Mock::start(dir.path(), "5/s", Some(4)).await;
    let a = mock.adapter();
    a.ensure(&ctx("t"), &tenant(3, 20, &[])).await.unwrap();
    let started = Instant::now();
    // 1 list + 8 creates = 9 requests: several 429s, each waited out here.
    let out = a.ensure(&ctx("m"), &mailboxes(names(8))).await.unwrap();
    println!("8 mailboxes under a 5/s limit in {:?}", started.elapsed());
    assert_eq!(out.facts["mailboxes"], 8);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the limit was not hit"
    );
}

#[tokio::test]
async fn a_long_rate_limit_wait_goes_back_to_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(dir.path(), "1/m", Some(1)).await;
    let a = mock.adapter();
    a.ensure(&ctx("t"), &tenant(3, 20, &[])).await.unwrap();
    match a.ensure(&ctx("t"), &tenant(3, 20, &[])).await.unwrap_err() {
        AdapterError::Transient {
            message,
            retry_after: Some(wait),
        } => {
            assert!(message.contains("429"), "{message}");
            assert!(wait >= Duration::from_secs(50), "{wait:?}");
        }
        other => panic!("expected transient with Retry-After, got {other:?}"),
    }
}

#[tokio::test]
async fn injected_503s_are_transient_and_the_next_call_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(dir.path(), "200/s", None).await;
    let a = mock.adapter();
    mock.admin(json!({"fail_next": 1, "status": 503, "retry_after": 2}))
        .await;
    match a.ensure(&ctx("t"), &tenant(3, 15, &[])).await.unwrap_err() {
        AdapterError::Transient {
            message,
            retry_after,
        } => {
            assert!(message.contains("503"), "{message}");
            assert_eq!(retry_after, Some(Duration::from_secs(2)));
        }
        other => panic!("expected transient, got {other:?}"),
    }
    a.ensure(&ctx("t"), &tenant(3, 15, &[])).await.unwrap();

    // A failure in the middle of a mailbox batch: the rerun finishes the job.
    a.ensure(&ctx("m"), &mailboxes(names(5))).await.unwrap();
    mock.admin(json!({"fail_next": 3, "status": 502})).await;
    let mut failures = 0;
    let out = loop {
        match a.ensure(&ctx("m"), &mailboxes(names(12))).await {
            Ok(out) => break out,
            Err(e) => {
                assert!(e.is_transient(), "{e:?}");
                failures += 1;
                assert!(failures <= 3, "more failures than were injected");
            }
        }
    };
    assert!(failures >= 1);
    assert_eq!(out.facts["mailboxes"], 12);
}

#[tokio::test]
async fn state_survives_a_mock_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    {
        let mock = Mock::start_on(dir.path(), port, "200/s", None).await;
        let a = mock.adapter();
        a.ensure(&ctx("t"), &tenant(3, 15, &["archive"]))
            .await
            .unwrap();
        a.ensure(&ctx("m"), &mailboxes(names(7))).await.unwrap();
    }
    let mock = Mock::start_on(dir.path(), port, "200/s", None).await;
    let a = mock.adapter();
    match a.observe(&mailboxes(vec![])).await.unwrap() {
        Observation::Present { facts } => assert_eq!(facts["mailboxes"], 7),
        Observation::Absent => panic!("mailboxes lost in the restart"),
    }
    let m = permanent_message(a.ensure(&ctx("t"), &tenant(2, 15, &[])).await.unwrap_err());
    assert!(m.contains("disk_not_reducible"), "{m}");
}

#[tokio::test]
async fn a_wrong_api_key_is_permanent_and_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(dir.path(), "200/s", None).await;
    let wrong = dir.path().join("wrong-key");
    std::fs::write(&wrong, "not-the-key-SENTINEL\n").unwrap();
    let a = mock.adapter_with_key(&wrong);
    let m = permanent_message(a.ensure(&ctx("t"), &tenant(3, 15, &[])).await.unwrap_err());
    assert!(m.contains("401") && m.contains("unauthorized"), "{m}");
    assert!(!m.contains("SENTINEL"), "{m}");
}

#[tokio::test]
async fn an_api_whose_certificate_is_not_from_our_ca_is_a_permanent_error() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(dir.path(), "100/s", None).await;
    let other = TestCa::new("not the provider's CA").write_ca(dir.path(), "other.pem");
    let a = mock.adapter_trusting(&dir.path().join("api-key"), &other);
    let e = a.ensure(&ctx("t"), &tenant(3, 15, &[])).await.unwrap_err();
    assert!(!e.is_transient(), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("not trusted") && m.contains("ca_file"), "{m}");
    assert!(!m.contains(KEY), "{m}");
}

#[tokio::test]
async fn an_unreachable_api_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-key"), KEY).unwrap();
    let a = SecureMxAdapter::new(SecureMxConfig {
        base_url: format!("http://127.0.0.1:{}", free_port()),
        ca_file: None,
        api_key_file: dir.path().join("api-key"),
        concurrency: Some(4),
        timeout_secs: Some(2),
        rate_limit_per_s: None,
        burst: None,
    })
    .unwrap();
    let e = a.ensure(&ctx("t"), &tenant(3, 15, &[])).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
}

/// A revision that lowers the account limit and drops mailboxes in one go:
/// the API refuses a limit below the mailboxes that exist, so the tenant step
/// retires the dropped mailboxes first (and creates none).
#[tokio::test]
async fn lowering_the_limit_with_fewer_mailboxes_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(dir.path(), "200/s", None).await;
    let a = mock.adapter();
    a.ensure(&ctx("t1"), &tenant(1, 15, &[])).await.unwrap();
    a.ensure(&ctx("m1"), &mailboxes(names(12))).await.unwrap();

    // Without the list, the API refuses: the refusal the fix is about.
    let e = a.ensure(&ctx("t2"), &tenant(1, 10, &[])).await.unwrap_err();
    assert!(!e.is_transient(), "{e:?}");

    let keep: Vec<String> = names(8)
        .into_iter()
        .map(|lp| format!("{lp}@kaede-design.jp"))
        .collect();
    let mut lower = tenant(1, 10, &[]);
    lower.spec["mailboxes"] = json!(keep);
    let out = a.ensure(&ctx("t3"), &lower).await.unwrap();
    assert_eq!(out.facts["accounts_limit"], 10);
    let out = a.ensure(&ctx("m2"), &mailboxes(names(8))).await.unwrap();
    assert_eq!(out.facts["mailboxes"], 8);

    // A hostile address in the list is refused before any call.
    let mut bad = tenant(1, 10, &[]);
    bad.spec["mailboxes"] = json!(["x;rm -rf /@kaede-design.jp"]);
    assert!(!a.ensure(&ctx("t4"), &bad).await.unwrap_err().is_transient());
}
