//! The browser side of staff sign-in: the login form, sign-out and a start
//! page. The web UI (issue 5) builds on [`session::StaffSession`] and
//! [`session::CsrfForm`].

pub mod session;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Duration;
use flotte_core::auth::Principal;
use flotte_storage::NewSession;

use crate::error::ApiError;
use crate::signin::{Via, cookie, same_secret, sign_in};
use crate::state::AppState;
use session::{
    CSRF_FIELD, CsrfForm, StaffSession, clear_session_cookie, form_field, html_escape, page,
    session_cookie,
};

/// Double-submit token for the login form itself (there is no session yet).
const LOGIN_CSRF_COOKIE: &str = "flotte_login_csrf";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(start))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
}

fn login_page(status: StatusCode, csrf: &str, username: &str, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p role=\"alert\">{}</p>\n", html_escape(e)))
        .unwrap_or_default();
    let body = format!(
        "{error}<form method=\"post\" action=\"/login\">\n\
         <input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{csrf}\">\n\
         <p><label for=\"username\">Benutzername</label><br>\n\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required value=\"{user}\"></p>\n\
         <p><label for=\"password\">Passwort</label><br>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></p>\n\
         <p><button type=\"submit\">Anmelden</button></p>\n</form>",
        csrf = html_escape(csrf),
        user = html_escape(username),
    );
    let mut response = page(status, "Anmelden", &body);
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{LOGIN_CSRF_COOKIE}={csrf}; Path=/login; Max-Age=3600; Secure; HttpOnly; SameSite=Strict"
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The sign-in form (German: "Anmelden").
async fn login_form() -> Response {
    login_page(
        StatusCode::OK,
        &crate::bootstrap::generate_token(),
        "",
        None,
    )
}

/// Checks the form's token against the login cookie, then the password (the
/// same check as `POST /api/v1/auth/login`), and starts a session.
async fn login(
    State(state): State<AppState>,
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
            let (status, text) = match &e {
                ApiError::Unauthorized(_) => (
                    StatusCode::UNAUTHORIZED,
                    "Benutzername oder Passwort ist falsch.".to_owned(),
                ),
                ApiError::TooManyRequests(_) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Zu viele fehlgeschlagene Anmeldungen. Bitte versuchen Sie es später noch einmal."
                        .to_owned(),
                ),
                ApiError::Forbidden(_) => (
                    StatusCode::FORBIDDEN,
                    "Dieses Konto hat in Flotte keine Rolle als Lehrkraft oder Mitarbeiter."
                        .to_owned(),
                ),
                ApiError::Unavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Die Anmeldung ist gerade nicht möglich (Verzeichnis nicht erreichbar)."
                        .to_owned(),
                ),
                _ => return e.into_response(),
            };
            return login_page(status, &fresh, &username, Some(&text));
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

/// A placeholder start page until the web UI (issue 5) exists.
async fn start(session: StaffSession) -> Response {
    let who = match &session.principal {
        Principal::Technician { name, .. } => format!("{} (Technik, alle Schulen)", name),
        Principal::Staff {
            username,
            school_ids,
            ..
        } => format!("{username} ({} Schule(n))", school_ids.len()),
    };
    page(
        StatusCode::OK,
        "Flotte",
        &format!(
            "<p>Angemeldet als {}.</p>\n<form method=\"post\" action=\"/logout\">\n{}\n\
             <button type=\"submit\">Abmelden</button>\n</form>",
            html_escape(&who),
            session.csrf_input()
        ),
    )
}
