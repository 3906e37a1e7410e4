//! Devices: the scan field (asset tag, serial number or a label's QR code), a device's
//! page with its loans, the register list, printable asset labels, and the supplier's
//! delivery list (technicians).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use flotte_core::device::EnrollmentState;
use flotte_core::loans::ImportAction;
use flotte_storage::{LoanFilter, LoanState, RegisterEntry, RegisterFilter};
use maud::{Markup, html};

use super::i18n::{Lang, Msg};
use super::layout::{self, Nav, Shell};
use super::session::{CsrfForm, StaffSession};
use super::{Fields, core_failure, is_technician, scope};
use crate::api::register::{ImportError, import_list};
use crate::state::AppState;

pub(super) fn routes() -> axum::Router<AppState> {
    Router::new()
        .route("/scan", get(scan))
        .route("/d/{key}", get(label_link))
        .route("/devices", get(register))
        .route("/devices/{id}", get(device_page))
        .route("/labels", get(labels))
        .route("/register/import", get(import_form).post(import))
}

/// What a scanner typed: a label's URL (`…/d/<tag>`) or the tag or serial itself.
pub(super) fn scan_key(text: &str) -> String {
    let text = text.trim();
    match text.rsplit_once("/d/") {
        Some((_, tag)) => tag.trim_end_matches('/').to_owned(),
        None => text.to_owned(),
    }
}

/// The scan field: a USB or camera scanner types into it and presses Enter.
pub(super) fn scan_form(lang: Lang, for_person: Option<&str>, autofocus: bool) -> Markup {
    let t = |m| lang.t(m);
    html! {
        form.scan method="get" action="/scan" role="search" {
            @if let Some(person) = for_person {
                input type="hidden" name="for" value=(person);
            }
            div.field {
                label for="scan" { (t(Msg::ScanLabel)) }
                input #scan type="search" name="q" autocomplete="off" autocapitalize="characters"
                    spellcheck="false" enterkeyhint="search" autofocus[autofocus];
                p.hint { (t(Msg::ScanHint)) }
            }
            button type="submit" { (t(Msg::Search)) }
        }
    }
}

fn device_target(id: &str, for_person: Option<&str>) -> String {
    match for_person {
        Some(person) => format!("/devices/{id}/lend?person={}", urlencode(person)),
        None => format!("/devices/{id}"),
    }
}

pub(super) fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Find a device by what was typed or scanned: one match opens it, several are listed.
async fn scan(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Query(q): Query<Fields>,
) -> Response {
    let key = scan_key(q.one("q").unwrap_or_default());
    let for_person = q.one("for");
    if key.is_empty() {
        return Redirect::to("/devices").into_response();
    }
    let now = state.clock.now();
    if let Ok(entry) = state
        .store
        .find_register_entry(&key, &scope(&session), now)
        .await
    {
        return Redirect::to(&device_target(&entry.id, for_person)).into_response();
    }
    let found = match state
        .store
        .list_register(
            &RegisterFilter {
                search: Some(key.clone()),
                limit: Some(100),
                ..RegisterFilter::default()
            },
            &scope(&session),
            now,
        )
        .await
    {
        Ok(found) => found,
        Err(e) => return core_failure(lang, &session, e, Some("/")),
    };
    if let [only] = found.as_slice() {
        return Redirect::to(&device_target(&only.id, for_person)).into_response();
    }
    let t = |m| lang.t(m);
    let status = if found.is_empty() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    layout::page(
        status,
        &Shell::new(lang, &session, t(Msg::Devices), Nav::Devices),
        html! {
            (scan_form(lang, for_person, true))
            @if found.is_empty() {
                p.notice.warn role="alert" { (t(Msg::NoDevices)) " (" (key) ")" }
            } @else {
                (register_table(lang, &found, false))
            }
        },
    )
}

/// A label's QR code opens the device (after sign-in).
async fn label_link(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Path(key): Path<String>,
) -> Response {
    match state
        .store
        .find_register_entry(&key, &scope(&session), state.clock.now())
        .await
    {
        Ok(entry) => Redirect::to(&format!("/devices/{}", entry.id)).into_response(),
        Err(e) => core_failure(lang, &session, e, Some("/")),
    }
}

fn enrolment(lang: Lang, state: EnrollmentState) -> &'static str {
    lang.t(match state {
        EnrollmentState::Registered => Msg::EnrolRegistered,
        EnrollmentState::Enrolled => Msg::EnrolEnrolled,
        EnrollmentState::Unenrolled => Msg::EnrolUnenrolled,
    })
}

