//! Operational endpoints: health, metrics, audit log.

use super::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

/// 200 when the database answers, 503 when it does not.
pub(crate) async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "status": "ok" }))),
        Err(e) => {
            tracing::error!(error.cause_chain = ?e, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "database unreachable" })),
            )
        }
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let body = crate::metrics::render(&state).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct AuditQuery {
    /// How many entries, newest first (at most 1000).
    limit: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuditRow {
    at: chrono::DateTime<chrono::Utc>,
    actor: String,
    action: String,
    target: String,
    source: Option<String>,
    details: serde_json::Value,
}

/// The newest audit-log entries.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery),
    responses((status = 200, body = Vec<AuditRow>), (status = 401, body = crate::error::ErrorBody)))]
pub(crate) async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    // The log spans every school; staff see their schools through other endpoints.
    caller.require_technician()?;
    let rows = state
        .store
        .recent_audit(q.limit.unwrap_or(100).min(1000))
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| AuditRow {
                at: r.at,
                actor: r.actor,
                action: r.action,
                target: r.target,
                source: r.source,
                details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            })
            .collect(),
    ))
}
