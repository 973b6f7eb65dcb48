//! The HTTP API: the approval webhook (`POST /v1/contracts`, the contract
//! system's intake credential plus the contract's signature), the ops
//! endpoints (named ops tokens with scopes, see `auth.rs`), metrics and
//! health.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, RawPathParams, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::json;

use super::Engine;
use super::auth::{self, Authenticator, Caller, Refusal, Scope};
use super::guard::{BodyError, MAX_ENVELOPE_BYTES, read_body};
use super::intake::{DryRun, IntakeError, IntakeResult};
use super::problem::{Kind, Problem};
use super::store::ops::{AuditFilter, ContractsPage, JobsPage, NewAuditEntry};
use super::store::{JobState, MAX_LIST_JOBS, StoreError};

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
}

/// Builds the router. Without any ops credential (no tokens in the store,
/// no `api.ops_token_file`) the ops endpoints answer 401: closed, never open.
pub fn router(engine: Arc<Engine>, auth: Arc<Authenticator>) -> Router {
    let state = AppState { engine, auth };
    let gate = |scope: Scope| middleware::from_fn_with_state((state.clone(), scope), ops_gate);
    let read = Router::new()
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{id}", get(show_job))
        .route("/v1/rejections", get(rejections))
        .route("/v1/contracts", get(list_contracts))
        .route("/v1/contracts/{id}", get(show_contract))
        .route("/v1/audit", get(audit_log))
        .route("/v1/plan", post(plan))
        .route("/v1/drift", get(drift))
        .route_layer(gate(Scope::Read));
    let operate = Router::new()
        .route("/v1/jobs/rerun-failed", post(rerun_failed))
        .route("/v1/jobs/{id}/rerun", post(rerun))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route_layer(gate(Scope::Operate));
    let secrets = Router::new()
        .route("/v1/jobs/{id}/secrets", post(take_secrets))
        .route_layer(gate(Scope::Secrets));
    let intake = Router::new()
        .route("/v1/contracts", post(submit))
        .route_layer(middleware::from_fn_with_state(state.clone(), intake_gate));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .merge(intake)
        .merge(read)
        .merge(operate)
        .merge(secrets)
        .fallback(|| async {
            Problem::new(
                Kind::NotFound,
                "no such resource in this API (see /v1/openapi.json)",
            )
        })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                Kind::MethodNotAllowed,
                "this resource does not take that method",
            )
        })
        .layer(middleware::map_response(as_problem))
        .with_state(state)
}

/// Any error answer that is not a problem yet (axum's own rejections: a
/// body over the limit, an unreadable query string) becomes one, so every
/// error of this API is `application/problem+json`.
async fn as_problem(resp: Response) -> Response {
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == super::problem::CONTENT_TYPE.as_bytes());
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return resp;
    }
    let kind = match status {
        StatusCode::PAYLOAD_TOO_LARGE => Kind::TooLarge,
        StatusCode::NOT_FOUND => Kind::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => Kind::MethodNotAllowed,
        StatusCode::UNAUTHORIZED => Kind::Unauthenticated,
        StatusCode::SERVICE_UNAVAILABLE => Kind::Unavailable,
        s if s.is_client_error() => Kind::InvalidRequest,
        _ => Kind::Internal,
    };
    let body = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .unwrap_or_default();
    let detail = String::from_utf8_lossy(&body).trim().to_string();
    Problem::new(
        kind,
        if detail.is_empty() {
            kind.title().to_string()
        } else {
            detail
        },
    )
    .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn client_addr(req: &axum::extract::Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// `POST /v1/jobs/{id}/rerun`: the method and the route's pattern.
fn action_of(req: &axum::extract::Request) -> String {
    let path = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    format!("{} {path}", req.method())
}

/// The job (or other resource) a request names, for the audit log.
fn target_of(params: &RawPathParams) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| *k == "id")
        .map(|(_, v)| v.chars().take(200).collect())
}

