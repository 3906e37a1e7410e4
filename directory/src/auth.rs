//! Logging people in against the directory, and group checks.

use flotte_core::auth::{AuthError, AuthenticatedStaff, StaffAuthenticator};
use ldap3::Scope;
use uuid::Uuid;

use crate::conn::{Query, check_password, connect_service, search};
use crate::error::DirectoryError;
use crate::guarded;
use crate::mapping::{days_since_epoch, disabled_reason, dn_key, entry_uuid, parse_dn};
use crate::settings::LdapSettings;

/// Who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedPerson {
    pub dn: String,
    /// The entry's `entryUUID`, the same key the sync uses.
    pub external_id: Uuid,
    /// `uid` as the directory spells it (the login may differ in case).
    pub username: String,
}

/// Checks a user name and password against the directory.
///
/// The service account finds the user's DN by `uid` (exam accounts
/// excluded); then a separate connection binds as that DN with the password.
/// Unknown user, wrong password, an ambiguous `uid` and an empty password all
/// give [`DirectoryError::InvalidCredentials`]. An empty password is refused
/// before any bind, because LDAP would treat it as an anonymous bind and
/// report success. A correct password on a disabled account gives
/// [`DirectoryError::AccountDisabled`] (slapd itself does not look at
/// `shadowExpire` and friends).
pub async fn authenticate(
    settings: &LdapSettings,
    username: &str,
    password: &str,
) -> Result<AuthenticatedPerson, DirectoryError> {
    if password.is_empty() || username.trim().is_empty() {
        return Err(DirectoryError::InvalidCredentials);
    }
    let (settings, username, password) =
        (settings.clone(), username.to_owned(), password.to_owned());
    guarded(async move { check_login(&settings, &username, &password).await }).await
}

async fn check_login(
    settings: &LdapSettings,
    username: &str,
    password: &str,
) -> Result<AuthenticatedPerson, DirectoryError> {
    let mut ldap = connect_service(settings).await?;
    let filter = format!(
        "(&(objectClass=person)(uid={})(!(objectClass=ucsschoolExam)))",
        ldap3::ldap_escape(username.trim())
    );
    let mut found = search(
        &mut ldap,
        settings,
        &Query {
            operation: "the login lookup",
            base: &settings.base_dn,
            scope: Scope::Subtree,
            filter: &filter,
            attrs: &[
                "entryUUID",
                "uid",
                "shadowExpire",
                "sambaAcctFlags",
                "krb5KDCFlags",
            ],
            paged: false,
        },
    )
    .await?;
    let _ = ldap.unbind().await;
    let entry = match found.len() {
        1 => found.remove(0),
        0 => return Err(DirectoryError::InvalidCredentials),
        n => {
            tracing::warn!(
                matches = n,
                "login name matches several directory entries; refused"
            );
            return Err(DirectoryError::InvalidCredentials);
        }
    };
    let malformed = |reason: String| DirectoryError::Malformed {
        dn: entry.dn.clone(),
        reason,
    };
    let external_id = entry_uuid(&entry).map_err(malformed)?;
    let canonical = entry
        .single("uid")
        .ok()
        .flatten()
        .unwrap_or(username.trim())
        .to_owned();

    if !check_password(settings, &entry.dn, password).await? {
        return Err(DirectoryError::InvalidCredentials);
    }
    let today = days_since_epoch(chrono::Utc::now());
    match disabled_reason(&entry, today) {
        Ok(None) => {}
        // Unreadable flags count as disabled: when in doubt, no login.
        Ok(Some(_)) | Err(_) => return Err(DirectoryError::AccountDisabled),
    }
    Ok(AuthenticatedPerson {
        dn: entry.dn,
        external_id,
        username: canonical,
    })
}

/// Whether `dn` is a member of the group `group_dn`, by `uniqueMember`,
/// `member` or (for a `uid=` DN) `memberUid`. A group that does not exist is
/// an error, not `false`: it means the configuration is wrong.
pub async fn is_member_of(
    settings: &LdapSettings,
    dn: &str,
    group_dn: &str,
) -> Result<bool, DirectoryError> {
    let mut ldap = connect_service(settings).await?;
    let escaped = ldap3::ldap_escape(dn);
    let uid_clause = parse_dn(dn)
        .first()
        .filter(|rdn| rdn.attr == "uid")
        .map(|rdn| format!("(memberUid={})", ldap3::ldap_escape(&rdn.value)))
        .unwrap_or_default();
    let filter = format!("(|(uniqueMember={escaped})(member={escaped}){uid_clause})");
    let found = search(
        &mut ldap,
        settings,
        &Query {
            operation: "the group membership check",
            base: group_dn,
            scope: Scope::Base,
            filter: &filter,
            attrs: &["1.1"],
            paged: false,
        },
    )
    .await;
    let _ = ldap.unbind().await;
    match found {
        Ok(entries) => Ok(!entries.is_empty()),
        Err(DirectoryError::Ldap { rc: 32, .. }) => Err(DirectoryError::Config(format!(
            "group {group_dn} does not exist"
        ))),
        Err(e) => Err(e),
    }
}

/// Whether `dn` is in the configured technician group; `false` when none is
/// configured.
pub async fn is_technician(settings: &LdapSettings, dn: &str) -> Result<bool, DirectoryError> {
    match &settings.technician_group_dn {
        None => Ok(false),
        Some(group) => is_member_of(settings, dn, group).await,
    }
}

/// Flotte's [`StaffAuthenticator`] port over the directory: the password is
/// checked with [`authenticate`], technician rights with [`is_technician`].
#[derive(Debug, Clone)]
pub struct LdapAuthenticator {
    settings: LdapSettings,
}

impl LdapAuthenticator {
    pub fn new(settings: LdapSettings) -> Self {
        LdapAuthenticator { settings }
    }
}

#[async_trait::async_trait]
impl StaffAuthenticator for LdapAuthenticator {
    async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<AuthenticatedStaff, AuthError> {
        let person = authenticate(&self.settings, username, password)
            .await
            .map_err(auth_error)?;
        let is_technician = is_technician(&self.settings, &person.dn)
            .await
            .map_err(auth_error)?;
        Ok(AuthenticatedStaff {
            // Flotte's own id is the caller's to look up by external id.
            person_id: None,
            username: person.username,
            external_id: person.external_id.to_string(),
            is_technician,
        })
    }
}

/// A disabled account is refused like a wrong password: the port has no
/// separate answer, and the sign-in form needs none. Everything else means
/// the directory could not be asked.
fn auth_error(error: DirectoryError) -> AuthError {
    match error {
        DirectoryError::InvalidCredentials | DirectoryError::AccountDisabled => {
            AuthError::InvalidCredentials
        }
        other => {
            tracing::warn!(error = %other, "directory sign-in check failed");
            AuthError::Unavailable(other.to_string())
        }
    }
}

/// True when two DNs name the same entry (case and spacing aside).
pub fn same_dn(a: &str, b: &str) -> bool {
    dn_key(a) == dn_key(b)
}
