//! Lending and taking back: the lending form (find the pupil by name or class), a loan's
//! page with the return form, the printable loan agreement, and the loan lists (open,
//! overdue, needing action, returned) of the caller's schools.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Duration;
use flotte_config::ReturnAction;
use flotte_core::directory::{PersonState, Role};
use flotte_core::loans::Condition;
use flotte_storage::{
    LoanFilter, LoanRecord, LoanState, LoanStatus, NewLoan, PeopleFilter, ReturnLoan,
};
use maud::{Markup, html};

use super::devices::{availability, urlencode};
use super::i18n::{self, Lang, Msg};
use super::layout::{self, Nav, Shell};
use super::session::{CsrfForm, StaffSession};
use super::{Fields, core_failure, loan_failure, scope};
use crate::api::loans::{erase_for_return, policy, return_action};
use crate::state::AppState;

pub(super) fn routes() -> axum::Router<AppState> {
    Router::new()
        .route("/devices/{id}/lend", get(lend_form))
        .route("/loans", get(list).post(lend))
        .route("/loans/{id}", get(loan_page))
        .route("/loans/{id}/return", post(take_back))
        .route("/loans/{id}/agreement", get(agreement))
        .route("/agreements", get(agreements))
}

fn coalesce(state: &AppState) -> i64 {
    i64::try_from(state.settings.apns.coalesce_secs).unwrap_or(30)
}

pub(super) fn status_badge(lang: Lang, loan: &LoanRecord) -> Markup {
    let t = |m| lang.t(m);
    html! {
        @match loan.status {
            LoanStatus::Open => span.badge.open { (t(Msg::StatusOpen)) },
            LoanStatus::Overdue => span.badge.overdue { (t(Msg::StatusOverdue)) },
            LoanStatus::Returned => span.badge.returned { (t(Msg::StatusReturned)) },
        }
        @if let (Some(alert), None) = (&loan.alert, loan.returned_at) {
            " " span.badge.alert { (lang.alert(alert)) }
        }
    }
}

/// Loans as a table: pupil, class, device, dates, state.
pub(super) fn loan_table(lang: Lang, loans: &[LoanRecord], with_school: bool) -> Markup {
    let t = |m| lang.t(m);
    html! {
        div.table-wrap { table {
            thead { tr {
                th { (t(Msg::Pupil)) }
                th { (t(Msg::Class)) }
                @if with_school { th { (t(Msg::School)) } }
                th { (t(Msg::Device)) }
                th { (t(Msg::LentAt)) }
                th { (t(Msg::DueDate)) }
                th { (t(Msg::Status)) }
            } }
            tbody { @for l in loans {
                tr.overdue[l.status == LoanStatus::Overdue] {
                    td { a href={ "/loans/" (l.id) } { (l.person.family_name) ", " (l.person.given_name) } }
                    td { (l.class_name.as_deref().unwrap_or("–")) }
                    @if with_school { td { (l.school.code) } }
                    td { a href={ "/devices/" (l.device.id) } { (l.device.label()) } }
                    td { (lang.date(l.lent_at.date_naive())) }
                    td { @if let Some(d) = l.due_date { (lang.date(d)) } @else { "–" } }
                    td { (status_badge(lang, l)) }
                }
            } }
        } }
    }
}

fn condition_select(lang: Lang, name: &str, id: &str, selected: Option<Condition>) -> Markup {
    html! {
        select id=(id) name=(name) required {
            @for c in Condition::ALL {
                option value=(c.as_str()) selected[selected == Some(c)] { (lang.condition(c)) }
            }
        }
    }
}

