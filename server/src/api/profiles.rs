//! Profile templates (created, versioned and edited by technicians; readable by staff),
//! assignments, device groups, the profiles a device carries, the EAP-TLS client
//! certificates profiles embed, and the CRL at its stable, unauthenticated URL
//! `GET /pki/crl.der`.

use super::Caller;
use super::devices::axum_extra_json::ApiJson;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use flotte_core::CoreError;
use flotte_core::assignment::ProfileOwnership;
use flotte_core::auth::Principal;
use flotte_core::certificates::{
    CertificateOrg, CertificateSubject, DeviceIdentity, PersonIdentity, device_certificate_subject,
    person_certificate_subject,
};
use flotte_pki::{ClientCertificateRequest, RevokedCertificate};
use flotte_profiles::template::ProfileTemplate;
use flotte_storage::{
    AssignmentRecord, CertificateHolder, CertificateRecord, CrlRecord, DeviceGroupRecord,
    EAP_DEVICE, EAP_PERSON, NewEapCertificate, NewProfileVersion, ProfileRecord,
    ProfileStateRecord, ProfileVersionRecord,
};
use serde::{Deserialize, Serialize};

fn technicians_only(caller: &Caller, what: &str) -> Result<(), ApiError> {
    match caller.principal {
        Principal::Technician { .. } => Ok(()),
        Principal::Staff { .. } => Err(ApiError::Forbidden(format!(
            "only technicians {what}: templates apply to every school"
        ))),
    }
}

/// Parses and validates a template as it is saved: unknown variables, malformed
/// placeholders, dangling references and payload values a device would refuse are
/// refused here, with the JSON path of the field, not when the template is pushed.
fn checked_template(
    state: &AppState,
    body: serde_json::Value,
) -> Result<NewProfileVersion, ApiError> {
    let template: ProfileTemplate = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest(format!("not a profile template: {e}")))?;
    template
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let ownership = ProfileOwnership::new(state.settings.profiles.identifier_prefix.clone())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    if !ownership.owns(&template.identifier) {
        return Err(ApiError::BadRequest(format!(
            "identifier: must start with {:?} (profiles.identifier_prefix), or Flotte could \
             install the profile but never remove it",
            ownership.prefix()
        )));
    }
    let platforms = serde_json::to_value(template.platforms)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(NewProfileVersion {
        identifier: template.identifier.clone(),
        name: template.display_name.as_str().to_owned(),
        platforms,
        template: serde_json::to_value(&template)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?,
    })
}

