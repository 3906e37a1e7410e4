//! `PUT /mdm/apple/checkin`: Authenticate, TokenUpdate, CheckOut and the rest.

use super::AppleError;
use super::identity::{DeviceIdentity, identify};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotte_apple::CheckinMessage;
use flotte_core::device::InventoryUpdate;
use flotte_storage::{AuthenticateFacts, IdentityBinding};
use std::net::SocketAddr;
use std::sync::Arc;

pub(crate) async fn handle(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    tls: Option<axum::Extension<Arc<axum_server::tls::TlsInfo>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppleError> {
    let identity = identify(
        &state,
        &headers,
        tls.as_deref().map(|t| t.as_ref()),
        peer,
        &body,
    )?;
    let message =
        flotte_apple::parse_checkin(&body).map_err(|e| AppleError::Malformed(e.to_string()))?;
    let now = state.clock.now();
    let store = &state.store;
    match message {
        CheckinMessage::Authenticate(a) => {
            let udid = a.udid.clone().ok_or_else(|| {
                AppleError::Malformed(
                    "Authenticate without UDID (user enrolment is not supported)".into(),
                )
            })?;
            let facts = AuthenticateFacts {
                udid,
                topic: a.topic.clone(),
                inventory: InventoryUpdate {
                    serial_number: a.serial_number,
                    model: a.model,
                    model_name: a.model_name,
                    product_name: a.product_name,
                    os_version: a.os_version,
                    build_version: a.build_version,
                    device_name: a.device_name,
                    ..InventoryUpdate::default()
                },
            };
            let device = store
                .apple_authenticate(&facts, &identity.sha256, identity.not_after, now)
                .await?;
            tracing::info!(device = %device.id, udid = %facts.udid, "apple device authenticated");
            Ok(StatusCode::OK.into_response())
        }
        CheckinMessage::TokenUpdate(t) => {
            let current = store
                .apple_token_binding(&identity.sha256)
                .await?
                .ok_or_else(not_authenticated)?;
            check_binding(&current.binding, t.udid.as_deref())?;
            let token_hex = hex::encode(&t.token);
            store
                .apple_token_update(
                    &current,
                    &token_hex,
                    &t.push_magic,
                    &t.topic,
                    t.unlock_token.as_deref(),
                    now,
                )
                .await?;
            Ok(StatusCode::OK.into_response())
        }
        CheckinMessage::CheckOut(c) => {
            let binding = bound(&state, &identity, c.udid.as_deref()).await?;
            store.apple_checkout(&binding, now).await?;
            tracing::info!(device = %binding.device_id, "apple device checked out");
            Ok(StatusCode::OK.into_response())
        }
        CheckinMessage::UserAuthenticate(_) => Err(AppleError::Gone(
            "user channels are not offered by this server".into(),
        )),
        CheckinMessage::SetBootstrapToken(b) => {
            let binding = bound(&state, &identity, b.udid.as_deref()).await?;
            let token = b.bootstrap_token.ok_or_else(|| {
                AppleError::Malformed("SetBootstrapToken without BootstrapToken".into())
            })?;
            store
                .apple_set_bootstrap_token(&binding, &token, now)
                .await?;
            Ok(StatusCode::OK.into_response())
        }
        CheckinMessage::GetBootstrapToken(g) => {
            let binding = bound(&state, &identity, g.udid.as_deref()).await?;
            match store.apple_bootstrap_token(&binding).await? {
                None => Ok(StatusCode::OK.into_response()),
                Some(token) => {
                    let mut dict = plist::Dictionary::new();
                    dict.insert("BootstrapToken".into(), plist::Value::Data(token));
                    Ok(plist_response(&plist::Value::Dictionary(dict)))
                }
            }
        }
        CheckinMessage::DeclarativeManagement(d) => {
            let binding = bound(&state, &identity, d.udid.as_deref()).await?;
            Ok(declarative(&binding, &d.endpoint))
        }
        CheckinMessage::GetToken(_) => Err(AppleError::Rejected(
            "GetToken is not offered by this server".into(),
        )),
    }
}

/// The enrolment this identity belongs to, if the message is about that device.
pub(crate) async fn bound(
    state: &AppState,
    identity: &DeviceIdentity,
    udid: Option<&str>,
) -> Result<IdentityBinding, AppleError> {
    let binding = state
        .store
        .apple_identity_binding(&identity.sha256)
        .await?
        .ok_or_else(not_authenticated)?;
    check_binding(&binding, udid)?;
    Ok(binding)
}

pub(crate) fn not_authenticated() -> AppleError {
    AppleError::Mismatch("this identity has not authenticated".into())
}

/// The rules of [`bound`], for a binding the caller has already read.
pub(crate) fn check_binding(
    binding: &IdentityBinding,
    udid: Option<&str>,
) -> Result<(), AppleError> {
    let udid = udid.ok_or_else(|| AppleError::Malformed("message without UDID".into()))?;
    if binding.udid.as_deref() != Some(udid) {
        return Err(AppleError::Mismatch(format!(
            "the identity belongs to another device than UDID {udid}"
        )));
    }
    if !binding.active {
        return Err(AppleError::Mismatch(
            "the enrolment of this identity has ended (checked out or re-enrolled)".into(),
        ));
    }
    Ok(())
}

/// Declarative Device Management, until declarations exist: a well-formed,
/// empty set, so the device settles instead of retrying.
fn declarative(binding: &IdentityBinding, endpoint: &str) -> Response {
    // A stable token: it changes when the (empty) declaration set would.
    let token = format!("flotte-empty-{}", &binding.enrollment_id[..8]);
    let body = match endpoint {
        "tokens" => serde_json::json!({
            "SyncTokens": { "DeclarationsToken": token, "Timestamp": "2026-01-01T00:00:00Z" }
        }),
        "declaration-items" => serde_json::json!({
            "Declarations": { "Activations": [], "Assets": [], "Configurations": [], "Management": [] },
            "DeclarationsToken": token
        }),
        "status" => return StatusCode::OK.into_response(),
        _ => return (StatusCode::NOT_FOUND, "no such declaration").into_response(),
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn plist_response(value: &plist::Value) -> Response {
    let mut out = Vec::new();
    match plist::to_writer_xml(&mut out, value) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/xml")], out).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise a plist answer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
