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
use axum::{Extension, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Engine;
use super::auth::{self, Authenticator, Caller, Refusal, Scope};
use super::guard::{BodyError, MAX_ENVELOPE_BYTES, read_body};
use super::intake::{DryRun, IntakeError, IntakeResult};
use super::moves::{MoveError, QueuedMove};
use super::problem::{Kind, Problem};
use super::store::fleet::Placement;
use super::store::ops::{
    AuditEntry, AuditFilter, ContractsPage, JobsPage, LatestReport, NewAuditEntry,
};
use super::store::{
    JobDetail, JobState, JobSummary, MAX_LIST_JOBS, PlannedStep, RecordedResource, StoreError,
};

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
}

/// Every route of the API with its description: the one list both the
/// served router and the OpenAPI document (`openapi.rs`) come from, so a
/// route cannot be served undescribed. Gates find the [`AppState`] as an
/// extension, so this list needs no engine (`hostwright openapi`).
fn described() -> OpenApiRouter<AppState> {
    let gate = |scope: Scope| middleware::from_fn_with_state(scope, ops_gate);
    let read = OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(show_job))
        .routes(routes!(rejections))
        .routes(routes!(list_contracts))
        .routes(routes!(show_contract))
        .routes(routes!(audit_log))
        .routes(routes!(list_hosts))
        .routes(routes!(drift))
        .routes(routes!(plan))
        .route_layer(gate(Scope::Read));
    let operate = OpenApiRouter::new()
        .routes(routes!(rerun_failed))
        .routes(routes!(rerun))
        .routes(routes!(cancel))
        .routes(routes!(drain_host))
        .routes(routes!(move_contract))
        .routes(routes!(activate_host))
        .routes(routes!(repair_drift))
        .route_layer(gate(Scope::Operate));
    let secrets = OpenApiRouter::new()
        .routes(routes!(take_secrets))
        .route_layer(gate(Scope::Secrets));
    let intake = OpenApiRouter::new()
        .routes(routes!(submit))
        .route_layer(middleware::from_fn(intake_gate));
    OpenApiRouter::new()
        .routes(routes!(metrics))
        .routes(routes!(healthz))
        .routes(routes!(ready))
        .routes(routes!(openapi_json))
        .merge(intake)
        .merge(read)
        .merge(operate)
        .merge(secrets)
}

/// The routes' part of the OpenAPI document (completed in `openapi.rs`).
pub(crate) fn described_paths() -> utoipa::openapi::OpenApi {
    described().into_openapi()
}

/// Builds the router. Without any ops credential (no tokens in the store,
/// no `api.ops_token_file`) the ops endpoints answer 401: closed, never open.
pub fn router(engine: Arc<Engine>, auth: Arc<Authenticator>) -> Router {
    let state = AppState { engine, auth };
    let (routes, _) = described().split_for_parts();
    routes
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
        .layer(middleware::from_fn(observe))
        .layer(Extension(state.clone()))
        .with_state(state)
}

/// The request id: the caller's `X-Request-Id` when it is a plain token
/// (letters, digits, `-_.:`, at most 64), else a new UUID; answered in the
/// same header and written on the access log line.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

const REQUEST_ID: &str = "x-request-id";

/// Every request: counted by method, route pattern and status, answered
/// with its request id, and one access log line (`target: access`). The
/// query string is not logged (it can hold a cursor or a customer id).
async fn observe(
    Extension(st): Extension<AppState>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let id = request_id(req.headers());
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let path = req.uri().path().chars().take(200).collect::<String>();
    let peer = client_addr(&req);
    let mut resp = next.run(req).await;
    let status = resp.status().as_u16();
    st.engine
        .metrics
        .http_request(method.as_str(), &route, status);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    tracing::info!(
        target: "access",
        request_id = %id,
        method = %method,
        route = %route,
        path = %path,
        status,
        duration_ms = started.elapsed().as_millis() as u64,
        peer = ?peer,
        "request"
    );
    resp
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
    params.iter().find_map(|(k, v)| {
        let v: String = v.chars().take(200).collect();
        match k {
            "id" => Some(v),
            "name" => Some(format!("host:{v}")),
            _ => None,
        }
    })
}

