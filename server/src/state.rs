use crate::bootstrap::ProfileSigner;
use crate::metrics::Metrics;
use flotte_config::Settings;
use flotte_core::Clock;
use flotte_core::auth::{NoDirectory, StaffAuthenticator};
use flotte_pki::CertificateAuthority;
use flotte_storage::Store;
use std::sync::Arc;

/// What every handler may use. Built once by the binary and cloned per request.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub ca: Arc<CertificateAuthority>,
    pub signer: Arc<ProfileSigner>,
    /// Password checks for staff (web sign-in, Windows OnPremise enrolment).
    pub authenticator: Arc<dyn StaffAuthenticator>,
    pub(crate) metrics: Arc<Metrics>,
    /// Device certificates already checked against the CA, by SHA-256.
    pub(crate) verified: Arc<crate::apple::VerifiedIdentities>,
}

impl AppState {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        clock: Arc<dyn Clock>,
        ca: Arc<CertificateAuthority>,
        signer: Arc<ProfileSigner>,
    ) -> Self {
        Self {
            settings,
            store,
            clock,
            ca,
            signer,
            authenticator: Arc::new(NoDirectory),
            metrics: Arc::new(Metrics::default()),
            verified: Arc::new(crate::apple::VerifiedIdentities::default()),
        }
    }
}

impl AppState {
    /// Use `authenticator` for password checks instead of refusing them all.
    pub fn with_authenticator(mut self, authenticator: Arc<dyn StaffAuthenticator>) -> Self {
        self.authenticator = authenticator;
        self
    }
}
