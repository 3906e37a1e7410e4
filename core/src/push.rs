//! Waking devices: the port the APNs adapter implements.

/// Where to send an Apple MDM push: the device's APNs token with the
/// PushMagic it expects back, under the topic of our push certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub device_id: String,
    /// The device token as lowercase hex (APNs' URL form).
    pub token_hex: String,
    pub push_magic: String,
    pub topic: String,
}

/// Why a push did not go out. The worker treats these differently: a bad
/// token marks the device, a transient failure retries with back-off, a
/// rejection (wrong certificate, wrong topic) needs an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("the device token is no longer valid: {0}")]
    BadToken(String),
    #[error("push failed for now, will retry: {0}")]
    Transient(String),
    #[error("push rejected: {0}")]
    Rejected(String),
    #[error("no APNs push certificate is configured")]
    NotConfigured,
}

/// Sends one wake-up. Implementations must be safe to call concurrently.
#[async_trait::async_trait]
pub trait PushNotifier: Send + Sync {
    async fn push(&self, target: &PushTarget) -> Result<(), PushError>;
}