/// The ops endpoints' gate: blocked address → 429; no valid credential →
/// 401 (counted against the address); missing scope → 403. Refusals and
/// every non-GET action are audited; the handler sees the [`Caller`].
async fn ops_gate(
    State((st, scope)): State<(AppState, Scope)>,
    params: RawPathParams,
    mut req: axum::extract::Request,
    next: Next,
) -> Response {
    let addr = client_addr(&req);
    let action = action_of(&req);
    let target = target_of(&params);
    if let Err(r) = st.auth.check_blocked(addr) {
        // Not audited: a blocked address could otherwise fill the log at
        // the speed it sends; the refusal that started the block was.
        st.engine.metrics.auth_refused(r.reason());
        return refusal_response(&r);
    }
    let caller = match st.auth.ops(&*st.engine.store, bearer(req.headers())).await {
        Ok(c) => c,
        Err(r) => {
            let r = match st.auth.failed(addr) {
                Some(wait) => Refusal::RateLimited(wait),
                None => r,
            };
            return refuse(&st, r, action, target, addr).await;
        }
    };
    if !caller.scopes.contains(&scope) {
        let r = Refusal::Scope {
            actor: caller.actor,
            needed: scope,
        };
        return refuse(&st, r, action, target, addr).await;
    }
    let audited = req.method() != Method::GET;
    req.extensions_mut().insert(caller.clone());
    let resp = next.run(req).await;
    if audited {
        let status = resp.status();
        let outcome = if status.is_success() {
            "ok".to_string()
        } else if status.is_client_error() {
            format!("refused {}", status.as_u16())
        } else {
            format!("failed {}", status.as_u16())
        };
        auth::audit(
            &*st.engine.store,
            NewAuditEntry {
                actor: caller.actor,
                action,
                target,
                address: addr.map(|a| a.to_string()),
                outcome,
                detail: None,
            },
        )
        .await;
    }
    resp
}

/// The intake endpoint's gate: the contract system's credential, when one
/// is configured (`intake.credential_file`).
async fn intake_gate(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    if !st.auth.intake_required() {
        return next.run(req).await;
    }
    let addr = client_addr(&req);
    if let Err(r) = st.auth.check_blocked(addr) {
        st.engine.metrics.auth_refused(r.reason());
        return refusal_response(&r);
    }
    if let Err(r) = st.auth.intake(bearer(req.headers())) {
        let r = match st.auth.failed(addr) {
            Some(wait) => Refusal::RateLimited(wait),
            None => r,
        };
        let action = action_of(&req);
        return refuse(&st, r, action, None, addr).await;
    }
    next.run(req).await
}

async fn refuse(
    st: &AppState,
    r: Refusal,
    action: String,
    target: Option<String>,
    addr: Option<IpAddr>,
) -> Response {
    st.engine.metrics.auth_refused(r.reason());
    let resp = refusal_response(&r);
    auth::audit(
        &*st.engine.store,
        NewAuditEntry {
            actor: r.actor(),
            action,
            target,
            address: addr.map(|a| a.to_string()),
            outcome: format!("refused {}", resp.status().as_u16()),
            detail: Some(format!("{}: {}", r.reason(), r.detail())),
        },
    )
    .await;
    resp
}