/// Every profile template, newest version each.
#[utoipa::path(get, path = "/api/v1/profiles",
    responses((status = 200, body = Vec<serde_json::Value>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_profiles(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<ProfileRecord>>, ApiError> {
    Ok(Json(state.store.list_profiles().await?))
}

/// Save a new template (version 1). The body is the template itself; see docs/profiles.md.
#[utoipa::path(post, path = "/api/v1/profiles", request_body = serde_json::Value,
    responses((status = 201, body = serde_json::Value), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn create_profile(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<ProfileRecord>), ApiError> {
    technicians_only(&caller, "create profiles")?;
    let new = checked_template(&state, body)?;
    let record = state
        .store
        .create_profile(&new, &caller.audit("profile.create"), state.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// A template (by id or identifier) in its newest version.
#[utoipa::path(get, path = "/api/v1/profiles/{id}", params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_profile(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ProfileRecord>, ApiError> {
    Ok(Json(state.store.find_profile(&id).await?))
}

/// Save a new version of a template. The identifier stays; earlier versions are kept and
/// can still be pushed.
#[utoipa::path(put, path = "/api/v1/profiles/{id}", params(("id" = String, Path)),
    request_body = serde_json::Value,
    responses((status = 200, body = serde_json::Value), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn update_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<ProfileRecord>, ApiError> {
    technicians_only(&caller, "edit profiles")?;
    let new = checked_template(&state, body)?;
    Ok(Json(
        state
            .store
            .update_profile(
                &id,
                &new,
                &caller.audit("profile.update"),
                state.clock.now(),
            )
            .await?,
    ))
}

/// Every version of a template, oldest first.
#[utoipa::path(get, path = "/api/v1/profiles/{id}/versions", params(("id" = String, Path)),
    responses((status = 200, body = Vec<serde_json::Value>), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_versions(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<ProfileVersionRecord>>, ApiError> {
    Ok(Json(state.store.profile_versions(&id).await?))
}

/// Check a template without saving it: the same checks as saving.
#[utoipa::path(post, path = "/api/v1/profiles/validate", request_body = serde_json::Value,
    responses((status = 200, body = serde_json::Value), (status = 400, body = ErrorBody)))]
pub(crate) async fn validate_profile(
    State(state): State<AppState>,
    _caller: Caller,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let new = checked_template(&state, body)?;
    Ok(Json(
        serde_json::json!({ "valid": true, "identifier": new.identifier }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct AssignmentQuery {
    /// Only this profile's assignments (id or identifier).
    profile: Option<String>,
}

/// Assignments (desired state): which profile version reaches which scope. Pushes create
/// and withdraw them.
#[utoipa::path(get, path = "/api/v1/assignments", params(AssignmentQuery),
    responses((status = 200, body = Vec<serde_json::Value>), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_assignments(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AssignmentQuery>,
) -> Result<Json<Vec<AssignmentRecord>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_assignments(q.profile.as_deref(), &caller.principal.scope())
            .await?,
    ))
}

/// What Flotte knows about each profile on a device: expected, installed and pending
/// versions with checksums, and the device's last error.
#[utoipa::path(get, path = "/api/v1/devices/{id}/profiles", params(("id" = String, Path)),
    responses((status = 200, body = Vec<serde_json::Value>), (status = 404, body = ErrorBody)))]
pub(crate) async fn device_profiles(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<DeviceProfileView>>, ApiError> {
    let states = state
        .store
        .device_profile_states(&id, &caller.principal.scope())
        .await?;
    Ok(Json(
        states.into_iter().map(DeviceProfileView::from).collect(),
    ))
}

/// A device's record of one profile.
#[derive(Serialize)]
pub(crate) struct DeviceProfileView {
    identifier: String,
    expected_version: Option<i32>,
    expected_checksum: Option<String>,
    installed_version: Option<i32>,
    installed_checksum: Option<String>,
    installed_at: Option<DateTime<Utc>>,
    pending_command: Option<String>,
    pending_action: Option<String>,
    pending_version: Option<i32>,
    last_error: Option<String>,
}

impl From<ProfileStateRecord> for DeviceProfileView {
    fn from(s: ProfileStateRecord) -> Self {
        Self {
            identifier: s.identifier,
            expected_version: s.expected_version,
            expected_checksum: s.expected_checksum,
            installed_version: s.installed_version,
            installed_checksum: s.installed_checksum,
            installed_at: s.installed_at,
            pending_command: s.pending_command_id,
            pending_action: s.pending_action,
            pending_version: s.pending_version,
            last_error: s.last_error,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewDeviceGroup {
    /// A unique name, e.g. `GYM1 Koffer 3`.
    name: String,
    /// School id or code; staff must give their school.
    school: Option<String>,
    /// Device ids, UDIDs or serial numbers.
    #[serde(default)]
    devices: Vec<String>,
}

/// Device groups in the caller's schools, with their members.
#[utoipa::path(get, path = "/api/v1/device-groups",
    responses((status = 200, body = Vec<serde_json::Value>)))]
pub(crate) async fn list_device_groups(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<DeviceGroupRecord>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_device_groups(&caller.principal.scope())
            .await?,
    ))
}

/// Create a device group (a cart, a lab) to push profiles to.
#[utoipa::path(post, path = "/api/v1/device-groups", request_body = NewDeviceGroup,
    responses((status = 201, body = serde_json::Value), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn create_device_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewDeviceGroup>,
) -> Result<(StatusCode, Json<DeviceGroupRecord>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::BadRequest("name must not be empty".into()));
    }
    let group = state
        .store
        .create_device_group(
            name,
            body.school.as_deref(),
            &body.devices,
            &caller.principal.scope(),
            &caller.audit("device_group.create"),
            state.clock.now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(group)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateRequest {
    /// The device the certificate is for (id, UDID or serial number).
    device: String,
    /// For a pupil's certificate: the person (id, user name or entryUUID), who must hold an
    /// open loan of the device. Without it, the device's own certificate.
    person: Option<String>,
}

/// An issued certificate: the record and the certificate (never its key).
#[derive(Serialize)]
pub(crate) struct IssuedCertificateView {
    #[serde(flatten)]
    record: CertificateRecord,
    certificate_pem: String,
}

/// The current EAP-TLS certificate for a device (or for the pupil it is lent to), issued
/// now if there is none or it is due for renewal. Profiles that embed one issue it
/// themselves; this is for checking a RADIUS mapping. A departed or disabled person gets
/// none (409).
#[utoipa::path(post, path = "/api/v1/certificates", request_body = CertificateRequest,
    responses((status = 201, body = serde_json::Value), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn request_certificate(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CertificateRequest>,
) -> Result<(StatusCode, Json<IssuedCertificateView>), ApiError> {
    let scope = caller.principal.scope();
    let holder = state
        .store
        .certificate_holder(&body.device, body.person.as_deref(), &scope)
        .await?;
    let (issued, pem) = issue_certificate(&state, &holder, &caller).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedCertificateView {
            record: issued,
            certificate_pem: pem,
        }),
    ))
}

/// The current certificate, or a new one when there is none or it is due.
async fn issue_certificate(
    state: &AppState,
    holder: &CertificateHolder,
    caller: &Caller,
) -> Result<(CertificateRecord, String), ApiError> {
    let now = state.clock.now();
    let settings = &state.settings.profiles;
    let org = CertificateOrg {
        organisation: state.settings.organisation.clone(),
        upn_realm: settings.upn_realm.clone(),
    };
    let school_code = holder.school.as_ref().map(|(_, code)| code.clone());
    let (kind, subject) = match &holder.person {
        Some(person) => {
            let external_id = uuid::Uuid::parse_str(&person.external_id).map_err(|_| {
                ApiError::Conflict(format!(
                    "{}'s directory id is not an entryUUID",
                    person.username
                ))
            })?;
            let identity = PersonIdentity {
                external_id,
                username: person.username.clone(),
                mail: person.mail.clone(),
                school_code,
            };
            (EAP_PERSON, person_certificate_subject(&identity, &org))
        }
        None => {
            let device_id = uuid::Uuid::parse_str(&holder.device.id)
                .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
            let identity = DeviceIdentity {
                device_id,
                serial_number: holder.device.serial_number.clone(),
                school_code,
            };
            (EAP_DEVICE, device_certificate_subject(&identity, &org))
        }
    };
    let subject: CertificateSubject = subject.map_err(|e| ApiError::Conflict(e.to_string()))?;
    let person_id = holder.person.as_ref().map(|p| p.person_id.clone());
    let current = state
        .store
        .current_eap_certificate(kind, person_id.as_deref(), &holder.device.id)
        .await?;
    let still_good = current.as_ref().filter(|c| {
        serde_json::from_value::<CertificateSubject>(c.subject.clone())
            .ok()
            .and_then(|issued| {
                flotte_core::certificates::reissue_reason(
                    &issued,
                    &subject,
                    c.not_after,
                    now,
                    settings.renew_before_days,
                )
                .is_none()
                .then_some(())
            })
            .is_some()
    });
    let certificate = match still_good {
        Some(current) => current.clone(),
        None => {
            let request = ClientCertificateRequest {
                common_name: subject.common_name.clone(),
                organisation: Some(subject.organisation.clone()),
                organisational_unit: subject.organisational_unit.clone(),
                email: subject.email.clone(),
                uri_sans: subject.uri_sans.clone(),
                upn: subject.upn.clone(),
                user_id: None,
                validity_days: settings.certificate_validity_days,
            };
            let ca = state.ca.clone();
            let issued =
                tokio::task::spawn_blocking(move || ca.issue_client_certificate(&request, now))
                    .await
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
            let new = NewEapCertificate {
                kind: kind.to_owned(),
                person_id: person_id.clone(),
                device_id: Some(holder.device.id.clone()),
                school_id: holder.device.school_id.clone(),
                serial_hex: issued.serial_hex.clone(),
                sha256: issued.sha256_hex.clone(),
                subject: serde_json::to_value(&subject)
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?,
                cert_pem: issued.cert_pem.clone(),
                key_pem: issued.key_pem.clone().unwrap_or_default(),
                not_before: issued.not_before,
                not_after: issued.not_after,
            };
            state
                .store
                .record_eap_certificate(
                    &new,
                    current.as_ref().map(|c| c.id.as_str()),
                    &caller.audit("certificate.issue"),
                    now,
                )
                .await?
        }
    };
    let record = state
        .store
        .list_eap_certificates(
            person_id.as_deref(),
            Some(&holder.device.id),
            &caller.principal.scope(),
            50,
        )
        .await?
        .into_iter()
        .find(|r| r.id == certificate.id)
        .ok_or_else(|| ApiError::NotFound("certificate not found".into()))?;
    Ok((record, certificate.cert_pem))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct CertificateQuery {
    /// Flotte person id.
    person: Option<String>,
    /// Flotte device id.
    device: Option<String>,
}

/// EAP-TLS certificates in the caller's schools, newest first.
#[utoipa::path(get, path = "/api/v1/certificates", params(CertificateQuery),
    responses((status = 200, body = Vec<serde_json::Value>)))]
pub(crate) async fn list_certificates(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<CertificateQuery>,
) -> Result<Json<Vec<CertificateRecord>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_eap_certificates(
                q.person.as_deref(),
                q.device.as_deref(),
                &caller.principal.scope(),
                500,
            )
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Revocation {
    /// Why, for the audit log (e.g. `lost`, `compromised`).
    #[serde(default)]
    reason: Option<String>,
}

/// Revoke a certificate (by id or serial); the CRL is published anew at once.
#[utoipa::path(post, path = "/api/v1/certificates/{id}/revoke", params(("id" = String, Path)),
    request_body = Revocation,
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn revoke_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Revocation>,
) -> Result<Json<CertificateRecord>, ApiError> {
    let reason = body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "manual".into());
    let record = state
        .store
        .revoke_certificate(
            &id,
            &reason,
            &caller.principal.scope(),
            &caller.audit("certificate.revoke"),
            state.clock.now(),
        )
        .await?;
    current_crl(&state).await?;
    Ok(Json(record))
}

/// The CRL of Flotte's issuing CA (DER), unauthenticated so that RADIUS servers can fetch
/// it: published anew when a certificate was revoked since, or the last one is past half
/// its validity. The URL is stable: `GET /pki/crl.der`.
pub(crate) async fn crl(State(state): State<AppState>) -> Result<Response, ApiError> {
    let crl = current_crl(&state).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pkix-crl"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        crl.der,
    )
        .into_response())
}

