//! Who is speaking: the device identity from `Mdm-Signature`, a TLS client
//! certificate, or (behind a trusted proxy) a certificate header; checked
//! against our CA and its validity period.

use super::AppleError;
use crate::state::AppState;
use axum::http::HeaderMap;
use base64::Engine;
use chrono::{DateTime, Utc};
use std::net::SocketAddr;

pub(crate) struct DeviceIdentity {
    pub sha256: String,
    pub not_after: DateTime<Utc>,
}

pub(crate) fn identify(
    state: &AppState,
    headers: &HeaderMap,
    tls: Option<&axum_server::tls::TlsInfo>,
    peer: SocketAddr,
    body: &[u8],
) -> Result<DeviceIdentity, AppleError> {
    let cert = if let Some(sig) = headers.get("mdm-signature") {
        let sig = base64::engine::general_purpose::STANDARD
            .decode(
                sig.as_bytes()
                    .iter()
                    .filter(|b| !b.is_ascii_whitespace())
                    .copied()
                    .collect::<Vec<_>>(),
            )
            .map_err(|_| AppleError::Identity("Mdm-Signature is not base64".into()))?;
        flotte_pki::verify_detached(body, &sig)
            .map_err(|e| AppleError::Identity(format!("Mdm-Signature does not verify: {e}")))?
            .cert_der
    } else if let Some(der) = tls.and_then(|t| t.peer_certificates.first()) {
        der.clone()
    } else if let Some(der) = proxy_certificate(state, headers, peer)? {
        der
    } else {
        return Err(AppleError::Identity(
            "no Mdm-Signature header and no client certificate".into(),
        ));
    };
    let now = state.clock.now();
    let sha256 = flotte_pki::sha256_fingerprint(&cert);
    if let Some(not_after) = state.verified.get(&sha256)
        && now < not_after
    {
        return Ok(DeviceIdentity { sha256, not_after });
    }
    let info = state
        .ca
        .verify_issued(&cert, now)
        .map_err(|e| AppleError::Identity(e.to_string()))?;
    state.verified.insert(&info.sha256_hex, info.not_after);
    Ok(DeviceIdentity {
        sha256: info.sha256_hex,
        not_after: info.not_after,
    })
}

/// Certificates that chained to our CA, with their expiry: a device presents
/// the same identity on every request, and the chain need not be walked each
/// time. Bounded: forgotten wholesale when full, which only costs re-checks.
#[derive(Default)]
pub(crate) struct VerifiedIdentities(
    std::sync::RwLock<std::collections::HashMap<String, DateTime<Utc>>>,
);

/// About 200,000 devices fit before the cache starts over.
const VERIFIED_CAPACITY: usize = 200_000;

impl VerifiedIdentities {
    fn get(&self, sha256: &str) -> Option<DateTime<Utc>> {
        self.0.read().ok()?.get(sha256).copied()
    }

    fn insert(&self, sha256: &str, not_after: DateTime<Utc>) {
        if let Ok(mut map) = self.0.write() {
            if map.len() >= VERIFIED_CAPACITY {
                map.clear();
            }
            map.insert(sha256.to_owned(), not_after);
        }
    }
}

/// The certificate a TLS-terminating proxy forwarded, if the proxy is trusted.
fn proxy_certificate(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Option<Vec<u8>>, AppleError> {
    let settings = &state.settings.apple;
    let Some(name) = settings.cert_header.as_deref() else {
        return Ok(None);
    };
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    if !settings.trusted_proxies.contains(&peer.ip()) {
        return Err(AppleError::Identity(format!(
            "{name} header from {} which is not a trusted proxy",
            peer.ip()
        )));
    }
    let text = value
        .to_str()
        .map_err(|_| AppleError::Identity(format!("{name} header is not text")))?
        .trim();
    // RFC 9440: a structured-field byte sequence, `:base64:`.
    if let Some(inner) = text.strip_prefix(':').and_then(|t| t.strip_suffix(':')) {
        return base64::engine::general_purpose::STANDARD
            .decode(inner)
            .map(Some)
            .map_err(|_| AppleError::Identity(format!("{name} header is not RFC 9440 base64")));
    }
    // nginx's $ssl_client_escaped_cert: URL-escaped PEM.
    let pem = percent_decode(text);
    flotte_pki::pem_to_der(&pem)
        .map(Some)
        .map_err(|e| AppleError::Identity(format!("{name} header: {e}")))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
