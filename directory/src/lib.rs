//! `flotte-directory`: reads the city's UCS@school directory over LDAP
//! (read-only) and checks logins against it.
//!
//! * [`read_snapshot`]: a full, paged read into a
//!   [`DirectorySnapshot`](flotte_core::directory::DirectorySnapshot) for
//!   [`plan_sync`](flotte_core::directory::plan_sync);
//! * [`read_changes_since`]: an incremental read (RFC 4533 content sync or
//!   `modifyTimestamp` polling);
//! * [`LdapSource`]: both reads behind core's `DirectorySource` port;
//! * [`csv`]: the local directory's UCS@school import CSV, for running without LDAP;
//! * [`authenticate`], [`is_member_of`], [`is_technician`]: logins and the
//!   technician group, and [`LdapAuthenticator`], the same behind core's
//!   `StaffAuthenticator` port.
//!
//! Every operation opens its own connection, binds, works and unbinds: a
//! sync runs a few times a day and logins are rare enough that pooling would
//! only add state. Referrals are never followed. Nothing here writes to the
//! directory.

mod auth;
mod changes;
mod conn;
pub mod csv;
mod error;
mod mapping;
mod settings;
mod snapshot;
mod source;

use std::future::Future;

pub use auth::{
    AuthenticatedPerson, LdapAuthenticator, authenticate, is_member_of, is_technician, same_dn,
};
pub use changes::{
    CONTENT_SYNC_OID, ChangeBatch, ChangeCookie, ChangeMethod, read_changes_since,
    supports_content_sync,
};
pub use error::DirectoryError;
pub use settings::{DirectoryLayout, LdapSettings};
pub use snapshot::read_snapshot;
pub use source::LdapSource;

/// Runs a read on its own task. ldap3 panics on malformed BER from the
/// server; this turns such a panic into an error for this one read instead
/// of unwinding through the caller.
async fn guarded<T: Send + 'static>(
    read: impl Future<Output = Result<T, DirectoryError>> + Send + 'static,
) -> Result<T, DirectoryError> {
    match tokio::spawn(read).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(DirectoryError::Aborted(
            "the LDAP client failed on a malformed server response".to_owned(),
        )),
        Err(e) => Err(DirectoryError::Aborted(e.to_string())),
    }
}
