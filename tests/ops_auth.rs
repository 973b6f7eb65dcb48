//! Ops credentials and the audit log (issue #16).
//!
//! - The store's tokens and audit log on both back ends.
//! - A real `hostwright serve` with per-person tokens made by
//!   `hostwright tokens` while it runs: each scope allowed and refused, the
//!   intake credential separate from ops credentials, the actor always the
//!   credential's (a forged `X-Hostwright-Actor` changes nothing), revocation
//!   and expiry effective without a restart, every action and refusal in the
//!   audit log with the right actor and address, and failed attempts from one
//!   address blocked (429) and counted in the metrics.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use hostwright::engine::auth::{self, Scope};
use hostwright::engine::server::open_store;
use hostwright::engine::store::StoreError;
use hostwright::engine::store::ops::{AuditFilter, NewAuditEntry};
use serde_json::Value;

#[tokio::test]
async fn tokens_and_the_audit_log_on_both_back_ends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_store_url(backend, dir.path()).await;
        let store = open_store(&url, 2, &secrets_key_for(&url)).await.unwrap();
        let (rec, token) = auth::create_token(&*store, "tanaka", &[Scope::Read], None, "test")
            .await
            .unwrap();
        assert!(token.starts_with("hwt_"), "{backend:?}");
        let (got, hash) = store.token(&rec.id).await.unwrap().unwrap();
        assert_eq!(got, rec, "{backend:?}");
        assert_eq!(hash, auth::hash_token(&token), "{backend:?}");
        assert!(!hash.contains(&token[4..20]), "only the hash is kept");
        let again = auth::create_token(&*store, "tanaka", &[Scope::Read], None, "test").await;
        assert!(
            matches!(
                again,
                Err(auth::TokenError::Store(StoreError::TokenNameTaken(_)))
            ),
            "{backend:?}: {again:?}"
        );
        assert!(store.revoke_token("tanaka").await.unwrap());
        assert!(!store.revoke_token("tanaka").await.unwrap(), "once");
        assert!(store.tokens().await.unwrap()[0].revoked_at.is_some());

        for i in 0..5 {
            store
                .record_audit(NewAuditEntry {
                    actor: format!("token:p{}", i % 2),
                    action: "POST /v1/jobs/{id}/rerun".into(),
                    target: Some(format!("job-{i}")),
                    address: Some("127.0.0.1".into()),
                    outcome: "ok".into(),
                    detail: None,
                })
                .await
                .unwrap();
        }
        let page = |before, actor: Option<&str>| AuditFilter {
            actor: actor.map(str::to_string),
            target: None,
            before,
            limit: 2,
        };
        let first = store.audit(&page(None, None)).await.unwrap();
        assert_eq!(
            first
                .iter()
                .map(|e| e.target.clone().unwrap())
                .collect::<Vec<_>>(),
            ["job-4", "job-3"],
            "{backend:?}: newest first"
        );
        let second = store.audit(&page(Some(first[1].id), None)).await.unwrap();
        assert_eq!(second[0].target.as_deref(), Some("job-2"), "{backend:?}");
        let p1 = store.audit(&page(None, Some("token:p1"))).await.unwrap();
        assert!(p1.iter().all(|e| e.actor == "token:p1"), "{backend:?}");
        assert_eq!(p1.len(), 2);
    }
}

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    write_keys(dir, "unused-legacy");
    std::fs::write(dir.join("intake-credential"), "contract-system-secret\n").unwrap();
    let cfg = format!(
        r#"
data_dir = "data"
playbooks = "{playbooks}"

[api]
listen = "127.0.0.1:{port}"
auth_failures_per_minute = 1
auth_failure_burst = 12

[intake]
trusted_keys = "trusted-keys.toml"
credential_file = "intake-credential"

[workers]
concurrency = 2
poll_interval_ms = 50

[workers.retry]
max_attempts = 1

[provisioning]
web_ipv4 = "192.0.2.10"

[adapters.scripted]
log = "calls.jsonl"
control_file = "control.json"
"#,
        playbooks = repo().join("playbooks").display(),
    );
    let path = dir.join("hostwright.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn cli(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn create(config: &Path, name: &str, scope: &str) -> String {
    let (ok, out, err) = cli(config, &["tokens", "create", name, "--scope", scope]);
    assert!(ok, "{err}");
    out.trim().to_string()
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            // Forged: the server must ignore it.
            .header("x-hostwright-actor", "mallory");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            assert_eq!(ct, "application/problem+json", "{path} {status}: {body}");
        }
        (status, body)
    }
    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(token)).await
    }
    async fn post(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(token)).await
    }
}

