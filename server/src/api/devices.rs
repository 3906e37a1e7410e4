//! Inventory and command-queue endpoints.

use super::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum_extra_json::ApiJson;
use chrono::{DateTime, Utc};
use flotte_core::command::Command;
use flotte_core::device::{Device, EnrollmentState, Platform};
use flotte_storage::{DeviceFilter, NewDevice};
use serde::Deserialize;

pub(crate) mod axum_extra_json {
    use crate::error::ApiError;

    /// `Json` whose rejection is our JSON error, so a malformed body gets a
    /// message that says what was wrong.
    #[derive(axum::extract::FromRequest)]
    #[from_request(via(axum::Json), rejection(ApiError))]
    pub struct ApiJson<T>(pub T);
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct DeviceQuery {
    school: Option<String>,
    platform: Option<Platform>,
    state: Option<EnrollmentState>,
    last_seen_before: Option<DateTime<Utc>>,
    last_seen_after: Option<DateTime<Utc>>,
    limit: Option<u64>,
    offset: Option<u64>,
}

/// The inventory, filtered.
#[utoipa::path(get, path = "/api/v1/devices", params(DeviceQuery),
    responses((status = 200, body = Vec<Device>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_devices(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<DeviceQuery>,
) -> Result<Json<Vec<Device>>, ApiError> {
    let filter = DeviceFilter {
        school_id: q.school,
        platform: q.platform,
        enrollment_state: q.state,
        last_seen_before: q.last_seen_before,
        last_seen_after: q.last_seen_after,
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(
        state
            .store
            .list_devices(&filter, &caller.principal.scope())
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterDevice {
    platform: Platform,
    serial_number: Option<String>,
    udid: Option<String>,
    asset_tag: Option<String>,
    model: Option<String>,
    school_id: Option<String>,
}

/// Enter a device into the register before it enrols.
#[utoipa::path(post, path = "/api/v1/devices", request_body = RegisterDevice,
    responses((status = 201, body = Device), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn register_device(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RegisterDevice>,
) -> Result<(StatusCode, Json<Device>), ApiError> {
    let trimmed = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let new = NewDevice {
        platform: body.platform,
        serial_number: trimmed(body.serial_number),
        udid: trimmed(body.udid),
        asset_tag: trimmed(body.asset_tag),
        model: trimmed(body.model),
        school_id: trimmed(body.school_id),
    };
    // Staff register devices for their own schools only.
    if !caller.principal.scope().allows(new.school_id.as_deref()) {
        return Err(ApiError::NotFound(format!(
            "school {} not found",
            new.school_id.as_deref().unwrap_or("(none)")
        )));
    }
    if new.serial_number.is_none() && new.udid.is_none() {
        return Err(ApiError::BadRequest(
            "a device needs a serial_number or a udid to be recognised when it enrols".into(),
        ));
    }
    let device = state
        .store
        .register_device(new, &caller.audit("device.register"), state.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(device)))
}

/// One device, by Flotte id, UDID or serial number.
#[utoipa::path(get, path = "/api/v1/devices/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Device), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Device>, ApiError> {
    Ok(Json(
        state
            .store
            .find_device(&id, &caller.principal.scope())
            .await?,
    ))
}

/// The device's commands, newest first, with status and result.
#[utoipa::path(get, path = "/api/v1/devices/{id}/commands", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Command>), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_commands(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Command>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_commands(&id, &caller.principal.scope(), 200)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct QueueCommand {
    /// The MDM request type, e.g. `DeviceInformation`.
    request_type: String,
    /// Parameters of the command, by request type.
    #[serde(default)]
    #[schema(value_type = Object)]
    parameters: serde_json::Value,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Queued {
    /// The CommandUUID.
    command_uuid: String,
}

/// Queue a command; the device is woken by the worker.
#[utoipa::path(post, path = "/api/v1/devices/{id}/commands", params(("id" = String, Path)),
    request_body = QueueCommand,
    responses((status = 202, body = Queued), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn queue_command(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<QueueCommand>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    if body.request_type.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "request_type must not be empty".into(),
        ));
    }
    let scope = caller.principal.scope();
    let device = state.store.find_device(&id, &scope).await?;
    let new = super::commands::prepare(device.platform, body.request_type.trim(), body.parameters)?;
    let command = state
        .store
        .queue_command(
            &device.id,
            new,
            &scope,
            &caller.audit("command.queue"),
            state.settings.apns.coalesce_secs as i64,
            state.clock.now(),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            command_uuid: command.id,
        }),
    ))
}

/// Cancel a command the device has not answered yet.
#[utoipa::path(delete, path = "/api/v1/devices/{id}/commands/{command}",
    params(("id" = String, Path), ("command" = String, Path)),
    responses((status = 200, body = Command), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn cancel_command(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, command)): Path<(String, String)>,
) -> Result<Json<Command>, ApiError> {
    Ok(Json(
        state
            .store
            .cancel_command(
                &id,
                &command,
                &caller.principal.scope(),
                &caller.audit("command.cancel"),
                state.clock.now(),
            )
            .await?,
    ))
}
