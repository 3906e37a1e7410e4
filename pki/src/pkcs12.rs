use std::sync::OnceLock;

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::provider::Provider;
use openssl::stack::Stack;
use openssl::x509::X509;

use crate::PkiError;

/// PBE-SHA1-3DES runs on OpenSSL 3's default provider (3DES and the PKCS#12 KDF live there), so
/// we can write the legacy format without it. The legacy provider is still loaded, once and for
/// the process lifetime (dropping a `Provider` unloads it), so that *reading* old RC2-40 PKCS#12
/// files works; if it is not installed we do without.
fn legacy_provider() {
    static LEGACY: OnceLock<Option<Provider>> = OnceLock::new();
    LEGACY.get_or_init(|| Provider::try_load(None, "legacy", true).ok());
}

/// PBE-SHA1-3DES for key and certificates and an HMAC-SHA1 MAC: older iPadOS and Windows
/// releases refuse PBES2/AES PKCS#12 files, and this combination is read by every version.
pub fn pkcs12(
    cert_pem: &str,
    key_pem: &str,
    chain_pem: &[String],
    friendly_name: &str,
    password: &str,
) -> Result<Vec<u8>, PkiError> {
    let cert = X509::from_pem(cert_pem.as_bytes())
        .map_err(|e| PkiError::Malformed(format!("certificate: {e}")))?;
    let key = crate::keys::key_from_pem(key_pem)?;
    if !cert.public_key()?.public_eq(&key.openssl) {
        return Err(PkiError::KeyMismatch(
            "key is not the certificate's key".into(),
        ));
    }
    let mut chain = Stack::new()?;
    for pem in chain_pem {
        for c in X509::stack_from_pem(pem.as_bytes())
            .map_err(|e| PkiError::Malformed(format!("chain certificate: {e}")))?
        {
            chain.push(c)?;
        }
    }
    let mut builder = Pkcs12::builder();
    builder
        .name(friendly_name)
        .pkey(&key.openssl)
        .cert(&cert)
        .key_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
        .cert_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
        .mac_md(MessageDigest::sha1());
    if !chain.is_empty() {
        builder.ca(chain);
    }
    Ok(builder.build2(password)?.to_der()?)
}

/// Returns (certificate PEM, PKCS#8 key PEM).
pub fn parse_pkcs12(der: &[u8], password: &str) -> Result<(String, String), PkiError> {
    legacy_provider();
    let p12 = Pkcs12::from_der(der).map_err(|e| PkiError::Malformed(format!("PKCS#12: {e}")))?;
    let parsed = p12.parse2(password).map_err(|_| PkiError::WrongPassword)?;
    let cert = parsed
        .cert
        .ok_or_else(|| PkiError::Malformed("PKCS#12 holds no certificate".into()))?;
    let key = parsed
        .pkey
        .ok_or_else(|| PkiError::Malformed("PKCS#12 holds no private key".into()))?;
    let cert_pem = String::from_utf8(cert.to_pem()?)
        .map_err(|e| PkiError::Crypto(format!("certificate PEM: {e}")))?;
    let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8()?)
        .map_err(|e| PkiError::Crypto(format!("key PEM: {e}")))?;
    Ok((cert_pem, key_pem))
}

#[cfg(test)]
mod tests {
    use openssl::asn1::Asn1Time;
    use openssl::x509::X509Builder;

    use super::*;

    /// Nothing in this test binary loads the legacy provider, so this proves that writing
    /// PBE-SHA1-3DES needs only OpenSSL 3's default provider.
    #[test]
    fn legacy_format_is_written_without_the_legacy_provider() {
        let key = crate::keys::new_rsa_key().unwrap();
        let mut builder = X509Builder::new().unwrap();
        builder.set_version(2).unwrap();
        builder.set_pubkey(&key.openssl).unwrap();
        builder
            .set_not_before(&Asn1Time::from_unix(1_700_000_000).unwrap())
            .unwrap();
        builder
            .set_not_after(&Asn1Time::from_unix(1_800_000_000).unwrap())
            .unwrap();
        builder.sign(&key.openssl, MessageDigest::sha256()).unwrap();
        let cert = String::from_utf8(builder.build().to_pem().unwrap()).unwrap();

        let der = pkcs12(&cert, &key.pem, &[], "x", "pw").unwrap();
        let p12 = Pkcs12::from_der(&der).unwrap();
        let parsed = p12.parse2("pw").unwrap();
        assert!(parsed.cert.is_some() && parsed.pkey.is_some());
    }
}
