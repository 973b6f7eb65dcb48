//! The described API over real HTTP: every error path answers RFC 9457
//! `application/problem+json` with its stable `type` (the test walks them
//! and checks that it met every kind the API can produce here), a refused
//! contract carries its findings, an accepted one answers 202 with
//! `Location`, and jobs, rejections, contracts and the audit log page with
//! cursors. `GET /v1/contracts` filters by customer, domain and state;
//! `GET /v1/contracts/{id}` shows revisions, resources and billable state.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hostwright::engine::auth::{self, Authenticator, FailureLimit, Scope};
use hostwright::engine::problem::Kind;
use hostwright::engine::scripted::Script;
use serde_json::{Value, json};

struct Harness {
    base: String,
    http: reqwest::Client,
    ops: String,
    reader: String,
    seen: BTreeSet<String>,
    _dir: tempfile::TempDir,
    _workers: Workers,
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
        let script = Script::default();
        let engine = engine(&url, &script, fast_settings()).await;
        let workers = start_workers(&engine, "w", 2);
        let (_, reader) =
            auth::create_token(&*engine.store, "reader", &[Scope::Read], None, "test")
                .await
                .unwrap();
        let authn = Authenticator::new(
            Some("legacy-ops".into()),
            None,
            FailureLimit {
                per_minute: NonZeroU32::new(1).unwrap(),
                burst: NonZeroU32::new(5).unwrap(),
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
        Harness {
            base: format!("http://{addr}"),
            http: hostwright_tls::client(),
            ops: "legacy-ops".into(),
            reader,
            seen: BTreeSet::new(),
            _dir: dir,
            _workers: workers,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> reqwest::Response {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.body(b);
        }
        r.send().await.unwrap()
    }

    /// Expects a problem of `kind`; returns its body.
    async fn problem(
        &mut self,
        kind: Kind,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Value {
        let resp = self.send(method.clone(), path, token, body).await;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|c| c.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: {status} {ct} {text:?}: {e}"));
        assert_eq!(ct, "application/problem+json", "{method} {path}: {v}");
        assert_eq!(status, kind.status().as_u16(), "{method} {path}: {v}");
        assert_eq!(v["type"], kind.type_uri(), "{method} {path}: {v}");
        assert_eq!(v["status"], status, "{v}");
        assert!(v["title"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
        assert!(v["detail"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
        self.seen.insert(kind.slug().to_string());
        v
    }

    async fn json(&self, path: &str) -> Value {
        let resp = self
            .send(reqwest::Method::GET, path, Some(&self.reader), None)
            .await;
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    async fn submit(&self, contract: &Value) -> reqwest::Response {
        self.send(
            reqwest::Method::POST,
            "/v1/contracts",
            None,
            Some(sign(&keys(), contract)),
        )
        .await
    }

    async fn wait_succeeded(&self, job: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.json(&format!("/v1/jobs/{job}")).await;
            if v["summary"]["state"] == "succeeded" {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Follows `next_cursor` from `path` with `limit`; every item's `key`.
    async fn all(&self, path: &str, limit: u32, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut url = format!("{path}{sep}limit={limit}");
        loop {
            let v = self.json(&url).await;
            let items = v["items"].as_array().unwrap();
            assert!(items.len() <= limit as usize);
            out.extend(items.iter().map(|i| i[key].to_string()));
            match v["next_cursor"].as_str() {
                Some(c) => url = format!("{path}{sep}limit={limit}&cursor={c}"),
                None => return out,
            }
        }
    }
}

#[tokio::test]
async fn every_error_is_a_problem_and_lists_page_with_cursors() {
    use reqwest::Method as M;
    let mut h = Harness::start().await;

    // Accepted: 202 with Location.
    let mut jobs = Vec::new();
    for id in ["C-API1", "C-API2", "C-API3"] {
        let r = h.submit(&www_contract(id, 1)).await;
        assert_eq!(r.status(), 202);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let v: Value = r.json().await.unwrap();
        assert_eq!(loc, format!("/v1/jobs/{}", v["job_id"].as_str().unwrap()));
        assert_eq!(h.json(&loc).await["summary"]["contract_id"], id);
        jobs.push(v["job_id"].as_str().unwrap().to_string());
    }
    for j in &jobs {
        h.wait_succeeded(j).await;
    }
    let mut c3 = www_contract("C-API3", 2);
    c3["status"] = json!({"state": "suspended", "since": "2027-01-05", "reason": "unpaid"});
    let r = h.submit(&c3).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    // Intake refusals.
    let v = h
        .problem(
            Kind::StaleRevision,
            M::POST,
            "/v1/contracts",
            None,
            Some(sign(&keys(), &www_contract("C-API3", 1))),
        )
        .await;
    assert_eq!(v["contract_id"], "C-API3");
    let mut bad = www_contract("C-API9", 1);
    bad["service"] = json!("mail_secure_mx");
    let v = h
        .problem(
            Kind::ContractRefused,
            M::POST,
            "/v1/contracts",
            None,
            Some(sign(&keys(), &bad)),
        )
        .await;
    let findings = v["findings"].as_array().expect("findings");
    assert!(!findings.is_empty());
    assert!(
        findings
            .iter()
            .all(|f| f["rule"].is_string() && f["article"].is_string()),
        "{v}"
    );
    h.problem(
        Kind::BadSignature,
        M::POST,
        "/v1/contracts",
        None,
        Some(b"{\"payload\":\"x\"}".to_vec()),
    )
    .await;
    h.problem(
        Kind::Malformed,
        M::POST,
        "/v1/contracts",
        None,
        Some(sign(&keys(), &json!({"not": "a contract"}))),
    )
    .await;
    h.problem(
        Kind::TooLarge,
        M::POST,
        "/v1/contracts",
        None,
        Some(vec![
            b' ';
            hostwright::engine::guard::MAX_ENVELOPE_BYTES + 10
        ]),
    )
    .await;
    h.problem(
        Kind::BadSignature,
        M::POST,
        "/v1/plan",
        Some(&h.reader.clone()),
        Some(b"{}".to_vec()),
    )
    .await;

    // Routing and request errors.
    let ops = h.ops.clone();
    let reader = h.reader.clone();
    h.problem(Kind::NotFound, M::GET, "/v2/nothing", Some(&ops), None)
        .await;
    h.problem(
        Kind::MethodNotAllowed,
        M::DELETE,
        "/v1/jobs",
        Some(&ops),
        None,
    )
    .await;
    h.problem(
        Kind::InvalidRequest,
        M::GET,
        "/v1/jobs?state=bogus",
        Some(&ops),
        None,
    )
    .await;
    h.problem(
        Kind::InvalidRequest,
        M::GET,
        "/v1/contracts?state=bogus",
        Some(&ops),
        None,
    )
    .await;
    for list in ["/v1/jobs", "/v1/rejections", "/v1/contracts", "/v1/audit"] {
        h.problem(
            Kind::InvalidCursor,
            M::GET,
            &format!("{list}?cursor=%21%21"),
            Some(&ops),
            None,
        )
        .await;
    }
    let v = h
        .problem(
            Kind::JobNotFound,
            M::GET,
            "/v1/jobs/no-such-job",
            Some(&ops),
            None,
        )
        .await;
    assert_eq!(v["job_id"], "no-such-job");
    h.problem(
        Kind::JobNotFound,
        M::POST,
        "/v1/jobs/no-such-job/rerun",
        Some(&ops),
        None,
    )
    .await;
    let v = h
        .problem(
            Kind::InvalidTransition,
            M::POST,
            &format!("/v1/jobs/{}/rerun", jobs[0]),
            Some(&ops),
            None,
        )
        .await;
    assert_eq!(v["state"], "succeeded");
    h.problem(
        Kind::ContractNotFound,
        M::GET,
        "/v1/contracts/C-NONE",
        Some(&ops),
        None,
    )
    .await;
    // This engine has no [fleet]: no hosts to list or drain.
    h.problem(Kind::HostNotFound, M::GET, "/v1/hosts", Some(&ops), None)
        .await;
    h.problem(
        Kind::HostNotFound,
        M::POST,
        "/v1/hosts/web1/drain",
        Some(&ops),
        None,
    )
    .await;
    h.problem(
        Kind::HostNotFound,
        M::POST,
        "/v1/contracts/C-API1/move",
        Some(&ops),
        Some(br#"{"to": "web2"}"#.to_vec()),
    )
    .await;
    h.problem(
        Kind::InvalidRequest,
        M::POST,
        "/v1/contracts/C-API1/move",
        Some(&ops),
        Some(b"web2".to_vec()),
    )
    .await;

    // Credentials.
    h.problem(Kind::Unauthenticated, M::GET, "/v1/jobs", None, None)
        .await;
    let v = h
        .problem(
            Kind::Forbidden,
            M::POST,
            &format!("/v1/jobs/{}/cancel", jobs[0]),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(v["scope"], "operate");

    // Paging: every job exactly once, newest first, a page of one at a time.
    let all_jobs = h.all("/v1/jobs", 1, "job_id").await;
    assert_eq!(all_jobs.len(), 4, "{all_jobs:?}");
    assert_eq!(all_jobs.iter().collect::<BTreeSet<_>>().len(), 4);
    assert_eq!(h.all("/v1/jobs", 1000, "job_id").await, all_jobs);
    let rejections = h.all("/v1/rejections", 2, "id").await;
    assert!(rejections.len() >= 4, "{rejections:?}");
    let audit = h.all("/v1/audit", 2, "id").await;
    assert!(!audit.is_empty());

    // Contracts: filters and detail.
    let ids = h.all("/v1/contracts", 1, "contract_id").await;
    assert_eq!(ids, ["\"C-API1\"", "\"C-API2\"", "\"C-API3\""]);
    let suspended = h.json("/v1/contracts?state=suspended").await;
    assert_eq!(suspended["items"].as_array().unwrap().len(), 1);
    assert_eq!(suspended["items"][0]["contract_id"], "C-API3");
    let by_customer = h.json("/v1/contracts?customer=CU-C-API2").await;
    assert_eq!(by_customer["items"][0]["contract_id"], "C-API2");
    assert_eq!(by_customer["items"].as_array().unwrap().len(), 1);
    let by_domain = h.json("/v1/contracts?domain=c-api1.example.jp").await;
    assert_eq!(
        by_domain["items"].as_array().unwrap().len(),
        1,
        "{by_domain}"
    );
    assert_eq!(by_domain["items"][0]["contract_id"], "C-API1");
    let d = h.json("/v1/contracts/C-API1").await;
    assert_eq!(d["customer_id"], "CU-C-API1");
    assert_eq!(d["revisions"][0]["revision"], 1);
    let resources = d["resources"].as_array().unwrap();
    assert!(
        resources
            .iter()
            .any(|r| r["kind"] == "vhost" && r["adapter"].is_string()),
        "{d}"
    );
    assert!(d["billable"]["report"]["billable"].is_object(), "{d}");
    assert!(d["placement"].is_null(), "no fleet, no placement: {d}");

    // Guessing, last: blocks this address.
    let mut limited = false;
    for i in 0..10 {
        let r = h
            .send(M::GET, "/v1/jobs", Some(&format!("hwt_x_{i}")), None)
            .await;
        if r.status() == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited);
    h.problem(Kind::RateLimited, M::GET, "/v1/jobs", Some(&ops), None)
        .await;

    // Every kind this API can answer with was met, but three that need a
    // broken store or an unplannable signed contract, and the refused move,
    // which needs a fleet (tests/fleet.rs meets it).
    let unreached: BTreeSet<&str> =
        ["unplannable", "unavailable", "internal", "move-refused"].into();
    for k in Kind::ALL {
        assert!(
            h.seen.contains(k.slug()) || unreached.contains(k.slug()),
            "no test met the {} problem",
            k.slug()
        );
    }
    let _ = Arc::new(());
}
