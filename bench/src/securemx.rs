//! Part 4: 1,000 mailboxes for one contract against the Secure MX mock,
//! through the adapter crate directly (`hostwright-securemx`, the code the
//! engine's `mx_tenant` and `mx_mailboxes` steps call), not through the engine.
//! Timed: the `mx_mailboxes` ensure that creates them all (the tenant is
//! created first, untimed). The mock keeps no request counter, so a second,
//! identical run goes through a counting HTTP proxy in this process, which
//! gives the request count (429s and retries included); its time carries the
//! proxy's hop and is reported apart. The timed run's 429 answers are counted
//! too, from the adapter's own "rate limited; waiting" debug events.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hostwright_adapter::{Adapter, Resource, StepContext};
use hostwright_securemx::{SecureMxAdapter, SecureMxConfig};
use serde_json::{Value, json};

use crate::common::{self, Ctx};
use crate::report::{Figure, Target};

pub async fn run(ctx: &Ctx, mailboxes: usize, figs: &mut Vec<Figure>) -> Result<Value> {
    install_counter();
    let upstream = ctx.var("HW_SECUREMX_URL")?;
    eprintln!("part 4: {mailboxes} mailboxes, direct");
    let direct = once(ctx, &upstream, mailboxes, None).await?;
    // Let the mock's token bucket refill so the counted run starts alike.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    eprintln!("part 4: {mailboxes} mailboxes, through the counting proxy");
    let counts: Counts = Arc::default();
    let (addr, server) = proxy(upstream.clone(), counts.clone()).await?;
    let counted = once(ctx, &format!("http://{addr}"), mailboxes, Some(&counts)).await;
    server.abort();
    let counted = counted?;
    let by_status = counts.lock().expect("counts").clone();
    let total: u64 = by_status.values().sum();

    let s = direct["mailboxes_s"].as_f64().unwrap_or(f64::NAN);
    let waits = direct["rate_limited_waits"].as_u64().unwrap_or(0);
    let counted_s = counted["mailboxes_s"].as_f64().unwrap_or(f64::NAN);
    let step_counts: BTreeMap<String, u64> =
        serde_json::from_value(counted["mailbox_requests_by_status"].clone()).unwrap_or_default();
    let mailbox_requests: u64 = step_counts.values().sum();
    figs.push(
        Figure::new("4", format!("{mailboxes} mailboxes, one contract"), s, "s")
            .target(Target::Below(2.0))
            .note(format!(
                "adapter crate directly (mx_mailboxes ensure); {waits} answer(s) 429 waited out (Retry-After >= 1 s)"
            )),
    );
    figs.push(
        Figure::new("4", "Secure MX requests/s", mailbox_requests as f64 / counted_s, "req/s").note(
            format!(
                "{mailbox_requests} requests in the mailbox step (counted by proxy, {:.2} s with its hop); by status {step_counts:?}",
                counted_s
            ),
        ),
    );
    Ok(json!({
        "part": 4,
        "mailboxes": mailboxes,
        "through": "adapter crate directly (hostwright-securemx), not the engine",
        "direct": direct,
        "counted": counted,
        "requests_total": total,
        "requests_by_status": by_status,
    }))
}

type Counts = Arc<Mutex<BTreeMap<u16, u64>>>;

