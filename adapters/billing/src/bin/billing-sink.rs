//! `billing-sink`: a stand-in for billing's endpoint, for tests, the
//! quickstart and the compose stack.
//!
//! - `POST /v1/billable-states`: a report from [`hostwright_billing::Reporter`].
//!   The `x-hostwright-signature` header must be the HMAC of the body under the
//!   shared secret (401 otherwise), `idempotency-key` is required (400), the
//!   body must be JSON (400). Each key is recorded once: a repeat answers 200
//!   with the original receipt and `duplicate: true`; the same key with another
//!   body is 409. New records are appended to a JSONL file and fsynced before
//!   the 201 answer.
//! - `GET /v1/billable-states`: everything received, in order.
//! - `GET /healthz`.
//! - `POST /admin/fail` `{"status": 503, "count": N}` (the next N reports get
//!   that status) or `{"down": true|false}` (every report gets 503 until
//!   `down: false`): outages for tests. Loopback test tool: no auth.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use hostwright_billing::{IDEMPOTENCY_HEADER, Receipt, SIGNATURE_HEADER, verify};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Billing sink: receives signed billable-state reports")]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:55390.
    #[arg(long)]
    listen: SocketAddr,
    /// File with the shared HMAC secret (surrounding whitespace is ignored).
    #[arg(long)]
    secret_file: PathBuf,
    /// JSONL file of received reports (appended, fsynced).
    #[arg(long)]
    store: PathBuf,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); the
    /// files are re-read when they change.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// One received report, as stored (one JSON line each).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    receipt_id: String,
    idempotency_key: String,
    received_at: String,
    body: Value,
}

#[derive(Debug, Clone, Copy, Default)]
struct Outage {
    down: bool,
    fail_status: u16,
    fail_count: u32,
}

struct Sink {
    secret: Vec<u8>,
    inner: Mutex<Inner>,
}

struct Inner {
    records: Vec<Record>,
    by_key: HashMap<String, usize>,
    file: std::fs::File,
    outage: Outage,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Reads the store. A torn last line (a crash mid-append) is cut off the
/// file, so the next append starts on a line of its own; any other unreadable
/// line stops the start.
fn load(path: &Path) -> anyhow::Result<Vec<Record>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let complete = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None => 0,
    };
    if complete < bytes.len() {
        tracing::warn!(
            bytes = bytes.len() - complete,
            "cutting a torn last line off the store"
        );
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| {
                f.set_len(complete as u64)?;
                f.sync_all()
            })
            .with_context(|| format!("truncating {}", path.display()))?;
    }
    let mut out = Vec::new();
    for (i, line) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let r: Record = serde_json::from_slice(line)
            .with_context(|| format!("{} line {}", path.display(), i + 1))?;
        out.push(r);
    }
    Ok(out)
}

async fn receive(State(sink): State<Arc<Sink>>, headers: HeaderMap, body: Bytes) -> Response {
    {
        let mut inner = sink.inner.lock().expect("sink lock");
        if inner.outage.down {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "down",
                "billing is down (simulated)",
            );
        }
        if inner.outage.fail_count > 0 {
            inner.outage.fail_count -= 1;
            let status = StatusCode::from_u16(inner.outage.fail_status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return error(status, "injected_fault", "failure injected by /admin/fail");
        }
    }
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !verify(&sink.secret, &body, signature) {
        return error(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "x-hostwright-signature does not match the body",
        );
    }
    let key = match headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        Some(k) if !k.trim().is_empty() && k.len() <= 255 => k.to_string(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "idempotency_key_required",
                "the idempotency-key header is required (1-255 characters)",
            );
        }
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "the body is not JSON",
            );
        }
    };
    let mut inner = sink.inner.lock().expect("sink lock");
    if let Some(&i) = inner.by_key.get(&key) {
        let r = &inner.records[i];
        if r.body != value {
            return error(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "this idempotency key was recorded with another report",
            );
        }
        let receipt = Receipt {
            receipt_id: r.receipt_id.clone(),
            duplicate: true,
        };
        return (StatusCode::OK, axum::Json(receipt)).into_response();
    }
    let record = Record {
        receipt_id: format!("rcpt-{:06}", inner.records.len() + 1),
        idempotency_key: key.clone(),
        received_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        body: value,
    };
    let mut line = serde_json::to_vec(&record).expect("record serialises");
    line.push(b'\n');
    if let Err(e) = inner
        .file
        .write_all(&line)
        .and_then(|()| inner.file.sync_data())
    {
        tracing::error!(error = %e, "appending to the store failed");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            "the report could not be stored",
        );
    }
    let receipt = Receipt {
        receipt_id: record.receipt_id.clone(),
        duplicate: false,
    };
    let i = inner.records.len();
    inner.records.push(record);
    inner.by_key.insert(key, i);
    tracing::info!(receipt = %receipt.receipt_id, "report recorded");
    (StatusCode::CREATED, axum::Json(receipt)).into_response()
}

async fn list(State(sink): State<Arc<Sink>>) -> Response {
    let inner = sink.inner.lock().expect("sink lock");
    axum::Json(json!({ "records": inner.records })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailRequest {
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    down: Option<bool>,
}

async fn admin_fail(State(sink): State<Arc<Sink>>, body: Bytes) -> Response {
    let req: FailRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_body", &e.to_string()),
    };
    let mut inner = sink.inner.lock().expect("sink lock");
    if let Some(down) = req.down {
        inner.outage.down = down;
    }
    if req.status.is_some() || req.count.is_some() {
        let status = req.status.unwrap_or(503);
        if !(400..=599).contains(&status) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_status",
                "status must be 400..=599",
            );
        }
        inner.outage.fail_status = status;
        inner.outage.fail_count = req.count.unwrap_or(1);
    }
    let o = inner.outage;
    axum::Json(json!({"down": o.down, "fail_status": o.fail_status, "fail_count": o.fail_count}))
        .into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let secret = std::fs::read_to_string(&args.secret_file)
        .with_context(|| format!("reading the secret file {}", args.secret_file.display()))?
        .trim()
        .as_bytes()
        .to_vec();
    anyhow::ensure!(
        !secret.is_empty(),
        "the secret file {} is empty",
        args.secret_file.display()
    );
    let records = load(&args.store)?;
    let by_key = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.idempotency_key.clone(), i))
        .collect();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.store)
        .with_context(|| format!("opening {}", args.store.display()))?;
    let sink = Arc::new(Sink {
        secret,
        inner: Mutex::new(Inner {
            records,
            by_key,
            file,
            outage: Outage::default(),
        }),
    });
    let app = Router::new()
        .route("/v1/billable-states", post(receive).get(list))
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/admin/fail", post(admin_fail))
        .with_state(sink);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let tls = hostwright_tls::server::optional_tls(args.tls_cert, args.tls_key)?;
    tracing::info!(listen = %args.listen, store = %args.store.display(), tls = tls.is_some(), "billing-sink listening");
    hostwright_tls::server::serve(
        listener,
        app,
        tls,
        hostwright_tls::server::termination_signal(),
    )
    .await?;
    Ok(())
}