/// The ops endpoints' gate: blocked address → 429; no valid credential →
/// 401 (counted against the address); missing scope → 403. Refusals and
/// every non-GET action are audited; the handler sees the [`Caller`].
async fn ops_gate(
    State(scope): State<Scope>,
    Extension(st): Extension<AppState>,
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
    Extension(st): Extension<AppState>,
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

#[utoipa::path(
    post,
    path = "/v1/contracts",
    tag = "intake",
    summary = "Submit a signed contract revision (the approval webhook)",
    security((), ("intake_credential" = [])),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "The signed envelope (docs/contract-format.md), at most 256 KiB"
    ),
    responses(
        (status = 202, description = "Recorded and queued; `Location` is the job",
            body = IntakeResult,
            headers(("Location" = String, description = "/v1/jobs/{job_id}"))),
        (status = 200, description = "This revision was recorded before; its job", body = IntakeResult),
        (status = 400, description = "Not a readable envelope or contract (`malformed`)"),
        (status = 401, description = "No or a wrong intake credential, or a signature or key not trusted (`bad-signature`)"),
        (status = 409, description = "Older than the recorded revision (`stale-revision`)"),
        (status = 413, description = "Larger than the envelope limit (`too-large`)"),
        (status = 422, description = "Breaks the terms (`contract-refused`, with `findings`) or cannot be planned (`unplannable`)"),
        (status = 429, description = "This address was refused too often (`rate-limited`, `Retry-After`)"),
        (status = 503, description = "Concurrent revisions kept changing the state, or the store does not answer"),
    )
)]
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
        Ok(r) => {
            st.engine.metrics.intake_outcome(r.outcome());
            intake_response(r)
        }
        Err(e) => {
            st.engine.metrics.intake_outcome("error");
            intake_error(e)
        }
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// queued, running, succeeded, failed or cancelled.
    state: Option<String>,
    /// Only this contract's jobs.
    contract: Option<String>,
    /// Only these jobs: ids separated by commas (at most 1000).
    ids: Option<String>,
    /// Page size, 1 to 1000 (50 by default). Read as text, so that any
    /// value out of range gets the same answer.
    limit: Option<String>,
    /// `next_cursor` of the previous page.
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

/// A page of a listing: a full page has `next_cursor` for the next one;
/// the last page has `null`.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

fn page<T: Serialize>(items: Vec<T>, limit: u32, next: impl FnOnce(&T) -> String) -> Response {
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|t| cursor::encode(&next(t))))
        .flatten();
    axum::Json(Page { items, next_cursor }).into_response()
}