fn refusal_response(r: &Refusal) -> Response {
    let p = match r {
        Refusal::Scope { needed, .. } => {
            Problem::new(Kind::Forbidden, r.detail()).with("scope", needed.as_str())
        }
        Refusal::RateLimited(wait) => {
            Problem::new(Kind::RateLimited, r.detail()).retry_after(wait.as_secs().max(1))
        }
        _ => Problem::new(Kind::Unauthenticated, r.detail()),
    };
    let mut resp = p.into_response();
    if resp.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

fn store_error(e: StoreError) -> Response {
    match &e {
        StoreError::JobNotFound(id) => {
            Problem::new(Kind::JobNotFound, e.to_string()).with("job_id", id)
        }
        StoreError::InvalidTransition { job, state, .. } => {
            Problem::new(Kind::InvalidTransition, e.to_string())
                .with("job_id", job)
                .with("state", state)
        }
        StoreError::Database(_) | StoreError::Sqlite(_) | StoreError::Postgres(_) => {
            Problem::new(Kind::Unavailable, e.to_string())
        }
        _ => Problem::new(Kind::Internal, e.to_string()),
    }
    .into_response()
}

fn intake_error(e: IntakeError) -> Response {
    match e {
        IntakeError::Store(e) => store_error(e),
        IntakeError::Plan(e) => Problem::new(Kind::Unplannable, e.to_string()).into_response(),
    }
}

/// Intake reads the body itself, with the one envelope limit, so a body of
/// any size is answered (413, recorded) by intake, and a client's address
/// keys its refusal budget (without connect info every client shares one).
async fn submit(State(st): State<AppState>, req: axum::extract::Request) -> Response {
    let peer = client_addr(&req).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    match st
        .engine
        .submit(peer, req.into_body(), chrono::Utc::now())
        .await
    {
        Ok(r) => intake_response(r),
        Err(e) => intake_error(e),
    }
}

/// Accepted and existing revisions answer JSON (202 with `Location`, 200);
/// every refusal is a problem whose extension members carry the intake's
/// answer (`outcome`, the contract, and for a refused contract `findings`).
fn intake_response(res: IntakeResult) -> Response {
    let (kind, detail) = match &res {
        IntakeResult::Accepted { job_id, .. } => {
            let location = format!("/v1/jobs/{job_id}");
            let mut resp = (StatusCode::ACCEPTED, axum::Json(&res)).into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            return resp;
        }
        IntakeResult::Existing { .. } => return (StatusCode::OK, axum::Json(res)).into_response(),
        IntakeResult::Stale { message, .. } => (Kind::StaleRevision, message.clone()),
        IntakeResult::Rejected { findings, .. } => (
            Kind::ContractRefused,
            format!("{} finding(s) against the terms of service", findings.len()),
        ),
        IntakeResult::Unauthorized { error } => (Kind::BadSignature, error.clone()),
        IntakeResult::Malformed { error } => (Kind::Malformed, error.clone()),
        IntakeResult::TooLarge { limit } => (
            Kind::TooLarge,
            format!("the body is larger than {limit} bytes"),
        ),
        IntakeResult::Busy { message } => (Kind::Unavailable, message.clone()),
        IntakeResult::RateLimited {
            retry_after_seconds,
            ..
        } => (
            Kind::RateLimited,
            format!(
                "too many refused submissions from this address; try again in {retry_after_seconds} s"
            ),
        ),
    };
    let retry_after = match &res {
        IntakeResult::RateLimited {
            retry_after_seconds,
            ..
        } => HeaderValue::from_str(&retry_after_seconds.to_string()).ok(),
        _ => None,
    };
    let mut p = Problem::new(kind, detail);
    if let serde_json::Value::Object(members) = serde_json::to_value(&res).expect("serializes") {
        for (k, v) in members {
            if !matches!(k.as_str(), "type" | "title" | "status" | "detail") {
                p.extensions.insert(k, v);
            }
        }
    }
    let mut resp = p.into_response();
    if let Some(v) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    contract: Option<String>,
    /// Read as text, so that any value out of range gets the same answer.
    limit: Option<String>,
    cursor: Option<String>,
}

/// Opaque paging cursors: base64url of what the next page starts after.
mod cursor {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn encode(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    pub fn decode(cursor: &str) -> Option<String> {
        String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()
    }
}

fn bad_cursor() -> Response {
    Problem::new(
        Kind::InvalidCursor,
        "the cursor is not one this API handed out (pass back `next_cursor` as it came)",
    )
    .into_response()
}

/// `{"items": [...], "next_cursor": ...}`: a full page has a cursor for the
/// next one; the last page has `null`.
fn page<T: serde::Serialize>(
    items: Vec<T>,
    limit: u32,
    next: impl FnOnce(&T) -> String,
) -> Response {
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|t| cursor::encode(&next(t))))
        .flatten();
    axum::Json(json!({"items": items, "next_cursor": next})).into_response()
}

