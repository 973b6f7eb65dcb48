//! The HTTP API: the approval webhook (`POST /v1/contracts`, authenticated by
//! the contract's signature), the ops endpoints (bearer token), metrics and
//! health.

use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::Engine;
use super::guard::{BodyError, MAX_ENVELOPE_BYTES, read_body};
use super::intake::{DryRun, IntakeError, IntakeResult};
use super::store::{JobFilter, JobState, MAX_LIST_JOBS, StoreError};

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    ops_token: Option<Arc<str>>,
}

/// Builds the router. `ops_token` of `None` leaves the ops endpoints closed
/// (they answer 401), never open.
pub fn router(engine: Arc<Engine>, ops_token: Option<String>) -> Router {
    let state = AppState {
        engine,
        ops_token: ops_token.map(Into::into),
    };
    let ops = Router::new()
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/rerun-failed", post(rerun_failed))
        .route("/v1/jobs/{id}", get(show_job))
        .route("/v1/jobs/{id}/rerun", post(rerun))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/jobs/{id}/secrets", post(take_secrets))
        .route("/v1/rejections", get(rejections))
        .route("/v1/plan", post(plan))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/v1/contracts", post(submit))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .merge(ops)
        .with_state(state)
}

async fn require_token(
    State(st): State<AppState>,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&st.ops_token, given) {
        (Some(want), Some(got)) if constant_time_eq(want.as_bytes(), got.as_bytes()) => {
            next.run(req).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "ops endpoints need `Authorization: Bearer <ops token>`"})),
        )
            .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who asked, for the ops log: `X-Hostwright-Actor`, else `api`.
fn actor(headers: &HeaderMap) -> String {
    headers
        .get("x-hostwright-actor")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().filter(|c| !c.is_control()).take(100).collect())
        .filter(|s: &String| !s.is_empty())
        .unwrap_or_else(|| "api".to_string())
}

fn store_error(e: StoreError) -> Response {
    let status = match &e {
        StoreError::JobNotFound(_) => StatusCode::NOT_FOUND,
        StoreError::InvalidTransition { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, axum::Json(json!({"error": e.to_string()}))).into_response()
}

fn intake_error(e: IntakeError) -> Response {
    match e {
        IntakeError::Store(e) => store_error(e),
        IntakeError::Plan(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// The client's address, the key of its refusal budget. A router served
/// without connect info (`into_make_service_with_connect_info`) has none:
/// every client then shares one budget, never none.
fn peer(req: &axum::extract::Request) -> std::net::IpAddr {
    req.extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into())
}

async fn submit(State(st): State<AppState>, req: axum::extract::Request) -> Response {
    let peer = peer(&req);
    match st
        .engine
        .submit(peer, req.into_body(), chrono::Utc::now())
        .await
    {
        Ok(r) => intake_answer(r),
        Err(e) => intake_error(e),
    }
}

/// An intake answer with its status (also what `/v1/plan` answers for a
/// contract intake would refuse).
fn intake_answer(res: IntakeResult) -> Response {
    let status = match &res {
        IntakeResult::Accepted { .. } => StatusCode::ACCEPTED,
        IntakeResult::Existing { .. } => StatusCode::OK,
        IntakeResult::Stale { .. } => StatusCode::CONFLICT,
        IntakeResult::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        IntakeResult::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
        IntakeResult::Malformed { .. } => StatusCode::BAD_REQUEST,
        IntakeResult::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        IntakeResult::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        IntakeResult::RateLimited {
            retry_after_seconds,
            ..
        } => {
            let retry = retry_after_seconds.to_string();
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry)],
                axum::Json(res),
            )
                .into_response();
        }
    };
    (status, axum::Json(res)).into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    contract: Option<String>,
    /// Parsed here, so that any value out of range gets the same answer.
    limit: Option<String>,
}

async fn list_jobs(State(st): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    let state = match q.state.as_deref().map(|s| (s, JobState::parse(s))) {
        Some((s, None)) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": format!("unknown state `{s}` (queued, running, succeeded, failed, cancelled)")})),
            )
                .into_response();
        }
        Some((_, st)) => st,
        None => None,
    };
    let limit = match q.limit.as_deref().map(|l| (l, l.parse::<u32>())) {
        None => None,
        Some((_, Ok(n))) if (1..=MAX_LIST_JOBS).contains(&n) => Some(n),
        Some((l, _)) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": format!(
                    "limit `{}` must be a whole number from 1 to {MAX_LIST_JOBS}",
                    l.chars().take(40).collect::<String>()
                )})),
            )
                .into_response();
        }
    };
    let filter = JobFilter {
        state,
        contract_id: q.contract,
        limit,
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

async fn rerun(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match st.engine.store.rerun(&id, &actor(&headers)).await {
        Ok(()) => {
            st.engine.wake_workers();
            axum::Json(json!({"rerun": [id]})).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn rerun_failed(State(st): State<AppState>, headers: HeaderMap) -> Response {
    match st.engine.store.rerun_failed(&actor(&headers)).await {
        Ok(ids) => {
            st.engine.wake_workers();
            axum::Json(json!({"rerun": ids})).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn cancel(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match st.engine.store.cancel(&id, &actor(&headers)).await {
        Ok(()) => axum::Json(json!({"cancelled": id})).into_response(),
        Err(e) => store_error(e),
    }
}

/// Read-once: the credentials a job created (FTP passwords, mailbox initial
/// passwords), for the contract system. A second call returns nothing; an
/// unknown job is a 404. The hand-out is in the job's ops log.
async fn take_secrets(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match st.engine.store.take_secrets(&id, &actor(&headers)).await {
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
                        "received_sha256": r.received_sha256,
                        "received_size": r.received_size,
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
async fn plan(State(st): State<AppState>, req: axum::extract::Request) -> Response {
    let body = match read_body(req.into_body(), MAX_ENVELOPE_BYTES).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(_)) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                axum::Json(json!({"error": format!("the envelope is larger than {MAX_ENVELOPE_BYTES} bytes")})),
            )
                .into_response();
        }
        Err(BodyError::Read(e)) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": format!("the request body could not be read: {e}")})),
            )
                .into_response();
        }
    };
    match st.engine.dry_run(&body, chrono::Utc::now()).await {
        Ok(DryRun::Planned { steps, .. }) => axum::Json(steps).into_response(),
        Ok(DryRun::Refused(answer)) => intake_answer(answer),
        Err(e) => intake_error(e),
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
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}"),
        )
            .into_response(),
    }
}