/// What `rerun` and `rerun-failed` answer: the jobs queued again.
#[derive(Serialize, ToSchema)]
pub struct RerunAnswer {
    pub rerun: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CancelAnswer {
    pub cancelled: String,
}

/// A refused submission: what was refused and why (the received bytes
/// stay in the store).
#[derive(Serialize, ToSchema)]
pub struct RejectionItem {
    /// Increasing; the paging cursor.
    pub id: i64,
    pub contract_id: Option<String>,
    pub revision: Option<u32>,
    /// `signature`, `rules`, `stale`, ...
    pub kind: String,
    /// Findings or error details.
    #[schema(value_type = Object)]
    pub reasons: serde_json::Value,
    pub received_sha256: Option<String>,
    pub received_size: Option<u64>,
    pub received_at: DateTime<Utc>,
}

/// A contract as its latest revision says.
#[derive(Serialize, ToSchema)]
pub struct ContractSummary {
    pub contract_id: String,
    pub revision: u32,
    pub customer_id: String,
    pub service: String,
    /// `active`, `suspended` or `terminated`.
    pub state: String,
    pub domains: Vec<String>,
    pub received_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct RevisionItem {
    pub revision: u32,
    pub received_at: DateTime<Utc>,
    pub state: Option<String>,
}

/// One contract: every revision, its resources and where they live, its
/// latest billable state.
#[derive(Serialize, ToSchema)]
pub struct ContractDetail {
    #[serde(flatten)]
    pub summary: ContractSummary,
    /// Oldest first.
    pub revisions: Vec<RevisionItem>,
    /// The latest revision's contract document (docs/contract.schema.json).
    #[schema(value_type = Object)]
    pub contract: serde_json::Value,
    pub resources: Vec<RecordedResource>,
    /// The newest billable-state report; `null` before the first job succeeded.
    pub billable: Option<LatestReport>,
    /// The web host the contract's web space lives on (`[fleet]`); `null`
    /// without a fleet or before its first job was planned.
    pub placement: Option<Placement>,
}

/// The fleet's web hosts (`hostwright hosts list`).
#[derive(Serialize, ToSchema)]
pub struct HostsAnswer {
    /// The group's name (`web`).
    pub group: &'static str,
    pub policy: super::fleet::Policy,
    pub hosts: Vec<super::fleet::HostView>,
}

#[derive(Serialize, ToSchema)]
pub struct HostStateAnswer {
    pub host: String,
    pub state: super::fleet::HostState,
    /// With `move_all`: the moves queued and the contracts that could not
    /// move now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evacuation: Option<super::moves::Evacuation>,
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

/// Jobs, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(ListQuery),
    security(("ops_token" = ["read"])),
    responses(
        (status = 200, description = "A page of jobs, newest first", body = Page<JobSummary>),
        (status = 400, description = "A bad `state`, `ids`, `limit` or `cursor`"),
        (status = 503, description = "The store does not answer"),
    )
)]
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
    let ids: Vec<String> = q
        .ids
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(str::to_string)
        .collect();
    if ids.len() > MAX_LIST_JOBS as usize || ids.iter().any(|i| i.contains(['%', '_'])) {
        return Problem::new(
            Kind::InvalidRequest,
            format!("ids: at most {MAX_LIST_JOBS} job ids separated by commas"),
        )
        .with("parameter", "ids")
        .into_response();
    }
    let filter = JobsPage {
        state,
        contract_id: q.contract,
        after,
        limit,
        ids,
    };
    match st.engine.store.jobs_page(&filter).await {
        Ok(jobs) => page(jobs, limit, |j| {
            format!("{}/{}", j.created_at.timestamp_millis(), j.job_id)
        }),
        Err(e) => store_error(e),
    }
}

/// One job: its steps, every attempt, the ops log and its result.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    security(("ops_token" = ["read"])),
    responses(
        (status = 200, description = "The job", body = JobDetail),
        (status = 404, description = "No such job (`job-not-found`)"),
        (status = 503, description = "The store does not answer"),
    )
)]
async fn show_job(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.engine.store.job(&id).await {
        Ok(Some(j)) => axum::Json(j).into_response(),
        Ok(None) => store_error(StoreError::JobNotFound(id)),
        Err(e) => store_error(e),
    }
}

