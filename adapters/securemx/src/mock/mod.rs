//! A stand-in for the Secure MX provider's cloud API (terms 第6条–第10条),
//! behaving like a real third-party service: bearer-key auth, JSON errors,
//! validation, rate limits, idempotency keys, persistence, and injectable
//! faults for tests. The API is described in docs/securemx-api.md.

pub mod limit;
pub mod model;
pub mod store;

use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use limit::{Limiter, RateLimit};
use model::ApiError;
use store::Store;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// Why the mock cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("API key file {path}: {message}")]
    ApiKeys { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Reads the API keys: one per line, blank lines and `#` comments ignored.
pub fn read_api_keys(path: &FsPath) -> Result<Vec<String>, StartError> {
    let text = std::fs::read_to_string(path).map_err(|e| StartError::ApiKeys {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if keys.is_empty() {
        return Err(StartError::ApiKeys {
            path: path.to_path_buf(),
            message: "no key in the file".into(),
        });
    }
    Ok(keys)
}

/// An injected failure: the next `remaining` API requests get `status`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Fault {
    #[serde(rename = "fail_next")]
    remaining: u32,
    #[serde(default = "service_unavailable")]
    status: u16,
    /// Optional `Retry-After` seconds on the injected answers.
    #[serde(default)]
    retry_after: Option<u64>,
}

fn service_unavailable() -> u16 {
    503
}

/// Who is calling: a short, non-reversible id of the API key (never the key).
#[derive(Debug, Clone)]
struct Caller(String);

pub struct App {
    store: Arc<Store>,
    /// SHA-256 digests of the accepted keys; comparing digests keeps the
    /// comparison time independent of how much of a guessed key is right.
    keys: Vec<[u8; 32]>,
    limiter: Limiter,
    fault: Mutex<Option<Fault>>,
}

impl App {
    /// Opens the state file and starts its writer (needs a Tokio runtime).
    /// Waits until every change so far is in the state file (at shutdown).
    pub async fn flush(&self) -> Result<(), store::StoreError> {
        self.store.flush().await
    }

    pub fn open(
        state: &FsPath,
        keys: Vec<String>,
        rate: RateLimit,
    ) -> Result<Arc<App>, StartError> {
        Ok(Arc::new(App {
            store: Store::open(state)?,
            keys: keys
                .iter()
                .map(|k| Sha256::digest(k.as_bytes()).into())
                .collect(),
            limiter: Limiter::new(rate),
            fault: Mutex::new(None),
        }))
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(key) = presented {
            let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            if self.keys.contains(&digest) {
                return Ok(Caller(hex::encode(&digest[..8])));
            }
        }
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer KEY)",
        ))
    }
}

/// The whole API.
pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route(
            "/v1/tenants/{id}",
            put(put_tenant).get(get_tenant).delete(delete_tenant),
        )
        .route(
            "/v1/tenants/{id}/mailboxes",
            post(post_mailbox).get(list_mailboxes),
        )
        .route(
            "/v1/tenants/{id}/mailboxes/{address}",
            delete(delete_mailbox).get(get_mailbox),
        )
        .route_layer(middleware::from_fn_with_state(app.clone(), api_guard));
    let admin = Router::new()
        .route(
            "/admin/faults",
            post(set_fault).get(get_fault).delete(clear_fault),
        )
        .route_layer(middleware::from_fn_with_state(app.clone(), admin_guard));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(api)
        .merge(admin)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .with_state(app)
}

/// 200 while the state file is being written, 503 when writes fail.
async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.store.write_error() {
        None => reply(StatusCode::OK, json!({"status": "ok"})),
        Some(e) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "storage_error", "message": e}),
        ),
    }
}

/// Injected faults, then authentication, then the caller's rate limit.
async fn api_guard(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let injected = {
        let mut f = app.fault.lock().expect("fault lock");
        match f.as_mut() {
            Some(fault) if fault.remaining > 0 => {
                fault.remaining -= 1;
                Some(*fault)
            }
            _ => None,
        }
    };
    if let Some(fault) = injected {
        let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut resp = ApiError::new(status, "injected_fault", "fault injected by /admin/faults")
            .into_response();
        if let Some(secs) = fault.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return resp;
    }
    let caller = match app.authenticate(req.headers()) {
        Ok(c) => c,
        Err(e) => return unauthorized(e),
    };
    if let Err(wait) = app.limiter.take(&caller.0) {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("rate limit exceeded; retry in {secs} s"),
        )
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return resp;
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

async fn admin_guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    match app.authenticate(req.headers()) {
        Ok(_) => next.run(req).await,
        Err(e) => unauthorized(e),
    }
}

fn unauthorized(e: ApiError) -> Response {
    let mut resp = e.into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

fn path_param<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| bad_request("invalid_path", e.body_text()))
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request("invalid_body", e.to_string()))
}

fn reply(status: StatusCode, body: Value) -> Response {
    if body.is_null() {
        status.into_response()
    } else {
        (status, axum::Json(body)).into_response()
    }
}

async fn put_tenant(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_param(id)?;
    model::check_tenant_id(&id)?;
    let mut req: model::TenantRequest = json_body(&body)?;
    model::validate_tenant(&mut req)?;
    let result = app
        .store
        .update(|st| match model::put_tenant(st, &id, req) {
            Ok((status, view, changed)) => (Ok((status, view)), changed),
            Err(e) => (Err(e), false),
        });
    let (status, view) = result?;
    Ok(reply(status, view))
}

