//! MS-MDE2 enrolment: discovery, policy (MS-XCEP) and enrolment (MS-WSTEP).
//!
//! Both credential kinds arrive as a WS-Security `UsernameToken` (AuthPolicy `OnPremise`):
//! a technician's enrolment secret as the password (provisioning packages staging many
//! laptops; the user name is free), or a staff member's directory password.

use super::{
    ENROLLMENT_PATH, MANAGEMENT_PATH, POLICY_PATH, PROVIDER_ID, random_base64, url, xml_response,
};
use crate::error::ApiError;
use crate::signin::Via;
use crate::state::AppState;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_pki::{ClientCertificateRequest, PkiError};
use flotte_storage::{WindowsCredentials, WindowsEnrolledBy, WindowsEnrollment, WindowsIdentity};
use flotte_windows::commands::WindowsCommand;
use flotte_windows::provisioning::{CertStore, DigestCredential, PollSchedule, ProvisioningDoc};
use flotte_windows::soap::{
    self, Credential, DiscoverResponse, EnrollmentType, Fault, FaultCode, RequestType, Service,
    VALUE_TYPE_PKCS10,
};
use std::net::SocketAddr;

/// Enrolment secrets start with this, so a password that is not one never reaches the
/// database lookup and a secret never reaches the directory.
pub(crate) const SECRET_PREFIX: &str = "flotte-win-";
const SOAP_CONTENT_TYPE: &str = "application/soap+xml; charset=utf-8";
/// The policy's minimum RSA key size; Windows generates 2048-bit keys at this setting.
const MIN_KEY_LENGTH: u32 = 2048;
/// Identity certificates outlive a school laptop (about five years): renewal (ROBO) is only
/// documented against Microsoft's PKI, so a laptop keeps its first certificate.
const IDENTITY_VALIDITY_DAYS: u32 = 5 * 365;

fn ok(body: String) -> Response {
    xml_response(StatusCode::OK, SOAP_CONTENT_TYPE, body)
}

/// A SOAP fault with HTTP 400 for the sender's faults and 500 for ours (SOAP 1.2 binding).
fn fault(service: Service, fault: Fault, relates_to: Option<&str>) -> Response {
    let status = if fault.code.is_sender_fault() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    tracing::info!(
        service = ?service, subcode = fault.code.subcode(), reason = %fault.reason,
        "Windows enrolment request refused"
    );
    let activity = uuid::Uuid::new_v4().to_string();
    xml_response(
        status,
        SOAP_CONTENT_TYPE,
        soap::render_fault(service, &fault, relates_to, &activity),
    )
}

fn internal(service: Service, error: &dyn std::fmt::Display, relates_to: Option<&str>) -> Response {
    tracing::error!(service = ?service, %error, "Windows enrolment failed");
    fault(
        service,
        Fault::new(
            FaultCode::InternalServiceFault,
            "the enrolment server failed; try again later",
        ),
        relates_to,
    )
}

/// `GET` of the discovery URL: Windows probes it before posting; an empty 200 says "here".
pub(crate) async fn discovery_probe() -> StatusCode {
    StatusCode::OK
}

pub(crate) async fn discovery(State(state): State<AppState>, body: Bytes) -> Response {
    let request = match soap::parse_discover(&body) {
        Ok(r) => r,
        Err(e) => return fault(Service::Discovery, e.fault(), None),
    };
    let response = DiscoverResponse {
        auth_policy: "OnPremise".into(),
        // 4.0 is what Windows 10 and 11 enrol with against third-party servers.
        enrollment_version: "4.0".into(),
        policy_url: url(&state, POLICY_PATH),
        enrollment_url: url(&state, ENROLLMENT_PATH),
    };
    let activity = uuid::Uuid::new_v4().to_string();
    ok(soap::render_discover_response(
        &response,
        request.header.message_id.as_deref(),
        &activity,
    ))
}