/// A cursor that holds a row id: `Ok(None)` without one, `Err` for one this
/// API did not hand out.
fn id_cursor(c: Option<&str>) -> Result<Option<i64>, ()> {
    match c {
        None => Ok(None),
        Some(c) => cursor::decode(c)
            .and_then(|t| t.parse::<i64>().ok())
            .filter(|id| *id > 0)
            .map(Some)
            .ok_or(()),
    }
}

/// A page's size (`?limit=`, 50 by default): anything but a whole number
/// from 1 to [`MAX_LIST_JOBS`] is refused, naming the maximum (a huge limit
/// once answered everything at once); more comes with `next_cursor`.
fn page_limit(limit: Option<&str>) -> Result<u32, Box<Response>> {
    match limit.map(|l| (l, l.parse::<u32>())) {
        None => Ok(50),
        Some((_, Ok(n))) if (1..=MAX_LIST_JOBS).contains(&n) => Ok(n),
        Some((l, _)) => Err(Box::new(
            Problem::new(
                Kind::InvalidRequest,
                format!(
                    "limit `{}` must be a whole number from 1 to {MAX_LIST_JOBS} (page on with next_cursor)",
                    l.chars().take(40).collect::<String>()
                ),
            )
            .with("parameter", "limit")
            .into_response(),
        )),
    }
}

async fn list_jobs(State(st): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    let state = match q.state.as_deref().map(|s| (s, JobState::parse(s))) {
        Some((s, None)) => {
            return Problem::new(
                Kind::InvalidRequest,
                format!("unknown state `{s}` (queued, running, succeeded, failed, cancelled)"),
            )
            .with("parameter", "state")
            .into_response();
        }
        Some((_, st)) => st,
        None => None,
    };
    let after = match q.cursor.as_deref().map(|c| {
        cursor::decode(c).and_then(|t| {
            let (at, id) = t.split_once('/')?;
            Some((at.parse::<i64>().ok()?, id.to_string()))
        })
    }) {
        None => None,
        Some(Some(a)) => Some(a),
        Some(None) => return bad_cursor(),
    };
    let limit = match page_limit(q.limit.as_deref()) {
        Ok(l) => l,
        Err(refused) => return *refused,
    };
    let filter = JobsPage {
        state,
        contract_id: q.contract,
        after,
        limit,
    };
    match st.engine.store.jobs_page(&filter).await {
        Ok(jobs) => page(jobs, limit, |j| {
            format!("{}/{}", j.created_at.timestamp_millis(), j.job_id)
        }),
        Err(e) => store_error(e),
    }
}

async fn show_job(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.engine.store.job(&id).await {
        Ok(Some(j)) => axum::Json(j).into_response(),
        Ok(None) => store_error(StoreError::JobNotFound(id)),
        Err(e) => store_error(e),
    }
}

