//! The adapter behind core's `DirectorySource` port, for the worker's sync job.

use flotte_core::directory::{ChangeRead, DirectorySnapshot, DirectorySource, ReadFailure};

use crate::changes::{ChangeCookie, read_changes_since};
use crate::error::DirectoryError;
use crate::settings::LdapSettings;
use crate::snapshot::read_snapshot;

/// Reads the directory with the service account: full reads with
/// [`read_snapshot`], incremental ones with [`read_changes_since`].
#[derive(Debug, Clone)]
pub struct LdapSource {
    settings: LdapSettings,
}

impl LdapSource {
    pub fn new(settings: LdapSettings) -> Self {
        LdapSource { settings }
    }
}

fn failure(error: DirectoryError) -> ReadFailure {
    // A refused cookie, or the server asking for a fresh start
    // (e-syncRefreshRequired), both mean: read everything next.
    let cookie_unusable = matches!(
        error,
        DirectoryError::Cookie(_) | DirectoryError::Ldap { rc: 4096, .. }
    );
    ReadFailure {
        message: error.to_string(),
        cookie_unusable,
    }
}

#[async_trait::async_trait]
impl DirectorySource for LdapSource {
    async fn read_full(&self) -> Result<DirectorySnapshot, ReadFailure> {
        read_snapshot(&self.settings).await.map_err(failure)
    }

    async fn read_changes(&self, cookie: Option<&str>) -> Result<ChangeRead, ReadFailure> {
        let cookie: Option<ChangeCookie> = cookie.map(str::parse).transpose().map_err(failure)?;
        let batch = read_changes_since(&self.settings, cookie.as_ref())
            .await
            .map_err(failure)?;
        Ok(ChangeRead {
            changes: batch.changes,
            cookie: batch.cookie.to_string(),
        })
    }
}
