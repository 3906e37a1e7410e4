//! MS-MDM management sessions at `/ManagementServer/MDM.svc`.
//!
//! Each message is authenticated (see `flotte_windows::session` for the rules), recorded in
//! one storage transaction, and answered with statuses for the device's commands followed by
//! the next queued commands. A message carrying something other than a usable SyncML
//! message is answered with a bare 4xx; a device we do not know, or a wrong digest, with 401
//! and a SyncML status 401 carrying a challenge.

use super::{MANAGEMENT_PATH, random_base64, url, xml_response};
use crate::state::AppState;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum_server::tls::TlsInfo;
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::command::DeviceVerdict;
use flotte_storage::{
    NonceRotation, WindowsCommandOutcome, WindowsDeviceRecord, WindowsInventory, WindowsReport,
    WindowsSessionStep,
};
use flotte_windows::commands::{queued_command_id, render_command};
use flotte_windows::digest::{decode_nonce, verify_md5};
use flotte_windows::inventory::Inventory;
use flotte_windows::session::{Admission, Proof, Refusal, SessionState, code, is_success};
use flotte_windows::syncml::{self, AUTH_MD5, Chal, SyncCommand, SyncMessage};
use std::collections::BTreeMap;
use std::sync::Arc;

const SYNCML_CONTENT_TYPE: &str = "application/vnd.syncml.dm+xml";
/// Commands per message: keeps answers small (large messages are where others saw Windows
/// stall) while a queue of a few dozen still drains in one session.
const MAX_COMMANDS_PER_MESSAGE: u64 = 20;

fn syncml_response(status: StatusCode, message: &SyncMessage) -> Response {
    xml_response(status, SYNCML_CONTENT_TYPE, message.to_xml())
}

/// A plain-text refusal for what is not a usable message, or cannot be taken now.
fn refuse(status: StatusCode, reason: &str) -> Response {
    tracing::info!(%status, %reason, "Windows management message refused");
    xml_response(status, "text/plain; charset=utf-8", reason.to_owned())
}

/// A 401 in SyncML terms too, with a nonce: for unknown devices a throwaway one, so the
/// answer looks alike whether or not the DeviceID is enrolled.
fn unauthorized(state: &AppState, message: &SyncMessage, nonce: &str, reason: &str) -> Response {
    tracing::info!(device = %message.header.source, %reason, "Windows management message not authenticated");
    let answer = message.answer(
        &url(state, MANAGEMENT_PATH),
        code::INVALID_CREDENTIALS,
        Some(Chal::md5(nonce)),
        Vec::new(),
    );
    syncml_response(StatusCode::UNAUTHORIZED, &answer)
}

