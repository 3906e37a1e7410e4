//! Enrolment profiles: a signed `.mobileconfig` with our root, a fresh device
//! identity (PKCS#12, random password) and the `com.apple.mdm` payload.

use super::AppleError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use flotte_pki::ClientCertificateRequest;
use flotte_profiles::apple::{
    MdmEnrollment, MdmServerCapability, Pkcs12Identity, Profile, ProfileNamespace, RootCertificate,
};
use flotte_storage::{APPLE_IDENTITY, IssuedRecord};
use std::net::SocketAddr;

/// The MIME type Safari and Apple Configurator expect for a profile.
pub(crate) const MOBILECONFIG_TYPE: &str = "application/x-apple-aspen-config";
/// The enrolment profile's identifier: fixed, so a new download replaces the old profile.
pub(crate) const ENROLLMENT_IDENTIFIER: &str = "de.flotte.mdm.enrollment";

/// Build and sign an enrolment profile for `school_id`, recording the new identity.
pub(crate) async fn signed_profile(
    state: &AppState,
    school_id: &str,
    school_name: &str,
    actor: &AuditEntry,
) -> Result<Vec<u8>, CoreError> {
    let push = state
        .store
        .active_push_certificate()
        .await?
        .ok_or_else(|| {
            CoreError::Conflict(
                "no APNs push certificate yet: upload one with PUT /api/v1/apple/push-certificate"
                    .into(),
            )
        })?;
    let now = state.clock.now();
    let settings = &state.settings;
    let mut request = ClientCertificateRequest::new(
        format!("Flotte device identity {}", uuid::Uuid::new_v4()),
        settings.apple.identity_validity_days,
    );
    request.organisation = Some(settings.organisation.clone());
    let ca = state.ca.clone();
    let identity = tokio::task::spawn_blocking(move || ca.issue_client_certificate(&request, now))
        .await
        .map_err(|e| CoreError::Invalid(format!("identity issuing stopped: {e}")))?
        .map_err(|e| CoreError::Invalid(format!("identity issuing failed: {e}")))?;
    let key_pem = identity
        .key_pem
        .clone()
        .ok_or_else(|| CoreError::Invalid("identity without key".into()))?;
    let password = random_password();
    let p12 = flotte_pki::pkcs12(
        &identity.cert_pem,
        &key_pem,
        &[state.ca.issuing_pem()],
        "Flotte MDM identity",
        &password,
    )
    .map_err(|e| CoreError::Invalid(format!("PKCS#12: {e}")))?;
    state
        .store
        .record_issued_certificate(
            &IssuedRecord {
                kind: APPLE_IDENTITY.into(),
                serial_hex: identity.serial_hex.clone(),
                sha256: identity.sha256_hex.clone(),
                subject: flotte_pki::certificate_info(&identity.cert_der)
                    .map(|i| i.subject)
                    .unwrap_or_default(),
                not_before: identity.not_before,
                not_after: identity.not_after,
                school_id: Some(school_id.to_owned()),
                person_id: None,
                device_id: None,
            },
            actor,
            now,
        )
        .await?;

    let public = settings.public_url();
    let namespace = ProfileNamespace::from_dns_name(&public);
    let profile = Profile::new(
        namespace,
        ENROLLMENT_IDENTIFIER,
        format!("{} MDM", settings.organisation),
    )
    .organization(settings.organisation.clone())
    .description(format!(
        "Enrols this device in {}'s device management for {school_name}.",
        settings.organisation
    ))
    .with_payload(
        "root",
        RootCertificate {
            der: state.ca.root_der(),
            file_name: Some("flotte-root.cer".into()),
        },
    )
    .with_payload(
        "identity",
        Pkcs12Identity {
            pkcs12: p12,
            password: Some(password),
            file_name: Some("identity.p12".into()),
        },
    )
    .with_payload(
        "mdm",
        MdmEnrollment {
            server_url: format!("{public}/mdm/apple/connect"),
            check_in_url: Some(format!("{public}/mdm/apple/checkin")),
            topic: push.topic,
            identity: "identity".into(),
            sign_message: true,
            access_rights: MdmEnrollment::ALL_ACCESS_RIGHTS,
            check_out_when_removed: true,
            server_capabilities: vec![
                MdmServerCapability::PerUserConnections,
                MdmServerCapability::BootstrapToken,
            ],
            use_development_apns: None,
        },
    );
    let plist = profile
        .to_mobileconfig()
        .map_err(|e| CoreError::Invalid(format!("enrolment profile: {e}")))?;
    let signer = state.signer.clone();
    tokio::task::spawn_blocking(move || signer.sign(&plist))
        .await
        .map_err(|e| CoreError::Invalid(format!("signing stopped: {e}")))?
        .map_err(|e| CoreError::Invalid(format!("signing failed: {e}")))
}

fn random_password() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn mobileconfig_response(profile: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, MOBILECONFIG_TYPE),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"flotte-enrollment.mobileconfig\"",
            ),
        ],
        profile,
    )
        .into_response()
}

/// `GET /mdm/apple/enroll/{token}`: a one-time link opened in Safari on the iPad.
pub(crate) async fn by_link(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
) -> Result<Response, AppleError> {
    let hash = flotte_storage::hash_token(&token);
    let school_id = match state
        .store
        .consume_enrollment_link(&hash, Some(peer.ip().to_string()), state.clock.now())
        .await
    {
        Ok(school) => school,
        Err(CoreError::NotFound(_)) => {
            return Err(AppleError::Rejected("unknown enrolment link".into()));
        }
        Err(CoreError::Conflict(why)) => return Err(AppleError::Gone(why)),
        Err(e) => return Err(e.into()),
    };
    let school = state.store.find_school(&school_id).await?;
    let actor = AuditEntry::new("enrollment-link", "apple.enrollment_profile", "")
        .from_source(Some(peer.ip().to_string()));
    let profile = signed_profile(&state, &school.id, &school.name, &actor).await?;
    Ok(mobileconfig_response(profile))
}