/// Puts a failed job back in the queue; finished steps stay finished.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/rerun",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    security(("ops_token" = ["operate"])),
    responses(
        (status = 200, description = "The job is queued again", body = RerunAnswer),
        (status = 404, description = "No such job (`job-not-found`)"),
        (status = 409, description = "The job is not failed (`invalid-transition`)"),
        (status = 503, description = "The store does not answer"),
    )
)]
async fn rerun(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    match st.engine.store.rerun(&id, &caller.actor).await {
        Ok(()) => {
            st.engine.wake_workers();
            axum::Json(RerunAnswer { rerun: vec![id] }).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// Reruns every failed job.
#[utoipa::path(
    post,
    path = "/v1/jobs/rerun-failed",
    tag = "jobs",
    security(("ops_token" = ["operate"])),
    responses(
        (status = 200, description = "The jobs queued again", body = RerunAnswer),
        (status = 503, description = "The store does not answer"),
    )
)]
async fn rerun_failed(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    match st.engine.store.rerun_failed(&caller.actor).await {
        Ok(ids) => {
            st.engine.wake_workers();
            axum::Json(RerunAnswer { rerun: ids }).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// Cancels a queued or failed job (a running one at its next step).
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    security(("ops_token" = ["operate"])),
    responses(
        (status = 200, description = "Cancelled", body = CancelAnswer),
        (status = 404, description = "No such job (`job-not-found`)"),
        (status = 409, description = "The job has succeeded or is cancelled (`invalid-transition`)"),
        (status = 503, description = "The store does not answer"),
    )
)]
async fn cancel(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    match st.engine.store.cancel(&id, &caller.actor).await {
        Ok(()) => axum::Json(CancelAnswer { cancelled: id }).into_response(),
        Err(e) => store_error(e),
    }
}

#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/secrets",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    security(("ops_token" = ["secrets"])),
    responses(
        (status = 200, description = "`kind/key/name` to secret; empty once taken", body = std::collections::BTreeMap<String, String>),
        (status = 404, description = "No such job (`job-not-found`)"),
        (status = 503, description = "The store does not answer"),
    )
)]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Page size, 1 to 1000 (50 by default).
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/rejections",
    tag = "intake",
    params(PageQuery),
    security(("ops_token" = ["read"])),
    responses(
        (status = 200, description = "A page of refused submissions, newest first", body = Page<RejectionItem>),
        (status = 400, description = "A bad `limit` or `cursor`"),
        (status = 503, description = "The store does not answer"),
    )
)]
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
                .map(|(id, r)| RejectionItem {
                    id,
                    contract_id: r.contract_id,
                    revision: r.revision,
                    kind: r.kind,
                    reasons: r.reasons,
                    received_sha256: r.received_sha256,
                    received_size: r.received_size,
                    received_at: r.received_at,
                })
                .collect();
            page(items, limit, |v| v.id.to_string())
        }
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ContractsQuery {
    /// Only this customer's contracts.
    customer: Option<String>,
    /// Only contracts with a recorded resource for this domain.
    domain: Option<String>,
    /// active, suspended or terminated (as the latest revision says).
    state: Option<String>,
    /// Page size, 1 to 1000 (50 by default).
    limit: Option<String>,
    /// `next_cursor` of the previous page.
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

fn contract_summary(rev: &super::store::StoredRevision) -> Option<ContractSummary> {
    let c = crate::contract::Contract::from_json(&rev.payload).ok()?;
    Some(ContractSummary {
        contract_id: rev.contract_id.clone(),
        revision: rev.revision,
        customer_id: c.customer.id.clone(),
        service: c.service.code().to_string(),
        state: contract_state(&c).to_string(),
        domains: c.domains.iter().map(|d| d.name.to_string()).collect(),
        received_at: rev.received_at,
    })
}

#[utoipa::path(
    get,
    path = "/v1/contracts",
    tag = "contracts",
    params(ContractsQuery),
    security(("ops_token" = ["read"])),
    responses(
        (status = 200, description = "A page of contracts by id", body = Page<ContractSummary>),
        (status = 400, description = "A bad `state`, `limit` or `cursor`"),
        (status = 503, description = "The store does not answer"),
    )
)]
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
            if q.state.as_deref().is_none_or(|s| v.state == s) {
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
    page(items, limit, |v| v.contract_id.clone())
}

