//! Handler tests over real HTTP against an in-process server.

use std::time::Duration;

use super::*;

const KEY: &str = "test-key-0123456789";

struct Server {
    base: String,
    app: Arc<App>,
    http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(state: &FsPath, rate: &str, burst: Option<u32>) -> Server {
    let app = App::open(
        state,
        vec![KEY.to_string()],
        RateLimit::parse(rate, burst).unwrap(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = app.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, router(served)).await.unwrap();
    });
    Server {
        base,
        app,
        http: hostwright_tls::client(),
        task,
    }
}

impl Server {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_with(method, path, body, Some(KEY), None).await.0
    }

    async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
        idem: Option<&str>,
    ) -> ((u16, Value), HeaderMap) {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        if let Some(i) = idem {
            rb = rb.header("idempotency-key", i);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        ((status, v), headers)
    }
}

fn tenant(accounts: u32, disk: u32, options: &[&str]) -> Value {
    json!({
        "domains": ["kaede-design.jp"], "ips": ["203.0.113.25"],
        "administrator": {"name": "Kaede", "email": "ops@kaede-design.jp"},
        "accounts_limit": accounts, "disk_units": disk, "options": options,
        "iij_id": null, "dox": null, "suspended": false,
    })
}

use reqwest::Method;

#[tokio::test]
async fn auth_is_required_except_for_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(&dir.path().join("state.json"), "200/s", None).await;
    let ((st, body), headers) = s
        .call_with(Method::GET, "/v1/tenants/C-1", None, None, None)
        .await;
    assert_eq!(st, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(headers["www-authenticate"], "Bearer");
    let ((st, _), _) = s
        .call_with(Method::GET, "/v1/tenants/C-1", None, Some("wrong"), None)
        .await;
    assert_eq!(st, 401);
    let ((st, _), _) = s
        .call_with(
            Method::POST,
            "/admin/faults",
            Some(json!({"fail_next": 1})),
            Some("wrong"),
            None,
        )
        .await;
    assert_eq!(st, 401);
    let (st, body) = s.call(Method::GET, "/v1/tenants/C-1", None).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (404, Some("tenant_not_found"))
    );
    let ((st, _), _) = s.call_with(Method::GET, "/healthz", None, None, None).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn tenant_create_update_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(&dir.path().join("state.json"), "200/s", None).await;
    let (st, body) = s
        .call(
            Method::PUT,
            "/v1/tenants/C-2001",
            Some(tenant(15, 3, &["mailing_list"])),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["options"], json!(["mailing_list"]));
    assert_eq!(body["mailbox_plus"], true);
    let (st, again) = s
        .call(
            Method::PUT,
            "/v1/tenants/C-2001",
            Some(tenant(15, 3, &["mailing_list"])),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        again["updated_at"], body["updated_at"],
        "an unchanged PUT changes nothing"
    );
    let (st, body) = s
        .call(Method::PUT, "/v1/tenants/C-2001", Some(tenant(20, 4, &[])))
        .await;
    assert_eq!((st, body["disk_units"].as_u64()), (200, Some(4)));
    let (st, body) = s
        .call(Method::PUT, "/v1/tenants/C-2001", Some(tenant(20, 3, &[])))
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (409, Some("disk_not_reducible"))
    );
    let (st, body) = s
        .call(
            Method::PUT,
            "/v1/tenants/C-2001",
            Some(tenant(20, 4, &["dox_link"])),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (422, Some("option_prerequisite"))
    );
    assert_eq!(body["prerequisite"], "dox");
    let mut no_plus = tenant(20, 4, &["private_relay"]);
    no_plus["mailbox_plus"] = json!(false);
    let (st, body) = s
        .call(Method::PUT, "/v1/tenants/C-2001", Some(no_plus))
        .await;
    assert_eq!(
        (st, body["prerequisite"].as_str()),
        (422, Some("mailbox_plus"))
    );
    let mut no_admin = tenant(20, 4, &[]);
    no_admin.as_object_mut().unwrap().remove("administrator");
    let (st, body) = s
        .call(Method::PUT, "/v1/tenants/C-2001", Some(no_admin))
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (422, Some("administrator_required"))
    );
    let mut unknown = tenant(20, 4, &[]);
    unknown["colour"] = json!("red");
    let (st, body) = s
        .call(Method::PUT, "/v1/tenants/C-2001", Some(unknown))
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let (st, _) = s
        .call(Method::PUT, "/v1/tenants/a;b", Some(tenant(1, 1, &[])))
        .await;
    assert_eq!(st, 400);
    let (st, body) = s.call(Method::GET, "/v1/tenants/C-2001", None).await;
    assert_eq!((st, body["accounts_limit"].as_u64()), (200, Some(20)));
    let (st, _) = s.call(Method::DELETE, "/v1/tenants/C-2001", None).await;
    assert_eq!(st, 204);
    let (st, _) = s.call(Method::DELETE, "/v1/tenants/C-2001", None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn mailboxes_page_limit_and_idempotency() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(&dir.path().join("state.json"), "100000/s", Some(100000)).await;
    s.call(Method::PUT, "/v1/tenants/C-1", Some(tenant(250, 1, &[])))
        .await;
    for i in 0..250 {
        let (st, _) = s
            .call(
                Method::POST,
                "/v1/tenants/C-1/mailboxes",
                Some(json!({"address": format!("u{i:03}@kaede-design.jp")})),
            )
            .await;
        assert_eq!(st, 201);
    }
    let (st, body) = s
        .call(
            Method::POST,
            "/v1/tenants/C-1/mailboxes",
            Some(json!({"address": "extra@kaede-design.jp"})),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (409, Some("account_limit"))
    );
    let (st, body) = s
        .call(
            Method::POST,
            "/v1/tenants/C-1/mailboxes",
            Some(json!({"address": "u000@kaede-design.jp"})),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (409, Some("mailbox_exists"))
    );
    assert_eq!(body["mailbox"]["address"], "u000@kaede-design.jp");

    // Paging: 100 + 100 + 50, in order, no repeats.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let (st, body) = s
            .call(
                Method::GET,
                &format!("/v1/tenants/C-1/mailboxes?limit=100&cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(st, 200, "{body}");
        pages += 1;
        assert_eq!(body["total"], 250);
        for m in body["mailboxes"].as_array().unwrap() {
            seen.push(m["address"].as_str().unwrap().to_string());
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen);
    let (st, body) = s.call(Method::GET, "/v1/tenants/C-1/mailboxes", None).await;
    assert_eq!(
        (st, body["mailboxes"].as_array().unwrap().len()),
        (200, DEFAULT_PAGE)
    );
    for bad in ["limit=0", "limit=101", "limit=x", "cursor=zz"] {
        let (st, _) = s
            .call(
                Method::GET,
                &format!("/v1/tenants/C-1/mailboxes?{bad}"),
                None,
            )
            .await;
        assert_eq!(st, 400, "{bad}");
    }

    // Delete and idempotency keys.
    let (st, _) = s
        .call(
            Method::DELETE,
            "/v1/tenants/C-1/mailboxes/u000@kaede-design.jp",
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .call(
            Method::DELETE,
            "/v1/tenants/C-1/mailboxes/u000@kaede-design.jp",
            None,
        )
        .await;
    assert_eq!(st, 404);
    let body = json!({"address": "new@kaede-design.jp"});
    let (first, h1) = s
        .call_with(
            Method::POST,
            "/v1/tenants/C-1/mailboxes",
            Some(body.clone()),
            Some(KEY),
            Some("job-1/step-2/new"),
        )
        .await;
    assert_eq!(first.0, 201);
    assert!(h1.get("idempotent-replayed").is_none());
    let (second, h2) = s
        .call_with(
            Method::POST,
            "/v1/tenants/C-1/mailboxes",
            Some(body),
            Some(KEY),
            Some("job-1/step-2/new"),
        )
        .await;
    assert_eq!(second, first, "same key, same answer");
    assert_eq!(h2["idempotent-replayed"], "true");
    let ((st, body), _) = s
        .call_with(
            Method::POST,
            "/v1/tenants/C-1/mailboxes",
            Some(json!({"address": "other@kaede-design.jp"})),
            Some(KEY),
            Some("job-1/step-2/new"),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );

    // Deleting the tenant removes its mailboxes.
    s.call(Method::DELETE, "/v1/tenants/C-1", None).await;
    let (st, _) = s.call(Method::GET, "/v1/tenants/C-1/mailboxes", None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(&dir.path().join("state.json"), "1/m", Some(2)).await;
    for _ in 0..2 {
        let (st, _) = s.call(Method::GET, "/v1/tenants/C-1", None).await;
        assert_eq!(st, 404);
    }
    let ((st, body), headers) = s
        .call_with(Method::GET, "/v1/tenants/C-1", None, Some(KEY), None)
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    let secs: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((50..=60).contains(&secs), "{secs}");
    // Health and admin routes are not rate limited.
    let (st, _) = s.call(Method::GET, "/admin/faults", None).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn injected_faults_answer_then_clear() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(&dir.path().join("state.json"), "200/s", None).await;
    let (st, _) = s
        .call(
            Method::POST,
            "/admin/faults",
            Some(json!({"fail_next": 2, "status": 503, "retry_after": 2})),
        )
        .await;
    assert_eq!(st, 200);
    for _ in 0..2 {
        let ((st, body), h) = s
            .call_with(Method::GET, "/v1/tenants/C-1", None, Some(KEY), None)
            .await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (503, Some("injected_fault"))
        );
        assert_eq!(h["retry-after"], "2");
    }
    let (st, _) = s.call(Method::GET, "/v1/tenants/C-1", None).await;
    assert_eq!(st, 404);
    let (st, _) = s
        .call(
            Method::POST,
            "/admin/faults",
            Some(json!({"fail_next": 1, "status": 200})),
        )
        .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    {
        let s = serve(&path, "200/s", None).await;
        let app_flush = s.app.clone();
        s.call(
            Method::PUT,
            "/v1/tenants/C-9",
            Some(tenant(5, 2, &["archive"])),
        )
        .await;
        let (st, _) = s
            .call(
                Method::POST,
                "/v1/tenants/C-9/mailboxes",
                Some(json!({"address": "info@kaede-design.jp"})),
            )
            .await;
        assert_eq!(st, 201);
        app_flush.flush().await.unwrap();
    }
    let on_disk = store::load(&path).unwrap();
    assert!(
        on_disk.tenants["C-9"]
            .mailboxes
            .contains_key("info@kaede-design.jp")
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = serve(&path, "200/s", None).await;
    let (st, body) = s.call(Method::GET, "/v1/tenants/C-9", None).await;
    assert_eq!((st, body["mailbox_count"].as_u64()), (200, Some(1)));
    assert_eq!(body["options"], json!(["archive"]));
    let (_, body) = s
        .call(Method::PUT, "/v1/tenants/C-9", Some(tenant(5, 1, &[])))
        .await;
    assert_eq!(
        body["error"]["code"], "disk_not_reducible",
        "limits hold across restarts"
    );
    assert!(!dir.path().join("state.json.tmp").exists());
}

#[test]
fn a_corrupt_state_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, "{not json").unwrap();
    assert!(matches!(
        store::load(&path),
        Err(store::StoreError::Parse { .. })
    ));
}

#[test]
fn api_key_file_must_hold_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys");
    std::fs::write(&path, "# comment\n\n").unwrap();
    assert!(read_api_keys(&path).is_err());
    std::fs::write(&path, "abc\n").unwrap();
    assert_eq!(read_api_keys(&path).unwrap(), vec!["abc"]);
}
