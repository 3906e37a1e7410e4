//! Loans of devices to pupils: lend (one device, or a cart to a class), return, and the
//! lists schools work from. The rules are `flotte_core::loans`, applied by storage
//! inside the loan's transaction; these handlers translate JSON and settings.

use super::Caller;
use super::devices::axum_extra_json::ApiJson;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use flotte_config::{ReturnAction, Settings};
use flotte_core::device::Platform;
use flotte_core::loans::{Condition, LoanPolicy};
use flotte_storage::{
    LoanFilter, LoanRecord, LoanState, LoanStatus, NewCommand, NewLoan, ReturnLoan,
};
use serde::{Deserialize, Serialize};

/// The loan rules the settings choose.
pub(crate) fn policy(settings: &Settings) -> LoanPolicy {
    LoanPolicy {
        accessories: settings.loans.accessories.clone(),
        max_loan_days: settings.loans.max_loan_days,
    }
}

/// What returning a device of `platform` does once confirmed.
pub(crate) fn return_action(settings: &Settings, platform: Platform) -> ReturnAction {
    match platform {
        Platform::Apple => settings.loans.return_action_apple,
        Platform::Windows => settings.loans.return_action_windows,
    }
}

/// The erase command for a device of `platform`.
pub(crate) fn erase_command(platform: Platform) -> Result<NewCommand, ApiError> {
    let request_type = match platform {
        Platform::Apple => "EraseDevice",
        Platform::Windows => "Windows:Wipe",
    };
    super::commands::prepare(platform, request_type, serde_json::Value::Null)
}

/// The erase to queue with a return: only when the settings name an action for the
/// platform, and only when the caller confirmed it. Without a confirmation either way,
/// the return is refused, so that a wipe is never forgotten nor done by accident.
pub(crate) fn erase_for_return(
    settings: &Settings,
    platform: Platform,
    confirm_erase: Option<bool>,
) -> Result<Option<NewCommand>, ApiError> {
    match (return_action(settings, platform), confirm_erase) {
        (ReturnAction::None, _) | (ReturnAction::Erase, Some(false)) => Ok(None),
        (ReturnAction::Erase, Some(true)) => erase_command(platform).map(Some),
        (ReturnAction::Erase, None) => Err(ApiError::BadRequest(format!(
            "returning a {platform} device erases it (loans.return_action_{platform} = erase): \
             send confirm_erase: true to erase it, or false to take it back without erasing"
        ))),
    }
}

impl From<flotte_core::loans::LoanError> for ApiError {
    fn from(e: flotte_core::loans::LoanError) -> Self {
        ApiError::from(flotte_core::CoreError::from(e))
    }
}

fn coalesce(state: &AppState) -> i64 {
    i64::try_from(state.settings.apns.coalesce_secs).unwrap_or(30)
}

/// Where a loan stands.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StatusView {
    Open,
    Overdue,
    Returned,
}

/// The lent device.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LoanDeviceView {
    id: String,
    platform: Platform,
    asset_tag: Option<String>,
    serial_number: Option<String>,
    model: Option<String>,
}

/// The borrower: only what the contract needs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LoanPersonView {
    id: String,
    username: String,
    given_name: String,
    family_name: String,
    /// `active`, `disabled` or `departed`.
    state: String,
}

/// The lending school.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LoanSchoolView {
    id: String,
    code: String,
    name: String,
}

/// A loan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LoanView {
    id: String,
    status: StatusView,
    device: LoanDeviceView,
    person: LoanPersonView,
    school: LoanSchoolView,
    /// The pupil's class when the device was lent.
    class_name: Option<String>,
    /// Who handed the device out (user name).
    lent_by: String,
    lent_at: DateTime<Utc>,
    /// The last day of the loan; overdue from the next day on.
    due_date: Option<NaiveDate>,
    accessories: Vec<String>,
    condition_out: Option<Condition>,
    returned_at: Option<DateTime<Utc>>,
    /// Who took the device back (user name).
    returned_to: Option<String>,
    condition_in: Option<Condition>,
    accessories_returned: Option<Vec<String>>,
    damage: Option<String>,
    notes: Option<String>,
    /// `departed`, `disabled` or `left_school`: the borrower is gone and the school has to act.
    alert: Option<String>,
    alert_at: Option<DateTime<Utc>>,
    /// When the school was told the loan is overdue.
    overdue_notified_at: Option<DateTime<Utc>>,
    /// When the device's personal configuration (its name) was queued.
    personalised_at: Option<DateTime<Utc>>,
    /// The erase command the return queued.
    erase_command_id: Option<String>,
}

