//! The browser session: the `flotte_session` cookie (Secure, HttpOnly,
//! SameSite=Strict, Path=/) names a server-side session (stored as a hash,
//! with an expiry); forms carry the session's synchronizer token in a hidden
//! `csrf_token` field.
//!
//! Pages take a [`StaffSession`]; form handlers take a [`CsrfForm`], which
//! refuses (403, before the handler runs) a form whose token is missing or
//! wrong. Without a valid session both redirect to `/login`.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use flotte_core::audit::AuditEntry;
use flotte_core::auth::Principal;
use serde::de::DeserializeOwned;

use crate::api::auth::source_of;
use crate::signin::{SESSION_COOKIE, cookie, same_secret, valid_session};
use crate::state::AppState;

/// The name of the hidden form field with the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";

/// A signed-in browser user.
#[derive(Debug, Clone)]
pub struct StaffSession {
    pub principal: Principal,
    /// Put into every form as `<input type="hidden" name="csrf_token">`.
    pub csrf_token: String,
    pub session_id: String,
    pub source: Option<String>,
}

impl StaffSession {
    /// An audit entry in this user's name.
    pub fn audit(&self, action: &str) -> AuditEntry {
        AuditEntry::new(self.principal.audit_name(), action, "").from_source(self.source.clone())
    }

    /// The hidden field every form of this session must contain.
    pub fn csrf_input(&self) -> String {
        format!(
            r#"<input type="hidden" name="{CSRF_FIELD}" value="{}">"#,
            html_escape(&self.csrf_token)
        )
    }
}

/// Why a page or form was refused.
#[derive(Debug)]
pub enum SessionRejection {
    /// No session, or an expired or ended one: sign in again.
    SignIn {
        clear_cookie: bool,
    },
    /// The form's CSRF token is missing or wrong: nothing was done.
    Csrf,
    /// The form could not be read.
    BadForm(String),
    Internal(String),
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        match self {
            SessionRejection::SignIn { clear_cookie } => {
                let mut response = Redirect::to("/login").into_response();
                if clear_cookie {
                    response
                        .headers_mut()
                        .append(header::SET_COOKIE, clear_session_cookie());
                }
                response
            }
            SessionRejection::Csrf => page(
                StatusCode::FORBIDDEN,
                "Nicht ausgeführt",
                "<p>Das Formular ist ungültig oder veraltet (CSRF-Schutz). \
                 Bitte laden Sie die Seite neu und versuchen Sie es noch einmal.</p>",
            ),
            SessionRejection::BadForm(why) => page(
                StatusCode::BAD_REQUEST,
                "Ungültige Eingabe",
                &format!("<p>{}</p>", html_escape(&why)),
            ),
            SessionRejection::Internal(why) => {
                tracing::error!(error = %why, "session check failed");
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Fehler",
                    "<p>Ein interner Fehler ist aufgetreten.</p>",
                )
            }
        }
    }
}

impl FromRequestParts<AppState> for StaffSession {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, SessionRejection> {
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(SessionRejection::SignIn {
                clear_cookie: false,
            });
        };
        match valid_session(state, secret).await {
            Ok((session, principal)) => Ok(StaffSession {
                principal,
                csrf_token: session.csrf_token,
                session_id: session.id,
                source: source_of(parts),
            }),
            Err(crate::ApiError::Internal(e)) => Err(SessionRejection::Internal(e.to_string())),
            Err(_) => Err(SessionRejection::SignIn { clear_cookie: true }),
        }
    }
}

/// A form posted by a signed-in user whose `csrf_token` field matches the
/// session's. `T` gets the other fields (it must not deny unknown fields).
#[derive(Debug)]
pub struct CsrfForm<T> {
    pub session: StaffSession,
    pub form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = SessionRejection;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, SessionRejection> {
        let (mut parts, body) = req.into_parts();
        let session = StaffSession::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, state.settings.http.body_limit_bytes)
            .await
            .map_err(|e| SessionRejection::BadForm(e.to_string()))?;
        let token = form_field(&bytes, CSRF_FIELD).unwrap_or_default();
        if !same_secret(&token, &session.csrf_token) {
            tracing::warn!(session = %session.session_id, "form refused: CSRF token missing or wrong");
            return Err(SessionRejection::Csrf);
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| SessionRejection::BadForm(e.to_string()))?;
        Ok(CsrfForm { session, form })
    }
}

/// One field of an `application/x-www-form-urlencoded` body.
pub(crate) fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a new session.
pub(crate) fn session_cookie(secret: &str, max_age_secs: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={secret}; Path=/; Max-Age={max_age_secs}; Secure; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| clear_session_cookie())
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "flotte_session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict",
    )
}

/// Text for HTML element content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A minimal German HTML page (issue 5 brings the real layout).
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"de\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} – Flotte</title>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n{body}\n</main>\n</body>\n</html>\n",
        html_escape(title),
        html_escape(title),
    );
    let mut response = (status, axum::response::Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
