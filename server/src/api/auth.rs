//! Who is calling the admin API: a bearer token (technician tokens, and
//! staff tokens from `POST /api/v1/auth/login`), or the browser's session
//! cookie. The principal's `SchoolScope` travels with the request.

use crate::error::ApiError;
use crate::signin::{SESSION_COOKIE, cookie, principal_for, same_secret, valid_session};
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use flotte_core::audit::AuditEntry;
use flotte_core::auth::Principal;
use std::net::SocketAddr;

/// The header a browser script sends on state-changing API calls made with
/// the session cookie (the synchronizer token of its session).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What the caller authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An `api_tokens` row.
    Token { id: String },
    /// A `web_sessions` row.
    Session { id: String },
}

/// An authenticated caller and where the request came from.
pub struct Caller {
    pub principal: Principal,
    pub source: Option<String>,
    pub credential: Credential,
}

impl Caller {
    /// An audit entry in this caller's name; the target is filled in by storage.
    pub fn audit(&self, action: &str) -> AuditEntry {
        AuditEntry::new(self.principal.audit_name(), action, "").from_source(self.source.clone())
    }

    /// Refuse staff: the endpoint is for technicians (all schools).
    pub fn require_technician(&self) -> Result<(), ApiError> {
        match self.principal {
            Principal::Technician { .. } => Ok(()),
            Principal::Staff { .. } => {
                Err(ApiError::Forbidden("only technicians may do this".into()))
            }
        }
    }
}

/// The client address, for the audit log and the sign-in throttle.
pub(crate) fn source_of(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let source = source_of(parts);
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            if let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) {
                return from_session(parts, state, secret.to_owned(), source).await;
            }
            return Err(ApiError::Unauthorized(
                "missing Authorization: Bearer <token> header".into(),
            ));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization header must be \"Bearer <token>\"".into())
            })?;
        let record = state
            .store
            .find_token(token)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("unknown token".into()))?;
        if record.revoked {
            return Err(ApiError::Unauthorized("this token has been revoked".into()));
        }
        if record.expires_at.is_some_and(|at| at <= state.clock.now()) {
            return Err(ApiError::Unauthorized("this token has expired".into()));
        }
        let principal = principal_for(
            state,
            &record.role,
            &record.name,
            record.person_id.as_deref(),
            &record.id,
        )
        .await?;
        Ok(Self {
            principal,
            source,
            credential: Credential::Token { id: record.id },
        })
    }
}

/// The browser's session cookie on an API call. Safe methods need nothing
/// more; anything else must carry the session's CSRF token in a header,
/// which a cross-site form cannot set.
async fn from_session(
    parts: &Parts,
    state: &AppState,
    secret: String,
    source: Option<String>,
) -> Result<Caller, ApiError> {
    let (session, principal) = valid_session(state, &secret).await?;
    if !parts.method.is_safe() {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !same_secret(sent, &session.csrf_token) {
            return Err(ApiError::Forbidden(
                "a request with the session cookie must send the session's X-CSRF-Token header"
                    .into(),
            ));
        }
    }
    Ok(Caller {
        principal,
        source,
        credential: Credential::Session { id: session.id },
    })
}