/// The stored CRL, or a fresh one when it is behind.
async fn current_crl(state: &AppState) -> Result<CrlRecord, CoreError> {
    let now = state.clock.now();
    let validity_days = state.settings.profiles.crl_validity_days.max(1);
    for _ in 0..3 {
        let stored = state.store.current_crl().await?;
        let latest = state.store.latest_revocation().await?;
        if let Some(crl) = &stored
            && latest.is_none_or(|at| at <= crl.issued_at)
            && now < crl.issued_at + Duration::days(i64::from(validity_days)) / 2
        {
            return Ok(crl.clone());
        }
        let entries: Vec<RevokedCertificate> = state
            .store
            .revoked_certificates(now)
            .await?
            .into_iter()
            .map(|r| RevokedCertificate {
                serial_hex: r.serial_hex,
                revoked_at: r.revoked_at,
            })
            .collect();
        let number = stored.as_ref().map_or(1, |crl| crl.number + 1);
        let ca = state.ca.clone();
        let revoked = entries.clone();
        let der = tokio::task::spawn_blocking(move || {
            ca.issue_crl(
                &revoked,
                u64::try_from(number).unwrap_or(1),
                now,
                validity_days,
            )
        })
        .await
        .map_err(|e| CoreError::Invalid(format!("CRL signing stopped: {e}")))?
        .map_err(|e| CoreError::Invalid(format!("CRL: {e}")))?;
        let record = CrlRecord {
            number,
            der,
            revoked_count: i32::try_from(entries.len()).unwrap_or(i32::MAX),
            issued_at: now,
            next_update: now + Duration::days(i64::from(validity_days)),
        };
        if state
            .store
            .publish_crl(stored.map(|crl| crl.number), &record)
            .await?
        {
            return Ok(record);
        }
    }
    state
        .store
        .current_crl()
        .await?
        .ok_or_else(|| CoreError::Conflict("the CRL could not be published; try again".into()))
}
