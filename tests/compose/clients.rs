//! Real clients from the host: hostwright's HTTP API (as the contract system
//! and ops call it), curl for HTTP, HTTPS and FTP, dig for DNS, and the
//! Secure MX mock's and the billing sink's own APIs.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use hostwright::engine::store::{JobDetail, JobState, JobSummary};
use serde_json::Value;

use crate::stack::{Out, run, stack};

fn http() -> reqwest::Client {
    hostwright_tls::client_builder(None)
        .expect("no CA file")
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// A client for the stack's HTTPS services (the Secure MX mock, the billing
/// sink), trusting only the stack's own CA, as hostwright inside does.
fn stack_https() -> reqwest::Client {
    hostwright_tls::client_builder(Some(std::path::Path::new(stack().var("HW_COMPOSE_CA"))))
        .expect("the stack's CA file")
        .timeout(Duration::from_secs(30))
        .build()
        .expect("https client")
}

/// hostwright's API at `base` (the stack's first or second instance).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    pub fn main() -> Api {
        Api::at(stack().url())
    }

    pub fn at(base: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_string(),
            token: stack().token(),
            client: http(),
        }
    }

    /// POSTs a signed envelope; the HTTP status and the answer.
    pub async fn submit_raw(&self, envelope: &[u8]) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}/v1/contracts", self.base))
            .header("content-type", "application/json")
            .body(envelope.to_vec())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {}/v1/contracts: {e}", self.base));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Submits a contract that must be accepted; its job id.
    pub async fn submit(&self, envelope: &[u8]) -> String {
        let (status, body) = self.submit_raw(envelope).await;
        assert_eq!(status, 202, "contract not accepted: {body}");
        body["job_id"].as_str().expect("job_id").to_string()
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {}{path}: {e}", self.base));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn job(&self, id: &str) -> JobDetail {
        let (status, body) = self.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(status, 200, "job {id}: {body}");
        serde_json::from_value(body).expect("job detail")
    }

    /// Every item of a paged list, following `next_cursor`.
    async fn all_pages(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=1000&cursor={c}"),
                None => format!("{path}{sep}limit=1000"),
            };
            let (status, body) = self.get(&url).await;
            assert_eq!(status, 200, "{url}: {body}");
            out.extend(body["items"].as_array().cloned().unwrap_or_default());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    /// Every job the store holds, by id.
    pub async fn jobs(&self) -> BTreeMap<String, JobSummary> {
        self.all_pages("/v1/jobs")
            .await
            .into_iter()
            .map(|v| serde_json::from_value::<JobSummary>(v).expect("job summary"))
            .map(|j| (j.job_id.clone(), j))
            .collect()
    }

    pub async fn rejections(&self) -> Vec<Value> {
        self.all_pages("/v1/rejections").await
    }

    /// The one-time secrets of a job (FTP passwords).
    pub async fn secrets(&self, job: &str) -> BTreeMap<String, String> {
        let resp = self
            .client
            .post(format!("{}/v1/jobs/{job}/secrets", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("secrets");
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.expect("secrets json")
    }

    /// Billing reports not yet acknowledged (the `/metrics` gauge).
    pub async fn outbox_backlog(&self) -> i64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix("hostwright_outbox_backlog "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no hostwright_outbox_backlog in /metrics:\n{text}"))
    }

    /// Waits until every billing report was acknowledged.
    pub async fn wait_outbox_empty(&self, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let n = self.outbox_backlog().await;
            if n == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{n} billing report(s) still undelivered after {secs}s"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn ready(&self) -> bool {
        match self
            .client
            .get(format!("{}/readyz", self.base))
            .timeout(Duration::from_secs(3))
            .send()
            .await
        {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    }

    pub async fn wait_ready(&self, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !self.ready().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} not ready after {secs}s",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The states of `ids` now (a job the list does not show is a failure).
    pub async fn states(&self, ids: &[String]) -> Vec<JobSummary> {
        let all = self.jobs().await;
        ids.iter()
            .map(|id| {
                all.get(id)
                    .cloned()
                    .unwrap_or_else(|| panic!("job {id} is not in the store"))
            })
            .collect()
    }

    /// Waits until every job in `ids` ended; their summaries.
    pub async fn wait_final(&self, ids: &[String], secs: u64) -> Vec<JobSummary> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let states = self.states(ids).await;
            if states.iter().all(|j| j.state.is_final()) {
                return states;
            }
            if tokio::time::Instant::now() >= deadline {
                let open: Vec<String> = states
                    .iter()
                    .filter(|j| !j.state.is_final())
                    .map(|j| format!("{} {} {}", j.job_id, j.contract_id, j.state.as_str()))
                    .collect();
                panic!("{} job(s) not ended after {secs}s: {open:#?}", open.len());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until every job in `ids` succeeded (a failed one fails the test
    /// with its error).
    pub async fn wait_succeeded(&self, ids: &[String], secs: u64) -> Vec<JobSummary> {
        let done = self.wait_final(ids, secs).await;
        let bad: Vec<String> = done
            .iter()
            .filter(|j| j.state != JobState::Succeeded)
            .map(|j| {
                format!(
                    "{} {} rev {}: {} {}",
                    j.job_id,
                    j.contract_id,
                    j.revision,
                    j.state.as_str(),
                    j.error.as_deref().unwrap_or("")
                )
            })
            .collect();
        assert!(bad.is_empty(), "jobs did not succeed: {bad:#?}");
        done
    }
}

/// A site's answer through the published HTTP port: (status, body).
pub fn http_get(domain: &str, path: &str) -> (String, String) {
    web_get("http", "HW_COMPOSE_WEB_HTTP", domain, path)
}

/// Over HTTPS, verifying the certificate against the stack's test CA.
pub fn https_get(domain: &str, path: &str) -> (String, String) {
    web_get("https", "HW_COMPOSE_WEB_HTTPS", domain, path)
}

fn web_get(scheme: &str, var: &str, domain: &str, path: &str) -> (String, String) {
    let addr = stack().var(var);
    let (ip, port) = addr.rsplit_once(':').expect("host:port");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-m", "10", "-w", "\n%{http_code}", "--resolve"])
        .arg(format!("{domain}:{port}:{ip}"));
    if scheme == "https" {
        cmd.args(["--cacert", stack().var("HW_COMPOSE_CA")]);
    }
    cmd.arg(format!("{scheme}://{domain}:{port}{path}"));
    let out = run(&mut cmd);
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", &out.stdout));
    let code = if code == "000" || code.is_empty() {
        format!("curl exit {}: {}", out.code, out.stderr.trim())
    } else {
        code.to_string()
    };
    (code, body.to_string())
}

fn ftp_url(path: &str) -> String {
    format!("ftp://{}/{path}", stack().var("HW_COMPOSE_FTP"))
}

/// curl over FTP as `login`: a listing of the FTP root. Exit 0 is a
/// successful login; 67 is a refused one.
pub fn ftp_list(login: &str, password: &str) -> Out {
    run(Command::new("curl")
        .args(["-sS", "-m", "20", "--list-only", "-u"])
        .arg(format!("{login}:{password}"))
        .arg(ftp_url("")))
}

/// Uploads `local` to `remote` (relative to the FTP root).
pub fn ftp_upload(login: &str, password: &str, local: &std::path::Path, remote: &str) -> Out {
    run(Command::new("curl")
        .args(["-sS", "-m", "60", "-u"])
        .arg(format!("{login}:{password}"))
        .arg("-T")
        .arg(local)
        .arg(ftp_url(remote)))
}

/// What the stack's BIND serves authoritatively: (status, short answers).
pub fn dig(name: &str, rtype: &str) -> (String, Vec<String>) {
    let addr = stack().var("HW_COMPOSE_DNS");
    let (ip, port) = addr.rsplit_once(':').expect("host:port");
    let out = run(Command::new("dig")
        .args(["+norec", "+time=2", "+tries=2", "-p", port])
        .arg(format!("@{ip}"))
        .args([name, rtype]));
    let status = out
        .stdout
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_else(|| format!("no answer: {}", out.stdout.trim()));
    let answers = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with(";; ANSWER SECTION"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            // name ttl class type data...
            let parts: Vec<&str> = l.split_whitespace().collect();
            (parts.len() >= 5 && parts[3].eq_ignore_ascii_case(rtype)).then(|| parts[4..].join(" "))
        })
        .collect();
    (status, answers)
}

/// Whether BIND answers authoritatively for `zone` (its SOA).
pub fn zone_exists(zone: &str) -> bool {
    let (status, soa) = dig(zone, "SOA");
    status == "NOERROR" && soa.len() == 1
}

fn mx_key() -> String {
    std::fs::read_to_string(stack().var("HW_COMPOSE_SECUREMX_KEY_FILE"))
        .expect("Secure MX API key file")
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .expect("a key in the Secure MX key file")
        .trim()
        .to_string()
}

async fn mx_get(path: &str) -> (u16, Value) {
    let resp = stack_https()
        .get(format!(
            "{}{path}",
            stack().var("HW_COMPOSE_SECUREMX_URL").trim_end_matches('/')
        ))
        .bearer_auth(mx_key())
        .send()
        .await
        .unwrap_or_else(|e| panic!("Secure MX mock {path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The mock's tenant `id`: (status, tenant).
pub async fn tenant(id: &str) -> (u16, Value) {
    mx_get(&format!("/v1/tenants/{id}")).await
}

/// The mock's mailboxes of tenant `id`, every page: (status, addresses).
pub async fn mailboxes(id: &str) -> (u16, Vec<String>) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants/{id}/mailboxes?limit=100&cursor={c}"),
            None => format!("/v1/tenants/{id}/mailboxes?limit=100"),
        };
        let (status, body) = mx_get(&path).await;
        if status != 200 {
            return (status, out);
        }
        for m in body["mailboxes"].as_array().into_iter().flatten() {
            out.push(m["address"].as_str().unwrap_or_default().to_string());
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (status, out),
        }
    }
}

/// Everything the billing sink recorded, in order.
pub async fn billing_records() -> Vec<Value> {
    let url = format!(
        "{}/v1/billable-states",
        stack().var("HW_COMPOSE_BILLING_URL").trim_end_matches('/')
    );
    let body: Value = stack_https()
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("billing sink {url}: {e}"))
        .json()
        .await
        .expect("billing sink json");
    body["records"].as_array().cloned().unwrap_or_default()
}