/// Lend a device: find the pupil (by name or class), then the terms.
async fn lend_form(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    let t = |m| lang.t(m);
    let now = state.clock.now();
    let scope = scope(&session);
    let device = match state.store.find_register_entry(&id, &scope, now).await {
        Ok(d) => d,
        Err(e) => return core_failure(lang, &session, e, Some("/devices")),
    };
    let search = q.one("q").map(str::to_owned);
    let class = q.one("class").map(str::to_owned);
    let chosen = q.one("person").map(str::to_owned);
    let school = device.school_id.clone();
    let classes = match &school {
        Some(s) => state
            .store
            .list_classes(Some(s), &scope)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.kind == "class")
            .collect(),
        None => Vec::new(),
    };
    let pupils = if search.is_some() || class.is_some() || chosen.is_some() {
        let filter = PeopleFilter {
            school: school.clone(),
            role: Some(Role::Pupil),
            class: class.clone(),
            state: Some(PersonState::Active),
            search: search.clone(),
            limit: Some(200),
            offset: None,
        };
        let mut found = match &chosen {
            Some(p) => state
                .store
                .find_person(p, &scope)
                .await
                .map(|p| vec![p])
                .unwrap_or_default(),
            None => state
                .store
                .list_people(&filter, &scope)
                .await
                .unwrap_or_default(),
        };
        found.retain(|p| p.state == "active");
        found
    } else {
        Vec::new()
    };
    let ids: Vec<String> = pupils.iter().map(|p| p.id.clone()).collect();
    let holders = state
        .store
        .open_loans_of_people(&ids, &scope)
        .await
        .unwrap_or_default();
    let due =
        (now + Duration::days(i64::from(state.settings.loans.default_loan_days))).date_naive();
    let class_of = |p: &flotte_storage::PersonRecord| -> String {
        p.classes
            .iter()
            .filter(|c| c.kind == "class" && Some(&c.school_id) == school.as_ref())
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let body = html! {
        dl.facts {
            dt { (t(Msg::Device)) } dd { (device.label()) " · " (device.model.as_deref().or(device.model_name.as_deref()).unwrap_or("")) }
            dt { (t(Msg::Serial)) } dd { (device.serial_number.as_deref().unwrap_or("–")) }
            dt { (t(Msg::School)) } dd { (device.school_code.as_deref().unwrap_or("–")) }
            dt { (t(Msg::Status)) } dd { (availability(lang, &device)) }
        }
        @if device.open_loan.is_none() {
            form.filters method="get" action={ "/devices/" (device.id) "/lend" } role="search" {
                div.field {
                    label for="q" { (t(Msg::FindPupil)) }
                    input #q type="search" name="q" value=(search.as_deref().unwrap_or("")) autofocus[pupils.is_empty()];
                }
                @if !classes.is_empty() {
                    div.field {
                        label for="class" { (t(Msg::Class)) }
                        select #class name="class" {
                            option value="" { (t(Msg::AnyClass)) }
                            @for c in &classes {
                                option value=(c.id) selected[class.as_deref() == Some(c.id.as_str())] { (c.name) }
                            }
                        }
                    }
                }
                button type="submit" { (t(Msg::Search)) }
            }
            @if (search.is_some() || class.is_some() || chosen.is_some()) && pupils.is_empty() {
                p.notice.warn role="status" { (t(Msg::NoPupils)) }
            }
            @if !pupils.is_empty() {
                form method="post" action="/loans" {
                    input type="hidden" name="csrf_token" value=(session.csrf_token);
                    input type="hidden" name="device" value=(device.id);
                    fieldset {
                        legend { (t(Msg::ChoosePupil)) }
                        @for (i, p) in pupils.iter().enumerate() {
                            label {
                                input type="radio" name="person" value=(p.id) required
                                    checked[pupils.len() == 1] autofocus[i == 0];
                                span { (p.family_name) ", " (p.given_name) }
                                @let class = class_of(p);
                                @if !class.is_empty() { span.muted { "(" (class) ")" } }
                                @if holders.contains_key(&p.id) { span.badge.open { (t(Msg::HasOpenLoan)) } }
                            }
                        }
                    }
                    div.field {
                        label for="due" { (t(Msg::DueDate)) }
                        input #due type="date" name="due" required value=(due.format("%Y-%m-%d"))
                            min=(now.date_naive().format("%Y-%m-%d"));
                    }
                    fieldset {
                        legend { (t(Msg::Accessories)) }
                        @for a in &state.settings.loans.accessories {
                            label { input type="checkbox" name="accessories" value=(a) checked; (a) }
                        }
                    }
                    div.field {
                        label for="condition" { (t(Msg::ConditionOut)) }
                        (condition_select(lang, "condition", "condition", Some(Condition::Good)))
                    }
                    div.field {
                        label for="notes" { (t(Msg::Notes)) }
                        textarea #notes name="notes" rows="2" {}
                    }
                    div.actions { button #lend type="submit" { (t(Msg::Lend)) } }
                }
            }
        } @else if let Some(open) = &device.open_loan {
            p { a.button href={ "/loans/" (open.loan_id) "#return" } { (t(Msg::TakeBack)) } }
        }
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(lang, &session, t(Msg::LendDevice), Nav::Devices),
        body,
    )
}