pub(super) fn availability(lang: Lang, entry: &RegisterEntry) -> Markup {
    let t = |m| lang.t(m);
    html! {
        @match &entry.open_loan {
            Some(open) => {
                span.badge.(if open.overdue { "overdue" } else { "open" }) {
                    (t(if open.overdue { Msg::StatusOverdue } else { Msg::StatusLent }))
                }
                " "
                a href={ "/loans/" (open.loan_id) } { (open.person_name) }
                @if let Some(class) = &open.class_name { " (" (class) ")" }
            }
            None => span.badge.available { (t(Msg::StatusAvailable)) },
        }
    }
}

/// The register as a table; with `select`, checkboxes for label printing.
fn register_table(lang: Lang, entries: &[RegisterEntry], select: bool) -> Markup {
    let t = |m| lang.t(m);
    html! {
        div.table-wrap {
            table {
                thead { tr {
                    @if select { th { span.muted { (t(Msg::Labels)) } } }
                    th { (t(Msg::AssetTag)) }
                    th { (t(Msg::Serial)) }
                    th { (t(Msg::Model)) }
                    th { (t(Msg::School)) }
                    th { (t(Msg::Status)) }
                    th { (t(Msg::WarrantyEnd)) }
                } }
                tbody {
                    @for e in entries {
                        tr {
                            @if select {
                                td { input type="checkbox" name="ids" value=(e.id)
                                    aria-label={ (t(Msg::Labels)) " " (e.label()) }; }
                            }
                            td { a href={ "/devices/" (e.id) } { (e.asset_tag.as_deref().unwrap_or("–")) } }
                            td { (e.serial_number.as_deref().unwrap_or("–")) }
                            td { (e.model.as_deref().or(e.model_name.as_deref()).unwrap_or("–")) }
                            td { (e.school_code.as_deref().unwrap_or("–")) }
                            td { (availability(lang, e)) }
                            td { @if let Some(w) = e.warranty_end { (lang.date(w)) } @else { "–" } }
                        }
                    }
                }
            }
        }
    }
}

/// The register of the caller's schools, with search and label printing.
async fn register(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Query(q): Query<Fields>,
) -> Response {
    let t = |m| lang.t(m);
    let filter = RegisterFilter {
        school: q.one("school").map(str::to_owned),
        search: q.one("q").map(str::to_owned),
        available_only: q.one("available").is_some(),
        limit: Some(1000),
        ..RegisterFilter::default()
    };
    let entries = match state
        .store
        .list_register(&filter, &scope(&session), state.clock.now())
        .await
    {
        Ok(entries) => entries,
        Err(e) => return core_failure(lang, &session, e, Some("/")),
    };
    let schools = state
        .store
        .list_schools(&scope(&session))
        .await
        .unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/devices" role="search" {
            div.field {
                label for="q" { (t(Msg::Search)) }
                input #q type="search" name="q" value=(filter.search.as_deref().unwrap_or(""));
            }
            @if schools.len() > 1 {
                div.field {
                    label for="school" { (t(Msg::School)) }
                    select #school name="school" {
                        option value="" { (t(Msg::AllSchools)) }
                        @for s in &schools {
                            option value=(s.code) selected[filter.school.as_deref() == Some(s.code.as_str())] {
                                (s.code) " – " (s.name)
                            }
                        }
                    }
                }
            }
            div.choice { label { input type="checkbox" name="available" value="1" checked[filter.available_only]; (t(Msg::OnlyAvailable)) } }
            button type="submit" { (t(Msg::Search)) }
        }
        @if entries.is_empty() {
            p { (t(Msg::NoDevices)) }
        } @else {
            form method="get" action="/labels" {
                div.choice { label hidden { input type="checkbox" data-select-all="ids"; (t(Msg::SelectAll)) } }
                (register_table(lang, &entries, true))
                div.actions { button type="submit" { (t(Msg::PrintLabels)) } }
            }
        }
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(lang, &session, t(Msg::Register), Nav::Devices),
        body,
    )
}

