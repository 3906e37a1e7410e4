//! The directory sync: start a run from LDAP, read its report, and (without
//! LDAP) import the local directory from a UCS@school CSV file.

use super::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use flotte_core::audit::AuditEntry;
use flotte_core::directory::SyncPolicy;
use flotte_directory::csv::{CsvOptions, parse_ucsschool_csv};
use flotte_storage::{DirectoryRun, RunKind, RunStatus, Store, SyncInput, SyncRequest};
use serde::{Deserialize, Serialize};

/// The safety limits from the settings.
pub fn sync_policy(settings: &flotte_config::Settings) -> SyncPolicy {
    SyncPolicy {
        max_missing_share: settings.directory.max_missing_share,
        allow_emptied_schools: settings.directory.allow_emptied_schools.clone(),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct SyncQuery {
    /// Read the whole directory instead of the changes since the last run.
    #[serde(default)]
    full: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Started {
    /// The run; its report is at `/api/v1/directory/runs/{id}`.
    id: String,
    /// `queued` at first.
    #[schema(value_type = String)]
    status: RunStatus,
}

/// Start a sync from LDAP (technicians only). The worker runs it; nothing is
/// applied when the read fails or looks unsafe, and the report says why.
#[utoipa::path(post, path = "/api/v1/directory/sync", params(SyncQuery),
    responses((status = 202, body = Started), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn start_sync(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<SyncQuery>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    caller.require_technician()?;
    if !state.settings.ldap.is_configured() {
        return Err(ApiError::Conflict(
            "no LDAP directory is configured; import a CSV with POST /api/v1/directory/import"
                .into(),
        ));
    }
    let kind = if q.full {
        RunKind::Full
    } else {
        RunKind::Incremental
    };
    let id = uuid::Uuid::new_v4().to_string();
    let run = state
        .store
        .queue_directory_run(
            &id,
            kind,
            "api",
            &caller.audit("directory.sync.start"),
            state.clock.now(),
        )
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("directory run {id} exists already")))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Started {
            id: run.id,
            status: run.status,
        }),
    ))
}

/// A run and its report (added, changed, departed, errors, duration, …).
#[utoipa::path(get, path = "/api/v1/directory/runs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DirectoryRun>, ApiError> {
    caller.require_technician()?;
    Ok(Json(state.store.find_directory_run(&id).await?))
}

/// The newest run and its report.
#[utoipa::path(get, path = "/api/v1/directory/runs/latest",
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody)))]
pub(crate) async fn latest_run(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<DirectoryRun>, ApiError> {
    caller.require_technician()?;
    Ok(Json(state.store.latest_directory_run().await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ImportQuery {
    /// The role of every row when the file has no `Benutzertyp` column:
    /// `student`, `teacher`, `staff`, `teacher_and_staff`.
    role: Option<String>,
}

/// Replace the local directory with a UCS@school import CSV (technicians
/// only, and only without LDAP). The file is the whole directory: people
/// missing from it are marked departed, under the same safety rules as an
/// LDAP sync. Answers 201 with the applied run, or 422 with the run when
/// a safety rule refused the file (nothing changed).
#[utoipa::path(post, path = "/api/v1/directory/import", params(ImportQuery),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, body = serde_json::Value), (status = 422, body = serde_json::Value),
              (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<DirectoryRun>), ApiError> {
    caller.require_technician()?;
    if state.settings.ldap.is_configured() {
        return Err(ApiError::Conflict(
            "the directory comes from LDAP; a CSV import is only for running without it".into(),
        ));
    }
    let run = import_csv(
        &state.store,
        &body,
        q.role,
        &sync_policy(&state.settings),
        "api",
        &caller.audit("directory.import"),
        state.clock.as_ref(),
    )
    .await?;
    let status = match run.status {
        RunStatus::Applied => StatusCode::CREATED,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok((status, Json(run)))
}

/// Read a UCS@school CSV and sync it like a full directory read: the same
/// planner, the same safety rules, one transaction. A file that cannot be
/// read at all is refused (400) before a run is recorded.
pub async fn import_csv(
    store: &Store,
    bytes: &[u8],
    default_role: Option<String>,
    policy: &SyncPolicy,
    trigger: &str,
    actor: &AuditEntry,
    clock: &dyn flotte_core::Clock,
) -> Result<DirectoryRun, ApiError> {
    let started = std::time::Instant::now();
    let school_names = store
        .list_schools(&flotte_core::auth::SchoolScope::All)
        .await?
        .into_iter()
        .map(|s| (s.code.to_lowercase(), s.name))
        .collect();
    let snapshot = parse_ucsschool_csv(
        bytes,
        &CsvOptions {
            default_role,
            school_names,
        },
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let run = store
        .start_directory_run(RunKind::Import, trigger, &actor.actor, clock.now())
        .await?;
    store
        .audit(
            &AuditEntry {
                target: format!("directory_run:{}", run.id),
                details: serde_json::json!({ "rows": snapshot.people.len() + snapshot.held_back.len() }),
                ..actor.clone()
            },
            clock.now(),
        )
        .await?;
    Ok(store
        .sync_directory(
            SyncRequest {
                run_id: run.id,
                input: SyncInput::Snapshot(snapshot),
                policy: policy.clone(),
                method: "csv".to_owned(),
                started,
            },
            clock,
        )
        .await?)
}
