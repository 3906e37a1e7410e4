//! The APNs client for MDM wake-ups: HTTP/2 with the push certificate as TLS
//! client identity, body `{"mdm": PushMagic}`, always an explicit expiration
//! (without it Apple tries once and drops the push if the iPad is offline).

use async_trait::async_trait;
use flotte_config::ApnsSettings;
use flotte_core::push::{PushError, PushNotifier, PushTarget};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Reasons Apple gives for a token that will never work again.
const DEAD_TOKEN_REASONS: &[&str] = &[
    "Unregistered",
    "BadDeviceToken",
    "ExpiredToken",
    "DeviceTokenNotForTopic",
];
/// Reasons that no retry will fix: our certificate or topic is wrong.
const CONFIG_REASONS: &[&str] = &[
    "BadCertificate",
    "BadCertificateEnvironment",
    "Forbidden",
    "BadTopic",
    "TopicDisallowed",
    "MissingTopic",
    "InvalidProviderToken",
    "MissingProviderToken",
    "ExpiredProviderToken",
];

pub struct ApnsClient {
    http: reqwest::Client,
    endpoint: String,
    expiration: Duration,
}

impl ApnsClient {
    /// `identity_pem` holds the push certificate and its private key.
    pub fn new(settings: &ApnsSettings, identity_pem: &[u8]) -> Result<Self, PushError> {
        let identity = reqwest::Identity::from_pem(identity_pem)
            .map_err(|e| PushError::Rejected(format!("push certificate unreadable: {e}")))?;
        let mut builder = reqwest::Client::builder()
            .tls_backend_rustls()
            .http2_prior_knowledge()
            .identity(identity)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30));
        if let Some(ca_path) = &settings.ca_path {
            let pem = std::fs::read(ca_path).map_err(|e| {
                PushError::Rejected(format!("APNs CA file {}: {e}", ca_path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| PushError::Rejected(format!("APNs CA file: {e}")))?;
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| PushError::Rejected(format!("APNs client: {e}")))?;
        Ok(Self {
            http,
            endpoint: settings.endpoint.trim_end_matches('/').to_owned(),
            expiration: Duration::from_secs(settings.expiration_secs),
        })
    }
}

#[async_trait]
impl PushNotifier for ApnsClient {
    async fn push(&self, target: &PushTarget) -> Result<(), PushError> {
        // The expiration header is wall-clock time at Apple; there is no clock to inject here.
        let expires = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(self.expiration)
            .as_secs();
        let response = self
            .http
            .post(format!("{}/3/device/{}", self.endpoint, target.token_hex))
            .header("apns-expiration", expires.to_string())
            .header("apns-priority", "10")
            .header("apns-push-type", "mdm")
            .header("apns-topic", &target.topic)
            .json(&serde_json::json!({ "mdm": target.push_magic }))
            .send()
            .await
            .map_err(|e| PushError::Transient(format!("APNs unreachable: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let reason = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
            .unwrap_or_else(|| status.to_string());
        Err(classify(status.as_u16(), reason))
    }
}

fn classify(status: u16, reason: String) -> PushError {
    if status == 410 || DEAD_TOKEN_REASONS.contains(&reason.as_str()) {
        PushError::BadToken(reason)
    } else if CONFIG_REASONS.contains(&reason.as_str()) || status == 403 {
        PushError::Rejected(reason)
    } else {
        PushError::Transient(reason)
    }
}

/// Pushes with whatever push certificate is active in the database, so an
/// upload through the API takes effect in every worker without a restart.
/// Also paces pushes to `rate_per_sec` per worker process.
pub struct StoredCertificatePusher {
    store: flotte_storage::Store,
    settings: ApnsSettings,
    current: tokio::sync::Mutex<Option<(String, std::sync::Arc<ApnsClient>)>>,
    pace: tokio::sync::Mutex<tokio::time::Instant>,
}

impl StoredCertificatePusher {
    pub fn new(store: flotte_storage::Store, settings: ApnsSettings) -> Self {
        Self {
            store,
            settings,
            current: tokio::sync::Mutex::new(None),
            pace: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    async fn client(&self) -> Result<std::sync::Arc<ApnsClient>, PushError> {
        let cert = self
            .store
            .active_push_certificate()
            .await
            .map_err(|e| PushError::Transient(format!("reading the push certificate: {e}")))?
            .ok_or(PushError::NotConfigured)?;
        let mut current = self.current.lock().await;
        if let Some((sha, client)) = current.as_ref()
            && *sha == cert.sha256
        {
            return Ok(client.clone());
        }
        let pem = format!("{}{}", cert.cert_pem, cert.key_pem);
        let client = std::sync::Arc::new(ApnsClient::new(&self.settings, pem.as_bytes())?);
        *current = Some((cert.sha256, client.clone()));
        Ok(client)
    }

    /// Wait for this push's slot: one every 1/rate seconds.
    async fn wait_turn(&self) {
        let gap = Duration::from_secs_f64(1.0 / f64::from(self.settings.rate_per_sec.max(1)));
        let slot = {
            let mut next = self.pace.lock().await;
            let now = tokio::time::Instant::now();
            let slot = (*next).max(now);
            *next = slot + gap;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[async_trait]
impl PushNotifier for StoredCertificatePusher {
    async fn push(&self, target: &PushTarget) -> Result<(), PushError> {
        let client = self.client().await?;
        self.wait_turn().await;
        client.push(target).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apple_reasons_are_sorted_into_dead_token_configuration_and_transient() {
        assert_eq!(
            classify(410, "Unregistered".into()),
            PushError::BadToken("Unregistered".into())
        );
        assert_eq!(
            classify(400, "BadDeviceToken".into()),
            PushError::BadToken("BadDeviceToken".into())
        );
        assert_eq!(
            classify(403, "BadCertificate".into()),
            PushError::Rejected("BadCertificate".into())
        );
        assert_eq!(
            classify(400, "BadTopic".into()),
            PushError::Rejected("BadTopic".into())
        );
        assert_eq!(
            classify(429, "TooManyRequests".into()),
            PushError::Transient("TooManyRequests".into())
        );
        assert_eq!(
            classify(503, "ServiceUnavailable".into()),
            PushError::Transient("ServiceUnavailable".into())
        );
    }
}
