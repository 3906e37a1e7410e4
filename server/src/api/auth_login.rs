//! Staff sign-in for API clients, sign-out, and technicians' token
//! management.

use super::Caller;
use super::auth::{Credential, source_of};
use super::devices::axum_extra_json::ApiJson;
use crate::error::{ApiError, ErrorBody};
use crate::signin::{ROLE_TECHNICIAN, Via, sign_in};
use crate::state::AppState;
use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Duration, Utc};
use flotte_storage::{NewToken, TokenRecord};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    username: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LoggedIn {
    /// Send as `Authorization: Bearer <token>`. Shown once.
    token: String,
    token_type: &'static str,
    expires_at: DateTime<Utc>,
    /// `technician` (every school) or `staff`.
    role: &'static str,
    username: String,
    /// The schools a staff token acts in (looked up again on every request).
    school_ids: Vec<String>,
}

/// The client address; sign-in runs before any token exists.
pub(crate) struct Source(pub Option<String>);

impl FromRequestParts<AppState> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Source(source_of(parts)))
    }
}

/// Sign in with the directory (or local) password; returns a bearer token
/// scoped to the person's role and schools. Wrong password and unknown user
/// get the same answer; repeated failures are refused for a while (429).
#[utoipa::path(post, path = "/api/v1/auth/login", request_body = Login, security(()),
    responses((status = 200, body = LoggedIn), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    Source(source): Source,
    ApiJson(body): ApiJson<Login>,
) -> Result<Json<LoggedIn>, ApiError> {
    let who = sign_in(
        &state,
        &body.username,
        &body.password,
        source.clone(),
        Via::Api,
    )
    .await?;
    let now = state.clock.now();
    let expires_at = now + Duration::hours(i64::from(state.settings.auth.token_hours.max(1)));
    let secret = crate::bootstrap::generate_token();
    let actor = flotte_core::audit::AuditEntry::new(
        format!("{}:{}", who.role, who.name),
        "token.login",
        "",
    )
    .from_source(source);
    state
        .store
        .issue_token(
            &NewToken {
                name: who.name.clone(),
                role: who.role.to_owned(),
                person_id: who.person_id.clone(),
                expires_at: Some(expires_at),
            },
            &secret,
            &actor,
            now,
        )
        .await?;
    Ok(Json(LoggedIn {
        token: secret,
        token_type: "Bearer",
        expires_at,
        role: who.role,
        username: who.name,
        school_ids: who.school_ids,
    }))
}

/// End the caller's own token or browser session.
#[utoipa::path(post, path = "/api/v1/auth/logout",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let now = state.clock.now();
    match &caller.credential {
        Credential::Token { id } => {
            state
                .store
                .revoke_token(id, &caller.audit("auth.logout"), now)
                .await?
        }
        Credential::Session { id } => {
            state
                .store
                .revoke_session(id, &caller.audit("auth.logout"), now)
                .await?
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewApiToken {
    /// What the token is for, e.g. `inventory-script`.
    name: String,
    /// Days until it expires; none: until revoked.
    expires_in_days: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedToken {
    id: String,
    name: String,
    /// The secret, shown only in this answer.
    token: String,
    expires_at: Option<DateTime<Utc>>,
}

/// Create another technician token (technicians only).
#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewApiToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody)))]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewApiToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    caller.require_technician()?;
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::BadRequest("name must not be empty".into()));
    }
    let now = state.clock.now();
    let expires_at = body
        .expires_in_days
        .map(|days| now + Duration::days(i64::from(days.max(1))));
    let secret = crate::bootstrap::generate_token();
    let record = state
        .store
        .issue_token(
            &NewToken {
                name: name.to_owned(),
                role: ROLE_TECHNICIAN.to_owned(),
                person_id: None,
                expires_at,
            },
            &secret,
            &caller.audit("token.create"),
            now,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id: record.id,
            name: record.name,
            token: secret,
            expires_at: record.expires_at,
        }),
    ))
}

/// Every token (technicians only); secrets are not stored and not shown.
#[utoipa::path(get, path = "/api/v1/tokens",
    responses((status = 200, body = Vec<serde_json::Value>), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TokenRecord>>, ApiError> {
    caller.require_technician()?;
    Ok(Json(state.store.list_tokens().await?))
}

/// Revoke a token (technicians only); it is refused from then on (401).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_technician()?;
    state
        .store
        .revoke_token(&id, &caller.audit("token.revoke"), state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