#[utoipa::path(
    get,
    path = "/v1/contracts/{id}",
    tag = "contracts",
    params(("id" = String, Path, description = "The contract's id")),
    security(("ops_token" = ["read"])),
    responses(
        (status = 200, description = "The contract", body = ContractDetail),
        (status = 404, description = "No such contract (`contract-not-found`)"),
        (status = 503, description = "The store does not answer"),
    )
)]
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
    let placement = match store.placement(&id).await {
        Ok(p) => p,
        Err(e) => return store_error(e),
    };
    let latest = revisions.last().expect("not empty");
    let Some(summary) = contract_summary(latest) else {
        // Stored payloads were verified and judged at intake.
        return store_error(StoreError::Corrupt(format!(
            "contract {id} revision {}: the stored contract does not parse",
            latest.revision
        )));
    };
    let detail = ContractDetail {
        summary,
        revisions: revisions
            .iter()
            .map(|r| RevisionItem {
                revision: r.revision,
                received_at: r.received_at,
                state: crate::contract::Contract::from_json(&r.payload)
                    .ok()
                    .map(|c| contract_state(&c).to_string()),
            })
            .collect(),
        contract: serde_json::from_slice(&latest.payload).unwrap_or(serde_json::Value::Null),
        resources,
        billable: report,
        placement,
    };
    axum::Json(detail).into_response()
}

/// The fleet's web hosts: state, health, what is placed on each and what
/// it can hold.
#[utoipa::path(
    get,
    path = "/v1/hosts",
    tag = "hosts",
    security(("ops_token" = ["read"])),
    responses(
        (status = 200, description = "Every web host of the fleet", body = HostsAnswer),
        (status = 404, description = "This engine has no [fleet] (`host-not-found`)"),
        (status = 503, description = "The store does not answer"),
    )
)]
async fn list_hosts(State(st): State<AppState>) -> Response {
    let Some(fleet) = &st.engine.fleet else {
        return no_fleet();
    };
    match fleet.views(&*st.engine.store).await {
        Ok(hosts) => axum::Json(HostsAnswer {
            group: super::fleet::WEB_GROUP,
            policy: fleet.config.policy,
            hosts,
        })
        .into_response(),
        Err(e) => store_error(e),
    }
}

fn no_fleet() -> Response {
    Problem::new(
        Kind::HostNotFound,
        "this engine has no [fleet]: its one web host is [adapters.webhost]",
    )
    .into_response()
}

#[derive(Debug, Deserialize, IntoParams)]
struct DrainQuery {
    /// Also queue a move of every contract on the host to the host the
    /// policy chooses among the others.
    move_all: Option<bool>,
}

/// Takes no new contracts on the host; its contracts stay, or with
/// `move_all=true` each is moved (a `move` job each) to another host.
#[utoipa::path(
    post,
    path = "/v1/hosts/{name}/drain",
    tag = "hosts",
    params(("name" = String, Path, description = "The web host's name"), DrainQuery),
    security(("ops_token" = ["operate"])),
    responses(
        (status = 200, description = "The host's new state, and with `move_all` the moves queued", body = HostStateAnswer),
        (status = 404, description = "No such host, or no [fleet] (`host-not-found`)"),
        (status = 503, description = "The store does not answer"),
    )
)]
async fn drain_host(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<DrainQuery>,
) -> Response {
    let state = super::fleet::HostState::Draining;
    if !q.move_all.unwrap_or(false) {
        return set_host_state(st, caller, name, state).await;
    }
    let resp = set_host_state(st.clone(), caller.clone(), name.clone(), state).await;
    if resp.status() != StatusCode::OK {
        return resp;
    }
    match st.engine.evacuate(&name, &caller.actor).await {
        Ok(ev) => axum::Json(HostStateAnswer {
            host: name,
            state,
            evacuation: Some(ev),
        })
        .into_response(),
        Err(e) => move_error(e),
    }
}

/// Where a contract's web space is to move.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MoveRequest {
    /// The web host to move to (a name in `[fleet]`).
    pub to: String,
}