/// A device: what the register knows, its current loan, its loan history.
async fn device_page(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Path(id): Path<String>,
) -> Response {
    let t = |m| lang.t(m);
    let now = state.clock.now();
    let entry = match state
        .store
        .find_register_entry(&id, &scope(&session), now)
        .await
    {
        Ok(entry) => entry,
        Err(e) => return core_failure(lang, &session, e, Some("/devices")),
    };
    let history = state
        .store
        .list_loans(
            &LoanFilter {
                state: LoanState::All,
                device: Some(entry.id.clone()),
                ..LoanFilter::default()
            },
            &scope(&session),
            now,
        )
        .await
        .unwrap_or_default();
    let anonymous = state
        .store
        .device_loan_history(&entry.id)
        .await
        .unwrap_or_default();
    let body = html! {
        dl.facts {
            dt { (t(Msg::AssetTag)) } dd { (entry.asset_tag.as_deref().unwrap_or("–")) }
            dt { (t(Msg::Serial)) } dd { (entry.serial_number.as_deref().unwrap_or("–")) }
            dt { (t(Msg::Model)) } dd { (entry.model.as_deref().or(entry.model_name.as_deref()).unwrap_or("–")) }
            dt { (t(Msg::Platform)) } dd { (entry.platform.as_str()) }
            dt { (t(Msg::School)) } dd { (entry.school_code.as_deref().unwrap_or("–")) }
            dt { (t(Msg::Enrolment)) } dd { (enrolment(lang, entry.enrollment_state)) }
            dt { (t(Msg::FundingProgramme)) } dd { (entry.funding_programme.as_deref().unwrap_or("–")) }
            dt { (t(Msg::PurchaseDate)) } dd { @if let Some(d) = entry.purchase_date { (lang.date(d)) } @else { "–" } }
            dt { (t(Msg::WarrantyEnd)) } dd { @if let Some(d) = entry.warranty_end { (lang.date(d)) } @else { "–" } }
            dt { (t(Msg::Status)) } dd { (availability(lang, &entry)) }
        }
        div.actions {
            @match &entry.open_loan {
                Some(open) => {
                    a.button href={ "/loans/" (open.loan_id) "#return" } { (t(Msg::TakeBack)) }
                    a.button.secondary href={ "/loans/" (open.loan_id) "/agreement" } { (t(Msg::PrintAgreement)) }
                }
                None => a.button href={ "/devices/" (entry.id) "/lend" } { (t(Msg::LendDevice)) },
            }
            a.button.secondary href={ "/labels?ids=" (entry.id) } { (t(Msg::PrintLabels)) }
        }
        h2 { (t(Msg::LoanHistory)) }
        @if history.is_empty() {
            p { (t(Msg::NoLoans)) }
        } @else {
            (super::loans::loan_table(lang, &history, false))
        }
        @if !anonymous.is_empty() {
            h2 { (t(Msg::AnonymousHistory)) }
            div.table-wrap { table {
                thead { tr { th { (t(Msg::LentAt)) } th { (t(Msg::ReturnedAt)) } th { (t(Msg::ConditionIn)) } } }
                tbody { @for h in &anonymous { tr {
                    td { (lang.date(h.lent_at.date_naive())) }
                    td { (lang.date(h.returned_at.date_naive())) }
                    td {
                        @if let Some(c) = h.condition_in.as_deref().and_then(|c| c.parse().ok()) { (lang.condition(c)) }
                        @if h.damaged { " " span.badge.alert { (t(Msg::CondDamaged)) } }
                    }
                } } }
            } }
        }
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(
            lang,
            &session,
            format!("{} {}", t(Msg::Device), entry.label()),
            Nav::Devices,
        ),
        body,
    )
}

/// Asset labels (70 × 37 mm, three across on A4) with a QR code that opens the device.
async fn labels(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Query(q): Query<Fields>,
) -> Response {
    let t = |m| lang.t(m);
    let ids = q.all("ids");
    let filter = RegisterFilter {
        school: q.one("school").map(str::to_owned),
        ids: (!ids.is_empty()).then_some(ids),
        limit: Some(5000),
        ..RegisterFilter::default()
    };
    let entries = match state
        .store
        .list_register(&filter, &scope(&session), state.clock.now())
        .await
    {
        Ok(entries) => entries,
        Err(e) => return core_failure(lang, &session, e, Some("/devices")),
    };
    let base = state.settings.public_url();
    let owner = state
        .settings
        .loans
        .lender
        .clone()
        .unwrap_or_else(|| state.settings.organisation.clone());
    let body = html! {
        h1.no-print { (t(Msg::Labels)) }
        div.actions.no-print {
            button type="button" data-print hidden { (t(Msg::Print)) }
            a.button.secondary href="/devices" { (t(Msg::Back)) }
        }
        @if entries.is_empty() { p { (t(Msg::NoDevices)) } }
        div.labels {
            @for e in &entries {
                div.label {
                    (super::qr::svg(&format!("{base}/d/{}", urlencode(&e.label()))))
                    div.text {
                        div.tag { (e.label()) }
                        @if let Some(model) = e.model.as_deref().or(e.model_name.as_deref()) { div { (model) } }
                        @if let Some(serial) = &e.serial_number { div { "SN " (serial) } }
                        div { (e.school_code.as_deref().unwrap_or("")) " · " (owner) }
                    }
                }
            }
        }
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(lang, &session, t(Msg::Labels), Nav::Devices).printed(),
        body,
    )
}

