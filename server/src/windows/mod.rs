//! The Windows device protocol endpoints: MS-MDE2 enrolment (discovery, policy, enrolment)
//! and MS-MDM management, plus the admin API's enrolment secrets.
//!
//! Device endpoints answer in their protocol's terms: SOAP faults with MS-MDE2 codes during
//! enrolment, SyncML statuses during management, and a bare 4xx for input that is not a
//! message at all. Every answer has a `Content-Length` (axum sends whole bodies so), because
//! the Windows enrolment client does not accept chunked responses.

pub(crate) mod api;
mod enroll;
mod manage;

use crate::state::AppState;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// Paths Windows and provisioning packages know; part of the public interface.
pub(crate) const DISCOVERY_PATH: &str = "/EnrollmentServer/Discovery.svc";
pub(crate) const POLICY_PATH: &str = "/EnrollmentServer/Policy.svc";
pub(crate) const ENROLLMENT_PATH: &str = "/EnrollmentServer/Enrollment.svc";
pub(crate) const MANAGEMENT_PATH: &str = "/ManagementServer/MDM.svc";

/// The DMClient provider and w7 `PROVIDER-ID`: fixed, because a laptop's enrolment is filed
/// under it and renaming it would orphan every enrolled laptop's account.
pub(crate) const PROVIDER_ID: &str = "Flotte";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            DISCOVERY_PATH,
            axum::routing::get(enroll::discovery_probe).post(enroll::discovery),
        )
        .route(POLICY_PATH, post(enroll::policy))
        .route(ENROLLMENT_PATH, post(enroll::enrollment))
        .route(MANAGEMENT_PATH, post(manage::management))
}

fn url(state: &AppState, path: &str) -> String {
    format!("{}{path}", state.settings.public_url())
}

fn xml_response(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `bytes` random bytes as base64: secrets and nonces.
fn random_base64(bytes: usize) -> String {
    use base64::Engine as _;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::STANDARD.encode(buf)
}
