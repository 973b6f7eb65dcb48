//! The HTTP API: the approval webhook (`POST /v1/contracts`, the contract
//! system's intake credential plus the contract's signature), the ops
//! endpoints (named ops tokens with scopes, see `auth.rs`), metrics and
//! health.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, RawPathParams, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::json;

use super::Engine;
use super::auth::{self, Authenticator, Caller, Refusal, Scope};
use super::intake::{DryRun, IntakeError, IntakeResult};
use super::problem::{Kind, Problem};
use super::store::ops::{AuditFilter, NewAuditEntry};
use super::store::{JobFilter, JobState, StoreError};

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
}

/// Builds the router. Without any ops credential (no tokens in the store,
/// no `api.ops_token_file`) the ops endpoints answer 401: closed, never open.
pub fn router(engine: Arc<Engine>, auth: Arc<Authenticator>) -> Router {
    let limit = engine.max_body_bytes;
    let state = AppState { engine, auth };
    let gate = |scope: Scope| middleware::from_fn_with_state((state.clone(), scope), ops_gate);
    let read = Router::new()
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{id}", get(show_job))
        .route("/v1/rejections", get(rejections))
        .route("/v1/audit", get(audit_log))
        .route("/v1/plan", post(plan))
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
        // Read one byte more than allowed so intake itself can answer 413
        // with its reason (and record the refusal).
        .layer(DefaultBodyLimit::max(limit + 1))
        .with_state(state)
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
        StoreError::Database(_) => Problem::new(Kind::Unavailable, e.to_string()),
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

async fn submit(State(st): State<AppState>, body: Bytes) -> Response {
    match st.engine.intake(&body, chrono::Utc::now()).await {
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
    };
    let mut p = Problem::new(kind, detail);
    if let serde_json::Value::Object(members) = serde_json::to_value(&res).expect("serializes") {
        for (k, v) in members {
            if !matches!(k.as_str(), "type" | "title" | "status" | "detail") {
                p.extensions.insert(k, v);
            }
        }
    }
    p.into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    contract: Option<String>,
    limit: Option<u32>,
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
    let filter = JobFilter {
        state,
        contract_id: q.contract,
        limit: q.limit,
    };
    match st.engine.store.list_jobs(&filter).await {
        Ok(jobs) => axum::Json(jobs).into_response(),
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

async fn rejections(State(st): State<AppState>) -> Response {
    match st.engine.store.rejections(100).await {
        Ok(r) => axum::Json(
            r.into_iter()
                .map(|r| {
                    json!({
                        "contract_id": r.contract_id,
                        "revision": r.revision,
                        "kind": r.kind,
                        "reasons": r.reasons,
                        "received_at": r.received_at,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => store_error(e),
    }
}

/// Plans a signed contract against the recorded state without applying it,
/// judged exactly as intake would judge it: what intake would refuse is
/// answered as intake would answer it.
async fn plan(State(st): State<AppState>, body: Bytes) -> Response {
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
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The audit log, newest first, a page at a time: `next_cursor` fetches the
/// next (older) page.
async fn audit_log(State(st): State<AppState>, Query(q): Query<AuditQuery>) -> Response {
    let before = match q.cursor.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(id)) if id > 0 => Some(id),
        Some(_) => {
            return Problem::new(
                Kind::InvalidCursor,
                "the cursor is not one this API handed out",
            )
            .into_response();
        }
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = AuditFilter {
        actor: q.actor,
        target: q.target,
        before,
        limit,
    };
    match st.engine.store.audit(&filter).await {
        Ok(items) => {
            let next = (items.len() == limit as usize)
                .then(|| items.last().map(|e| e.id.to_string()))
                .flatten();
            axum::Json(json!({"items": items, "next_cursor": next})).into_response()
        }
        Err(e) => store_error(e),
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
