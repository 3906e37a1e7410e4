//! The device register: the supplier's delivery list in, with a dry run.

use super::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotte_core::loans::{ImportChange, RowError, parse_delivery_list};
use flotte_storage::ImportOutcome;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ImportQuery {
    /// Only say what the list would change; change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// What a delivery list changed (or, in a dry run, would change).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ImportReport {
    dry_run: bool,
    created: usize,
    updated: usize,
    unchanged: usize,
    /// One entry per device of the list, with the fields an update changes.
    changes: Vec<ImportChange>,
}

impl From<ImportOutcome> for ImportReport {
    fn from(o: ImportOutcome) -> Self {
        ImportReport {
            dry_run: o.dry_run,
            created: o.created,
            updated: o.updated,
            unchanged: o.unchanged,
            changes: o.changes,
        }
    }
}

/// A refused list: every bad row.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ImportRefused {
    message: String,
    /// Line 1 is the header; line 0 the file as a whole.
    errors: Vec<RowError>,
}

/// Why a delivery list was refused.
pub(crate) enum ImportError {
    Rows(Vec<RowError>),
    Api(ApiError),
}

impl From<ApiError> for ImportError {
    fn from(e: ApiError) -> Self {
        ImportError::Api(e)
    }
}

impl IntoResponse for ImportError {
    fn into_response(self) -> Response {
        match self {
            ImportError::Api(e) => e.into_response(),
            ImportError::Rows(errors) => {
                let message = format!(
                    "the delivery list was not imported ({} bad row{}); nothing was changed",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                );
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(ImportRefused { message, errors }),
                )
                    .into_response()
            }
        }
    }
}

/// Read and import (or check) a delivery list, for the API and the web form.
pub(crate) async fn import_list(
    state: &AppState,
    bytes: &[u8],
    dry_run: bool,
    actor: &flotte_core::audit::AuditEntry,
) -> Result<ImportOutcome, ImportError> {
    let rows = parse_delivery_list(bytes).map_err(ImportError::Rows)?;
    state
        .store
        .import_delivery_list(&rows, dry_run, actor, state.clock.now())
        .await
        .map_err(ApiError::from)?
        .map_err(ImportError::Rows)
}

/// Import the supplier's delivery list into the register (technicians only): CSV with
/// the columns serial_number, model, platform (apple, windows), asset_tag, school (code),
/// funding_programme, purchase_date and warranty_end (2026-08-31 or 31.08.2026); German
/// headers (Seriennummer, Modell, Plattform, Inventarnummer, Schule, Förderprogramm,
/// Kaufdatum, Garantie bis) work too. Known serial numbers are updated, new ones
/// created; empty cells change nothing. The list is refused as a whole (422, every bad
/// row named) for duplicate serial numbers or asset tags, an asset tag of another
/// device, unknown schools or bad dates. `dry_run=true` shows what would change.
#[utoipa::path(post, path = "/api/v1/devices/import", params(ImportQuery),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport, description = "dry run"),
              (status = 201, body = ImportReport, description = "imported"),
              (status = 422, body = ImportRefused), (status = 403, body = ErrorBody)))]
pub(crate) async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<ImportReport>), ImportError> {
    caller.require_technician()?;
    let outcome = import_list(&state, &body, q.dry_run, &caller.audit("device.import")).await?;
    let status = if q.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome.into())))
}