async fn rerun(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    match st.engine.store.rerun(&id, &caller.actor).await {
        Ok(()) => {
            st.engine.wake_workers();
            axum::Json(json!({"rerun": [id]})).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn rerun_failed(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    match st.engine.store.rerun_failed(&caller.actor).await {
        Ok(ids) => {
            st.engine.wake_workers();
            axum::Json(json!({"rerun": ids})).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn cancel(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    match st.engine.store.cancel(&id, &caller.actor).await {
        Ok(()) => axum::Json(json!({"cancelled": id})).into_response(),
        Err(e) => store_error(e),
    }
}

/// Read-once: the credentials a job created (FTP passwords, mailbox initial
/// passwords), for the contract system. A second call returns nothing; an
/// unknown job is a 404. The hand-out is in the job's ops log.
async fn take_secrets(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    match st.engine.store.take_secrets(&id, &caller.actor).await {
        Ok(s) => axum::Json(
            s.iter()
                .map(|(name, secret)| (name.as_str(), secret.expose()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
struct PageQuery {
    /// Read as text, so that any value out of range gets the same answer.
    limit: Option<String>,
    cursor: Option<String>,
}

/// Refused submissions, newest first (what was refused and why; the
/// received bytes stay in the store).
async fn rejections(State(st): State<AppState>, Query(q): Query<PageQuery>) -> Response {
    let Ok(before) = id_cursor(q.cursor.as_deref()) else {
        return bad_cursor();
    };
    let limit = match page_limit(q.limit.as_deref()) {
        Ok(l) => l,
        Err(refused) => return *refused,
    };
    match st.engine.store.rejections_page(before, limit).await {
        Ok(r) => {
            let items: Vec<_> = r
                .into_iter()
                .map(|(id, r)| {
                    json!({
                        "id": id,
                        "contract_id": r.contract_id,
                        "revision": r.revision,
                        "kind": r.kind,
                        "reasons": r.reasons,
                        "received_sha256": r.received_sha256,
                        "received_size": r.received_size,
                        "received_at": r.received_at,
                    })
                })
                .collect();
            page(items, limit, |v| v["id"].to_string())
        }
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
struct ContractsQuery {
    customer: Option<String>,
    domain: Option<String>,
    state: Option<String>,
    /// Read as text, so that any value out of range gets the same answer.
    limit: Option<String>,
    cursor: Option<String>,
}

/// `active`, `suspended` or `terminated`: a contract's state as its latest
/// revision says.
fn contract_state(c: &crate::contract::Contract) -> &'static str {
    match c.status {
        crate::contract::Status::Active => "active",
        crate::contract::Status::Suspended { .. } => "suspended",
        crate::contract::Status::Terminated { .. } => "terminated",
    }
}

fn contract_summary(rev: &super::store::StoredRevision) -> Option<serde_json::Value> {
    let c = crate::contract::Contract::from_json(&rev.payload).ok()?;
    Some(json!({
        "contract_id": rev.contract_id,
        "revision": rev.revision,
        "customer_id": c.customer.id,
        "service": c.service.code(),
        "state": contract_state(&c),
        "domains": c.domains.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        "received_at": rev.received_at,
    }))
}

/// Contracts (their latest revision), by id; filters: customer, a domain
/// their recorded resources carry, state.
async fn list_contracts(State(st): State<AppState>, Query(q): Query<ContractsQuery>) -> Response {
    if let Some(s) = q.state.as_deref()
        && !matches!(s, "active" | "suspended" | "terminated")
    {
        return Problem::new(
            Kind::InvalidRequest,
            format!("unknown state `{s}` (active, suspended, terminated)"),
        )
        .with("parameter", "state")
        .into_response();
    }
    let mut after = match q.cursor.as_deref().map(cursor::decode) {
        None => None,
        Some(Some(id)) => Some(id),
        Some(None) => return bad_cursor(),
    };
    let limit = match page_limit(q.limit.as_deref()) {
        Ok(l) => l,
        Err(refused) => return *refused,
    };
    let mut items = Vec::new();
    // The state lives in the payload: filter here, reading on until the
    // page is full or the contracts run out.
    loop {
        let batch = match st
            .engine
            .store
            .contracts_page(&ContractsPage {
                customer_id: q.customer.clone(),
                domain: q.domain.clone(),
                after: after.clone(),
                limit,
            })
            .await
        {
            Ok(b) => b,
            Err(e) => return store_error(e),
        };
        let exhausted = batch.len() < limit as usize;
        for rev in &batch {
            after = Some(rev.contract_id.clone());
            let Some(v) = contract_summary(rev) else {
                continue;
            };
            if q.state.as_deref().is_none_or(|s| v["state"] == s) {
                items.push(v);
                if items.len() == limit as usize {
                    break;
                }
            }
        }
        if exhausted || items.len() == limit as usize {
            break;
        }
    }
    page(items, limit, |v| {
        v["contract_id"].as_str().unwrap_or_default().to_string()
    })
}

/// One contract: every revision, the resources recorded for it and where
/// they live (adapter, spec, facts), and its latest billable state.
async fn show_contract(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let store = &st.engine.store;
    let revisions = match store.revisions(&id).await {
        Ok(r) if r.is_empty() => {
            return Problem::new(Kind::ContractNotFound, format!("contract {id} not found"))
                .with("contract_id", &id)
                .into_response();
        }
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let (resources, report) = match (store.resources(&id).await, store.latest_report(&id).await) {
        (Ok(r), Ok(b)) => (r, b),
        (Err(e), _) | (_, Err(e)) => return store_error(e),
    };
    let latest = revisions.last().expect("not empty");
    let mut v = contract_summary(latest).unwrap_or_else(|| json!({"contract_id": id}));
    v["revisions"] = revisions
        .iter()
        .map(|r| {
            let c = crate::contract::Contract::from_json(&r.payload).ok();
            json!({
                "revision": r.revision,
                "received_at": r.received_at,
                "state": c.as_ref().map(contract_state),
            })
        })
        .collect();
    v["contract"] = serde_json::from_slice(&latest.payload).unwrap_or(serde_json::Value::Null);
    v["resources"] = serde_json::to_value(
        resources
            .iter()
            .map(|r| {
                json!({
                    "kind": r.kind,
                    "key": r.key,
                    "adapter": r.adapter,
                    "spec": r.spec,
                    "facts": r.facts,
                })
            })
            .collect::<Vec<_>>(),
    )
    .expect("serializes");
    v["billable"] = serde_json::to_value(report).expect("serializes");
    axum::Json(v).into_response()
}

/// Plans a signed contract against the recorded state without applying it,
/// judged exactly as intake would judge it: what intake would refuse is
/// answered as intake would answer it.
async fn plan(State(st): State<AppState>, req: axum::extract::Request) -> Response {
    let body = match read_body(req.into_body(), MAX_ENVELOPE_BYTES).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(_)) => {
            return Problem::new(
                Kind::TooLarge,
                format!("the envelope is larger than {MAX_ENVELOPE_BYTES} bytes"),
            )
            .into_response();
        }
        Err(BodyError::Read(e)) => {
            return Problem::new(
                Kind::Malformed,
                format!("the request body could not be read: {e}"),
            )
            .into_response();
        }
    };
    match st.engine.dry_run(&body, chrono::Utc::now()).await {
        Ok(DryRun::Planned { steps, .. }) => axum::Json(steps).into_response(),
        Ok(DryRun::Refused(answer)) => intake_response(answer),
        Err(e) => intake_error(e),
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    target: Option<String>,
    /// Read as text, so that any value out of range gets the same answer.
    limit: Option<String>,
    cursor: Option<String>,
}

/// The audit log, newest first, a page at a time: `next_cursor` fetches the
/// next (older) page.
async fn audit_log(State(st): State<AppState>, Query(q): Query<AuditQuery>) -> Response {
    let Ok(before) = id_cursor(q.cursor.as_deref()) else {
        return bad_cursor();
    };
    let limit = match page_limit(q.limit.as_deref()) {
        Ok(l) => l,
        Err(refused) => return *refused,
    };
    let filter = AuditFilter {
        actor: q.actor,
        target: q.target,
        before,
        limit,
    };
    match st.engine.store.audit(&filter).await {
        Ok(items) => page(items, limit, |e| e.id.to_string()),
        Err(e) => store_error(e),
    }
}

/// The last full drift scan (`serve` scans on a schedule, `[drift]`); a
/// report-only scan now when none ran yet. The shape is
/// `engine::drift::DriftReport`, as `hostwright drift --json` prints it.
async fn drift(State(st): State<AppState>) -> Response {
    match st.engine.last_drift().await {
        Ok(r) => axum::Json(r.as_ref().clone()).into_response(),
        Err(super::drift::DriftError::Store(e)) => store_error(e),
        Err(e) => {
            Problem::new(Kind::Unavailable, format!("drift scan failed: {e}")).into_response()
        }
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    match st.engine.store.stats().await {
        Ok(stats) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            st.engine.metrics.render(&stats),
        )
            .into_response(),
        Err(e) => store_error(e),
    }
}

async fn ready(State(st): State<AppState>) -> Response {
    match st.engine.store.stats().await {
        Ok(_) => "ready".into_response(),
        Err(e) => {
            Problem::new(Kind::Unavailable, format!("store unavailable: {e}")).into_response()
        }
    }
}