pub(crate) async fn policy(
    State(state): State<AppState>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Response {
    let request = match soap::parse_get_policies(&body) {
        Ok(r) => r,
        Err(e) => return fault(Service::Policy, e.fault(), None),
    };
    let relates_to = request.header.message_id.as_deref();
    let now = state.clock.now();
    if let Err(response) = authenticate(
        &state,
        Service::Policy,
        request.header.credential.as_ref(),
        source_of(connect),
        relates_to,
        now,
    )
    .await
    {
        return response;
    }
    let activity = uuid::Uuid::new_v4().to_string();
    ok(soap::render_get_policies_response(
        relates_to,
        &activity,
        MIN_KEY_LENGTH,
    ))
}

/// Checks the `UsernameToken`. An enrolment secret is looked up (the policy step does not
/// spend a use; the enrolment step's transaction counts it). A password goes through staff
/// sign-in, so the same throttle, audit and rule apply as for the web: only staff with a
/// school role in Flotte (or technicians) may enrol, not pupils.
async fn authenticate(
    state: &AppState,
    service: Service,
    credential: Option<&Credential>,
    source: Option<String>,
    relates_to: Option<&str>,
    now: DateTime<Utc>,
) -> Result<WindowsEnrolledBy, Response> {
    let refuse = |code, reason: &str| fault(service, Fault::new(code, reason), relates_to);
    let Some(Credential::UsernameToken { username, password }) = credential else {
        return Err(refuse(
            FaultCode::Authentication,
            "a user name and password (or an enrolment secret) are required",
        ));
    };
    if password.starts_with(SECRET_PREFIX) {
        return match state
            .store
            .usable_windows_enrollment_secret(password, now)
            .await
        {
            Ok(Some(_)) => Ok(WindowsEnrolledBy::Secret {
                secret_hash: flotte_storage::hash_token(password),
            }),
            Ok(None) => Err(refuse(
                FaultCode::Authentication,
                "the enrolment secret is unknown, revoked, expired or used up",
            )),
            Err(e) => Err(internal(service, &e, relates_to)),
        };
    }
    match crate::signin::sign_in(state, username, password, source, Via::Windows).await {
        Ok(staff) => Ok(WindowsEnrolledBy::Staff {
            username: staff.name,
        }),
        Err(ApiError::Unauthorized(reason) | ApiError::TooManyRequests(reason)) => {
            Err(refuse(FaultCode::Authentication, &reason))
        }
        Err(ApiError::Forbidden(reason)) => Err(refuse(FaultCode::Authorization, &reason)),
        Err(ApiError::Unavailable(reason)) => Err(refuse(FaultCode::EnrollmentServer, &reason)),
        Err(e) => Err(internal(service, &e, relates_to)),
    }
}

fn source_of(connect: Option<Extension<ConnectInfo<SocketAddr>>>) -> Option<String> {
    connect.map(|Extension(ConnectInfo(addr))| addr.ip().to_string())
}

/// The DeviceID that names the laptop from here on (SyncML `Source`, certificate CN).
/// Windows sends it in the request's context and, on newer builds, in the CSR (extension or
/// CN `<GUID>!<DeviceID>`); both must agree. Anything that could not be a SyncML `LocURI`
/// or a certificate CN is refused (real ones are 32 hex digits).
fn device_id_of(
    request: &soap::EnrollmentRequest,
    csr: &flotte_pki::CsrInfo,
) -> Result<String, Fault> {
    let from_csr = csr.device_id.clone().or_else(|| {
        csr.common_name
            .as_deref()
            .and_then(|cn| cn.rsplit_once('!'))
            .map(|(_, id)| id.to_owned())
    });
    let id = match (request.device_id(), from_csr.as_deref()) {
        (Some(ctx), Some(csr_id)) if !ctx.eq_ignore_ascii_case(csr_id) => {
            return Err(Fault::new(
                FaultCode::CertificateRequest,
                format!("the request's DeviceID {ctx} differs from its CSR's {csr_id}"),
            ));
        }
        (Some(id), _) | (None, Some(id)) => id.to_owned(),
        (None, None) => {
            return Err(Fault::new(
                FaultCode::MessageFormat,
                "the request names no DeviceID",
            ));
        }
    };
    let valid = id.len() <= 64
        && !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'{' | b'}'));
    if valid {
        Ok(id)
    } else {
        Err(Fault::new(
            FaultCode::MessageFormat,
            format!("{id:?} is not a DeviceID"),
        ))
    }
}

