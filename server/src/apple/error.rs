use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotte_core::CoreError;

/// Why a device's request was refused. The device sees the status and a
/// one-line reason; the log gets the detail.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppleError {
    /// Not a well-formed message of the protocol.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// No identity, or one we cannot trust (signature, chain, validity).
    #[error("device identity refused: {0}")]
    Identity(String),
    /// A valid identity speaking for another device, or for an ended enrolment.
    #[error("identity does not match: {0}")]
    Mismatch(String),
    /// A report that does not fit the queue (a command never sent, say).
    #[error("{0}")]
    Rejected(String),
    /// The protocol's way to decline (UserAuthenticate).
    #[error("{0}")]
    Gone(String),
    #[error("internal error")]
    Internal(#[source] CoreError),
}

impl From<CoreError> for AppleError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid(m) | CoreError::NotFound(m) => Self::Rejected(m),
            CoreError::Conflict(m) | CoreError::Forbidden(m) => Self::Mismatch(m),
            other => Self::Internal(other),
        }
    }
}

impl IntoResponse for AppleError {
    fn into_response(self) -> Response {
        // 400 for every refusal: 401 would ask the device to unenrol, and so
        // would 403 with Apple's ErrorUnrecognizedDevice body.
        let status = match &self {
            Self::Gone(_) => StatusCode::GONE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        match &self {
            Self::Internal(e) => tracing::error!(error.cause_chain = ?e, "apple request failed"),
            Self::Gone(_) => tracing::info!(reason = %self, "apple request declined"),
            _ => tracing::warn!(reason = %self, "apple request refused"),
        }
        let body = match &self {
            Self::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        (status, body).into_response()
    }
}
