//! Pupils: find one by name or class, and see their loans.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use flotte_core::directory::Role;
use flotte_storage::{LoanFilter, LoanState, PeopleFilter};
use maud::html;

use super::i18n::{Lang, Msg};
use super::layout::{self, Nav, Shell};
use super::session::StaffSession;
use super::{Fields, core_failure, scope};
use crate::state::AppState;

pub(super) fn routes() -> axum::Router<AppState> {
    Router::new()
        .route("/people", get(search))
        .route("/people/{id}", get(person))
}

fn state_text(lang: Lang, state: &str) -> &'static str {
    lang.t(match state {
        "disabled" => Msg::StateDisabled,
        "departed" => Msg::StateDeparted,
        _ => Msg::StateActive,
    })
}

/// Pupils of the caller's schools by name or class, with their open loans.
async fn search(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Query(q): Query<Fields>,
) -> Response {
    let t = |m| lang.t(m);
    let scope = scope(&session);
    let text = q.one("q").map(str::to_owned);
    let class = q.one("class").map(str::to_owned);
    let classes: Vec<_> = state
        .store
        .list_classes(None, &scope)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.kind == "class")
        .collect();
    let pupils = if text.is_some() || class.is_some() {
        match state
            .store
            .list_people(
                &PeopleFilter {
                    role: Some(Role::Pupil),
                    class: class.clone(),
                    search: text.clone(),
                    limit: Some(300),
                    ..PeopleFilter::default()
                },
                &scope,
            )
            .await
        {
            Ok(p) => p,
            Err(e) => return core_failure(lang, &session, e, Some("/")),
        }
    } else {
        Vec::new()
    };
    let ids: Vec<String> = pupils.iter().map(|p| p.id.clone()).collect();
    let open = state
        .store
        .open_loans_of_people(&ids, &scope)
        .await
        .unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/people" role="search" {
            div.field {
                label for="q" { (t(Msg::FindPupil)) }
                input #q type="search" name="q" value=(text.as_deref().unwrap_or("")) autofocus;
            }
            div.field {
                label for="class" { (t(Msg::Class)) }
                select #class name="class" {
                    option value="" { (t(Msg::AnyClass)) }
                    @for c in &classes {
                        option value=(c.id) selected[class.as_deref() == Some(c.id.as_str())] { (c.school_code) " " (c.name) }
                    }
                }
            }
            button type="submit" { (t(Msg::Search)) }
        }
        @if (text.is_some() || class.is_some()) && pupils.is_empty() {
            p { (t(Msg::NoPupils)) }
        }
        @if !pupils.is_empty() {
            div.table-wrap { table {
                thead { tr { th { (t(Msg::Name)) } th { (t(Msg::Class)) } th { (t(Msg::State)) } th { (t(Msg::OpenLoans)) } } }
                tbody { @for p in &pupils { tr {
                    td { a href={ "/people/" (p.id) } { (p.family_name) ", " (p.given_name) } }
                    td { (p.classes.iter().filter(|c| c.kind == "class").map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")) }
                    td { (state_text(lang, &p.state)) }
                    td { (open.get(&p.id).map_or(0, Vec::len)) }
                } } }
            } }
        }
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(lang, &session, t(Msg::NavPupils), Nav::Pupils),
        body,
    )
}

/// A pupil and every loan of theirs the caller's schools made.
async fn person(
    State(state): State<AppState>,
    lang: Lang,
    session: StaffSession,
    Path(id): Path<String>,
) -> Response {
    let t = |m| lang.t(m);
    let scope = scope(&session);
    let person = match state.store.find_person(&id, &scope).await {
        Ok(p) => p,
        Err(e) => return core_failure(lang, &session, e, Some("/people")),
    };
    let loans = state
        .store
        .list_loans(
            &LoanFilter {
                state: LoanState::All,
                person: Some(person.id.clone()),
                ..LoanFilter::default()
            },
            &scope,
            state.clock.now(),
        )
        .await
        .unwrap_or_default();
    let body = html! {
        dl.facts {
            dt { (t(Msg::Username)) } dd { (person.username) }
            dt { (t(Msg::Class)) } dd { (person.classes.iter().filter(|c| c.kind == "class").map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")) }
            dt { (t(Msg::School)) } dd { (person.schools.iter().map(|s| s.school_code.as_str()).collect::<Vec<_>>().join(", ")) }
            dt { (t(Msg::State)) } dd {
                (state_text(lang, &person.state))
                @if let Some(alert) = &person.loan_alert { " " span.badge.alert { (lang.alert(alert)) } }
            }
        }
        @if person.state == "active" {
            h2 { (t(Msg::LendDevice)) }
            (super::devices::scan_form(lang, Some(&person.id), false))
        }
        h2 { (t(Msg::PupilLoans)) }
        @if loans.is_empty() { p { (t(Msg::NoLoans)) } } @else { (super::loans::loan_table(lang, &loans, false)) }
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(
            lang,
            &session,
            format!("{} {}", person.given_name, person.family_name),
            Nav::Pupils,
        ),
        body,
    )
}
