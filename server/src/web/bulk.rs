//! A class set: scan a cart of devices, pick the class, confirm who gets which device,
//! and lend them all at once (all or nothing), with the agreements to print.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::Duration;
use flotte_core::directory::{PersonState, Role};
use flotte_core::loans::{Condition, parse_date};
use flotte_storage::{ClassRecord, NewLoan, PeopleFilter, RegisterEntry};
use maud::{Markup, html};

use super::devices::scan_key;
use super::i18n::{Lang, Msg};
use super::layout::{self, Nav, Shell};
use super::session::{CsrfForm, StaffSession};
use super::{Fields, core_failure, loan_failure, scope};
use crate::api::loans::policy;
use crate::state::AppState;

pub(super) fn routes() -> axum::Router<AppState> {
    Router::new()
        .route("/bulk", get(start))
        .route("/bulk/preview", post(preview))
        .route("/bulk/lend", post(lend))
}

async fn classes(state: &AppState, session: &StaffSession) -> Vec<ClassRecord> {
    state
        .store
        .list_classes(None, &scope(session))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.kind == "class")
        .collect()
}

fn terms_fields(
    state: &AppState,
    lang: Lang,
    due: &str,
    accessories: &[String],
    condition: Condition,
) -> Markup {
    let t = |m| lang.t(m);
    html! {
        div.field {
            label for="due" { (t(Msg::DueDate)) }
            input #due type="date" name="due" required value=(due);
        }
        fieldset {
            legend { (t(Msg::Accessories)) }
            @for a in &state.settings.loans.accessories {
                label { input type="checkbox" name="accessories" value=(a) checked[accessories.contains(a)]; (a) }
            }
        }
        div.field {
            label for="condition" { (t(Msg::ConditionOut)) }
            select #condition name="condition" {
                @for c in Condition::ALL {
                    option value=(c.as_str()) selected[c == condition] { (lang.condition(c)) }
                }
            }
        }
    }
}

/// Step 1: the class; then the terms and the scan field for the cart.
async fn start(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Query(q): Query<Fields>,
) -> Response {
    let t = |m| lang.t(m);
    let classes = classes(&state, &session).await;
    let chosen = q
        .one("class")
        .and_then(|id| classes.iter().find(|c| c.id == id));
    let due = (state.clock.now()
        + Duration::days(i64::from(state.settings.loans.default_loan_days)))
    .date_naive()
    .format("%Y-%m-%d")
    .to_string();
    let body = html! {
        h2 { (t(Msg::BulkStep1)) }
        form.filters method="get" action="/bulk" {
            div.field {
                label for="class" { (t(Msg::Class)) }
                select #class name="class" required autofocus[chosen.is_none()] {
                    option value="" { (t(Msg::ChooseClass)) }
                    @for c in &classes {
                        option value=(c.id) selected[chosen.is_some_and(|x| x.id == c.id)] {
                            (c.school_code) " " (c.name) " (" (c.members) ")"
                        }
                    }
                }
            }
            button type="submit" { (t(Msg::Next)) }
        }
        @if let Some(class) = chosen {
            form method="post" action="/bulk/preview" {
                input type="hidden" name="csrf_token" value=(session.csrf_token);
                input type="hidden" name="class" value=(class.id);
                (terms_fields(&state, lang, &due, &state.settings.loans.accessories, Condition::Good))
                h2 { (t(Msg::BulkStep2)) }
                div.field {
                    label for="devices" { (t(Msg::Devices)) " – " (class.school_code) " " (class.name) }
                    textarea #devices name="devices" rows="12" required autofocus spellcheck="false" autocapitalize="characters" {}
                    p.hint { (t(Msg::BulkScanHint)) }
                }
                div.actions { button #preview type="submit" { (t(Msg::BulkPreview)) } }
            }
        }
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(lang, &session, t(Msg::BulkTitle), Nav::Bulk),
        body,
    )
}