/// Moves the contract's web space to another web host: a job of kind
/// `move` (copy of the home verified by manifest, vhosts, TLS and FTP
/// accounts with their password hashes on the new host, the zone switched
/// once the site answers there, then removal from the old host).
#[utoipa::path(
    post,
    path = "/v1/contracts/{id}/move",
    tag = "contracts",
    params(("id" = String, Path, description = "The contract's id")),
    request_body = MoveRequest,
    security(("ops_token" = ["operate"])),
    responses(
        (status = 202, description = "The move is queued; `Location` is its job", body = QueuedMove,
            headers(("Location" = String, description = "/v1/jobs/{job_id}"))),
        (status = 400, description = "The body is not a move request (`invalid-request`)"),
        (status = 404, description = "No such contract or host (`contract-not-found`, `host-not-found`)"),
        (status = 409, description = "The contract cannot move there now (`move-refused`)"),
        (status = 503, description = "The store does not answer"),
    )
)]
async fn move_contract(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let req: MoveRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return Problem::new(
                Kind::InvalidRequest,
                format!("the body must be {{\"to\": \"HOST\"}}: {e}"),
            )
            .into_response();
        }
    };
    match st.engine.queue_move(&id, &req.to, &caller.actor).await {
        Ok(m) => {
            let location = format!("/v1/jobs/{}", m.job_id);
            let mut resp = (StatusCode::ACCEPTED, axum::Json(&m)).into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Err(e) => move_error(e),
    }
}

fn move_error(e: MoveError) -> Response {
    let kind = match e {
        MoveError::Store(e) => return store_error(e),
        MoveError::NoFleet | MoveError::NoHost(_) => Kind::HostNotFound,
        MoveError::NoContract(_) => Kind::ContractNotFound,
        _ => Kind::MoveRefused,
    };
    Problem::new(kind, e.to_string()).into_response()
}

/// Takes new contracts on the host again.
#[utoipa::path(
    post,
    path = "/v1/hosts/{name}/activate",
    tag = "hosts",
    params(("name" = String, Path, description = "The web host's name")),
    security(("ops_token" = ["operate"])),
    responses(
        (status = 200, description = "The host's new state", body = HostStateAnswer),
        (status = 404, description = "No such host, or no [fleet] (`host-not-found`)"),
        (status = 503, description = "The store does not answer"),
    )
)]
async fn activate_host(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    set_host_state(st, caller, name, super::fleet::HostState::Active).await
}

/// A host's state as ops set it: kept in the store over the config's, so
/// it holds across restarts; audited by the ops gate.
async fn set_host_state(
    st: AppState,
    caller: Caller,
    name: String,
    state: super::fleet::HostState,
) -> Response {
    let Some(fleet) = &st.engine.fleet else {
        return no_fleet();
    };
    if fleet.host(&name).is_none() {
        return Problem::new(Kind::HostNotFound, format!("no web host named `{name}`"))
            .with("host", &name)
            .into_response();
    }
    match st
        .engine
        .store
        .set_host_state(&name, state, &caller.actor)
        .await
    {
        Ok(()) => {
            tracing::info!(host = %name, state = state.as_str(), actor = %caller.actor, "web host state set");
            axum::Json(HostStateAnswer {
                host: name,
                state,
                evacuation: None,
            })
            .into_response()
        }
        Err(e) => store_error(e),
    }
}

#[utoipa::path(
    post,
    path = "/v1/plan",
    tag = "contracts",
    security(("ops_token" = ["read"])),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "A signed envelope, as for POST /v1/contracts"
    ),
    responses(
        (status = 200, description = "The steps its job would run now", body = Vec<PlannedStep>),
        (status = 400, description = "Not a readable envelope or contract (`malformed`)"),
        (status = 409, description = "Older than the recorded revision (`stale-revision`)"),
        (status = 413, description = "Larger than the envelope limit (`too-large`)"),
        (status = 422, description = "Breaks the terms (`contract-refused`) or cannot be planned (`unplannable`)"),
        (status = 503, description = "The store does not answer"),
    )
)]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Only this actor's entries (`token:NAME`, `intake`, `anonymous`).
    actor: Option<String>,
    /// Only entries about this job, contract or token.
    target: Option<String>,
    /// Page size, 1 to 1000 (50 by default).
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "ops",
    params(AuditQuery),
    security(("ops_token" = ["read"])),
    responses(
        (status = 200, description = "A page of the audit log, newest first", body = Page<AuditEntry>),
        (status = 400, description = "A bad `limit` or `cursor`"),
        (status = 503, description = "The store does not answer"),
    )
)]
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

