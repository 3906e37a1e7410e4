//! Who is calling: the bearer token on the admin API.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use flotte_core::audit::AuditEntry;
use flotte_core::auth::Principal;
use std::net::SocketAddr;

/// An authenticated caller and where the request came from.
pub struct Caller {
    pub principal: Principal,
    pub source: Option<String>,
}

impl Caller {
    /// An audit entry in this caller's name; the target is filled in by storage.
    pub fn audit(&self, action: &str) -> AuditEntry {
        AuditEntry::new(self.principal.audit_name(), action, "").from_source(self.source.clone())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized("missing Authorization: Bearer <token> header".into())
            })?;
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
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(Self {
            principal: Principal::Technician {
                token_id: record.id,
                name: record.name,
            },
            source,
        })
    }
}