/// Step 2: who gets which device, pupils in alphabetical order, devices in scan order;
/// every pairing can be changed before it is confirmed.
async fn preview(State(state): State<AppState>, lang: Lang, form: CsrfForm<Fields>) -> Response {
    let t = |m| lang.t(m);
    let session = form.session;
    let f = form.form;
    let scope = scope(&session);
    let now = state.clock.now();
    let class_id = f.one("class").unwrap_or_default().to_owned();
    let Some(class) = classes(&state, &session)
        .await
        .into_iter()
        .find(|c| c.id == class_id)
    else {
        return layout::refusal(
            StatusCode::BAD_REQUEST,
            lang,
            &session,
            t(Msg::ChooseClass),
            Some("/bulk"),
        );
    };
    let pupils = match state
        .store
        .list_people(
            &PeopleFilter {
                class: Some(class.id.clone()),
                role: Some(Role::Pupil),
                state: Some(PersonState::Active),
                limit: Some(200),
                ..PeopleFilter::default()
            },
            &scope,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return core_failure(lang, &session, e, Some("/bulk")),
    };
    let mut devices: Vec<RegisterEntry> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for line in f.one("devices").unwrap_or_default().lines() {
        let key = scan_key(line);
        if key.is_empty() {
            continue;
        }
        match state.store.find_register_entry(&key, &scope, now).await {
            Ok(d) if d.open_loan.is_none() && d.school_id.as_deref() == Some(&class.school_id) => {
                if !devices.iter().any(|x| x.id == d.id) {
                    devices.push(d);
                }
            }
            _ => problems.push(key),
        }
    }
    let due = f.one("due").unwrap_or_default().to_owned();
    let accessories = f.all("accessories");
    let condition = f
        .one("condition")
        .and_then(|c| c.parse().ok())
        .unwrap_or(Condition::Good);
    let leftover: Vec<&RegisterEntry> = devices.iter().skip(pupils.len()).collect();
    let body = html! {
        @if !problems.is_empty() {
            div.notice.warn role="alert" {
                (t(Msg::BulkUnknownDevices)) ": " (problems.join(", "))
            }
        }
        @if !leftover.is_empty() {
            div.notice.warn role="status" {
                (t(Msg::BulkMoreDevices)) ": "
                (leftover.iter().map(|d| d.label()).collect::<Vec<_>>().join(", "))
            }
        }
        form method="post" action="/bulk/lend" {
            input type="hidden" name="csrf_token" value=(session.csrf_token);
            input type="hidden" name="class" value=(class.id);
            h2 { (t(Msg::BulkPairing)) " – " (class.school_code) " " (class.name) }
            div.table-wrap { table {
                thead { tr { th { (t(Msg::Pupil)) } th { (t(Msg::Device)) } } }
                tbody { @for (i, p) in pupils.iter().enumerate() { tr {
                    td { label for={ "pair-" (i) } { (p.family_name) ", " (p.given_name) } }
                    td {
                        select id={ "pair-" (i) } name={ "pair_" (p.id) } {
                            option value="" { (t(Msg::BulkNoDevice)) }
                            @for (j, d) in devices.iter().enumerate() {
                                option value=(d.id) selected[i == j] {
                                    (d.label()) @if let Some(s) = &d.serial_number { " · " (s) }
                                }
                            }
                        }
                    }
                } } }
            } }
            (terms_fields(&state, lang, &due, &accessories, condition))
            div.actions {
                button #confirm type="submit" { (t(Msg::BulkConfirm)) }
                a.button.secondary href={ "/bulk?class=" (class.id) } { (t(Msg::Back)) }
            }
        }
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(lang, &session, t(Msg::BulkTitle), Nav::Bulk),
        body,
    )
}

/// Step 3: lend every confirmed pair, all or nothing.
async fn lend(State(state): State<AppState>, lang: Lang, form: CsrfForm<Fields>) -> Response {
    let t = |m| lang.t(m);
    let session = form.session;
    let f = form.form;
    let back = format!(
        "/bulk?class={}",
        super::devices::urlencode(f.one("class").unwrap_or_default())
    );
    let Some(due) = f.one("due").and_then(parse_date) else {
        return layout::refusal(
            StatusCode::BAD_REQUEST,
            lang,
            &session,
            t(Msg::DueMissing),
            Some(&back),
        );
    };
    let accessories = f.all("accessories");
    let condition = f.one("condition").and_then(|c| c.parse().ok());
    let pairs: Vec<NewLoan> = f
        .prefixed("pair_")
        .map(|(person, device)| NewLoan {
            device: device.to_owned(),
            person: person.to_owned(),
            due,
            accessories: accessories.clone(),
            condition_out: condition,
            notes: None,
        })
        .collect();
    let loans = match state
        .store
        .lend_many(
            &pairs,
            &policy(&state.settings),
            &scope(&session),
            &session.audit("loan.lend"),
            state.clock.now(),
            i64::try_from(state.settings.apns.coalesce_secs).unwrap_or(30),
        )
        .await
    {
        Ok(loans) => loans,
        Err(e) => return loan_failure(lang, &session, e, Some(&back)),
    };
    let print = format!(
        "/agreements?{}",
        loans
            .iter()
            .map(|l| format!("ids={}", l.id))
            .collect::<Vec<_>>()
            .join("&")
    );
    let body = html! {
        p.notice.ok role="status" { (t(Msg::BulkDone)) " (" (loans.len()) ")" }
        div.actions { a.button #print-all href=(print) { (t(Msg::PrintAgreement)) " – " (t(Msg::PrintAll)) } }
        (super::loans::loan_table(lang, &loans, false))
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(lang, &session, t(Msg::BulkTitle), Nav::Bulk),
        body,
    )
}
