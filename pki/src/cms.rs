use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

use crate::{CertificateInfo, PkiError, certificate_info};

/// The certificate that made a signature, so the caller can check it against the CA and bind it
/// to an enrolment (by `info.sha256_hex`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerCertificate {
    pub cert_der: Vec<u8>,
    pub info: CertificateInfo,
}

fn load_signer(cert_pem: &str, key_pem: &str) -> Result<(X509, crate::keys::Key), PkiError> {
    let cert = X509::from_pem(cert_pem.as_bytes())
        .map_err(|e| PkiError::Malformed(format!("signer certificate: {e}")))?;
    let key = crate::keys::key_from_pem(key_pem)?;
    if !cert.public_key()?.public_eq(&key.openssl) {
        return Err(PkiError::KeyMismatch(
            "signer key is not the signer certificate's key".into(),
        ));
    }
    Ok((cert, key))
}

fn chain_stack(chain_pem: &[String]) -> Result<Stack<X509>, PkiError> {
    let mut stack = Stack::new()?;
    for pem in chain_pem {
        for cert in X509::stack_from_pem(pem.as_bytes())
            .map_err(|e| PkiError::Malformed(format!("chain certificate: {e}")))?
        {
            stack.push(cert)?;
        }
    }
    Ok(stack)
}

/// CMS SignedData with the content inside, SHA-256, signer certificate and chain embedded: the
/// shape of a signed .mobileconfig. BINARY keeps OpenSSL from rewriting LF to CRLF, which would
/// change the plist the device sees.
pub fn sign_attached(
    content: &[u8],
    signer_cert_pem: &str,
    signer_key_pem: &str,
    chain_pem: &[String],
) -> Result<Vec<u8>, PkiError> {
    let (cert, key) = load_signer(signer_cert_pem, signer_key_pem)?;
    let chain = chain_stack(chain_pem)?;
    let cms = CmsContentInfo::sign(
        Some(&cert),
        Some(&key.openssl),
        Some(&chain),
        Some(content),
        CMSOptions::BINARY | CMSOptions::NOSMIMECAP,
    )?;
    Ok(cms.to_der()?)
}

/// What an iPad puts in `Mdm-Signature`: a detached signature over the body with the signer
/// certificate embedded. Used by the device simulator; devices themselves use SHA-1 and no
/// signed attributes, which [`verify_detached`] accepts as well.
pub fn sign_detached(
    content: &[u8],
    signer_cert_pem: &str,
    signer_key_pem: &str,
) -> Result<Vec<u8>, PkiError> {
    let (cert, key) = load_signer(signer_cert_pem, signer_key_pem)?;
    let cms = CmsContentInfo::sign(
        Some(&cert),
        Some(&key.openssl),
        None,
        Some(content),
        CMSOptions::BINARY | CMSOptions::DETACHED | CMSOptions::NOSMIMECAP,
    )?;
    Ok(cms.to_der()?)
}

fn parse_pkcs7(der: &[u8]) -> Result<Pkcs7, PkiError> {
    // d2i accepts BER (indefinite lengths included), which is what devices send.
    let p7 = Pkcs7::from_der(der).map_err(|e| PkiError::Malformed(format!("PKCS#7: {e}")))?;
    if p7.signed().is_none() {
        return Err(PkiError::Malformed("PKCS#7 is not SignedData".into()));
    }
    Ok(p7)
}

/// Exactly one signer: with several, "the" device identity would be ambiguous and an attacker
/// could add a signer of their choosing next to a genuine one.
fn single_signer(p7: &Pkcs7) -> Result<SignerCertificate, PkiError> {
    let empty = Stack::<X509>::new()?;
    let signers = p7
        .signers(&empty, Pkcs7Flags::empty())
        .map_err(|e| PkiError::Malformed(format!("signer certificate not found: {e}")))?;
    if signers.len() != 1 {
        return Err(PkiError::Malformed(format!(
            "expected one signer, found {}",
            signers.len()
        )));
    }
    let cert_der = signers
        .get(0)
        .ok_or_else(|| PkiError::Malformed("no signer".into()))?
        .to_der()?;
    let info = certificate_info(&cert_der)?;
    Ok(SignerCertificate { cert_der, info })
}

/// Verification flags shared by both verify paths: NOVERIFY because the chain is the caller's job
/// (against *our* CA, not a system store), BINARY so the bytes are hashed exactly as received.
fn verify_flags() -> Pkcs7Flags {
    Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY
}

pub fn verify_detached(content: &[u8], signature: &[u8]) -> Result<SignerCertificate, PkiError> {
    let p7 = parse_pkcs7(signature)?;
    let signer = single_signer(&p7)?;
    let empty = Stack::<X509>::new()?;
    let store = X509StoreBuilder::new()?.build();
    p7.verify(&empty, &store, Some(content), None, verify_flags())
        .map_err(|e| PkiError::BadSignature(e.to_string()))?;
    Ok(signer)
}

/// Unwraps a signed profile after checking its signature cryptographically; whether the signer
/// is trusted is left to the caller, as with [`verify_detached`].
pub fn open_attached(signed: &[u8]) -> Result<(Vec<u8>, CertificateInfo), PkiError> {
    let p7 = parse_pkcs7(signed)?;
    let signer = single_signer(&p7)?;
    let empty = Stack::<X509>::new()?;
    let store = X509StoreBuilder::new()?.build();
    let mut content = Vec::new();
    p7.verify(&empty, &store, None, Some(&mut content), verify_flags())
        .map_err(|e| PkiError::BadSignature(e.to_string()))?;
    Ok((content, signer.info))
}