pub(crate) async fn enrollment(
    State(state): State<AppState>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Response {
    const SERVICE: Service = Service::Enrollment;
    let request = match soap::parse_request_security_token(&body) {
        Ok(r) => r,
        Err(e) => return fault(SERVICE, e.fault(), None),
    };
    let relates_to = request.header.message_id.clone();
    let relates_to = relates_to.as_deref();
    let refuse = |code, reason: String| fault(SERVICE, Fault::new(code, reason), relates_to);
    let now = state.clock.now();
    let source = source_of(connect);
    let enrolled_by = match authenticate(
        &state,
        SERVICE,
        request.header.credential.as_ref(),
        source.clone(),
        relates_to,
        now,
    )
    .await
    {
        Ok(by) => by,
        Err(response) => return response,
    };
    if request.request_type == RequestType::Renew || request.value_type != VALUE_TYPE_PKCS10 {
        return refuse(
            FaultCode::CertificateRequest,
            "only new enrolments with a PKCS#10 are supported; remove the enrolment and enrol again"
                .into(),
        );
    }
    let csr = match flotte_pki::inspect_csr(&request.token_der) {
        Ok(csr) => csr,
        Err(e) => {
            return refuse(
                FaultCode::CertificateRequest,
                format!("the certificate request was refused: {e}"),
            );
        }
    };
    let device_id = match device_id_of(&request, &csr) {
        Ok(id) => id,
        Err(refused) => return fault(SERVICE, refused, relates_to),
    };
    let mut identity_request = ClientCertificateRequest::new(&device_id, IDENTITY_VALIDITY_DAYS);
    identity_request.organisation = Some(state.settings.organisation.clone());
    identity_request.organisational_unit = Some(PROVIDER_ID.to_owned());
    let issued = match state
        .ca
        .sign_csr(&request.token_der, &identity_request, now)
    {
        Ok(issued) => issued,
        Err(e @ (PkiError::Crypto(_) | PkiError::Io { .. } | PkiError::CaDirectory { .. })) => {
            return internal(SERVICE, &e, relates_to);
        }
        Err(e) => {
            return refuse(
                FaultCode::CertificateRequest,
                format!("the certificate request was refused: {e}"),
            );
        }
    };
    let subject = match flotte_pki::certificate_info(&issued.cert_der) {
        Ok(info) => info.subject,
        Err(e) => return internal(SERVICE, &e, relates_to),
    };

    let credentials = WindowsCredentials {
        digest_username: device_id.clone(),
        digest_secret: random_base64(24),
        nonce: random_base64(16),
        server_secret: random_base64(24),
        server_nonce: random_base64(16),
    };
    let enrollment_type = request.enrollment_type();
    let inventory = WindowsCommand::Inventory(flotte_windows::commands::default_inventory_uris());
    let enrolment = WindowsEnrollment {
        windows_device_id: device_id.clone(),
        hw_dev_id: request.hw_dev_id().map(str::to_owned),
        enrollment_type: match enrollment_type {
            EnrollmentType::Full => "Full".into(),
            EnrollmentType::Device => "Device".into(),
        },
        device_name: request.context_value("DeviceName").map(str::to_owned),
        os_version: request.context_value("OSVersion").map(str::to_owned),
        enrolled_by,
        credentials: credentials.clone(),
        identity: WindowsIdentity {
            sha256: issued.sha256_hex.clone(),
            serial_hex: issued.serial_hex.clone(),
            subject,
            not_before: issued.not_before,
            not_after: issued.not_after,
        },
        new_device_id: uuid::Uuid::new_v4().to_string(),
        initial_commands: vec![(inventory.request_type().to_owned(), inventory.payload())],
        source,
    };
    let enrolled = match state.store.enroll_windows_device(enrolment, now).await {
        Ok(enrolled) => enrolled,
        Err(CoreError::Forbidden(reason)) => return refuse(FaultCode::Authorization, reason),
        Err(CoreError::Conflict(reason)) => return refuse(FaultCode::EnrollmentServer, reason),
        Err(e) => return internal(SERVICE, &e, relates_to),
    };
    tracing::info!(
        device = %enrolled.device_id, windows_device_id = %device_id,
        reenrolled = enrolled.reenrolled, "Windows laptop enrolled"
    );

    let document = ProvisioningDoc {
        root_ca_der: state.ca.root_der(),
        issuing_ca_der: state.ca.issuing_der(),
        client_cert_der: issued.cert_der,
        store: match enrollment_type {
            EnrollmentType::Full => CertStore::User,
            EnrollmentType::Device => CertStore::System,
        },
        provider_id: PROVIDER_ID.into(),
        server_name: state.settings.organisation.clone(),
        management_url: url(&state, MANAGEMENT_PATH),
        entdmid: enrolled.device_id,
        client_auth: DigestCredential {
            name: Some(credentials.digest_username),
            secret: credentials.digest_secret,
            nonce_b64: credentials.nonce,
        },
        server_auth: DigestCredential {
            name: None,
            secret: credentials.server_secret,
            nonce_b64: credentials.server_nonce,
        },
        poll: PollSchedule::default(),
        client_cert_common_name: device_id,
    };
    let activity = uuid::Uuid::new_v4().to_string();
    ok(soap::render_enrollment_response(
        &document.to_xml(),
        relates_to,
        &activity,
        now,
    ))
}
