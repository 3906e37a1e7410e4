//! Technician endpoints for the Apple side: enrolment profiles and links, and
//! the APNs push certificate.

use super::Caller;
use super::devices::axum_extra_json::ApiJson;
use crate::apple::enrollment::{mobileconfig_response, signed_profile};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ProfileQuery {
    /// School code or id; the device joins this school when it enrols.
    school: String,
}

/// A signed enrolment profile for one school (each download carries a new device identity).
#[utoipa::path(get, path = "/api/v1/apple/enrollment-profile", params(ProfileQuery),
    responses((status = 200, content_type = "application/x-apple-aspen-config", body = Vec<u8>),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn enrollment_profile(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ProfileQuery>,
) -> Result<Response, ApiError> {
    let school = state.store.find_school(&q.school).await?;
    if !caller.principal.scope().allows(Some(&school.id)) {
        return Err(ApiError::NotFound(format!("school {} not found", q.school)));
    }
    let profile = signed_profile(
        &state,
        &school.id,
        &school.name,
        &caller.audit("apple.enrollment_profile"),
    )
    .await?;
    Ok(mobileconfig_response(profile))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewLink {
    /// School code or id.
    school: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Link {
    /// Open this on the iPad in Safari; it works once.
    url: String,
    expires_at: DateTime<Utc>,
}

/// A one-time enrolment link for staff to open in Safari on an iPad.
#[utoipa::path(post, path = "/api/v1/apple/enrollment-links", request_body = NewLink,
    responses((status = 201, body = Link), (status = 404, body = ErrorBody)))]
pub(crate) async fn create_link(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewLink>,
) -> Result<(StatusCode, Json<Link>), ApiError> {
    let school = state.store.find_school(&body.school).await?;
    if !caller.principal.scope().allows(Some(&school.id)) {
        return Err(ApiError::NotFound(format!(
            "school {} not found",
            body.school
        )));
    }
    let now = state.clock.now();
    let expires_at = now + Duration::hours(i64::from(state.settings.apple.enrollment_link_hours));
    let token = crate::bootstrap::generate_token();
    state
        .store
        .create_enrollment_link(
            &school.id,
            &flotte_storage::hash_token(&token),
            expires_at,
            &caller.audit("apple.enrollment_link.create"),
            now,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Link {
            url: format!("{}/mdm/apple/enroll/{token}", state.settings.public_url()),
            expires_at,
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadPushCertificate {
    /// The push certificate and its private key, PEM.
    pem: String,
    /// Replace even though enrolled devices use another topic (they will stop answering pushes).
    #[serde(default)]
    force: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PushCertificateInfo {
    pub topic: String,
    pub sha256: String,
    pub not_after: DateTime<Utc>,
}

/// Upload or replace the MDM push certificate (from Apple's push certificates portal).
#[utoipa::path(put, path = "/api/v1/apple/push-certificate", request_body = UploadPushCertificate,
    responses((status = 200, body = PushCertificateInfo), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn put_push_certificate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UploadPushCertificate>,
) -> Result<Json<PushCertificateInfo>, ApiError> {
    caller.require_technician()?;
    let info = store_push_certificate(
        &state,
        &body.pem,
        body.force,
        &caller.audit("apple.push_certificate.upload"),
    )
    .await?;
    Ok(Json(info))
}

async fn store_push_certificate(
    state: &AppState,
    pem: &str,
    force: bool,
    actor: &flotte_core::audit::AuditEntry,
) -> Result<PushCertificateInfo, ApiError> {
    import_push_certificate(&state.store, pem, force, actor, state.clock.now()).await
}

/// Check a PEM bundle (certificate and key) and make it the active push certificate.
pub async fn import_push_certificate(
    store: &flotte_storage::Store,
    pem: &str,
    force: bool,
    actor: &flotte_core::audit::AuditEntry,
    now: DateTime<Utc>,
) -> Result<PushCertificateInfo, ApiError> {
    let (cert_pem, key_pem) = split_pem(pem)?;
    let der = flotte_pki::pem_to_der(&cert_pem)
        .map_err(|e| ApiError::BadRequest(format!("certificate: {e}")))?;
    let info = flotte_pki::certificate_info(&der)
        .map_err(|e| ApiError::BadRequest(format!("certificate: {e}")))?;
    let topic = flotte_pki::push_topic(&der)
        .map_err(|e| ApiError::BadRequest(format!("certificate: {e}")))?
        .ok_or_else(|| {
            ApiError::BadRequest(
                "the certificate has no UID (topic): is it an MDM push certificate?".into(),
            )
        })?;
    if !topic.starts_with("com.apple.mgmt.") {
        return Err(ApiError::BadRequest(format!(
            "topic {topic} is not an MDM topic (com.apple.mgmt.…)"
        )));
    }
    if info.not_after <= now {
        return Err(ApiError::BadRequest(format!(
            "the certificate expired on {}",
            info.not_after
        )));
    }
    store
        .store_push_certificate(
            &topic,
            &info.sha256_hex,
            &cert_pem,
            &key_pem,
            info.not_after,
            force,
            actor,
            now,
        )
        .await?;
    Ok(PushCertificateInfo {
        topic,
        sha256: info.sha256_hex,
        not_after: info.not_after,
    })
}

/// The active push certificate's topic and expiry.
#[utoipa::path(get, path = "/api/v1/apple/push-certificate",
    responses((status = 200, body = PushCertificateInfo), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_push_certificate(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<PushCertificateInfo>, ApiError> {
    let cert = state
        .store
        .active_push_certificate()
        .await?
        .ok_or_else(|| ApiError::NotFound("no push certificate has been uploaded".into()))?;
    Ok(Json(PushCertificateInfo {
        topic: cert.topic,
        sha256: cert.sha256,
        not_after: cert.not_after,
    }))
}

/// Separate the certificate and the key blocks of a PEM bundle.
fn split_pem(pem: &str) -> Result<(String, String), ApiError> {
    let mut cert = None;
    let mut key = None;
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block_start = &rest[start..];
        let label_end = block_start[11..]
            .find("-----")
            .ok_or_else(|| ApiError::BadRequest("truncated PEM".into()))?
            + 11;
        let label = &block_start[11..label_end];
        let end_marker = format!("-----END {label}-----");
        let end = block_start
            .find(&end_marker)
            .ok_or_else(|| ApiError::BadRequest(format!("PEM block {label} is not closed")))?
            + end_marker.len();
        let block = format!("{}\n", &block_start[..end]);
        if label == "CERTIFICATE" && cert.is_none() {
            cert = Some(block);
        } else if label.ends_with("PRIVATE KEY") {
            key = Some(block);
        }
        rest = &block_start[end..];
    }
    match (cert, key) {
        (Some(c), Some(k)) => Ok((c, k)),
        (None, _) => Err(ApiError::BadRequest(
            "the PEM holds no CERTIFICATE block".into(),
        )),
        (_, None) => Err(ApiError::BadRequest(
            "the PEM holds no PRIVATE KEY block".into(),
        )),
    }
}
