//! The web UI for school staff: sign-in, finding devices (by asset tag, serial number
//! or a scanned label) and pupils, lending and taking back, the open and overdue loans
//! of one's school, printable loan agreements and asset labels, class sets, and (for
//! technicians) the supplier's delivery list. Server-rendered HTML in German, English
//! on request; every form works without JavaScript.
//!
//! Pages take a [`session::StaffSession`], forms a [`session::CsrfForm`]; both send
//! a browser without a valid session to `/login`. Staff see their own schools only
//! (storage applies the scope in SQL); technicians see all.

mod bulk;
mod devices;
pub mod i18n;
mod layout;
mod loans;
mod people;
mod qr;
pub mod session;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Duration;
use flotte_core::CoreError;
use flotte_core::auth::{Principal, SchoolScope};
use flotte_core::loans::LoanError;
use flotte_storage::{LoanFilter, LoanState, NewSession};
use maud::html;

use crate::error::ApiError;
use crate::signin::{Via, cookie, same_secret, sign_in};
use crate::state::AppState;
use i18n::{LANG_COOKIE, Lang, Msg};
use layout::{Nav, Shell};
use session::{
    CSRF_FIELD, CsrfForm, StaffSession, clear_session_cookie, form_field, session_cookie,
};

/// Double-submit token for the login form itself (there is no session yet).
const LOGIN_CSRF_COOKIE: &str = "flotte_login_csrf";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(start))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/lang", get(set_language))
        .route(
            "/static/flotte.css",
            get(|| async { layout::asset("text/css; charset=utf-8", layout::CSS) }),
        )
        .route(
            "/static/flotte.js",
            get(|| async { layout::asset("text/javascript; charset=utf-8", layout::JS) }),
        )
        .merge(devices::routes())
        .merge(loans::routes())
        .merge(people::routes())
        .merge(bulk::routes())
}

/// Form fields and query parameters as pairs: checkboxes repeat their name.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first non-empty value of `name`, trimmed.
    pub fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .find(|v| !v.is_empty())
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// `(suffix, value)` for every field named `prefix…` with a value.
    pub fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0.iter().filter_map(move |(k, v)| {
            let rest = k.strip_prefix(prefix)?;
            let v = v.trim();
            (!v.is_empty()).then_some((rest, v))
        })
    }
}

pub(crate) fn scope(session: &StaffSession) -> SchoolScope {
    session.principal.scope()
}

pub(crate) fn is_technician(session: &StaffSession) -> bool {
    matches!(session.principal, Principal::Technician { .. })
}

/// A failed use case as a page: what was wrong, and that nothing changed.
pub(crate) fn core_failure(
    lang: Lang,
    session: &StaffSession,
    e: CoreError,
    back: Option<&str>,
) -> Response {
    let (status, message) = match &e {
        CoreError::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
        CoreError::Conflict(why) => (StatusCode::CONFLICT, why.clone()),
        CoreError::Invalid(why) => (StatusCode::BAD_REQUEST, why.clone()),
        CoreError::Forbidden(why) => (StatusCode::FORBIDDEN, why.clone()),
        CoreError::Storage(_) => {
            tracing::error!(error.cause_chain = ?e, "web request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                match lang {
                    Lang::De => "Ein interner Fehler ist aufgetreten.".to_owned(),
                    Lang::En => "An internal error occurred.".to_owned(),
                },
            )
        }
    };
    layout::refusal(status, lang, session, &message, back)
}