#[utoipa::path(
    get,
    path = "/v1/drift",
    tag = "drift",
    security(("ops_token" = ["read"])),
    responses(
        (status = 200, description = "The last full drift scan (docs/drift.md)", body = Object),
        (status = 503, description = "The store does not answer, or the scan failed"),
    )
)]
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

/// Which contracts' drift to repair.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairRequest {
    /// Only these contracts (no orphan search); absent or empty: every one.
    #[serde(default)]
    pub contracts: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/v1/drift/repair",
    tag = "drift",
    request_body(content = Option<RepairRequest>, description = "Optional: `{\"contracts\": [\"C-1001\"]}`; no body repairs every contract's drift"),
    security(("ops_token" = ["operate"])),
    responses(
        (status = 202, description = "A scan ran now; a repair is queued for each finding and the queued repairs run (docs/drift.md)", body = super::drift::RepairsQueued),
        (status = 400, description = "The body is not a repair request (`invalid-request`)"),
        (status = 404, description = "A named contract is not recorded (`contract-not-found`)"),
        (status = 503, description = "The store does not answer, or the scan failed"),
    )
)]
/// Repairs drift: scans now (the named contracts, or all), queues a repair
/// per finding (each audited with the caller as who asked, as `hostwright
/// drift --repair` does) and runs the queued repairs in the background
/// through each adapter's `ensure`. Orphans are never touched.
async fn repair_drift(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    let req: RepairRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RepairRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return Problem::new(
                    Kind::InvalidRequest,
                    format!("the body must be {{\"contracts\": [\"ID\", ...]}} or empty: {e}"),
                )
                .into_response();
            }
        }
    };
    match st
        .engine
        .repair_findings(&req.contracts, &caller.actor)
        .await
    {
        Ok(q) => (StatusCode::ACCEPTED, axum::Json(q)).into_response(),
        Err(super::drift::DriftError::Store(e)) => store_error(e),
        Err(e @ super::drift::DriftError::UnknownContract(_)) => {
            Problem::new(Kind::ContractNotFound, e.to_string()).into_response()
        }
        Err(e) => {
            Problem::new(Kind::Unavailable, format!("drift scan failed: {e}")).into_response()
        }
    }
}

/// Prometheus metrics (OpenMetrics text). Unauthenticated: keep it off the
/// public network (docs/api.md).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "The metrics",
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 503, description = "The store does not answer"),
    )
)]
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

/// Ready when the store answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "`ready`", content_type = "text/plain; charset=utf-8", body = String),
        (status = 503, description = "The store does not answer"),
    )
)]
async fn ready(State(st): State<AppState>) -> Response {
    match st.engine.store.stats().await {
        Ok(_) => "ready".into_response(),
        Err(e) => {
            Problem::new(Kind::Unavailable, format!("store unavailable: {e}")).into_response()
        }
    }
}

/// Alive (answers while the process runs).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "`ok`", content_type = "text/plain; charset=utf-8", body = String))
)]
async fn healthz() -> &'static str {
    "ok"
}

/// This API's OpenAPI 3.1 document, generated from the routes (also
/// `hostwright openapi`, and docs/openapi.json). No credential needed: it
/// describes the API and holds nothing secret.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "health",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
async fn openapi_json() -> Response {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(super::openapi::document);
    ([(header::CONTENT_TYPE, "application/json")], doc.as_str()).into_response()
}