impl From<LoanRecord> for LoanView {
    fn from(r: LoanRecord) -> Self {
        LoanView {
            id: r.id,
            status: match r.status {
                LoanStatus::Open => StatusView::Open,
                LoanStatus::Overdue => StatusView::Overdue,
                LoanStatus::Returned => StatusView::Returned,
            },
            device: LoanDeviceView {
                id: r.device.id,
                platform: r.device.platform,
                asset_tag: r.device.asset_tag,
                serial_number: r.device.serial_number,
                model: r.device.model.or(r.device.model_name),
            },
            person: LoanPersonView {
                id: r.person.id,
                username: r.person.username,
                given_name: r.person.given_name,
                family_name: r.person.family_name,
                state: r.person.state,
            },
            school: LoanSchoolView {
                id: r.school.id,
                code: r.school.code,
                name: r.school.name,
            },
            class_name: r.class_name,
            lent_by: r.lent_by,
            lent_at: r.lent_at,
            due_date: r.due_date,
            accessories: r.accessories,
            condition_out: r.condition_out,
            returned_at: r.returned_at,
            returned_to: r.returned_to,
            condition_in: r.condition_in,
            accessories_returned: r.accessories_in,
            damage: r.damage,
            notes: r.notes,
            alert: r.alert,
            alert_at: r.alert_at,
            overdue_notified_at: r.overdue_notified_at,
            personalised_at: r.personalised_at,
            erase_command_id: r.erase_command_id,
        }
    }
}

/// A device to lend to a pupil of its school.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LendBody {
    /// Device id, serial number, UDID or asset tag.
    device: String,
    /// The pupil: person id or user name.
    person: String,
    /// The last day of the loan (today or later).
    due_date: NaiveDate,
    /// Accessories handed out, from the configured list (`loans.accessories`).
    #[serde(default)]
    accessories: Vec<String>,
    /// The device's condition at hand-out.
    condition: Option<Condition>,
    notes: Option<String>,
}

/// Lend a device to a pupil. The device is assigned to the pupil and the worker queues
/// the pupil's device name (and personal profiles). 409 when the device is already lent
/// (naming the open loan) or the pupil is disabled or gone; 400 when the pupil is not a
/// pupil of the device's school or the due date is in the past; 404 for a device or
/// pupil outside the caller's schools.
#[utoipa::path(post, path = "/api/v1/loans", request_body = LendBody,
    responses((status = 201, body = LoanView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn lend(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<LendBody>,
) -> Result<(StatusCode, Json<LoanView>), ApiError> {
    let loan = state
        .store
        .lend(
            &NewLoan {
                device: body.device,
                person: body.person,
                due: body.due_date,
                accessories: body.accessories,
                condition_out: body.condition,
                notes: body.notes,
            },
            &policy(&state.settings),
            &caller.principal.scope(),
            &caller.audit("loan.lend"),
            state.clock.now(),
            coalesce(&state),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(loan.into())))
}

/// One device for one pupil of a bulk lending.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PairBody {
    /// Device id, serial number, UDID or asset tag.
    device: String,
    /// Person id or user name.
    person: String,
}

/// A cart of devices for a class: every pair with the same terms.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkLendBody {
    pairs: Vec<PairBody>,
    due_date: NaiveDate,
    #[serde(default)]
    accessories: Vec<String>,
    condition: Option<Condition>,
    notes: Option<String>,
}

/// Lend several devices at once (a cart to a class): all or nothing. An error names the
/// pair that failed; then no loan was made.
#[utoipa::path(post, path = "/api/v1/loans/bulk", request_body = BulkLendBody,
    responses((status = 201, body = Vec<LoanView>), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn lend_bulk(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BulkLendBody>,
) -> Result<(StatusCode, Json<Vec<LoanView>>), ApiError> {
    let pairs: Vec<NewLoan> = body
        .pairs
        .into_iter()
        .map(|p| NewLoan {
            device: p.device,
            person: p.person,
            due: body.due_date,
            accessories: body.accessories.clone(),
            condition_out: body.condition,
            notes: body.notes.clone(),
        })
        .collect();
    let loans = state
        .store
        .lend_many(
            &pairs,
            &policy(&state.settings),
            &caller.principal.scope(),
            &caller.audit("loan.lend"),
            state.clock.now(),
            coalesce(&state),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(loans.into_iter().map(Into::into).collect()),
    ))
}

/// Which loans to list.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StatusFilter {
    /// Not returned yet (the default).
    #[default]
    Open,
    /// Not returned and past the due date.
    Overdue,
    /// Not returned, and the borrower left the school or was disabled.
    Flagged,
    Returned,
    All,
}