/// Record a loan; on success, the loan's page with the agreement to print.
async fn lend(State(state): State<AppState>, lang: Lang, form: CsrfForm<Fields>) -> Response {
    let session = form.session;
    let f = form.form;
    let device = f.one("device").unwrap_or_default().to_owned();
    let back = format!("/devices/{}/lend", urlencode(&device));
    let Some(person) = f.one("person").map(str::to_owned) else {
        return layout::refusal(
            StatusCode::BAD_REQUEST,
            lang,
            &session,
            lang.t(Msg::ChoosePupil),
            Some(&back),
        );
    };
    let Some(due) = f.one("due").and_then(flotte_core::loans::parse_date) else {
        return layout::refusal(
            StatusCode::BAD_REQUEST,
            lang,
            &session,
            lang.t(Msg::DueMissing),
            Some(&back),
        );
    };
    let new = NewLoan {
        device,
        person,
        due,
        accessories: f.all("accessories"),
        condition_out: f.one("condition").and_then(|c| c.parse().ok()),
        notes: f.one("notes").map(str::to_owned),
    };
    match state
        .store
        .lend(
            &new,
            &policy(&state.settings),
            &scope(&session),
            &session.audit("loan.lend"),
            state.clock.now(),
            coalesce(&state),
        )
        .await
    {
        Ok(loan) => Redirect::to(&format!("/loans/{}?done=lent", loan.id)).into_response(),
        Err(e) => loan_failure(lang, &session, e, Some(&back)),
    }
}

