use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509NameBuilder, X509ReqBuilder};
use rustls_pki_types::PrivatePkcs8KeyDer;

use crate::PkiError;

/// Below this, keys are refused: Apple (since iOS 13) and Windows policy both reject shorter RSA.
pub(crate) const MIN_RSA_BITS: u32 = 2048;

/// One private key in the three shapes the crate needs: rcgen signs certificates, OpenSSL signs
/// CMS, and the PEM is what gets stored or handed out.
pub(crate) struct Key {
    pub(crate) rcgen: rcgen::KeyPair,
    pub(crate) openssl: PKey<Private>,
    pub(crate) pem: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even in debug logs.
        f.debug_struct("Key")
            .field("algorithm", &self.rcgen.algorithm())
            .finish_non_exhaustive()
    }
}

/// RSA-2048 because it is the one key type every Apple and Windows release accepts everywhere
/// (identity certificates, Wi-Fi EAP-TLS, profile signing); ring cannot generate RSA, OpenSSL can.
pub(crate) fn new_rsa_key() -> Result<Key, PkiError> {
    let rsa = Rsa::generate(MIN_RSA_BITS)?;
    key_from_openssl(PKey::from_rsa(rsa)?)
}

pub(crate) fn new_p256_key() -> Result<Key, PkiError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    key_from_openssl(PKey::from_ec_key(EcKey::generate(&group)?)?)
}

/// Accepts PKCS#8, PKCS#1 and SEC1 PEM so that operator-supplied keys work whatever tool made
/// them; the key is normalised to PKCS#8, the only form ring (inside rcgen) reads.
pub(crate) fn key_from_pem(pem: &str) -> Result<Key, PkiError> {
    let pkey = PKey::private_key_from_pem(pem.as_bytes())
        .map_err(|e| PkiError::Malformed(format!("private key: {e}")))?;
    key_from_openssl(pkey)
}

pub(crate) fn key_from_openssl(pkey: PKey<Private>) -> Result<Key, PkiError> {
    let alg: &'static rcgen::SignatureAlgorithm = match pkey.id() {
        Id::RSA => {
            if pkey.bits() < MIN_RSA_BITS {
                return Err(PkiError::Unsupported(format!(
                    "RSA key of {} bits (minimum {MIN_RSA_BITS})",
                    pkey.bits()
                )));
            }
            &rcgen::PKCS_RSA_SHA256
        }
        Id::EC => match pkey.ec_key()?.group().curve_name() {
            Some(Nid::X9_62_PRIME256V1) => &rcgen::PKCS_ECDSA_P256_SHA256,
            Some(Nid::SECP384R1) => &rcgen::PKCS_ECDSA_P384_SHA384,
            other => {
                return Err(PkiError::Unsupported(format!("EC curve {other:?}")));
            }
        },
        Id::ED25519 => &rcgen::PKCS_ED25519,
        other => return Err(PkiError::Unsupported(format!("key type {other:?}"))),
    };
    let der = pkey.private_key_to_pkcs8()?;
    let rcgen = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(der.as_slice()),
        alg,
    )?;
    let pem = String::from_utf8(pkey.private_key_to_pem_pkcs8()?)
        .map_err(|e| PkiError::Crypto(format!("key PEM is not UTF-8: {e}")))?;
    Ok(Key {
        rcgen,
        openssl: pkey,
        pem,
    })
}

/// 17 bytes: 16 full random bytes behind a first byte in 0x40..=0x7f, so the serial is positive,
/// always encodes in exactly 17 octets (well under RFC 5280's 20) and carries more than 128 random
/// bits, which is what makes chosen-prefix collisions on the signature impractical.
pub(crate) fn random_serial() -> Result<Vec<u8>, PkiError> {
    let mut bytes = [0u8; 17];
    openssl::rand::rand_bytes(&mut bytes)?;
    bytes[0] = (bytes[0] & 0x3f) | 0x40;
    Ok(bytes.to_vec())
}

/// The Windows simulator needs what a real PC sends: a PKCS#10 signed with a fresh RSA-2048 key.
pub fn generate_csr(common_name: &str) -> Result<(Vec<u8>, String), PkiError> {
    let key = new_rsa_key()?;
    Ok((csr_for(&key, common_name)?, key.pem))
}

/// A PKCS#10 for an existing key. Benchmarks mint thousands of device
/// identities; generating an RSA key for each would dominate the run.
pub fn csr_with_key(common_name: &str, key_pem: &str) -> Result<Vec<u8>, PkiError> {
    csr_for(&key_from_pem(key_pem)?, common_name)
}

fn csr_for(key: &Key, common_name: &str) -> Result<Vec<u8>, PkiError> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .map_err(|e| PkiError::InvalidRequest(format!("common name: {e}")))?;
    let name = name.build();
    let mut req = X509ReqBuilder::new()?;
    req.set_version(0)?;
    req.set_subject_name(&name)?;
    req.set_pubkey(&key.openssl)?;
    req.sign(&key.openssl, MessageDigest::sha256())?;
    Ok(req.build().to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_17_bytes_and_differ() {
        let a = random_serial().unwrap();
        let b = random_serial().unwrap();
        assert_eq!(a.len(), 17);
        assert!(a[0] >= 0x40 && a[0] < 0x80);
        assert_ne!(a, b);
    }

    #[test]
    fn short_rsa_keys_are_refused() {
        let pkey = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
        assert!(matches!(
            key_from_openssl(pkey),
            Err(PkiError::Unsupported(_))
        ));
    }

    #[test]
    fn pkcs1_pem_is_accepted_and_normalised_to_pkcs8() {
        let rsa = Rsa::generate(2048).unwrap();
        let pkcs1 = String::from_utf8(rsa.private_key_to_pem().unwrap()).unwrap();
        assert!(pkcs1.contains("BEGIN RSA PRIVATE KEY"));
        let key = key_from_pem(&pkcs1).unwrap();
        assert!(key.pem.contains("BEGIN PRIVATE KEY"));
        assert_eq!(key.rcgen.algorithm(), &rcgen::PKCS_RSA_SHA256);
    }
}