async fn wait_state(api: &Api, token: &str, job: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = api.get(&format!("/v1/jobs/{job}"), token).await;
        if v["summary"]["state"] == want || v["state"] == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job} never {want}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn scopes_intake_revocation_audit_and_brute_force_on_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    // The vhost step fails permanently: the job fails, ops rerun it.
    std::fs::write(
        dir.path().join("control.json"),
        r#"[{"kind": "vhost", "do": "permanent", "times": 1}]"#,
    )
    .unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let _serve = Serve::start(&config);
    wait_http(port, "/healthz").await;
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        http: hostwright_tls::client(),
    };

    // Tokens made while the server runs, no restart.
    let reader = create(&config, "reader", "read");
    let operator = create(&config, "operator", "read,operate");
    let keeper = create(&config, "keeper", "secrets");
    let (ok, out, _) = cli(&config, &["tokens", "list", "--json"]);
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert!(!out.contains(&reader), "list never shows a token");

    // Intake: the contract system's credential only.
    let body = sign(&keys(), &www_contract("C-AUTH1", 1));
    let post = |token: Option<&'static str>, body: Vec<u8>| {
        let mut r = api
            .http
            .post(format!("{}/v1/contracts", api.base))
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(post(None, body.clone()).await.unwrap().status(), 401);
    let op_static: &'static str = Box::leak(operator.clone().into_boxed_str());
    let r = post(Some(op_static), body.clone()).await.unwrap();
    assert_eq!(r.status(), 401, "an ops token does not open intake");
    let r = post(Some("contract-system-secret"), body.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let accepted: Value = r.json().await.unwrap();
    let job = accepted["job_id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/jobs/{job}"));
    let (s, _) = api.get("/v1/jobs", "contract-system-secret").await;
    assert_eq!(s, 401, "the intake credential opens nothing else");

    wait_state(&api, &reader, &job, "failed").await;

    // Scopes.
    assert_eq!(api.get("/v1/jobs", &reader).await.0, 200);
    assert_eq!(api.get("/v1/jobs", &keeper).await.0, 403);
    let (s, p) = api.post(&format!("/v1/jobs/{job}/rerun"), &reader).await;
    assert_eq!(
        (s, p["type"].as_str()),
        (403, Some("urn:hostwright:problem:forbidden"))
    );
    assert_eq!(p["scope"], "operate");
    assert_eq!(
        api.post(&format!("/v1/jobs/{job}/secrets"), &operator)
            .await
            .0,
        403
    );
    assert_eq!(
        api.post(&format!("/v1/jobs/{job}/rerun"), &operator)
            .await
            .0,
        200
    );
    wait_state(&api, &reader, &job, "succeeded").await;
    assert_eq!(
        api.post(&format!("/v1/jobs/{job}/secrets"), &keeper)
            .await
            .0,
        200
    );
    let (s, p) = api.post(&format!("/v1/jobs/{job}/cancel"), &operator).await;
    assert_eq!(
        (s, p["type"].as_str()),
        (409, Some("urn:hostwright:problem:invalid-transition"))
    );

    // The ops log names the credential, not the forged header.
    let (_, detail) = api.get(&format!("/v1/jobs/{job}"), &reader).await;
    let ops = detail["ops"].as_array().expect("ops log");
    assert!(!ops.is_empty());
    // The rerun is the operator's; the secrets hand-out (#11) the keeper's.
    for o in ops {
        let want = if o["action"]
            .as_str()
            .is_some_and(|a| a.starts_with("secrets taken"))
        {
            "token:keeper"
        } else {
            "token:operator"
        };
        assert_eq!(o["actor"], want, "{ops:?}");
    }

    // Revocation and expiry, no restart.
    let (ok, _, err) = cli(&config, &["tokens", "revoke", "operator"]);
    assert!(ok, "{err}");
    let (s, p) = api.get("/v1/jobs", &operator).await;
    assert_eq!(s, 401);
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");
    {
        let store = open_store(
            &format!("sqlite:{}", dir.path().join("data/jobs.db").display()),
            1,
            &dir.path().join("data/secrets.key"),
        )
        .await
        .unwrap();
        let past = chrono::Utc::now() - chrono::Duration::minutes(1);
        let (_, expired) = auth::create_token(&*store, "expired", &[Scope::Read], Some(past), "t")
            .await
            .unwrap();
        let (s, p) = api.get("/v1/jobs", &expired).await;
        assert_eq!(s, 401);
        assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
    }

    // The audit log: every action and refusal with its actor and address.
    let out = Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args([
            "audit",
            "--json",
            "--limit",
            "100",
            "--url",
            &api.base,
            "--token-file",
        ])
        .arg({
            let p = dir.path().join("reader-token");
            std::fs::write(&p, &reader).unwrap();
            p
        })
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = log["items"].as_array().unwrap();
    let has = |actor: &str, action: &str, outcome: &str| {
        items.iter().any(|e| {
            e["actor"] == actor
                && e["action"].as_str().unwrap().contains(action)
                && e["outcome"].as_str().unwrap().starts_with(outcome)
        })
    };
    assert!(has("token:reader", "/rerun", "refused 403"), "{log}");
    assert!(has("token:operator", "/rerun", "ok"), "{log}");
    assert!(has("token:operator", "/secrets", "refused 403"), "{log}");
    assert!(has("token:operator", "/cancel", "refused 409"), "{log}");
    assert!(has("token:keeper", "/secrets", "ok"), "{log}");
    assert!(
        has("token:operator", "GET /v1/jobs", "refused 401"),
        "revoked: {log}"
    );
    assert!(
        has("anonymous", "POST /v1/contracts", "refused 401"),
        "{log}"
    );
    assert!(items.iter().any(|e| e["action"] == "tokens revoke"
        && e["target"] == "token:operator"
        && e["actor"].as_str().unwrap().starts_with("local:")));
    assert!(
        items
            .iter()
            .filter(|e| e["action"].as_str().unwrap().starts_with("POST /v1/jobs/"))
            .all(|e| e["address"] == "127.0.0.1" && e["target"] == job.as_str()),
        "{log}"
    );
    assert!(!log.to_string().contains("mallory"));

    // Guessing: past the burst the address is refused before any check,
    // even with a valid token, and the metrics show it.
    let mut limited = None;
    for i in 0..20 {
        let (s, _) = api.get("/v1/jobs", &format!("hwt_guess_{i}")).await;
        if s == 429 {
            limited = Some(i);
            break;
        }
        assert_eq!(s, 401);
    }
    assert!(limited.is_some(), "never rate limited");
    let r = api
        .http
        .get(format!("{}/v1/jobs", api.base))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "blocked even with a valid token");
    assert!(r.headers().contains_key("retry-after"));
    let metrics = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hostwright_auth_refusals_total{reason=\"rate_limited\"}"),
        "{metrics}"
    );
}
