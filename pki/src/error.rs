use std::path::PathBuf;

use chrono::{DateTime, Utc};

/// What went wrong, split by what a caller does about it: a device's bad input is answered
/// differently (HTTP 400/401/403) from a broken CA directory (refuse to start) or a library failure.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A signature (CSR self-signature, CMS signature, certificate signature) does not verify.
    #[error("signature does not verify: {0}")]
    BadSignature(String),
    /// The certificate was not issued by our issuing CA, or its chain does not reach our root.
    #[error("certificate is not issued by this CA: {0}")]
    UntrustedIssuer(String),
    #[error("certificate expired at {not_after}")]
    Expired { not_after: DateTime<Utc> },
    #[error("certificate is not valid before {not_before}")]
    NotYetValid { not_before: DateTime<Utc> },
    /// Input bytes are not what they claim to be (bad DER/BER/PEM, missing parts).
    #[error("malformed input: {0}")]
    Malformed(String),
    /// A key type or algorithm we deliberately do not support (e.g. RSA shorter than 2048 bits).
    #[error("unsupported key or algorithm: {0}")]
    Unsupported(String),
    /// The caller asked for something that cannot be issued (bad DNS name, zero validity, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A private key does not belong to the certificate it was paired with.
    #[error("private key does not match certificate: {0}")]
    KeyMismatch(String),
    /// The PKCS#12 MAC or decryption failed, which in practice means a wrong password.
    #[error("wrong password or corrupted PKCS#12")]
    WrongPassword,
    /// The CA directory holds an inconsistent set of files; we never overwrite them to "repair" it.
    #[error("CA directory {dir}: {reason}")]
    CaDirectory { dir: PathBuf, reason: String },
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// OpenSSL or rcgen failed where the input was not to blame.
    #[error("crypto library error: {0}")]
    Crypto(String),
}

impl PkiError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<openssl::error::ErrorStack> for PkiError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::Crypto(e.to_string())
    }
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        match e {
            rcgen::Error::InvalidAsn1String(_)
            | rcgen::Error::InvalidIpAddressOctetLength(_)
            | rcgen::Error::InvalidNameType => Self::InvalidRequest(e.to_string()),
            rcgen::Error::UnsupportedSignatureAlgorithm => Self::Unsupported(e.to_string()),
            _ => Self::Crypto(e.to_string()),
        }
    }
}
