//! The Apple MDM endpoints: check-in, the command loop ("connect"), the
//! single-endpoint form other servers use, and one-time enrolment links.
//!
//! Answers to devices carry a status and a short reason, never internal detail,
//! and never 401: to an iPad a 401 can mean "unenrol".

mod checkin;
mod connect;
pub(crate) mod enrollment;
mod error;
mod identity;

use crate::state::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, put};
use std::net::SocketAddr;

pub(crate) use error::AppleError;
pub(crate) use identity::VerifiedIdentities;

/// The Content-Type Apple devices send with check-in messages.
const CHECKIN_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm-checkin";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/mdm/apple/checkin",
            put(checkin::handle).post(checkin::handle),
        )
        .route(
            "/mdm/apple/connect",
            put(connect::handle).post(connect::handle),
        )
        .route("/mdm/apple/mdm", put(dispatch).post(dispatch))
        .route("/mdm/apple/enroll/{token}", get(enrollment::by_link))
}

/// One URL for both: check-ins are told apart by their Content-Type, as
/// NanoMDM and Fleet do, so a profile with only a ServerURL works too.
async fn dispatch(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    tls: Option<axum::Extension<std::sync::Arc<axum_server::tls::TlsInfo>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppleError> {
    let is_checkin = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(CHECKIN_CONTENT_TYPE));
    if is_checkin {
        checkin::handle(state, peer, tls, headers, body).await
    } else {
        connect::handle(state, peer, tls, headers, body).await
    }
}