fn import_page(
    status: StatusCode,
    lang: Lang,
    session: &StaffSession,
    csv: &str,
    result: Markup,
) -> Response {
    let t = |m| lang.t(m);
    let body = html! {
        (result)
        form method="post" action="/register/import" {
            input type="hidden" name="csrf_token" value=(session.csrf_token);
            p.hint { (t(Msg::ImportHelp)) }
            div.field hidden {
                label for="file" { (t(Msg::ImportFile)) }
                input #file type="file" accept=".csv,text/csv,text/plain" data-into="csv";
            }
            div.field {
                label for="csv" { (t(Msg::ImportContent)) }
                textarea #csv name="csv" rows="10" required spellcheck="false" { (csv) }
            }
            div.actions {
                button type="submit" name="mode" value="check" { (t(Msg::ImportCheck)) }
                button.secondary type="submit" name="mode" value="apply" { (t(Msg::ImportApply)) }
            }
        }
    };
    layout::page(
        status,
        &Shell::new(lang, session, t(Msg::ImportTitle), Nav::Import),
        body,
    )
}

/// The delivery-list form (technicians: a list names many schools).
async fn import_form(lang: Lang, session: StaffSession) -> Response {
    if !is_technician(&session) {
        return layout::refusal(
            StatusCode::FORBIDDEN,
            lang,
            &session,
            lang.t(Msg::TechniciansOnly),
            Some("/"),
        );
    }
    import_page(StatusCode::OK, lang, &session, "", html! {})
}

/// Check or import a delivery list; a refused list names every bad line.
async fn import(State(state): State<AppState>, lang: Lang, form: CsrfForm<Fields>) -> Response {
    let session = form.session;
    if !is_technician(&session) {
        return layout::refusal(
            StatusCode::FORBIDDEN,
            lang,
            &session,
            lang.t(Msg::TechniciansOnly),
            Some("/"),
        );
    }
    let t = |m| lang.t(m);
    let csv = form.form.one("csv").unwrap_or_default().to_owned();
    let dry_run = form.form.one("mode") != Some("apply");
    match import_list(
        &state,
        csv.as_bytes(),
        dry_run,
        &session.audit("device.import"),
    )
    .await
    {
        Ok(outcome) => {
            let result = html! {
                p.notice.(if dry_run { "warn" } else { "ok" }) role="status" {
                    (t(if dry_run { Msg::ImportChecked } else { Msg::ImportDone }))
                    " " (outcome.created) " " (t(Msg::Created)) ", "
                    (outcome.updated) " " (t(Msg::Updated)) ", "
                    (outcome.unchanged) " " (t(Msg::Unchanged)) "."
                }
                div.table-wrap { table {
                    thead { tr {
                        th { (t(Msg::Line)) } th { (t(Msg::Action)) } th { (t(Msg::Serial)) }
                        th { (t(Msg::AssetTag)) } th { (t(Msg::Model)) } th { (t(Msg::Details)) }
                    } }
                    tbody { @for c in &outcome.changes { tr {
                        td { (c.line) }
                        td { (t(match c.action {
                            ImportAction::Create => Msg::ActionCreate,
                            ImportAction::Update => Msg::ActionUpdate,
                            ImportAction::Unchanged => Msg::ActionUnchanged,
                        })) }
                        td { (c.serial_number) }
                        td { (c.asset_tag.as_deref().unwrap_or("–")) }
                        td { (c.model.as_deref().unwrap_or("–")) }
                        td { (c.changed.join(", ")) }
                    } } }
                } }
            };
            let keep = if dry_run { csv.as_str() } else { "" };
            import_page(StatusCode::OK, lang, &session, keep, result)
        }
        Err(ImportError::Rows(errors)) => {
            let result = html! {
                div.notice.bad role="alert" {
                    p { (t(Msg::ImportRefused)) }
                    ul { @for e in &errors {
                        li { @if e.line > 0 { (t(Msg::Line)) " " (e.line) ": " } (e.message) }
                    } }
                }
            };
            import_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                lang,
                &session,
                &csv,
                result,
            )
        }
        Err(ImportError::Api(e)) => {
            let status = e.into_response().status();
            layout::refusal(
                status,
                lang,
                &session,
                lang.t(Msg::Error),
                Some("/register/import"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scanned_label_url_yields_its_tag() {
        assert_eq!(
            super::scan_key(" https://mdm.example/d/GYM1-0042 "),
            "GYM1-0042"
        );
        assert_eq!(super::scan_key("F9FXK1"), "F9FXK1");
        assert_eq!(super::urlencode("a b/ü"), "a%20b%2F%C3%BC");
    }
}
