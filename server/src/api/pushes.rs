//! Bulk pushes: queue one (`POST /api/v1/pushes`), follow it (`GET /api/v1/pushes/{id}`
//! and the server-sent event stream `GET /api/v1/pushes/{id}/events`), list its devices,
//! pause, resume and cancel it. The worker carries it out.

use super::Caller;
use super::devices::axum_extra_json::ApiJson;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::Duration;
use flotte_core::assignment::{AssignmentScope, PushAction, TargetStatus};
use flotte_core::auth::Principal;
use flotte_storage::{NewPush, PushRecord, PushTargetRecord};
use serde::Deserialize;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushRequest {
    /// The template (id or identifier); leave out for `sync`.
    profile: Option<String>,
    /// The version to install; the newest when left out.
    version: Option<i32>,
    /// `install` (default), `remove` or `sync`.
    #[serde(default = "install")]
    action: PushAction,
    /// `{"kind": "all"}`, `{"kind": "school", "id": "GYM1"}`, `{"kind": "class", "id": …}`,
    /// `{"kind": "platform", "id": "apple"}`, `{"kind": "device_group", "id": …}` or
    /// `{"kind": "device", "id": …}`.
    scope: AssignmentScope,
    /// Devices per fan-out job (default `profiles.push_batch_size`).
    batch_size: Option<u32>,
    /// Wake devices again that stay silent this long (default
    /// `profiles.silent_after_secs`).
    silent_after_secs: Option<u64>,
}

fn install() -> PushAction {
    PushAction::Install
}

/// Queue a push: an install assigns the version to the scope, a removal withdraws the
/// assignment, a sync brings every device of the scope to its desired state. A scope that
/// reaches no enrolled device is refused (409) and changes nothing; staff may push to
/// their own schools' scopes only.
#[utoipa::path(post, path = "/api/v1/pushes", request_body = PushRequest,
    responses((status = 202, body = serde_json::Value), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn create_push(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PushRequest>,
) -> Result<(StatusCode, Json<PushRecord>), ApiError> {
    if body.scope.is_fleet_wide() && !matches!(caller.principal, Principal::Technician { .. }) {
        return Err(ApiError::Forbidden(format!(
            "only technicians push to the scope {}: it reaches every school",
            body.scope.kind()
        )));
    }
    if body.batch_size == Some(0) {
        return Err(ApiError::BadRequest("batch_size must be at least 1".into()));
    }
    let settings = &state.settings.profiles;
    let now = state.clock.now();
    let new = NewPush {
        profile: body.profile,
        version: body.version,
        action: body.action,
        scope: body.scope,
        batch_size: body.batch_size.unwrap_or(settings.push_batch_size),
        silent_after_secs: body.silent_after_secs.unwrap_or(settings.silent_after_secs),
        first_tick_at: now
            + Duration::seconds(i64::try_from(settings.progress_every_secs).unwrap_or(10)),
        expires_at: now + Duration::hours(i64::from(settings.push_expiry_hours)),
    };
    let record = state
        .store
        .create_push(
            &new,
            &caller.principal.scope(),
            &caller.audit("push.create"),
            now,
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(record)))
}

/// The newest pushes in the caller's schools (fleet-wide ones for technicians).
#[utoipa::path(get, path = "/api/v1/pushes",
    responses((status = 200, body = Vec<serde_json::Value>)))]
pub(crate) async fn list_pushes(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<PushRecord>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_pushes(&caller.principal.scope(), 100)
            .await?,
    ))
}

/// A push with its progress: devices per status (pending, queued, sent, not_now,
/// acknowledged, failed, unchanged, superseded, cancelled, expired).
#[utoipa::path(get, path = "/api/v1/pushes/{id}", params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_push(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PushRecord>, ApiError> {
    Ok(Json(
        state
            .store
            .find_push(&id, &caller.principal.scope())
            .await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct TargetQuery {
    /// Only devices in this status.
    status: Option<TargetStatus>,
    /// At most 5000; default 500.
    limit: Option<u64>,
}

/// The push's devices, each with its status, command and error.
#[utoipa::path(get, path = "/api/v1/pushes/{id}/devices", params(("id" = String, Path), TargetQuery),
    responses((status = 200, body = Vec<serde_json::Value>), (status = 404, body = ErrorBody)))]
pub(crate) async fn push_devices(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TargetQuery>,
) -> Result<Json<Vec<PushTargetRecord>>, ApiError> {
    Ok(Json(
        state
            .store
            .push_targets(
                &id,
                q.status,
                &caller.principal.scope(),
                q.limit.unwrap_or(500).min(5000),
            )
            .await?,
    ))
}

/// Stop planning further devices; those already queued keep their commands.
#[utoipa::path(post, path = "/api/v1/pushes/{id}/pause", params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn pause_push(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PushRecord>, ApiError> {
    Ok(Json(
        state
            .store
            .pause_push(
                &id,
                &caller.principal.scope(),
                &caller.audit("push.pause"),
                state.clock.now(),
            )
            .await?,
    ))
}

/// Continue a paused push.
#[utoipa::path(post, path = "/api/v1/pushes/{id}/resume", params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn resume_push(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PushRecord>, ApiError> {
    Ok(Json(
        state
            .store
            .resume_push(
                &id,
                &caller.principal.scope(),
                &caller.audit("push.resume"),
                state.clock.now(),
            )
            .await?,
    ))
}

/// Cancel a push: pending devices are skipped, commands not yet fetched withdrawn. A
/// finished push cannot be cancelled (409).
#[utoipa::path(post, path = "/api/v1/pushes/{id}/cancel", params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn cancel_push(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PushRecord>, ApiError> {
    Ok(Json(
        state
            .store
            .cancel_push(
                &id,
                &caller.principal.scope(),
                &caller.audit("push.cancel"),
                state.clock.now(),
            )
            .await?,
    ))
}

/// Progress as server-sent events: a `progress` event (the push as JSON) whenever it
/// changes, polled once a second, and a final `done` event when it completed or was
/// cancelled, after which the stream ends.
#[utoipa::path(get, path = "/api/v1/pushes/{id}/events", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", body = String),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn push_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let scope = caller.principal.scope();
    // Refuse an unknown push (or one outside the caller's schools) before streaming.
    state.store.find_push(&id, &scope).await?;
    struct Follow {
        state: AppState,
        scope: flotte_core::auth::SchoolScope,
        id: String,
        last: Option<String>,
        done: bool,
    }
    let follow = Follow {
        state,
        scope,
        id,
        last: None,
        done: false,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            let record = match f.state.store.find_push(&f.id, &f.scope).await {
                Ok(record) => record,
                Err(e) => {
                    // The push was pruned or the database is away: say so and stop.
                    f.done = true;
                    let event = Event::default().event("error").data(e.to_string());
                    return Some((Ok(event), f));
                }
            };
            let json = serde_json::to_string(&record).unwrap_or_default();
            if record.status.is_finished() {
                f.done = true;
                return Some((Ok(Event::default().event("done").data(json)), f));
            }
            if f.last.as_deref() != Some(json.as_str()) {
                f.last = Some(json.clone());
                return Some((Ok(Event::default().event("progress").data(json)), f));
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