async fn get_tenant(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_param(id)?;
    model::check_tenant_id(&id)?;
    app.store
        .read(|st| st.tenants.get(&id).map(model::Tenant::view))
        .map(|v| reply(StatusCode::OK, v))
        .ok_or_else(|| model::tenant_not_found(&id))
}

async fn delete_tenant(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_param(id)?;
    model::check_tenant_id(&id)?;
    let removed = app.store.update(|st| {
        let gone = st.tenants.remove(&id).is_some();
        (gone, gone)
    });
    if removed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(model::tenant_not_found(&id))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailboxRequest {
    address: String,
}

enum Created {
    Fresh(Value),
    Replayed(u16, Value),
}

async fn post_mailbox(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_param(id)?;
    model::check_tenant_id(&id)?;
    let req: MailboxRequest = json_body(&body)?;
    let idem = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().unwrap_or("");
            if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1-255 visible ASCII characters",
                ));
            }
            Some(format!("{}:{k}", caller.0))
        }
    };
    let mut h = Sha256::new();
    h.update(format!("POST /v1/tenants/{id}/mailboxes\n").as_bytes());
    h.update(&body);
    let fingerprint = hex::encode(h.finalize());
    let result = app.store.update(|st| {
        if let Some(k) = &idem
            && let Some(r) = st.idempotency.get(k)
        {
            if r.fingerprint != fingerprint {
                return (
                    Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used with a different request",
                    )),
                    false,
                );
            }
            return (Ok(Created::Replayed(r.status, r.body.clone())), false);
        }
        match model::create_mailbox(st, &id, &req.address) {
            Ok(view) => {
                // Only successes are remembered: a refusal (limit reached,
                // tenant missing) is evaluated afresh on the next try.
                if let Some(k) = idem.clone() {
                    st.remember(k, fingerprint, 201, view.clone());
                }
                (Ok(Created::Fresh(view)), true)
            }
            Err(e) => (Err(e), false),
        }
    });
    match result? {
        Created::Fresh(view) => Ok(reply(StatusCode::CREATED, view)),
        Created::Replayed(status, view) => {
            let mut resp = reply(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), view);
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(resp)
        }
    }
}

#[derive(Deserialize)]
struct ListParams {
    cursor: Option<String>,
    limit: Option<String>,
}

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;

async fn list_mailboxes(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = path_param(id)?;
    model::check_tenant_id(&id)?;
    let Query(params) = params.map_err(|e| bad_request("invalid_query", e.body_text()))?;
    let limit = match params.limit.as_deref() {
        None | Some("") => DEFAULT_PAGE,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(bad_request(
                    "invalid_limit",
                    format!("limit must be 1..={MAX_PAGE}"),
                ));
            }
        },
    };
    let after = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    bad_request("invalid_cursor", "cursor is not one this API issued")
                })?,
        ),
    };
    app.store.read(|st| {
        let t = st
            .tenants
            .get(&id)
            .ok_or_else(|| model::tenant_not_found(&id))?;
        use std::ops::Bound;
        let lower = match &after {
            Some(a) => Bound::Excluded(a.clone()),
            None => Bound::Unbounded,
        };
        let mut page: Vec<&model::Mailbox> = t
            .mailboxes
            .range((lower, Bound::Unbounded))
            .take(limit + 1)
            .map(|(_, m)| m)
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more {
            page.last().map(|m| hex::encode(m.address.as_bytes()))
        } else {
            None
        };
        Ok(reply(
            StatusCode::OK,
            json!({"mailboxes": page, "next_cursor": next, "total": t.mailboxes.len()}),
        ))
    })
}

async fn get_mailbox(
    State(app): State<Arc<App>>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (id, address) = path_param(p)?;
    model::check_tenant_id(&id)?;
    app.store.read(|st| {
        let t = st
            .tenants
            .get(&id)
            .ok_or_else(|| model::tenant_not_found(&id))?;
        t.mailboxes
            .get(&address)
            .map(|m| reply(StatusCode::OK, json!(m)))
            .ok_or_else(|| mailbox_not_found(&address))
    })
}

fn mailbox_not_found(address: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "mailbox_not_found",
        format!("no mailbox {address}"),
    )
}

async fn delete_mailbox(
    State(app): State<Arc<App>>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (id, address) = path_param(p)?;
    model::check_tenant_id(&id)?;
    let result = app.store.update(|st| match st.tenants.get_mut(&id) {
        None => (Err(model::tenant_not_found(&id)), false),
        Some(t) => match t.mailboxes.remove(&address) {
            Some(_) => (Ok(()), true),
            None => (Err(mailbox_not_found(&address)), false),
        },
    });
    result.map(|()| StatusCode::NO_CONTENT.into_response())
}

async fn set_fault(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let fault: Fault = json_body(&body)?;
    if !(400..=599).contains(&fault.status) {
        return Err(bad_request("invalid_status", "status must be 400..=599"));
    }
    *app.fault.lock().expect("fault lock") = Some(fault);
    Ok(reply(StatusCode::OK, json!(fault)))
}

async fn get_fault(State(app): State<Arc<App>>) -> Response {
    let f = *app.fault.lock().expect("fault lock");
    reply(StatusCode::OK, json!({"fault": f}))
}

async fn clear_fault(State(app): State<Arc<App>>) -> Response {
    *app.fault.lock().expect("fault lock") = None;
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests;
