//! The page shell: header with navigation, language switch and sign-out, the
//! stylesheet and the small script, and the security headers every page gets.
//! Everything from the directory reaches the page through maud, which escapes it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotte_core::auth::Principal;
use maud::{DOCTYPE, Markup, html};

use super::i18n::{Lang, Msg};
use super::session::StaffSession;

/// The stylesheet, served as a file: the Content-Security-Policy allows no inline styles.
pub(crate) const CSS: &str = include_str!("assets/flotte.css");
/// Progressive enhancement only (print buttons, reading a file into the import field).
pub(crate) const JS: &str = include_str!("assets/flotte.js");

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Start,
    Loans,
    Overdue,
    Devices,
    Pupils,
    Bulk,
    Import,
    None,
}

/// Everything a page shell needs besides its body.
pub(crate) struct Shell<'a> {
    pub lang: Lang,
    pub session: Option<&'a StaffSession>,
    pub title: String,
    pub nav: Nav,
    /// A print page brings its own headings (each agreement has one).
    pub print: bool,
}

impl<'a> Shell<'a> {
    pub fn new(lang: Lang, session: &'a StaffSession, title: impl Into<String>, nav: Nav) -> Self {
        Shell {
            lang,
            session: Some(session),
            title: title.into(),
            nav,
            print: false,
        }
    }

    /// The same, for a page made for printing.
    pub fn printed(mut self) -> Self {
        self.print = true;
        self
    }
}

fn who(lang: Lang, session: &StaffSession) -> String {
    match &session.principal {
        Principal::Technician { name, .. } => {
            format!("{name} ({})", lang.t(Msg::TechnicianAllSchools))
        }
        Principal::Staff { username, .. } => username.clone(),
    }
}

fn is_technician(session: &StaffSession) -> bool {
    matches!(session.principal, Principal::Technician { .. })
}

/// The whole page.
pub(crate) fn document(shell: &Shell<'_>, body: Markup) -> Markup {
    let lang = shell.lang;
    let t = |m| lang.t(m);
    let link = |nav: Nav, href: &str, msg: Msg| {
        html! {
            a href=(href) aria-current=[(shell.nav == nav).then_some("page")] { (t(msg)) }
        }
    };
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (shell.title) " – Flotte" }
                link rel="stylesheet" href="/static/flotte.css";
                script src="/static/flotte.js" defer {}
            }
            body {
                a.skip href="#main" { (t(Msg::SkipToContent)) }
                header.top {
                    div.bar {
                        a.brand href="/" { (t(Msg::AppName)) }
                        @if let Some(session) = shell.session {
                            nav aria-label=(t(Msg::Overview)) {
                                (link(Nav::Start, "/", Msg::NavStart))
                                (link(Nav::Loans, "/loans", Msg::NavLoans))
                                (link(Nav::Overdue, "/loans?status=overdue", Msg::NavOverdue))
                                (link(Nav::Devices, "/devices", Msg::NavDevices))
                                (link(Nav::Pupils, "/people", Msg::NavPupils))
                                (link(Nav::Bulk, "/bulk", Msg::NavBulk))
                                @if is_technician(session) {
                                    (link(Nav::Import, "/register/import", Msg::NavImport))
                                }
                            }
                            span.who { (t(Msg::SignedInAs)) " " (who(lang, session)) }
                        }
                        a href={ "/lang?set=" (lang.other().code()) } lang=(lang.other().code()) {
                            (t(Msg::SwitchLanguage))
                        }
                        @if let Some(session) = shell.session {
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf_token" value=(session.csrf_token);
                                button type="submit" { (t(Msg::SignOut)) }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    @if !shell.print { h1 { (shell.title) } }
                    (body)
                }
            }
        }
    }
}

/// A page as a response, with the headers every page gets.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, axum::response::Html(markup.into_string())).into_response();
    secure(&mut response);
    response
}

/// No caching of pages with pupils' data; no framing; only our own scripts and styles.
pub(crate) fn secure(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// A page.
pub(crate) fn page(status: StatusCode, shell: &Shell<'_>, body: Markup) -> Response {
    respond(status, document(shell, body))
}

/// A refusal that says what was wrong and that nothing changed, with a way back.
pub(crate) fn refusal(
    status: StatusCode,
    lang: Lang,
    session: &StaffSession,
    message: &str,
    back: Option<&str>,
) -> Response {
    let title = if status == StatusCode::NOT_FOUND {
        lang.t(Msg::NotFound)
    } else {
        lang.t(Msg::Error)
    };
    page(
        status,
        &Shell::new(lang, session, title, Nav::None),
        html! {
            p.notice.bad role="alert" { (message) }
            @if status != StatusCode::NOT_FOUND {
                p { (lang.t(Msg::NothingChanged)) }
            }
            @if let Some(back) = back {
                p { a.button.secondary href=(back) { (lang.t(Msg::Back)) } }
            }
        },
    )
}

/// A static asset with a day of caching.
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}
