//! Real clients from the host: hostwright's HTTP API (as the contract system
//! and ops call it), curl for HTTP, HTTPS and FTP (to the web host a site's
//! DNS names, or to a given one), dig for DNS (to the primary, or to any
//! name server), and the Secure MX mock's and the billing sink's own APIs.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use hostwright::engine::store::{JobDetail, JobState, JobSummary};
use serde_json::Value;

use crate::stack::{NameServer, Out, WebHost, run, stack};

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

    /// `GET /v1/contracts/{id}`: (status, answer).
    pub async fn contract(&self, id: &str) -> (u16, Value) {
        self.get(&format!("/v1/contracts/{id}")).await
    }

    /// The fleet host contract `id` is placed on (its `placement`), `None`
    /// before its first job was planned or when it has no web space.
    pub async fn placement(&self, id: &str) -> Option<String> {
        let (status, body) = self.contract(id).await;
        assert_eq!(status, 200, "contract {id}: {body}");
        body["placement"]["host"].as_str().map(str::to_string)
    }

    /// The web host contract `id` lives on: it must be placed.
    pub async fn placed(&self, id: &str) -> &'static WebHost {
        let host = self
            .placement(id)
            .await
            .unwrap_or_else(|| panic!("contract {id} is not placed on any web host"));
        stack().web_host(&host)
    }

    /// Waits until contract `id` is placed (its first job planned); the host.
    pub async fn wait_placed(&self, id: &str, secs: u64) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(h) = self.placement(id).await {
                return h;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "contract {id} not placed after {secs}s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /v1/hosts`: the fleet (policy, and per host state, health,
    /// accounts and disk placed).
    pub async fn hosts(&self) -> Value {
        let (status, body) = self.get("/v1/hosts").await;
        assert_eq!(status, 200, "/v1/hosts: {body}");
        body
    }

    /// One host of `GET /v1/hosts`.
    pub async fn host(&self, name: &str) -> Value {
        self.hosts().await["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("/v1/hosts has no {name}"))
    }

    /// Waits until hostwright's health check says `name` is `healthy`.
    pub async fn wait_host_health(&self, name: &str, healthy: bool, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let h = self.host(name).await;
            if h["healthy"].as_bool() == Some(healthy) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "hostwright does not see {name} as healthy={healthy} after {secs}s: {h}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `POST /v1/hosts/{name}/drain` or `.../activate` (operate scope).
    pub async fn set_host(&self, name: &str, action: &str) {
        let resp = self
            .client
            .post(format!("{}/v1/hosts/{name}/{action}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{action} {name}: {e}"));
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "{action} {name}: {body}");
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

/// The web host a domain's A record (on the primary) points at: where a
/// visitor's browser or FTP client would go. `None` without an A record or
/// for an address that is no web host of the stack.
pub fn site_host(domain: &str) -> Option<&'static WebHost> {
    let (_, a) = dig(domain, "A");
    match a.as_slice() {
        [ip] => stack().web_host_by_ip(ip),
        _ => None,
    }
}

/// Like [`site_host`], for a site that must resolve to a web host.
pub fn site(domain: &str) -> &'static WebHost {
    site_host(domain).unwrap_or_else(|| {
        panic!(
            "{domain} does not resolve to a web host of the stack: A {:?}",
            dig(domain, "A")
        )
    })
}

/// A site's answer over HTTP from the web host its DNS points at:
/// (status, body). Without an A record the status says so.
pub fn http_get(domain: &str, path: &str) -> (String, String) {
    match site_host(domain) {
        Some(h) => http_get_on(h, domain, path),
        None => (format!("no A record for {domain}"), String::new()),
    }
}

/// Over HTTPS from the web host its DNS points at, verifying the
/// certificate against the stack's test CA.
pub fn https_get(domain: &str, path: &str) -> (String, String) {
    match site_host(domain) {
        Some(h) => https_get_on(h, domain, path),
        None => (format!("no A record for {domain}"), String::new()),
    }
}

/// A site's answer from web host `host` (its published HTTP port).
pub fn http_get_on(host: &WebHost, domain: &str, path: &str) -> (String, String) {
    web_get("http", &host.http, domain, path)
}

/// Over HTTPS from web host `host`, with the stack's test CA.
pub fn https_get_on(host: &WebHost, domain: &str, path: &str) -> (String, String) {
    web_get("https", &host.https, domain, path)
}

fn web_get(scheme: &str, addr: &str, domain: &str, path: &str) -> (String, String) {
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

fn ftp_url(host: &WebHost, path: &str) -> String {
    format!("ftp://{}/{path}", host.ftp)
}

/// curl over FTP to web host `host` as `login`: a listing of the FTP root.
/// Exit 0 is a successful login; 67 is a refused one.
pub fn ftp_list(host: &WebHost, login: &str, password: &str) -> Out {
    run(Command::new("curl")
        .args(["-sS", "-m", "20", "--list-only", "-u"])
        .arg(format!("{login}:{password}"))
        .arg(ftp_url(host, "")))
}

/// Uploads `local` to `remote` (relative to the FTP root) on web host `host`.
pub fn ftp_upload(
    host: &WebHost,
    login: &str,
    password: &str,
    local: &std::path::Path,
    remote: &str,
) -> Out {
    run(Command::new("curl")
        .args(["-sS", "-m", "60", "--ftp-create-dirs", "-u"])
        .arg(format!("{login}:{password}"))
        .arg("-T")
        .arg(local)
        .arg(ftp_url(host, remote)))
}

/// What the stack's BIND primary serves authoritatively: (status, short
/// answers).
pub fn dig(name: &str, rtype: &str) -> (String, Vec<String>) {
    dig_at(stack().primary(), name, rtype)
}

/// What name server `server` answers for `name`/`rtype`, recursion not
/// desired: (status, short answers).
pub fn dig_at(server: &NameServer, name: &str, rtype: &str) -> (String, Vec<String>) {
    let a = dig_many(server, &[(name.to_string(), rtype.to_string())]);
    let a = a.into_iter().next().expect("one query, one answer");
    (a.status, a.answers)
}

/// One answer of [`dig_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigAnswer {
    pub name: String,
    pub rtype: String,
    /// `NOERROR`, `REFUSED`...; `no answer` when the query timed out.
    pub status: String,
    /// The authoritative-answer bit.
    pub aa: bool,
    /// The answer section's data of the queried type.
    pub answers: Vec<String>,
}

/// Many queries to one name server in one `dig` run (one process, each
/// query in turn, recursion not desired): one answer per query, in order.
pub fn dig_many(server: &NameServer, queries: &[(String, String)]) -> Vec<DigAnswer> {
    let mut answers = Vec::with_capacity(queries.len());
    // A few hundred queries per run keep the command line short.
    for chunk in queries.chunks(200) {
        answers.extend(dig_chunk(server, chunk));
    }
    answers
}

fn dig_chunk(server: &NameServer, queries: &[(String, String)]) -> Vec<DigAnswer> {
    let (ip, port) = server.addr.rsplit_once(':').expect("host:port");
    let mut cmd = Command::new("dig");
    cmd.args(["+norec", "+time=2", "+tries=2", "-p", port])
        .arg(format!("@{ip}"));
    for (name, rtype) in queries {
        cmd.args([name.as_str(), rtype.as_str()]);
    }
    let out = run(&mut cmd);
    // Each answer starts with its header line; its question names it.
    let mut parsed: BTreeMap<(String, String), DigAnswer> = BTreeMap::new();
    for block in out.stdout.split(";; ->>HEADER<<-").skip(1) {
        let status = block
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("")
            .to_string();
        let aa = block
            .lines()
            .find_map(|l| l.strip_prefix(";; flags: "))
            .and_then(|f| f.split(';').next())
            .is_some_and(|f| f.split_whitespace().any(|x| x == "aa"));
        let Some(question) = block
            .lines()
            .skip_while(|l| !l.starts_with(";; QUESTION SECTION"))
            .nth(1)
        else {
            continue;
        };
        let q: Vec<&str> = question
            .trim_start_matches(';')
            .split_whitespace()
            .collect();
        if q.len() < 3 {
            continue;
        }
        let name = q[0].trim_end_matches('.').to_ascii_lowercase();
        let rtype = q[2].to_ascii_uppercase();
        let answers = block
            .lines()
            .skip_while(|l| !l.starts_with(";; ANSWER SECTION"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| {
                // name ttl class type data...
                let parts: Vec<&str> = l.split_whitespace().collect();
                (parts.len() >= 5 && parts[3].eq_ignore_ascii_case(&rtype))
                    .then(|| parts[4..].join(" "))
            })
            .collect();
        parsed.insert(
            (name.clone(), rtype.clone()),
            DigAnswer {
                name,
                rtype,
                status,
                aa,
                answers,
            },
        );
    }
    queries
        .iter()
        .map(|(name, rtype)| {
            let key = (
                name.trim_end_matches('.').to_ascii_lowercase(),
                rtype.to_ascii_uppercase(),
            );
            parsed.get(&key).cloned().unwrap_or_else(|| DigAnswer {
                name: key.0.clone(),
                rtype: key.1.clone(),
                status: format!("no answer from {} ({})", server.service, out.stderr.trim()),
                aa: false,
                answers: Vec::new(),
            })
        })
        .collect()
}

/// Whether the primary answers authoritatively for `zone` (its SOA).
pub fn zone_exists(zone: &str) -> bool {
    zone_exists_at(stack().primary(), zone)
}

/// Whether `server` answers authoritatively for `zone` (its SOA).
pub fn zone_exists_at(server: &NameServer, zone: &str) -> bool {
    let a = dig_many(server, &[(zone.to_string(), "SOA".to_string())]);
    a[0].status == "NOERROR" && a[0].aa && a[0].answers.len() == 1
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