/// What the message proves, or why it proves something false.
enum Evidence {
    Proof {
        proof: Proof,
        /// The digest was computed with the previous nonce (our last nonce hand-over was lost).
        used_previous_nonce: bool,
    },
    Refused(&'static str),
}

fn evidence(
    state: &AppState,
    device: &WindowsDeviceRecord,
    message: &SyncMessage,
    tls: Option<&TlsInfo>,
    now: DateTime<Utc>,
) -> Evidence {
    // A certificate is only taken as proof when it is the one issued to this very device:
    // another laptop's valid certificate must not speak for this DeviceID.
    if let Some(cert) = tls.and_then(|t| t.peer_certificates.first()) {
        let issued_here = state.ca.verify_issued(cert, now).is_ok()
            && device.identity_sha256.as_deref() == Some(&flotte_pki::sha256_fingerprint(cert));
        if !issued_here {
            return Evidence::Refused("the client certificate is not this device's identity");
        }
        return Evidence::Proof {
            proof: Proof::Certificate,
            used_previous_nonce: false,
        };
    }
    let Some(cred) = &message.header.cred else {
        return Evidence::Proof {
            proof: Proof::None,
            used_previous_nonce: false,
        };
    };
    if cred.auth_type != AUTH_MD5 {
        return Evidence::Refused("only syncml:auth-md5 credentials are accepted");
    }
    if message
        .header
        .source_name
        .as_deref()
        .is_some_and(|name| name != device.digest_username)
    {
        return Evidence::Refused("the credential names another user");
    }
    let name = &device.digest_username;
    let secret = &device.digest_secret;
    if verify_md5(&cred.data, name, secret, &decode_nonce(&device.nonce)) {
        return Evidence::Proof {
            proof: Proof::Digest,
            used_previous_nonce: false,
        };
    }
    if let Some(previous) = &device.previous_nonce
        && verify_md5(&cred.data, name, secret, &decode_nonce(previous))
    {
        return Evidence::Proof {
            proof: Proof::Digest,
            used_previous_nonce: true,
        };
    }
    Evidence::Refused("wrong digest")
}

/// The device's `Status`es and `Results` for our commands, one outcome per queued command and
/// message referred to.
fn outcomes(message: &SyncMessage) -> Result<Vec<WindowsCommandOutcome>, String> {
    #[derive(Default)]
    struct Collected<'a> {
        command: Option<(&'a str, u16)>,
        failures: Vec<String>,
        successes: usize,
        results: Vec<&'a SyncCommand>,
    }
    let msg_ref = |text: &str| {
        text.trim()
            .parse::<i64>()
            .map_err(|_| format!("MsgRef {text:?} is not a number"))
    };
    let mut by_command: BTreeMap<(String, i64), Collected<'_>> = BTreeMap::new();
    for status in message.command_statuses() {
        let code = status
            .code_number()
            .ok_or_else(|| format!("status {:?} is not a number", status.code))?;
        let id = queued_command_id(&status.cmd_ref).to_owned();
        let entry = by_command
            .entry((id.clone(), msg_ref(&status.msg_ref)?))
            .or_default();
        if status.cmd_ref == id {
            entry.command = Some((status.cmd.as_str(), code));
        }
        if is_success(code) {
            entry.successes += 1;
        } else {
            entry
                .failures
                .push(format!("{} {}: {code}", status.cmd, status.cmd_ref));
        }
    }
    for (cmd_ref, results) in message.results() {
        let SyncCommand::Results { msg_ref: m, .. } = results else {
            continue;
        };
        by_command
            .entry((queued_command_id(cmd_ref).to_owned(), msg_ref(m)?))
            .or_default()
            .results
            .push(results);
    }
    Ok(by_command
        .into_iter()
        .map(|((command_id, msg_ref), c)| {
            // A Get is done when any node could be read (desktops answer 404 for nodes
            // Microsoft documents for phones only); everything else must succeed entirely,
            // which for an Atomic is its own status (507 when anything inside failed).
            let verdict = c.command.map(|(cmd, code)| {
                let ok = if cmd == "Get" {
                    c.successes > 0
                } else {
                    is_success(code) && (c.failures.is_empty() || cmd == "Atomic")
                };
                if ok {
                    DeviceVerdict::Acknowledged
                } else {
                    DeviceVerdict::Error
                }
            });
            WindowsCommandOutcome {
                command_id,
                msg_ref,
                verdict,
                error: (!c.failures.is_empty()).then(|| c.failures.join("; ")),
                result: (!c.results.is_empty()).then(|| syncml::render_results(&c.results)),
            }
        })
        .collect())
}

fn inventory_of(message: &SyncMessage) -> WindowsInventory {
    let mut inv = Inventory::default();
    for (uri, data) in message.reported_nodes() {
        inv.absorb(uri, data);
    }
    WindowsInventory {
        model_name: match (&inv.manufacturer, &inv.model) {
            (Some(man), Some(model)) => Some(format!("{man} {model}")),
            _ => None,
        },
        model: inv.model,
        product_name: inv.product_name,
        os_version: inv.os_version,
        build_version: inv.build_version,
        serial_number: inv.serial_number,
        device_name: inv.device_name,
        capacity_gb: inv.capacity_gb,
        available_gb: inv.available_gb,
        battery_level: inv.battery_level,
    }
}

/// Everything the message reports, for storage.
fn report_of(message: &SyncMessage, unenrolled: bool) -> Result<WindowsReport, String> {
    Ok(WindowsReport {
        outcomes: outcomes(message)?,
        inventory: inventory_of(message),
        unenrolled,
    })
}

/// The device's status for our previous message's header, when it is not a success (a
/// device asking us to authenticate, which Flotte does not do, would show up here).
fn refused_header(message: &SyncMessage) -> Option<&str> {
    message.body.iter().find_map(|c| match c {
        SyncCommand::Status(s)
            if s.cmd == "SyncHdr" && !s.code_number().is_some_and(is_success) =>
        {
            Some(s.code.as_str())
        }
        _ => None,
    })
}

pub(crate) async fn management(
    State(state): State<AppState>,
    tls: Option<Extension<Arc<TlsInfo>>>,
    body: Bytes,
) -> Response {
    let now = state.clock.now();
    if body.iter().all(u8::is_ascii_whitespace) {
        return refuse(StatusCode::BAD_REQUEST, "empty SyncML message");
    }
    let message = match syncml::parse(&body) {
        Ok(m) => m,
        Err(syncml::SyncMlError::Xml(flotte_windows::xml::XmlError::TooLarge { .. })) => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "SyncML message too large");
        }
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let device = match state.store.windows_device(&message.header.source).await {
        Ok(Some(d)) if d.active => d,
        Ok(_) => {
            return unauthorized(
                &state,
                &message,
                &random_base64(16),
                "unknown or unenrolled device",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "Windows management: storage failed");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
    };
    let (proof, used_previous) = match evidence(
        &state,
        &device,
        &message,
        tls.as_deref().map(Arc::as_ref),
        now,
    ) {
        Evidence::Proof {
            proof,
            used_previous_nonce,
        } => (proof, used_previous_nonce),
        Evidence::Refused(reason) => return unauthorized(&state, &message, &device.nonce, reason),
    };
    let session = SessionState {
        session_id: device.session_id.clone(),
        last_msg_id: u32::try_from(device.last_msg_id).unwrap_or(u32::MAX),
        last_message_at: device.session_seen_at,
    };
    let admission = match session.admit(&message.header, proof, now) {
        Ok(a) => a,
        Err(Refusal::Challenge) => {
            // The regular first step with Windows: it sends credentials once challenged.
            let answer = message.answer(
                &url(&state, MANAGEMENT_PATH),
                code::MISSING_CREDENTIALS,
                Some(Chal::md5(&device.nonce)),
                Vec::new(),
            );
            return syncml_response(StatusCode::OK, &answer);
        }
        Err(refusal) => {
            tracing::info!(device = %device.device_id, %refusal, "Windows management message refused");
            return refuse(StatusCode::BAD_REQUEST, &refusal.to_string());
        }
    };
    let rotation =
        (admission == Admission::Start && proof == Proof::Digest).then(|| NonceRotation {
            next: random_base64(16),
            used_previous,
        });
    let alerts = message.alerts();
    let report = match report_of(&message, alerts.unenrolled) {
        Ok(report) => report,
        Err(reason) => return refuse(StatusCode::BAD_REQUEST, &reason),
    };
    if let Some(code) = refused_header(&message) {
        tracing::warn!(device = %device.device_id, %code, "the device did not accept our last message's header");
    }
    let step = WindowsSessionStep {
        expected_session_id: device.session_id.clone(),
        expected_last_msg_id: device.last_msg_id,
        expected_nonce: device.nonce.clone(),
        session_id: message.header.session_id.clone(),
        msg_id: i64::from(message.header.msg_id),
        next_nonce: rotation.clone(),
        login_status: alerts.login_status.clone(),
    };
    let recorded = state
        .store
        .record_windows_message(
            &device.device_id,
            &step,
            &report,
            MAX_COMMANDS_PER_MESSAGE,
            |queued| {
                render_command(&queued.request_type, &queued.payload, &queued.id)
                    .map(|c| SyncCommand::from(&c))
                    .map_err(|e| e.to_string())
            },
            now,
        )
        .await;
    let recorded = match recorded {
        Ok(r) => r,
        Err(CoreError::Invalid(reason)) => return refuse(StatusCode::BAD_REQUEST, &reason),
        Err(CoreError::Conflict(reason)) => return refuse(StatusCode::CONFLICT, &reason),
        Err(e) => {
            tracing::error!(error = %e, device = %device.device_id, "Windows management: storage failed");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
    };
    if recorded.unenrolled {
        tracing::info!(device = %device.device_id, "Windows laptop unenrolled by its user");
    }
    let (header_code, chal) = match rotation {
        Some(r) => (code::AUTHENTICATION_ACCEPTED, Some(Chal::md5(r.next))),
        None => (code::OK, None),
    };
    let answer = message.answer(
        &url(&state, MANAGEMENT_PATH),
        header_code,
        chal,
        recorded.commands,
    );
    syncml_response(StatusCode::OK, &answer)
}
