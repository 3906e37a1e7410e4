//! Schools: listed for everyone in scope, created by hand when Flotte runs without a directory.

use super::Caller;
use super::devices::axum_extra_json::ApiJson;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use flotte_core::auth::Principal;
use flotte_storage::School;
use serde::Deserialize;

/// The schools the caller may see.
#[utoipa::path(get, path = "/api/v1/schools", responses((status = 200, body = Vec<serde_json::Value>)))]
pub(crate) async fn list_schools(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<School>>, ApiError> {
    Ok(Json(
        state.store.list_schools(&caller.principal.scope()).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSchool {
    /// Short code, as the directory's school OU (e.g. `GYM1`).
    code: String,
    name: String,
}

/// Create a school by hand (technicians only).
#[utoipa::path(post, path = "/api/v1/schools", request_body = NewSchool,
    responses((status = 201, body = serde_json::Value), (status = 409, body = ErrorBody)))]
pub(crate) async fn create_school(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewSchool>,
) -> Result<(StatusCode, Json<School>), ApiError> {
    if !matches!(caller.principal, Principal::Technician { .. }) {
        return Err(ApiError::Forbidden(
            "only technicians create schools".into(),
        ));
    }
    let code = body.code.trim();
    if code.is_empty()
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::BadRequest(
            "code must be letters, digits, '-' or '_'".into(),
        ));
    }
    let school = state
        .store
        .create_school(
            code,
            body.name.trim(),
            &caller.audit("school.create"),
            state.clock.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(school)))
}
