//! Local staff accounts, for running without LDAP (the `flotte up` default):
//! Argon2id password hashes in `local_accounts`. With LDAP configured these
//! are never consulted; the directory's bind decides.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use flotte_core::auth::{AuthError, AuthenticatedStaff, StaffAuthenticator};
use flotte_storage::Store;

/// The PHC string of `password` (Argon2id, the crate's default parameters:
/// 19 MiB, 2 passes, as OWASP recommends).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Checked against for unknown users, so that "no such user" costs as long
/// as "wrong password" and timing does not tell them apart.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&crate::bootstrap::generate_token()).unwrap_or_default())
}

/// `StaffAuthenticator` over the local accounts.
#[derive(Debug, Clone)]
pub struct LocalAuthenticator {
    store: Store,
}

impl LocalAuthenticator {
    pub fn new(store: Store) -> Self {
        LocalAuthenticator { store }
    }
}

#[async_trait::async_trait]
impl StaffAuthenticator for LocalAuthenticator {
    async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<AuthenticatedStaff, AuthError> {
        let account = self
            .store
            .find_local_account(username)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let password = password.to_owned();
        let hash = account
            .as_ref()
            .map(|a| a.password_hash.clone())
            .unwrap_or_else(|| decoy_hash().to_owned());
        // Argon2 is deliberately slow: off the async threads.
        let ok = tokio::task::spawn_blocking(move || verify(&password, &hash))
            .await
            .unwrap_or(false);
        match account {
            Some(account) if ok => Ok(AuthenticatedStaff {
                person_id: None,
                username: account.username,
                external_id: String::new(),
                is_technician: account.technician,
            }),
            _ => Err(AuthError::InvalidCredentials),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify_only_the_right_password() {
        let a = hash_password("Sommer2026!").expect("hash");
        let b = hash_password("Sommer2026!").expect("hash");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify("Sommer2026!", &a));
        assert!(!verify("sommer2026!", &a));
        assert!(!verify("Sommer2026!", "not a hash"));
    }
}