impl From<StatusFilter> for LoanState {
    fn from(s: StatusFilter) -> Self {
        match s {
            StatusFilter::Open => LoanState::Open,
            StatusFilter::Overdue => LoanState::Overdue,
            StatusFilter::Flagged => LoanState::Flagged,
            StatusFilter::Returned => LoanState::Returned,
            StatusFilter::All => LoanState::All,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct LoanQuery {
    /// `open` (default), `overdue`, `flagged`, `returned` or `all`.
    status: Option<StatusFilter>,
    /// School id or code.
    school: Option<String>,
    /// The pupil's class when the device was lent.
    class: Option<String>,
    /// Person id or user name: the pupil's history with `status=all`.
    person: Option<String>,
    /// Device id, serial number or asset tag: the device's history with `status=all`.
    device: Option<String>,
    /// At most 5000; default 500.
    limit: Option<u64>,
    offset: Option<u64>,
}

/// Loans within the caller's schools, filtered. Open, overdue and flagged lists come by
/// school, class and name; returned ones and `all` newest first.
#[utoipa::path(get, path = "/api/v1/loans", params(LoanQuery),
    responses((status = 200, body = Vec<LoanView>), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub(crate) async fn list_loans(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<LoanQuery>,
) -> Result<Json<Vec<LoanView>>, ApiError> {
    let filter = LoanFilter {
        state: q.status.unwrap_or_default().into(),
        school: q.school,
        class: q.class,
        person: q.person,
        device: q.device,
        limit: q.limit,
        offset: q.offset,
    };
    let loans = state
        .store
        .list_loans(&filter, &caller.principal.scope(), state.clock.now())
        .await?;
    Ok(Json(loans.into_iter().map(Into::into).collect()))
}

/// One loan (404 outside the caller's schools).
#[utoipa::path(get, path = "/api/v1/loans/{id}", params(("id" = String, Path)),
    responses((status = 200, body = LoanView), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_loan(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<LoanView>, ApiError> {
    Ok(Json(
        state
            .store
            .find_loan(&id, &caller.principal.scope(), state.clock.now())
            .await?
            .into(),
    ))
}

/// What comes back with a device.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReturnBody {
    /// The device's condition at return.
    condition: Condition,
    /// The accessories that came back.
    #[serde(default)]
    accessories_returned: Vec<String>,
    /// What is damaged or missing, for the damage claim.
    damage: Option<String>,
    notes: Option<String>,
    /// Required when the settings erase returned devices of this platform
    /// (`loans.return_action_apple` / `_windows`): `true` erases it, `false` does not.
    confirm_erase: Option<bool>,
}

/// Take a device back. The pupil's certificates for it are revoked, its personal profiles
/// removed and, when confirmed, the configured return action (erase) queued. 409 for a
/// loan returned already.
#[utoipa::path(post, path = "/api/v1/loans/{id}/return", params(("id" = String, Path)),
    request_body = ReturnBody,
    responses((status = 200, body = LoanView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn return_loan(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReturnBody>,
) -> Result<Json<LoanView>, ApiError> {
    let scope = caller.principal.scope();
    let now = state.clock.now();
    let current = state.store.find_loan(&id, &scope, now).await?;
    let erase = if current.returned_at.is_some() {
        // Storage names the earlier return; no erase is asked for twice.
        None
    } else {
        erase_for_return(&state.settings, current.device.platform, body.confirm_erase)?
    };
    let loan = state
        .store
        .return_loan(
            &current.id,
            &ReturnLoan {
                condition_in: body.condition,
                accessories_in: body.accessories_returned,
                damage: body.damage,
                notes: body.notes,
                erase,
            },
            &state.settings.loans.accessories,
            &scope,
            &caller.audit("loan.return"),
            now,
            coalesce(&state),
        )
        .await?;
    Ok(Json(loan.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erase_needs_a_configured_action_and_a_confirmation() {
        let mut settings = Settings::default();
        settings.loans.return_action_apple = ReturnAction::Erase;
        settings.loans.return_action_windows = ReturnAction::None;
        let erase = erase_for_return(&settings, Platform::Apple, Some(true))
            .unwrap()
            .unwrap();
        assert_eq!(erase.request_type, "EraseDevice");
        assert!(
            erase_for_return(&settings, Platform::Apple, Some(false))
                .unwrap()
                .is_none()
        );
        let refused = erase_for_return(&settings, Platform::Apple, None).unwrap_err();
        assert!(refused.to_string().contains("confirm_erase"), "{refused}");
        assert!(
            erase_for_return(&settings, Platform::Windows, Some(true))
                .unwrap()
                .is_none(),
            "no action configured: nothing to erase"
        );
        settings.loans.return_action_windows = ReturnAction::Erase;
        let wipe = erase_for_return(&settings, Platform::Windows, Some(true))
            .unwrap()
            .unwrap();
        assert_eq!(wipe.request_type, "Windows:Wipe");
    }
}
