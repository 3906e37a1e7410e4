//! `PUT /mdm/apple/connect`: the device reports on the last command and gets
//! the next one (or an empty 200 when the queue is empty).

use super::AppleError;
use super::checkin::{check_binding, not_authenticated};
use super::identity::identify;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotte_apple::{CommandReport, DeviceInfoResult, InstalledProfile, Status};
use flotte_core::command::DeviceVerdict;
use flotte_core::device::{self, InventoryUpdate};
use flotte_profiles::apple::Command;
use flotte_storage::Report;
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
    let report =
        flotte_apple::parse_report(&body).map_err(|e| AppleError::Malformed(e.to_string()))?;
    let poll = state
        .store
        .apple_poll_state(&identity.sha256)
        .await?
        .ok_or_else(not_authenticated)?;
    check_binding(&poll.binding, report.udid.as_deref())?;
    let binding = &poll.binding;
    let stored = to_storage_report(&report, &body)?;
    let next = state
        .store
        .apple_report(
            &poll,
            &stored,
            state.clock.now()
                + chrono::Duration::seconds(state.settings.apple.not_now_retry_secs as i64),
            state.clock.now(),
        )
        .await?;
    let Some(next) = next else {
        return Ok(StatusCode::OK.into_response());
    };
    let mut command: Command = serde_json::from_str(&next.payload).map_err(|e| {
        AppleError::Internal(flotte_core::CoreError::Invalid(format!(
            "stored command {} is unreadable: {e}",
            next.id
        )))
    })?;
    if let Command::ClearPasscode { unlock_token } = &mut command
        && unlock_token.is_empty()
    {
        // The token is filled in at send time, so it never sits in the queue in clear.
        *unlock_token = state
            .store
            .apple_unlock_token(&binding.device_id)
            .await?
            .unwrap_or_default();
    }
    Ok((
        [(header::CONTENT_TYPE, "application/xml")],
        command.to_plist(&next.id),
    )
        .into_response())
}

fn to_storage_report(report: &CommandReport, body: &[u8]) -> Result<Report, AppleError> {
    let verdict = match report.status {
        Status::Idle => None,
        Status::Acknowledged => Some(DeviceVerdict::Acknowledged),
        Status::Error => Some(DeviceVerdict::Error),
        Status::CommandFormatError => Some(DeviceVerdict::FormatError),
        Status::NotNow => Some(DeviceVerdict::NotNow),
    };
    let answered = match verdict {
        None => None,
        Some(v) => Some((
            report
                .command_uuid
                .clone()
                .ok_or_else(|| AppleError::Malformed("report without CommandUUID".into()))?,
            v,
        )),
    };
    let error = (!report.error_chain.is_empty()).then(|| {
        report
            .error_chain
            .iter()
            .map(|e| {
                format!(
                    "{} {}: {}",
                    e.error_domain,
                    e.error_code,
                    e.localized_description.clone().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    });
    let inventory = DeviceInfoResult::from_report(report).map(|d| InventoryUpdate {
        serial_number: d.serial_number,
        model: d.model,
        model_name: d.model_name,
        product_name: d.product_name,
        os_version: d.os_version,
        build_version: d.build_version,
        device_name: d.device_name,
        capacity_gb: d.device_capacity_gb,
        available_gb: d.available_capacity_gb,
        battery_level: d.battery_level,
        wifi_mac: d.wifi_mac,
        supervised: d.is_supervised,
    });
    let profiles = match report.profile_list {
        Some(_) => Some(
            InstalledProfile::from_report(report)
                .map_err(|e| AppleError::Malformed(e.to_string()))?
                .into_iter()
                .map(|p| device::InstalledProfile {
                    identifier: p.identifier,
                    payload_uuid: Some(p.uuid),
                    display_name: p.display_name,
                    version: p.version.and_then(|v| i32::try_from(v).ok()),
                })
                .collect(),
        ),
        None => None,
    };
    Ok(Report {
        // Kept only as a command's result; an Idle poll answers nothing.
        raw: if answered.is_some() {
            String::from_utf8_lossy(body).into_owned()
        } else {
            String::new()
        },
        answered,
        error,
        inventory,
        profiles,
    })
}
