//! Who is speaking: the device identity from `Mdm-Signature`, a TLS client
//! certificate, or (behind a trusted proxy) a certificate header; checked
//! against our CA and its validity period.

use super::AppleError;
use crate::state::AppState;
use axum::http::HeaderMap;
use base64::Engine;
use chrono::{DateTime, Utc};
use std::net::SocketAddr;
use std::sync::Arc;

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
    let now = state.clock.now();
    if let Some(sig) = headers.get("mdm-signature") {
        let sig = base64::engine::general_purpose::STANDARD
            .decode(
                sig.as_bytes()
                    .iter()
                    .filter(|b| !b.is_ascii_whitespace())
                    .copied()
                    .collect::<Vec<_>>(),
            )
            .map_err(|_| AppleError::Identity("Mdm-Signature is not base64".into()))?;
        return signed(state, &sig, body, now);
    }
    let cert = if let Some(der) = tls.and_then(|t| t.peer_certificates.first()) {
        der.clone()
    } else if let Some(der) = proxy_certificate(state, headers, peer)? {
        der
    } else {
        return Err(AppleError::Identity(
            "no Mdm-Signature header and no client certificate".into(),
        ));
    };
    let sha256 = flotte_pki::sha256_fingerprint(&cert);
    if let Some(known) = state.verified.get(&sha256, now) {
        return Ok(DeviceIdentity {
            sha256,
            not_after: known.not_after,
        });
    }
    chain_check(state, &cert, None, now)
}

/// An `Mdm-Signature` over `body`. A known identity costs one signature check with its cached
/// key; a new one is checked in full (signature, then chain) and remembered.
fn signed(
    state: &AppState,
    sig: &[u8],
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<DeviceIdentity, AppleError> {
    let refused = |e: flotte_pki::PkiError| {
        AppleError::Identity(format!("Mdm-Signature does not verify: {e}"))
    };
    let parsed = flotte_pki::DetachedSignature::parse(sig).map_err(refused)?;
    let cert = parsed.signer_der();
    let sha256 = flotte_pki::sha256_fingerprint(cert);
    if let Some(known) = state.verified.get(&sha256, now)
        && let Some(key) = &known.key
    {
        parsed.verify(body, key).map_err(refused)?;
        return Ok(DeviceIdentity {
            sha256,
            not_after: known.not_after,
        });
    }
    let key = flotte_pki::SignerKey::from_certificate(cert).map_err(refused)?;
    // The signature first: garbage must not cost a chain walk.
    parsed.verify(body, &key).map_err(refused)?;
    chain_check(state, cert, Some(key), now)
}

fn chain_check(
    state: &AppState,
    cert: &[u8],
    key: Option<flotte_pki::SignerKey>,
    now: DateTime<Utc>,
) -> Result<DeviceIdentity, AppleError> {
    let info = state
        .ca
        .verify_issued(cert, now)
        .map_err(|e| AppleError::Identity(e.to_string()))?;
    state.verified.insert(
        &info.sha256_hex,
        Verified {
            not_after: info.not_after,
            key: key.map(Arc::new),
        },
    );
    Ok(DeviceIdentity {
        sha256: info.sha256_hex,
        not_after: info.not_after,
    })
}

/// Certificates that chained to our CA, with their expiry and public key: a device presents
/// the same identity on every request, and neither the chain nor the certificate need be
/// read again. Keyed by the certificate's SHA-256, so a key is only ever used for the exact
/// certificate it came from. Bounded: forgotten wholesale when full, which only costs re-checks.
#[derive(Default)]
pub(crate) struct VerifiedIdentities(
    std::sync::RwLock<std::collections::HashMap<String, Verified>>,
);

#[derive(Clone)]
struct Verified {
    not_after: DateTime<Utc>,
    /// Absent for identities first seen as TLS client certificates; filled in at their first
    /// signed message.
    key: Option<Arc<flotte_pki::SignerKey>>,
}

/// About 200,000 devices fit before the cache starts over.
const VERIFIED_CAPACITY: usize = 200_000;

impl VerifiedIdentities {
    /// A remembered identity that is still valid at `now`.
    fn get(&self, sha256: &str, now: DateTime<Utc>) -> Option<Verified> {
        self.0
            .read()
            .ok()?
            .get(sha256)
            .filter(|v| now < v.not_after)
            .cloned()
    }

    fn insert(&self, sha256: &str, verified: Verified) {
        if let Ok(mut map) = self.0.write() {
            if map.len() >= VERIFIED_CAPACITY {
                map.clear();
            }
            map.insert(sha256.to_owned(), verified);
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
