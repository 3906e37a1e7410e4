//! Admin API for Windows: technicians' enrolment secrets, and the check of Windows commands
//! queued through the shared command endpoint.

use super::enroll::SECRET_PREFIX;
use super::{DISCOVERY_PATH, url};
use crate::api::Caller;
use crate::api::devices::axum_extra_json::ApiJson;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use flotte_core::auth::Principal;
use flotte_storage::{NewWindowsEnrollmentSecret, WindowsEnrollmentSecret};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateEnrollmentSecret {
    /// What the secret is for, e.g. "Staging Gymnasium Nord, delivery 2026-12".
    label: String,
    /// Laptops enrolled with the secret join this school (its Flotte id).
    school_id: Option<String>,
    /// After this the secret no longer enrols.
    expires_at: Option<DateTime<Utc>>,
    /// How many laptops may enrol with it.
    max_uses: Option<i32>,
}

/// An enrolment secret as listed; the secret itself is only shown when it is created.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EnrollmentSecretView {
    id: String,
    label: String,
    school_id: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    max_uses: Option<i32>,
    uses: i32,
    created_by: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<WindowsEnrollmentSecret> for EnrollmentSecretView {
    fn from(s: WindowsEnrollmentSecret) -> Self {
        Self {
            id: s.id,
            label: s.label,
            school_id: s.school_id,
            expires_at: s.expires_at,
            max_uses: s.max_uses,
            uses: s.uses,
            created_by: s.created_by,
            created_at: s.created_at,
            revoked_at: s.revoked_at,
        }
    }
}

/// A new secret: what goes into the provisioning package.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedEnrollmentSecret {
    #[serde(flatten)]
    record: EnrollmentSecretView,
    /// The secret: the package's `Secret` (the enrolment password). Shown only now.
    secret: String,
    /// The package's `DiscoveryServiceFullUrl`.
    discovery_url: String,
}

fn technician_only(caller: &Caller) -> Result<(), ApiError> {
    match caller.principal {
        Principal::Technician { .. } => Ok(()),
        Principal::Staff { .. } => Err(ApiError::Forbidden(
            "only technicians manage Windows enrolment secrets".into(),
        )),
    }
}

/// Create an enrolment secret for staging laptops with a provisioning package.
#[utoipa::path(post, path = "/api/v1/windows/enrollment-secrets",
    request_body = CreateEnrollmentSecret,
    responses((status = 201, body = CreatedEnrollmentSecret), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub(crate) async fn create_enrollment_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateEnrollmentSecret>,
) -> Result<(StatusCode, Json<CreatedEnrollmentSecret>), ApiError> {
    technician_only(&caller)?;
    let label = body.label.trim().to_owned();
    if label.is_empty() {
        return Err(ApiError::BadRequest("label must not be empty".into()));
    }
    if body.max_uses.is_some_and(|n| n < 1) {
        return Err(ApiError::BadRequest("max_uses must be at least 1".into()));
    }
    let now = state.clock.now();
    if body.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::BadRequest("expires_at is in the past".into()));
    }
    let secret = new_secret();
    let record = state
        .store
        .create_windows_enrollment_secret(
            NewWindowsEnrollmentSecret {
                label,
                school_id: body.school_id.filter(|s| !s.trim().is_empty()),
                expires_at: body.expires_at,
                max_uses: body.max_uses,
            },
            &secret,
            &caller.audit("windows.enrollment_secret.create"),
            now,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEnrollmentSecret {
            record: record.into(),
            secret,
            discovery_url: url(&state, DISCOVERY_PATH),
        }),
    ))
}

/// Every enrolment secret, newest first (without the secrets).
#[utoipa::path(get, path = "/api/v1/windows/enrollment-secrets",
    responses((status = 200, body = Vec<EnrollmentSecretView>), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_enrollment_secrets(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<EnrollmentSecretView>>, ApiError> {
    technician_only(&caller)?;
    Ok(Json(
        state
            .store
            .list_windows_enrollment_secrets()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Revoke an enrolment secret; laptops enrolled with it stay enrolled.
#[utoipa::path(delete, path = "/api/v1/windows/enrollment-secrets/{id}",
    params(("id" = String, Path)),
    responses((status = 200, body = EnrollmentSecretView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn revoke_enrollment_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<EnrollmentSecretView>, ApiError> {
    technician_only(&caller)?;
    Ok(Json(
        state
            .store
            .revoke_windows_enrollment_secret(
                &id,
                &caller.audit("windows.enrollment_secret.revoke"),
                state.clock.now(),
            )
            .await?
            .into(),
    ))
}

/// 160 random bits in hex behind the recognisable prefix.
fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", hex::encode(bytes))
}
