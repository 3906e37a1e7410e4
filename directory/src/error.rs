//! What can go wrong talking to the directory.

use std::time::Duration;

/// A failed directory operation. Any error during a read means the read as a
/// whole failed: callers apply nothing from it.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The settings cannot work (bad URL, unreadable CA certificate, …).
    #[error("directory settings are invalid: {0}")]
    Config(String),
    #[error("could not connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// The service account was refused. Deliberately not
    /// [`DirectoryError::InvalidCredentials`]: this is an operator's problem,
    /// not a user's typo.
    #[error("the directory refused the service account {bind_dn}: {reason}")]
    ServiceBind { bind_dn: String, reason: String },
    /// Wrong password, unknown user, empty password or ambiguous user name:
    /// one variant for all, so a login form cannot be used to probe who exists.
    #[error("invalid user name or password")]
    InvalidCredentials,
    /// The password was right but the account is disabled in the directory.
    #[error("the account is disabled in the directory")]
    AccountDisabled,
    #[error("the directory did not answer {operation} within {after:?}")]
    Timeout { operation: String, after: Duration },
    /// Referrals point at other servers; following them would read data the
    /// operator did not configure, so they end the read instead.
    #[error(
        "the directory answered {operation} with a referral to {refs:?}; referrals are not followed"
    )]
    Referral {
        operation: String,
        refs: Vec<String>,
    },
    /// A result code other than success (size or time limit, no such
    /// object, insufficient access, …).
    #[error("{operation} failed with LDAP result code {rc} ({}): {text}", result_name(*.rc))]
    Ldap {
        operation: String,
        rc: u32,
        text: String,
    },
    /// An entry the operation needs lacks something essential.
    #[error("directory entry {dn} is unusable: {reason}")]
    Malformed { dn: String, reason: String },
    #[error("{operation} failed: {source}")]
    Protocol {
        operation: String,
        // Boxed: ldap3's error is large and would bloat every Result.
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// The cookie of an incremental read cannot be used (unparseable, or for
    /// a mechanism the server no longer offers). Do a full read.
    #[error("the change cookie cannot be used: {0}")]
    Cookie(String),
    /// The read task died (the LDAP library panics on malformed responses);
    /// reported instead of taking the caller down with it.
    #[error("the directory read was aborted: {0}")]
    Aborted(String),
}

/// Names of the result codes a read can plausibly meet (RFC 4511 §4.1.9).
pub(crate) fn result_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        4096 => "e-syncRefreshRequired",
        _ => "unknown",
    }
}