/// Creates a tenant, then `n` mailboxes in one `mx_mailboxes` ensure (timed),
/// then deletes the tenant (and with it the mailboxes). With `counts` (the
/// proxy's), also the requests made during the timed step, by status.
async fn once(ctx: &Ctx, base_url: &str, n: usize, counts: Option<&Counts>) -> Result<Value> {
    let limited_before = RATE_LIMITED.load(Ordering::Relaxed);
    let tag = common::tag();
    let tenant = format!("C-MX{tag}");
    let domain = format!("mx{}.bench.example", tag.to_ascii_lowercase());
    let cfg = SecureMxConfig {
        base_url: base_url.to_string(),
        ca_file: None,
        api_key_file: ctx.var("HW_SECUREMX_API_KEY_FILE")?.into(),
        concurrency: None,
        timeout_secs: None,
        // As an operator configures it: the provider's published limit
        // (the test mock runs at 2,000/s, burst 500; scripts/testenv), a
        // little under it so that jitter on the way does not tip a request
        // over into a 429 and its whole-second Retry-After.
        rate_limit_per_s: Some(1900.0),
        burst: Some(400),
    };
    let adapter = SecureMxAdapter::new(cfg)?;
    let local_parts: Vec<String> = (0..n).map(|i| format!("user{i:04}")).collect();
    let res = |kind: &str, spec: Value| Resource {
        kind: kind.into(),
        key: tenant.clone(),
        contract_id: tenant.clone(),
        spec,
    };
    let ctx_step = |step: &str| StepContext {
        job_id: format!("bench-{tag}"),
        step_id: step.into(),
        attempt: 1,
    };
    let tenant_res = res(
        "mx_tenant",
        json!({
            "tenant": tenant,
            "domains": [domain],
            "ips": ["198.51.100.7"],
            "administrator": {"name": "Bench Admin", "email": format!("admin@{domain}")},
            "accounts_limit": n,
            "disk_units": 1,
            "options": [],
            "mailboxes": local_parts.iter().map(|l| format!("{l}@{domain}")).collect::<Vec<_>>(),
        }),
    );
    adapter
        .ensure(&ctx_step("tenant"), &tenant_res)
        .await
        .map_err(|e| anyhow::anyhow!("creating the tenant: {e}"))?;
    let boxes = res(
        "mx_mailboxes",
        json!({"tenant": tenant, "domain": domain, "local_parts": local_parts}),
    );
    let snapshot = || {
        counts
            .map(|c| c.lock().expect("counts").clone())
            .unwrap_or_default()
    };
    let before = snapshot();
    let clock = Instant::now();
    let outcome = adapter.ensure(&ctx_step("mailboxes"), &boxes).await;
    let seconds = clock.elapsed().as_secs_f64();
    let after = snapshot();
    let rate_limited = RATE_LIMITED.load(Ordering::Relaxed) - limited_before;
    let step_counts: BTreeMap<String, u64> = after
        .iter()
        .map(|(s, n)| (s.to_string(), n - before.get(s).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let created = match &outcome {
        Ok(o) => o.secrets.len(),
        Err(_) => 0,
    };
    let check = adapter.observe(&boxes).await;
    adapter
        .remove(&ctx_step("tenant-remove"), &tenant_res)
        .await
        .map_err(|e| anyhow::anyhow!("removing the tenant: {e}"))?;
    let outcome = outcome.map_err(|e| anyhow::anyhow!("creating the mailboxes: {e}"))?;
    let observed = check.map_err(|e| anyhow::anyhow!("listing the mailboxes: {e}"))?;
    let facts = serde_json::to_value(&outcome.facts)?;
    Ok(json!({
        "tenant": tenant,
        "mailboxes_s": seconds,
        "mailboxes_per_s": n as f64 / seconds,
        "secrets_returned": created,
        "facts": facts,
        "observed": format!("{observed:?}").chars().take(300).collect::<String>(),
        "mailbox_requests_by_status": step_counts,
        "rate_limited_waits": rate_limited,
    }))
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    counts: Counts,
}

/// A counting HTTP forwarder in front of the mock.
async fn proxy(
    upstream: String,
    counts: Counts,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let state = Proxy {
        upstream,
        http: hostwright_tls::client_builder(None)
            .expect("no CA file")
            .pool_max_idle_per_host(64)
            .build()?,
        counts,
    };
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, task))
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = p.http.request(method, format!("{}{path}", p.upstream));
    for (k, v) in headers.iter() {
        if !matches!(k.as_str(), "host" | "content-length" | "connection") {
            req = req.header(k, v);
        }
    }
    match req.body(body).send().await {
        Ok(resp) => {
            let status = resp.status();
            *p.counts
                .lock()
                .expect("counts")
                .entry(status.as_u16())
                .or_default() += 1;
            let mut out = HeaderMap::new();
            for (k, v) in resp.headers() {
                if !matches!(
                    k.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                ) {
                    out.insert(k.clone(), v.clone());
                }
            }
            let bytes = resp.bytes().await.unwrap_or_default();
            (
                StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
                out,
                bytes,
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    }
}

/// 429 answers the adapter waited out (its `securemx rate limited; waiting`
/// debug event), counted by [`RateLimitCounter`].
static RATE_LIMITED: AtomicU64 = AtomicU64::new(0);

/// A tracing layer that counts the adapter's rate-limit waits: the mock keeps
/// no counters and the adapter's HTTP client is its own, so its events are
/// where the timed run's 429s can be seen without a proxy in the way.
pub struct RateLimitCounter;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RateLimitCounter {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Msg(bool);
        impl tracing::field::Visit for Msg {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" && format!("{v:?}").contains("rate limited; waiting") {
                    self.0 = true;
                }
            }
        }
        if event.metadata().target().starts_with("hostwright_securemx") {
            let mut m = Msg(false);
            event.record(&mut m);
            if m.0 {
                RATE_LIMITED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Installs [`RateLimitCounter`] for the adapter's debug events only.
pub fn install_counter() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("hostwright_securemx", tracing::Level::DEBUG);
    let _ = tracing_subscriber::registry()
        .with(RateLimitCounter.with_filter(filter))
        .try_init();
}
