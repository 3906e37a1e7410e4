//! Errors of message parsing and extraction.

/// Why a device message was rejected.
///
/// The messages name the problem for the server's log; they are not meant for the device,
/// which only ever sees an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppleError {
    /// The body is not a plist (XML or binary).
    #[error("malformed plist: {0}")]
    MalformedPlist(String),
    /// The plist's root is not a dictionary.
    #[error("the plist root is not a dictionary")]
    NotADictionary,
    /// A check-in message without `MessageType`.
    #[error("missing MessageType")]
    MissingMessageType,
    /// A check-in message whose `MessageType` this crate does not know.
    #[error("unknown MessageType {0:?}")]
    UnknownMessageType(String),
    /// A command report without `Status`.
    #[error("missing Status")]
    MissingStatus,
    /// A command report whose `Status` is not one of Apple's five.
    #[error("unknown Status {0:?}")]
    UnknownStatus(String),
    /// Neither `UDID` nor `EnrollmentID` identifies the device.
    #[error("missing UDID (and no EnrollmentID) in {0}")]
    MissingUdid(&'static str),
    /// A report other than `Idle` that does not say which command it answers.
    #[error("missing CommandUUID in a report with Status {0}")]
    MissingCommandUuid(&'static str),
    /// A key is missing or has the wrong type.
    #[error("invalid {context}: {reason}")]
    InvalidMessage {
        /// Which message or key.
        context: String,
        /// What is wrong, as the plist decoder put it.
        reason: String,
    },
}

impl AppleError {
    pub(crate) fn invalid(context: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidMessage {
            context: context.into(),
            reason: reason.to_string(),
        }
    }
}
