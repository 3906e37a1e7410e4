//! Staff sign-in, shared by the API login and the browser form: the password
//! check (through the configured `StaffAuthenticator`), the throttle on
//! failures, and turning a stored token or session back into a principal.
//!
//! The throttle lives in the database (`login_throttle`), so several servers
//! behind one load balancer count failures together.
//!
//! A principal's schools are read from `person_schools` on every request,
//! not stored with the token: a teacher the directory moves to another
//! school acts there from the next sync on, and a person who departs or is
//! disabled loses access at once.

use axum::http::HeaderMap;
use chrono::Duration;
use flotte_core::audit::AuditEntry;
use flotte_core::auth::{AuthError, Principal};
use flotte_storage::{SessionRecord, ThrottleLimit};

use crate::error::ApiError;
use crate::state::AppState;

/// The browser session cookie.
pub(crate) const SESSION_COOKIE: &str = "flotte_session";

/// The only answer to a wrong password or an unknown user.
pub(crate) const INVALID_CREDENTIALS: &str = "invalid username or password";

pub(crate) const ROLE_TECHNICIAN: &str = "technician";
pub(crate) const ROLE_STAFF: &str = "staff";

/// Where a sign-in came from, for the audit log.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via {
    Api,
    Web,
    /// A password in a Windows OnPremise enrolment request.
    Windows,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Web => "web",
            Via::Windows => "windows-enrolment",
        }
    }
}

/// Who signed in, as stored with their token or session.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    pub role: &'static str,
    pub name: String,
    pub person_id: Option<String>,
    pub school_ids: Vec<String>,
}

/// The value of cookie `name` in the request, if sent.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Equal strings in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The principal of a stored token or session. Staff get their schools as
/// they are now; someone departed, disabled or without a staff role any
/// more gets nothing.
pub(crate) async fn principal_for(
    state: &AppState,
    role: &str,
    name: &str,
    person_id: Option<&str>,
    credential_id: &str,
) -> Result<Principal, ApiError> {
    match role {
        ROLE_TECHNICIAN => Ok(Principal::Technician {
            token_id: credential_id.to_owned(),
            name: name.to_owned(),
        }),
        ROLE_STAFF => {
            let person_id = person_id
                .ok_or_else(|| ApiError::Unauthorized("this token names no person".into()))?;
            let facts = state
                .store
                .staff_facts(person_id)
                .await?
                .filter(|f| f.may_sign_in())
                .ok_or_else(|| {
                    ApiError::Unauthorized("this account may no longer sign in".into())
                })?;
            Ok(Principal::Staff {
                person_id: facts.person_id,
                username: facts.username,
                school_ids: facts.school_ids,
            })
        }
        other => Err(ApiError::Unauthorized(format!(
            "credential with unknown role {other:?}"
        ))),
    }
}

/// A browser session that may be used now, with its principal.
pub(crate) async fn valid_session(
    state: &AppState,
    secret: &str,
) -> Result<(SessionRecord, Principal), ApiError> {
    let session = state
        .store
        .find_session(secret)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("unknown session".into()))?;
    if session.revoked {
        return Err(ApiError::Unauthorized("this session has ended".into()));
    }
    if session.expires_at <= state.clock.now() {
        return Err(ApiError::Unauthorized("your session has expired".into()));
    }
    let principal = principal_for(
        state,
        &session.role,
        &session.name,
        session.person_id.as_deref(),
        &session.id,
    )
    .await?;
    Ok((session, principal))
}

fn throttle_keys(
    state: &AppState,
    username: &str,
    source: Option<&str>,
) -> Vec<(String, ThrottleLimit)> {
    let auth = &state.settings.auth;
    let window = Duration::seconds(auth.failure_window_secs.max(1) as i64);
    let mut keys = vec![(
        format!("user:{}", username.trim().to_lowercase()),
        ThrottleLimit {
            max_failures: auth.max_failures_per_user.max(1),
            window,
        },
    )];
    if let Some(addr) = source {
        keys.push((
            format!("addr:{addr}"),
            ThrottleLimit {
                max_failures: auth.max_failures_per_address.max(1),
                window,
            },
        ));
    }
    keys
}

/// Check a user name and password and decide who the person is in Flotte.
/// Unknown users and wrong passwords get the same answer and both count
/// against the throttle; every attempt is audited (never the password).
pub(crate) async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
    source: Option<String>,
    via: Via,
) -> Result<SignedIn, ApiError> {
    let now = state.clock.now();
    let username = username.trim();
    let keys = throttle_keys(state, username, source.as_deref());
    let audit = |action: &str, details: serde_json::Value| {
        AuditEntry::new(
            format!("login:{username}"),
            action,
            format!("user:{username}"),
        )
        .from_source(source.clone())
        .with_details(details)
    };
    if let Some(wait) = state.store.login_throttled(&keys, now).await? {
        state
            .store
            .audit(
                &audit(
                    "auth.login.throttled",
                    serde_json::json!({ "via": via.as_str() }),
                ),
                now,
            )
            .await?;
        return Err(ApiError::TooManyRequests(format!(
            "too many failed sign-ins; try again in {wait} s"
        )));
    }
    let checked = if username.is_empty() || password.is_empty() {
        Err(AuthError::InvalidCredentials)
    } else {
        state.authenticator.authenticate(username, password).await
    };
    let staff = match checked {
        Ok(staff) => staff,
        Err(AuthError::InvalidCredentials) => {
            state.store.record_login_failure(&keys, now).await?;
            state
                .store
                .audit(
                    &audit(
                        "auth.login.failed",
                        serde_json::json!({ "via": via.as_str(), "reason": "invalid credentials" }),
                    ),
                    now,
                )
                .await?;
            return Err(ApiError::Unauthorized(INVALID_CREDENTIALS.into()));
        }
        Err(e @ (AuthError::Unavailable(_) | AuthError::NotConfigured)) => {
            state
                .store
                .audit(
                    &audit(
                        "auth.login.failed",
                        serde_json::json!({ "via": via.as_str(), "reason": e.to_string() }),
                    ),
                    now,
                )
                .await?;
            return Err(ApiError::Unavailable(
                "sign-in is not possible right now: the directory cannot be asked".into(),
            ));
        }
    };
    let external_id = (!staff.external_id.is_empty()).then_some(staff.external_id.as_str());
    let facts = match &staff.person_id {
        Some(id) => state.store.staff_facts(id).await?,
        None => {
            state
                .store
                .staff_facts_for_login(external_id, &staff.username)
                .await?
        }
    };
    let signed_in = if staff.is_technician {
        SignedIn {
            role: ROLE_TECHNICIAN,
            name: staff.username.clone(),
            person_id: facts.map(|f| f.person_id),
            school_ids: Vec::new(),
        }
    } else {
        match facts.filter(|f| f.may_sign_in()) {
            Some(f) => SignedIn {
                role: ROLE_STAFF,
                name: f.username,
                person_id: Some(f.person_id),
                school_ids: f.school_ids,
            },
            None => {
                state
                    .store
                    .audit(
                        &audit(
                            "auth.login.refused",
                            serde_json::json!({ "via": via.as_str(), "reason": "no staff role" }),
                        ),
                        now,
                    )
                    .await?;
                return Err(ApiError::Forbidden(
                    "this account has no active staff role at a school in Flotte".into(),
                ));
            }
        }
    };
    state.store.clear_login_failures(&keys[0].0).await?;
    state
        .store
        .audit(
            &audit(
                "auth.login",
                serde_json::json!({ "via": via.as_str(), "role": signed_in.role }),
            ),
            now,
        )
        .await?;
    Ok(signed_in)
}
