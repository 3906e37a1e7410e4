//! The outcomes of a use case that callers handle differently.

/// A failed use case. Transport layers map each variant to their own answer
/// (an HTTP status, a SOAP fault, a job retry); the text is safe to show an operator.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Infrastructure failed (database, network): retrying may help, details go to the log.
    #[error("storage failure")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl CoreError {
    pub fn storage(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Storage(Box::new(e))
    }
}
