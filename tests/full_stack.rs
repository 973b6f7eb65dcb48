//! The whole engine against the real local backends: a `hostwright serve`
//! process configured with the real adapters (web host over SSH with nginx and
//! pure-ftpd, BIND, the Secure MX mock, the billing sink; all started by
//! `scripts/testenv/up.sh`) takes a Pack contract through its life: provision,
//! suspend (第20条), resume, terminate (第25条). Every check is made with a real
//! client from outside: curl over HTTP and FTP, dig against BIND, the mock's
//! API and the sink's record.
//!
//! The contract is the `pack-dns` example with a fresh id and domain, so runs
//! never collide with one another or with what an earlier run left behind.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use hostwright_adapter::testenv::{Sections, adapters_toml, var};
use serde_json::Value;

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    write_keys(dir, "full-stack-token");
    let cfg = format!(
        r#"
data_dir = "data"
playbooks = "{playbooks}"

[store]
url = "sqlite:jobs.db"

[api]
listen = "127.0.0.1:{port}"
ops_token_file = "ops-token"

[intake]
trusted_keys = "trusted-keys.toml"

[workers]
concurrency = 4
lease_seconds = 30
poll_interval_ms = 50
step_timeout_seconds = 120
shutdown_grace_seconds = 5

[provisioning]
web_ipv4 = "192.0.2.80"
mx = ["10 mx1.securemx.example."]
spf = "v=spf1 include:spf.securemx.example ~all"
ttl = 300

[billing]
endpoint = "{billing_url}"
secret_file = "{billing_secret}"

{adapters}
"#,
        playbooks = repo().join("playbooks").display(),
        billing_url = var("HW_BILLING_URL"),
        billing_secret = var("HW_BILLING_SECRET_FILE"),
        adapters = adapters_toml(&Sections {
            uids: (62000, 62999),
            ftp_and_dns: true,
            securemx: true,
        })
        .unwrap(),
    );
    let path = dir.join("hostwright.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// The example Pack contract at `file`, renamed to this run's id and domain.
fn contract(file: &str, id: &str, domain: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("examples/contracts").join(file)).unwrap();
    let text = text
        .replace("C-3001", id)
        .replace("CU-0003", &format!("CU-{id}"))
        .replace("tanaka-clinic.com", domain);
    serde_json::from_str(&text).unwrap()
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.stderr(Stdio::null()).output().expect("command runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// HTTP status and body of the site for `host` on the test nginx.
fn http(host: &str) -> (String, String) {
    let (_, out) = run(Command::new("curl")
        .args(["-s", "-m", "5", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Host: {host}"))
        .arg(format!("http://127.0.0.1:{}/", var("HW_WEB_HTTP_PORT"))));
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code.to_string(), body.to_string())
}

/// What BIND serves authoritatively for `name`/`rtype`.
fn dig(name: &str, rtype: &str) -> (String, Vec<String>) {
    let server = var("HW_DNS_SERVER");
    let (addr, port) = server.rsplit_once(':').unwrap();
    let (_, out) = run(Command::new("dig")
        .args(["+norec", "+time=2", "+tries=1", "-p", port])
        .arg(format!("@{addr}"))
        .args([name, rtype]));
    let status = out
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap().to_string())
        .unwrap_or_default();
    let (_, short) = run(Command::new("dig")
        .args(["+norec", "+short", "+time=2", "+tries=1", "-p", port])
        .arg(format!("@{addr}"))
        .args([name, rtype]));
    (status, short.lines().map(str::to_string).collect())
}

fn ftp_login(login: &str, password: &str) -> bool {
    run(Command::new("curl")
        .args(["-s", "-m", "10", "--list-only", "-u"])
        .arg(format!("{login}:{password}"))
        .arg(format!("ftp://127.0.0.1:{}/", var("HW_FTP_PORT"))))
    .0
}

fn getent_passwd(user: &str) -> bool {
    run(Command::new("getent").args(["passwd", user])).0
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn submit(&self, contract: &Value) -> String {
        let resp = self
            .client
            .post(format!("{}/v1/contracts", self.base))
            .body(sign(&keys(), contract))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 202, "{body}");
        body["job_id"].as_str().unwrap().to_string()
    }

    async fn wait(&self, job: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let d = job_detail(&self.client, &self.base, "full-stack-token", job).await;
            match d["summary"]["state"].as_str() {
                Some("succeeded") => return d,
                Some("failed") | Some("cancelled") => panic!("job {job} ended badly: {d:#}"),
                _ => {}
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job} did not finish: {d:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn secrets(&self, job: &str) -> Value {
        self.client
            .post(format!("{}/v1/jobs/{job}/secrets", self.base))
            .bearer_auth("full-stack-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

async fn mailboxes(tenant: &str) -> (u16, Vec<String>) {
    let key = std::fs::read_to_string(var("HW_SECUREMX_API_KEY_FILE")).unwrap();
    let resp = hostwright_tls::client()
        .get(format!(
            "{}/v1/tenants/{tenant}/mailboxes?limit=100",
            var("HW_SECUREMX_URL")
        ))
        .bearer_auth(key.trim())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or_default();
    let list = body["mailboxes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["address"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    (status, list)
}

async fn billing_reports(contract_id: &str) -> Vec<Value> {
    let all: Value = hostwright_tls::client()
        .get(var("HW_BILLING_URL"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["body"]["contract_id"] == contract_id)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_contract_lives_and_ends_on_the_real_backends() {
    let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let id = format!("C-FS{}", tag.to_uppercase());
    let user = id.to_ascii_lowercase();
    let domain = format!("fs-{tag}.example");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let _serve = Serve::start(&config);
    wait_http(port, "/readyz").await;
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        client: hostwright_tls::client(),
    };

    // 1. Provision: web space + vhost, 2 FTP accounts (Pack 1 + 1 extra),
    //    the zone with web and mail records, the tenant and its mailboxes.
    let job = api.submit(&contract("pack-dns.json", &id, &domain)).await;
    api.wait(&job).await;
    let (code, body) = http(&domain);
    assert_eq!(code, "200", "{body}");
    assert_eq!(http(&format!("www.{domain}")).0, "200");
    assert!(getent_passwd(&user), "Unix account {user} exists");
    assert_eq!(
        dig(&domain, "A"),
        ("NOERROR".into(), vec!["192.0.2.80".into()])
    );
    assert_eq!(
        dig(&domain, "MX").1,
        vec!["10 mx1.securemx.example.".to_string()]
    );
    assert_eq!(
        dig(&format!("www.{domain}"), "A").1,
        vec!["192.0.2.80".to_string()]
    );
    let (status, mut boxes) = mailboxes(&id).await;
    boxes.sort();
    assert_eq!(status, 200);
    assert_eq!(
        boxes,
        vec![format!("info@{domain}"), format!("reception@{domain}")]
    );
    let secrets = api.secrets(&job).await;
    let pw1 = secrets[format!("ftp_account/{user}/password")]
        .as_str()
        .unwrap_or_else(|| panic!("FTP password handed back once: {secrets}"))
        .to_string();
    assert!(
        secrets
            .get(format!("ftp_account/{user}_2/password"))
            .is_some(),
        "{secrets}"
    );
    assert_eq!(
        api.secrets(&job).await,
        serde_json::json!({}),
        "secrets are read once"
    );
    assert!(ftp_login(&user, &pw1), "FTP login works");
    assert!(
        !ftp_login(&user, "wrong-password"),
        "a wrong password is refused"
    );

    // 2. Suspension (第20条): the site answers 503, FTP refuses the login,
    //    the zone keeps answering.
    let job = api
        .submit(&contract("pack-dns-suspend.json", &id, &domain))
        .await;
    api.wait(&job).await;
    assert_eq!(http(&domain).0, "503");
    assert!(!ftp_login(&user, &pw1), "FTP refused while suspended");
    assert_eq!(dig(&domain, "A").1, vec!["192.0.2.80".to_string()]);

    // 3. Resume: the site and the same FTP password work again.
    let job = api
        .submit(&contract("pack-dns-resume.json", &id, &domain))
        .await;
    api.wait(&job).await;
    assert_eq!(http(&domain).0, "200");
    assert!(ftp_login(&user, &pw1), "FTP works again after resume");

    // 4. Termination (第25条) removes everything hostwright created.
    let job = api
        .submit(&contract("pack-dns-terminate.json", &id, &domain))
        .await;
    api.wait(&job).await;
    assert_ne!(http(&domain).0, "200", "the site is gone");
    assert!(!getent_passwd(&user), "Unix account removed");
    assert!(!ftp_login(&user, &pw1), "FTP account removed");
    assert_eq!(dig(&domain, "A").0, "REFUSED", "the zone is gone");
    assert_eq!(mailboxes(&id).await.0, 404, "the tenant is gone");

    // Billing received one report per job, each once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reports = billing_reports(&id).await;
        if reports.len() == 4 {
            let mut keys: Vec<_> = reports
                .iter()
                .map(|r| r["idempotency_key"].clone())
                .collect();
            keys.dedup();
            assert_eq!(keys.len(), 4, "no duplicates: {reports:#?}");
            assert_eq!(
                reports[0]["body"]["status"]["state"], "active",
                "{:#}",
                reports[0]["body"]
            );
            assert_eq!(reports[3]["body"]["status"]["state"], "terminated");
            break;
        }
        assert!(
            reports.len() < 4 && tokio::time::Instant::now() < deadline,
            "billing got {} reports for {id}: {reports:#?}",
            reports.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