/// A failed loan use case as a page, worded in the UI's language.
pub(crate) fn loan_failure(
    lang: Lang,
    session: &StaffSession,
    e: LoanError,
    back: Option<&str>,
) -> Response {
    match e {
        LoanError::Core(core) => core_failure(lang, session, core, back),
        LoanError::Rule(rule) => {
            let status = if rule.not_found().is_some() {
                StatusCode::NOT_FOUND
            } else if rule.is_conflict() {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            layout::refusal(status, lang, session, &i18n::rule_text(lang, &rule), back)
        }
    }
}

fn login_page(
    status: StatusCode,
    lang: Lang,
    csrf: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let t = |m| lang.t(m);
    let shell = Shell {
        lang,
        session: None,
        title: t(Msg::SignIn).to_owned(),
        nav: Nav::None,
        print: false,
    };
    let body = html! {
        @if let Some(error) = error {
            p.notice.bad role="alert" { (error) }
        }
        form method="post" action="/login" {
            input type="hidden" name="csrf_token" value=(csrf);
            div.field {
                label for="username" { (t(Msg::Username)) }
                input #username type="text" name="username" autocomplete="username" required
                    autofocus[error.is_none()] value=(username);
            }
            div.field {
                label for="password" { (t(Msg::Password)) }
                input #password name="password" type="password" autocomplete="current-password" required
                    autofocus[error.is_some()];
            }
            p { button type="submit" { (t(Msg::SignIn)) } }
        }
    };
    let mut response = layout::page(status, &shell, body);
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{LOGIN_CSRF_COOKIE}={csrf}; Path=/login; Max-Age=3600; Secure; HttpOnly; SameSite=Strict"
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The sign-in form (German: "Anmelden").
async fn login_form(lang: Lang) -> Response {
    login_page(
        StatusCode::OK,
        lang,
        &crate::bootstrap::generate_token(),
        "",
        None,
    )
}

/// Checks the form's token against the login cookie, then the password (the
/// same check as `POST /api/v1/auth/login`), and starts a session.
async fn login(
    State(state): State<AppState>,
    lang: Lang,
    source: crate::api::auth_login::Source,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sent = form_field(&body, CSRF_FIELD).unwrap_or_default();
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(&sent, expected) {
        return session::SessionRejection::Csrf.into_response();
    }
    let username = form_field(&body, "username").unwrap_or_default();
    let password = form_field(&body, "password").unwrap_or_default();
    let fresh = crate::bootstrap::generate_token();
    let who = match sign_in(&state, &username, &password, source.0.clone(), Via::Web).await {
        Ok(who) => who,
        Err(e) => {
            let de = lang == Lang::De;
            let (status, text) = match &e {
                ApiError::Unauthorized(_) => (
                    StatusCode::UNAUTHORIZED,
                    if de {
                        "Benutzername oder Passwort ist falsch."
                    } else {
                        "The user name or password is wrong."
                    },
                ),
                ApiError::TooManyRequests(_) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    if de {
                        "Zu viele fehlgeschlagene Anmeldungen. Bitte versuchen Sie es später noch einmal."
                    } else {
                        "Too many failed sign-ins. Please try again later."
                    },
                ),
                ApiError::Forbidden(_) => (
                    StatusCode::FORBIDDEN,
                    if de {
                        "Dieses Konto hat in Flotte keine Rolle als Lehrkraft oder Mitarbeiter."
                    } else {
                        "This account has no teacher or staff role in Flotte."
                    },
                ),
                ApiError::Unavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    if de {
                        "Die Anmeldung ist gerade nicht möglich (Verzeichnis nicht erreichbar)."
                    } else {
                        "Sign-in is not possible right now (the directory cannot be reached)."
                    },
                ),
                _ => return e.into_response(),
            };
            return login_page(status, lang, &fresh, &username, Some(text));
        }
    };
    let now = state.clock.now();
    let hours = i64::from(state.settings.auth.session_hours.max(1));
    let secret = crate::bootstrap::generate_token();
    let created = state
        .store
        .create_session(
            &secret,
            &NewSession {
                csrf_token: crate::bootstrap::generate_token(),
                role: who.role.to_owned(),
                name: who.name,
                person_id: who.person_id,
                expires_at: now + Duration::hours(hours),
            },
            now,
        )
        .await;
    if let Err(e) = created {
        return ApiError::from(e).into_response();
    }
    let mut response = Redirect::to("/").into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, session_cookie(&secret, hours * 3600));
    headers.append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "flotte_login_csrf=; Path=/login; Max-Age=0; Secure; HttpOnly; SameSite=Strict",
        ),
    );
    response
}

/// Ends the session (a CSRF-protected form, so no other site can sign
/// anyone out).
async fn logout(State(state): State<AppState>, form: CsrfForm<serde::de::IgnoredAny>) -> Response {
    let session = form.session;
    if let Err(e) = state
        .store
        .revoke_session(
            &session.session_id,
            &session.audit("auth.logout"),
            state.clock.now(),
        )
        .await
    {
        return ApiError::from(e).into_response();
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_session_cookie());
    response
}

/// Switch the language and go back to the page the switch was on. Changing a display
/// preference is harmless, so a plain link does it; the way back must be one of ours.
async fn set_language(headers: HeaderMap, Query(q): Query<Fields>) -> Response {
    let lang = q.one("set").and_then(Lang::parse).unwrap_or_default();
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/lang"))
        .unwrap_or_else(|| "/".to_owned());
    let mut response = Redirect::to(&back).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; Secure; SameSite=Lax",
        lang.code()
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The start page: the scan field, and the school's open, overdue and flagged loans.
async fn start(State(state): State<AppState>, lang: Lang, session: StaffSession) -> Response {
    let t = |m| lang.t(m);
    let now = state.clock.now();
    let counts = match state.store.loan_counts(&scope(&session), now).await {
        Ok(c) => c,
        Err(e) => return core_failure(lang, &session, e, None),
    };
    let flagged = if counts.flagged > 0 {
        state
            .store
            .list_loans(
                &LoanFilter {
                    state: LoanState::Flagged,
                    limit: Some(20),
                    ..LoanFilter::default()
                },
                &scope(&session),
                now,
            )
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let body = html! {
        (devices::scan_form(lang, None, true))
        div.cards {
            a.card href="/loans" { strong { (counts.open) } (t(Msg::OpenCount)) }
            a.card.bad href="/loans?status=overdue" { strong { (counts.overdue) } (t(Msg::OverdueCount)) }
            a.card.warn href="/loans?status=flagged" { strong { (counts.flagged) } (t(Msg::FlaggedCount)) }
        }
        @if !flagged.is_empty() {
            h2 { (t(Msg::FlaggedLoans)) }
            (loans::loan_table(lang, &flagged, true))
        }
        h2 { (t(Msg::QuickLinks)) }
        div.actions {
            a.button.secondary href="/bulk" { (t(Msg::BulkTitle)) }
            a.button.secondary href="/people" { (t(Msg::NavPupils)) }
            a.button.secondary href="/devices" { (t(Msg::Register)) }
            @if is_technician(&session) {
                a.button.secondary href="/register/import" { (t(Msg::ImportTitle)) }
            }
        }
    };
    layout::page(
        StatusCode::OK,
        &Shell::new(lang, &session, t(Msg::Overview), Nav::Start),
        body,
    )
}
