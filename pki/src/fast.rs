//! The two certificate operations on a device's first message, without OpenSSL's X.509 decoder.
//!
//! OpenSSL 3.0 decodes a certificate's public key through its provider decoders, which cost
//! about 0.1 ms per certificate here (`X509::from_der`), and a chain check builds a store and a
//! context besides: a new device identity cost 0.3 ms before a byte of its message was used.
//! Both answers only need the public key and one signature check, which this module gets from
//! the certificate as x509-parser reads it. Each function answers only "yes" or "cannot tell":
//! anything unusual goes to the OpenSSL path as before, so what is accepted and what errors are
//! given do not change.

use chrono::{DateTime, Utc};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;
use openssl::sign::Verifier;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
};

/// The certificate's RSA or EC (P-256, P-384) public key; `None` for any other kind.
pub(crate) fn public_key(cert: &X509Certificate<'_>) -> Option<PKey<Public>> {
    let spki = cert.public_key();
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        let x509_parser::public_key::PublicKey::RSA(rsa) = spki.parsed().ok()? else {
            return None;
        };
        let n = BigNum::from_slice(rsa.modulus).ok()?;
        let e = BigNum::from_slice(rsa.exponent).ok()?;
        return PKey::from_rsa(Rsa::from_public_components(n, e).ok()?).ok();
    }
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
        let nid = if curve == OID_EC_P256 {
            Nid::X9_62_PRIME256V1
        } else if curve == OID_NIST_EC_P384 {
            Nid::SECP384R1
        } else {
            return None;
        };
        let group = EcGroup::from_curve_name(nid).ok()?;
        let mut ctx = openssl::bn::BigNumContext::new().ok()?;
        let point = EcPoint::from_bytes(&group, &spki.subject_public_key.data, &mut ctx).ok()?;
        return PKey::from_ec_key(EcKey::from_public_key(&group, &point).ok()?).ok();
    }
    None
}

/// The digest of a certificate signature algorithm this module checks itself.
fn digest_of(cert: &X509Certificate<'_>) -> Option<MessageDigest> {
    let outer = &cert.signature_algorithm;
    // RFC 5280 4.1.1.2: the algorithm inside the signed part must be the same; OpenSSL refuses
    // a certificate where they differ, and so must we.
    if outer != &cert.tbs_certificate.signature {
        return None;
    }
    let oid = &outer.algorithm;
    if *oid == OID_PKCS1_SHA256WITHRSA || *oid == OID_SIG_ECDSA_WITH_SHA256 {
        Some(MessageDigest::sha256())
    } else if *oid == OID_PKCS1_SHA384WITHRSA || *oid == OID_SIG_ECDSA_WITH_SHA384 {
        Some(MessageDigest::sha384())
    } else if *oid == OID_PKCS1_SHA512WITHRSA {
        Some(MessageDigest::sha512())
    } else {
        None
    }
}

/// Our issuing CA, as needed to recognise its own signature on a certificate it issued: its
/// name, its key, and the span in which both it and the root are valid. The CA is only loaded
/// when the issuing certificate verifies against the root, so recognising the issuing CA's
/// signature is the whole chain check.
pub(crate) struct OwnIssuer {
    subject: Vec<u8>,
    key: PKey<Public>,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
}

impl OwnIssuer {
    /// `None` when the issuing CA's key is of a kind [`public_key`] does not read.
    pub(crate) fn new(
        issuing: &X509Certificate<'_>,
        chain_not_before: DateTime<Utc>,
        chain_not_after: DateTime<Utc>,
    ) -> Option<Self> {
        Some(Self {
            subject: issuing.subject().as_raw().to_vec(),
            key: public_key(issuing)?,
            not_before: chain_not_before,
            not_after: chain_not_after,
        })
    }

    /// True when the issuing CA signed `cert` and the chain above it is valid at `now`; false
    /// means "not shown here", not "forged". The caller has checked the certificate's own
    /// validity period and that it is not a CA.
    pub(crate) fn signed(&self, cert: &X509Certificate<'_>, now: DateTime<Utc>) -> bool {
        if cert.issuer().as_raw() != self.subject.as_slice()
            || now < self.not_before
            || now > self.not_after
            || cert.signature_value.unused_bits != 0
        {
            return false;
        }
        let Some(digest) = digest_of(cert) else {
            return false;
        };
        Verifier::new(digest, &self.key)
            .and_then(|mut v| {
                v.verify_oneshot(&cert.signature_value.data, cert.tbs_certificate.as_ref())
            })
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key read here is the key OpenSSL reads, for every kind this module handles.
    #[test]
    fn public_keys_match_openssls_reading() {
        let rsa = crate::keys::new_rsa_key().unwrap().rcgen;
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        for key in [rsa, p256, p384] {
            let cert = rcgen::CertificateParams::new(vec!["device".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let parsed = crate::info::parse_cert(cert.der()).unwrap();
            let ours = public_key(&parsed).expect("a key of a handled kind");
            let openssls = openssl::x509::X509::from_der(cert.der())
                .unwrap()
                .public_key()
                .unwrap();
            assert!(ours.public_eq(&openssls), "{:?}", key.algorithm());
        }
    }

    #[test]
    fn other_key_kinds_are_left_to_openssl() {
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["device".into()])
            .unwrap()
            .self_signed(&ed)
            .unwrap();
        assert!(public_key(&crate::info::parse_cert(cert.der()).unwrap()).is_none());
    }
}