/// A loan, and (while open) the form to take the device back.
async fn loan_page(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    let t = |m| lang.t(m);
    let loan = match state
        .store
        .find_loan(&id, &scope(&session), state.clock.now())
        .await
    {
        Ok(loan) => loan,
        Err(e) => return core_failure(lang, &session, e, Some("/loans")),
    };
    let action = return_action(&state.settings, loan.device.platform);
    let known = &state.settings.loans.accessories;
    let body = html! {
        @match q.one("done") {
            Some("lent") => p.notice.ok role="status" { (t(Msg::LoanSaved)) },
            Some("returned") => p.notice.ok role="status" { (t(Msg::LoanReturned)) },
            _ => {},
        }
        (facts(lang, &loan))
        div.actions {
            a.button.secondary href={ "/loans/" (loan.id) "/agreement" } { (t(Msg::PrintAgreement)) }
            a.button.secondary href={ "/devices/" (loan.device.id) } { (t(Msg::Device)) }
            a.button.secondary href={ "/people/" (loan.person.id) } { (t(Msg::PupilLoans)) }
        }
        @if loan.returned_at.is_none() {
            h2 #return { (t(Msg::ReturnDevice)) }
            form method="post" action={ "/loans/" (loan.id) "/return" } {
                input type="hidden" name="csrf_token" value=(session.csrf_token);
                div.field {
                    label for="condition" { (t(Msg::ConditionIn)) }
                    (condition_select(lang, "condition", "condition", loan.condition_out.or(Some(Condition::Good))))
                }
                @if !known.is_empty() {
                    fieldset {
                        legend { (t(Msg::AccessoriesBack)) }
                        @for a in known {
                            label { input type="checkbox" name="accessories" value=(a) checked[loan.accessories.contains(a)]; (a) }
                        }
                    }
                }
                div.field {
                    label for="damage" { (t(Msg::Damage)) }
                    textarea #damage name="damage" rows="2" {}
                }
                div.field {
                    label for="notes" { (t(Msg::Notes)) }
                    textarea #notes name="notes" rows="2" {}
                }
                @if action == ReturnAction::Erase {
                    fieldset {
                        legend { (t(Msg::EraseQuestion)) }
                        label { input #erase-yes type="radio" name="erase" value="yes" required; (t(Msg::EraseYes)) }
                        label { input #erase-no type="radio" name="erase" value="no" required; (t(Msg::EraseNo)) }
                    }
                }
                div.actions { button #take-back type="submit" { (t(Msg::TakeBack)) } }
            }
        }
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(
            lang,
            &session,
            format!("{} {}", t(Msg::LoanNumber), loan.device.label()),
            Nav::Loans,
        ),
        body,
    )
}

fn facts(lang: Lang, loan: &LoanRecord) -> Markup {
    let t = |m| lang.t(m);
    let list = |items: &[String]| {
        if items.is_empty() {
            t(Msg::None_).to_owned()
        } else {
            items.join(", ")
        }
    };
    html! {
        dl.facts {
            dt { (t(Msg::Status)) } dd { (status_badge(lang, loan)) }
            dt { (t(Msg::Pupil)) } dd {
                a href={ "/people/" (loan.person.id) } { (loan.person.given_name) " " (loan.person.family_name) }
                @if let Some(c) = &loan.class_name { " (" (c) ")" }
            }
            dt { (t(Msg::School)) } dd { (loan.school.name) }
            dt { (t(Msg::Device)) } dd {
                (loan.device.label()) " · " (loan.device.model.as_deref().or(loan.device.model_name.as_deref()).unwrap_or(""))
                @if let Some(s) = &loan.device.serial_number { " · SN " (s) }
            }
            dt { (t(Msg::LentAt)) } dd { (lang.date(loan.lent_at.date_naive())) " (" (loan.lent_by) ")" }
            dt { (t(Msg::DueDate)) } dd { @if let Some(d) = loan.due_date { (lang.date(d)) } @else { "–" } }
            dt { (t(Msg::Accessories)) } dd { (list(&loan.accessories)) }
            dt { (t(Msg::ConditionOut)) } dd { @if let Some(c) = loan.condition_out { (lang.condition(c)) } @else { "–" } }
            @if let Some(returned) = loan.returned_at {
                dt { (t(Msg::ReturnedAt)) } dd { (lang.date(returned.date_naive())) " (" (loan.returned_to.as_deref().unwrap_or("")) ")" }
                dt { (t(Msg::ConditionIn)) } dd { @if let Some(c) = loan.condition_in { (lang.condition(c)) } @else { "–" } }
                dt { (t(Msg::AccessoriesBack)) } dd { (list(loan.accessories_in.as_deref().unwrap_or(&[]))) }
                dt { (t(Msg::Damage)) } dd { (loan.damage.as_deref().unwrap_or("–")) }
                @if loan.erase_command_id.is_some() {
                    dt { (t(Msg::ReturnDevice)) } dd { (t(Msg::EraseQueued)) }
                }
            }
            @if let Some(notes) = &loan.notes { dt { (t(Msg::Notes)) } dd { (notes) } }
        }
    }
}

/// Take the device back: condition, accessories, damage, and the confirmed erase.
async fn take_back(
    State(state): State<AppState>,
    lang: Lang,
    Path(id): Path<String>,
    form: CsrfForm<Fields>,
) -> Response {
    let session = form.session;
    let f = form.form;
    let back = format!("/loans/{}", urlencode(&id));
    let now = state.clock.now();
    let scope = scope(&session);
    let loan = match state.store.find_loan(&id, &scope, now).await {
        Ok(loan) => loan,
        Err(e) => return core_failure(lang, &session, e, Some("/loans")),
    };
    let Some(condition) = f.one("condition").and_then(|c| c.parse::<Condition>().ok()) else {
        return layout::refusal(
            StatusCode::BAD_REQUEST,
            lang,
            &session,
            lang.t(Msg::ConditionMissing),
            Some(&back),
        );
    };
    let confirm = f.one("erase").map(|v| v == "yes");
    let erase = if loan.returned_at.is_some() {
        None
    } else {
        match erase_for_return(&state.settings, loan.device.platform, confirm) {
            Ok(erase) => erase,
            Err(_) => {
                return layout::refusal(
                    StatusCode::BAD_REQUEST,
                    lang,
                    &session,
                    lang.t(Msg::EraseChoose),
                    Some(&back),
                );
            }
        }
    };
    match state
        .store
        .return_loan(
            &loan.id,
            &ReturnLoan {
                condition_in: condition,
                accessories_in: f.all("accessories"),
                damage: f.one("damage").map(str::to_owned),
                notes: f.one("notes").map(str::to_owned),
                erase,
            },
            &state.settings.loans.accessories,
            &scope,
            &session.audit("loan.return"),
            now,
            coalesce(&state),
        )
        .await
    {
        Ok(loan) => Redirect::to(&format!("/loans/{}?done=returned", loan.id)).into_response(),
        Err(e) => loan_failure(lang, &session, e, Some(&back)),
    }
}

fn agreement_markup(state: &AppState, lang: Lang, loan: &LoanRecord) -> Markup {
    let t = |m| lang.t(m);
    let lender = state
        .settings
        .loans
        .lender
        .clone()
        .unwrap_or_else(|| state.settings.organisation.clone());
    let configured = &state.settings.loans.agreement_terms;
    let terms: Vec<&str> = if configured.is_empty() {
        i18n::default_terms(lang).to_vec()
    } else {
        configured.iter().map(String::as_str).collect()
    };
    html! {
        article.agreement {
            h1 { (t(Msg::Agreement)) }
            p.muted { (t(Msg::LoanNumber)) " " (loan.id) }
            p { (t(Msg::AgreementIntro)) "." }
            dl.facts {
                dt { (t(Msg::Lender)) } dd { (lender) ", " (loan.school.name) }
                dt { (t(Msg::Borrower)) } dd {
                    (loan.person.given_name) " " (loan.person.family_name)
                    @if let Some(c) = &loan.class_name { ", " (t(Msg::Class)) " " (c) }
                }
            }
            h2 { (t(Msg::AgreementObject)) }
            dl.facts {
                dt { (t(Msg::Device)) } dd { (loan.device.model.as_deref().or(loan.device.model_name.as_deref()).unwrap_or("–")) }
                dt { (t(Msg::AssetTag)) } dd { (loan.device.asset_tag.as_deref().unwrap_or("–")) }
                dt { (t(Msg::Serial)) } dd { (loan.device.serial_number.as_deref().unwrap_or("–")) }
                dt { (t(Msg::Accessories)) } dd {
                    @if loan.accessories.is_empty() { (t(Msg::None_)) } @else { (loan.accessories.join(", ")) }
                }
                dt { (t(Msg::ConditionOut)) } dd { @if let Some(c) = loan.condition_out { (lang.condition(c)) } @else { "–" } }
                dt { (t(Msg::LentAt)) } dd { (lang.date(loan.lent_at.date_naive())) }
                dt { (t(Msg::DueDate)) } dd { @if let Some(d) = loan.due_date { (lang.date(d)) } @else { "–" } }
            }
            h2 { (t(Msg::AgreementTerms)) }
            ol { @for term in &terms { li { (term) } } }
            div.signatures {
                div { (t(Msg::PlaceDate)) }
                div { (t(Msg::SignatureParent)) }
                div { (t(Msg::SignaturePupil)) }
                div { (t(Msg::SignatureSchool)) " (" (loan.lent_by) ")" }
            }
        }
    }
}

fn print_page(
    state: &AppState,
    lang: Lang,
    session: &StaffSession,
    loans: &[LoanRecord],
    back: &str,
) -> Response {
    let t = |m| lang.t(m);
    let body = html! {
        div.actions.no-print {
            button type="button" data-print hidden { (t(Msg::Print)) }
            a.button.secondary href=(back) { (t(Msg::Back)) }
        }
        @for loan in loans { (agreement_markup(state, lang, loan)) }
    };
    let title = if loans.len() == 1 {
        t(Msg::Agreement)
    } else {
        t(Msg::Agreements)
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(lang, session, title, Nav::Loans).printed(),
        body,
    )
}

/// The loan agreement (Leihvertrag) for the parents to sign, styled for print.
async fn agreement(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Path(id): Path<String>,
) -> Response {
    match state
        .store
        .find_loan(&id, &scope(&session), state.clock.now())
        .await
    {
        Ok(loan) => {
            let back = format!("/loans/{}", loan.id);
            print_page(&state, lang, &session, &[loan], &back)
        }
        Err(e) => core_failure(lang, &session, e, Some("/loans")),
    }
}

/// Several agreements, one per printed page (a class set).
async fn agreements(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Query(q): Query<Fields>,
) -> Response {
    let now = state.clock.now();
    let mut loans = Vec::new();
    for id in q.all("ids") {
        match state.store.find_loan(&id, &scope(&session), now).await {
            Ok(loan) => loans.push(loan),
            Err(e) => return core_failure(lang, &session, e, Some("/loans")),
        }
    }
    print_page(&state, lang, &session, &loans, "/loans")
}

/// The loans of the caller's schools: open, overdue, needing action or returned.
async fn list(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Query(q): Query<Fields>,
) -> Response {
    let t = |m| lang.t(m);
    let (loan_state, title, nav) = match q.one("status") {
        Some("overdue") => (LoanState::Overdue, Msg::OverdueLoans, Nav::Overdue),
        Some("flagged") => (LoanState::Flagged, Msg::FlaggedLoans, Nav::Loans),
        Some("returned") => (LoanState::Returned, Msg::ReturnedLoans, Nav::Loans),
        Some("all") => (LoanState::All, Msg::AllLoans, Nav::Loans),
        _ => (LoanState::Open, Msg::OpenLoans, Nav::Loans),
    };
    let filter = LoanFilter {
        state: loan_state,
        school: q.one("school").map(str::to_owned),
        class: q.one("class").map(str::to_owned),
        limit: Some(2000),
        ..LoanFilter::default()
    };
    let scope = scope(&session);
    let loans = match state
        .store
        .list_loans(&filter, &scope, state.clock.now())
        .await
    {
        Ok(loans) => loans,
        Err(e) => return core_failure(lang, &session, e, Some("/")),
    };
    let schools = state.store.list_schools(&scope).await.unwrap_or_default();
    let status = q.one("status").unwrap_or("open");
    let body = html! {
        form.filters method="get" action="/loans" {
            div.field {
                label for="status" { (t(Msg::Status)) }
                select #status name="status" {
                    @for (value, msg) in [("open", Msg::OpenLoans), ("overdue", Msg::OverdueLoans),
                                          ("flagged", Msg::FlaggedLoans), ("returned", Msg::ReturnedLoans),
                                          ("all", Msg::AllLoans)] {
                        option value=(value) selected[status == value] { (t(msg)) }
                    }
                }
            }
            @if schools.len() > 1 {
                div.field {
                    label for="school" { (t(Msg::School)) }
                    select #school name="school" {
                        option value="" { (t(Msg::AllSchools)) }
                        @for s in &schools {
                            option value=(s.code) selected[filter.school.as_deref() == Some(s.code.as_str())] { (s.code) " – " (s.name) }
                        }
                    }
                }
            }
            div.field {
                label for="class" { (t(Msg::Class)) }
                input #class type="text" name="class" value=(filter.class.as_deref().unwrap_or(""));
            }
            button type="submit" { (t(Msg::Search)) }
        }
        @if loans.is_empty() {
            p { (t(Msg::NoLoans)) }
        } @else {
            p.muted { (loans.len()) " " (t(title)) }
            (loan_table(lang, &loans, schools.len() > 1))
        }
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(lang, &session, t(title), nav),
        body,
    )
}
