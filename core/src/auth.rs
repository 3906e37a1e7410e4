//! Who is asking, and which schools they may see.

use serde::Serialize;

/// The authenticated caller of an API or UI request.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    /// IT service provider staff: every school.
    Technician { token_id: String, name: String },
    /// School staff: only the schools they belong to.
    Staff {
        person_id: String,
        username: String,
        school_ids: Vec<String>,
    },
}

/// The schools a read or write is confined to. Storage applies it in the
/// query itself, so a missing check in a handler cannot widen it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchoolScope {
    All,
    Schools(Vec<String>),
}

impl Principal {
    pub fn scope(&self) -> SchoolScope {
        match self {
            Self::Technician { .. } => SchoolScope::All,
            Self::Staff { school_ids, .. } => SchoolScope::Schools(school_ids.clone()),
        }
    }

    /// The name written into the audit log.
    pub fn audit_name(&self) -> String {
        match self {
            Self::Technician { name, .. } => format!("technician:{name}"),
            Self::Staff { username, .. } => format!("staff:{username}"),
        }
    }
}

impl SchoolScope {
    pub fn allows(&self, school_id: Option<&str>) -> bool {
        match self {
            Self::All => true,
            Self::Schools(ids) => school_id.is_some_and(|id| ids.iter().any(|s| s == id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_scope_excludes_other_schools_and_unassigned_devices() {
        let staff = Principal::Staff {
            person_id: "p1".into(),
            username: "anna".into(),
            school_ids: vec!["s1".into()],
        };
        let scope = staff.scope();
        assert!(scope.allows(Some("s1")));
        assert!(!scope.allows(Some("s2")));
        assert!(!scope.allows(None));
        assert!(SchoolScope::All.allows(None));
    }
}

/// A person the directory vouched for by their password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedStaff {
    /// Flotte's person id, when the person is already synchronised.
    pub person_id: Option<String>,
    pub username: String,
    /// The directory's stable id (entryUUID).
    pub external_id: String,
    pub is_technician: bool,
}

/// Why a password check failed. Wrong password and unknown user are one
/// variant on purpose: the answer must not reveal whether a user exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("the directory is not available: {0}")]
    Unavailable(String),
    #[error("no directory is configured for password sign-in")]
    NotConfigured,
}

/// Checks a username and password against the directory (an LDAP bind), or
/// against local accounts when Flotte runs without LDAP. Passwords are never stored.
#[async_trait::async_trait]
pub trait StaffAuthenticator: Send + Sync {
    async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<AuthenticatedStaff, AuthError>;
}

/// Used until a directory is configured: every password sign-in is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDirectory;

#[async_trait::async_trait]
impl StaffAuthenticator for NoDirectory {
    async fn authenticate(
        &self,
        _username: &str,
        _password: &str,
    ) -> Result<AuthenticatedStaff, AuthError> {
        Err(AuthError::NotConfigured)
    }
}
