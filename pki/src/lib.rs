//! Certificates and signatures for Flotte.
//!
//! Two libraries share the work on purpose: rcgen builds every certificate (its output is plain DER
//! we control field by field), while OpenSSL does CMS/PKCS#7 and PKCS#12, because devices send BER
//! signatures and expect legacy PKCS#12 algorithms that the pure-Rust crates do not handle.
//! The one exception is the hot path of device messages: `Mdm-Signature` is read by a small BER
//! reader of our own ([`DetachedSignature`]) and checked with OpenSSL's raw signature
//! verification, with `PKCS7_verify` kept for every shape the reader does not know.
//!
//! Nothing in this crate reads the system clock: every time-dependent call takes `now`, so that
//! tests can travel in time and the server decides what "now" means.

mod ber;
mod ca;
mod cms;
mod csr;
mod error;
mod fast;
mod info;
mod keys;
mod pkcs12;

pub use ca::{
    CertificateAuthority, ClientCertificateRequest, IssuedCertificate, MAX_SERVER_VALIDITY_DAYS,
    RevokedCertificate, ServerKeyType,
};
pub use cms::{
    DetachedSignature, SignerCertificate, SignerKey, open_attached, sign_attached, sign_detached,
    verify_detached,
};
pub use csr::{CsrInfo, inspect_csr};
pub use error::PkiError;
pub use info::{
    CertificateInfo, certificate_info, der_to_pem, pem_to_der, push_topic, sha256_fingerprint,
};
pub use keys::{csr_with_key, generate_csr};
pub use pkcs12::{parse_pkcs12, pkcs12};
