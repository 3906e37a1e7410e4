use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Public};
use openssl::sign::Verifier;
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

use crate::ber::{Reader, Tlv, Unreadable};
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

/// Checks a detached signature over `content` and returns the certificate that made it. The
/// signature is checked cryptographically only: whether the signer is trusted is the caller's
/// business (see [`CertificateAuthority::verify_issued`](crate::CertificateAuthority)).
pub fn verify_detached(content: &[u8], signature: &[u8]) -> Result<SignerCertificate, PkiError> {
    let parsed = DetachedSignature::parse(signature)?;
    let key = SignerKey::from_certificate(parsed.signer_der())?;
    parsed.verify(content, &key)?;
    let cert_der = parsed.signer_der().to_vec();
    let info = certificate_info(&cert_der)?;
    Ok(SignerCertificate { cert_der, info })
}

/// The public key of a signer certificate, ready to verify with. Building it means parsing the
/// certificate; a server keeps it next to the identity it has already checked, so that the
/// next message from the same device costs one signature check and nothing else.
pub struct SignerKey(PKey<Public>);

impl SignerKey {
    pub fn from_certificate(cert_der: &[u8]) -> Result<Self, PkiError> {
        if let Some(key) = crate::info::parse_cert(cert_der)
            .ok()
            .as_ref()
            .and_then(crate::fast::public_key)
        {
            return Ok(Self(key));
        }
        let cert = X509::from_der(cert_der)
            .map_err(|e| PkiError::Malformed(format!("signer certificate: {e}")))?;
        Ok(Self(cert.public_key()?))
    }
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SignerKey").field(&self.0.id()).finish()
    }
}

/// A detached CMS signature (`Mdm-Signature`), parsed once: which certificate signed, and what
/// to check. [`verify`](Self::verify) then needs only that certificate's key.
///
/// The shape devices send (one signer named by issuer and serial, its certificate embedded,
/// SHA-1/SHA-2 with RSA or ECDSA, signed attributes or none, BER or DER) is read here directly;
/// OpenSSL's `PKCS7_verify` spent most of its time building structures we do not need. Any other
/// shape, and anything this reader cannot read, is handed to OpenSSL as before, so the set of
/// accepted signatures does not grow and OpenSSL's error stays the answer to malformed input.
pub struct DetachedSignature<'a> {
    inner: Parsed<'a>,
}

enum Parsed<'a> {
    Direct(Direct<'a>),
    OpenSsl {
        p7: Pkcs7,
        signer: SignerCertificate,
    },
}

struct Direct<'a> {
    signer_der: &'a [u8],
    digest: MessageDigest,
    /// The signed attributes as received (`[0] IMPLICIT`), and the messageDigest among them.
    signed_attrs: Option<(&'a [u8], &'a [u8])>,
    signature: &'a [u8],
}

impl<'a> DetachedSignature<'a> {
    pub fn parse(signature: &'a [u8]) -> Result<Self, PkiError> {
        if let Ok(direct) = read_direct(signature) {
            return Ok(Self {
                inner: Parsed::Direct(direct),
            });
        }
        let p7 = parse_pkcs7(signature)?;
        let signer = single_signer(&p7)?;
        Ok(Self {
            inner: Parsed::OpenSsl { p7, signer },
        })
    }

    /// The DER of the certificate that made the signature, as embedded.
    pub fn signer_der(&self) -> &[u8] {
        match &self.inner {
            Parsed::Direct(d) => d.signer_der,
            Parsed::OpenSsl { signer, .. } => &signer.cert_der,
        }
    }

    /// Checks the signature over `content` with `key`, which must be the key of
    /// [`signer_der`](Self::signer_der)'s certificate (the caller looked it up by that
    /// certificate's fingerprint, or built it from it).
    pub fn verify(&self, content: &[u8], key: &SignerKey) -> Result<(), PkiError> {
        match &self.inner {
            Parsed::Direct(d) => d.verify(content, key),
            Parsed::OpenSsl { p7, signer } => {
                let embedded = X509::from_der(&signer.cert_der)?.public_key()?;
                if !embedded.public_eq(&key.0) {
                    return Err(PkiError::BadSignature(
                        "the key is not the signer certificate's".into(),
                    ));
                }
                let empty = Stack::<X509>::new()?;
                let store = X509StoreBuilder::new()?.build();
                p7.verify(&empty, &store, Some(content), None, verify_flags())
                    .map_err(|e| PkiError::BadSignature(e.to_string()))
            }
        }
    }
}

impl Direct<'_> {
    fn verify(&self, content: &[u8], key: &SignerKey) -> Result<(), PkiError> {
        let bad = |e: openssl::error::ErrorStack| PkiError::BadSignature(e.to_string());
        let mut verifier = Verifier::new(self.digest, &key.0).map_err(bad)?;
        match self.signed_attrs {
            None => verifier.update(content).map_err(bad)?,
            Some((attrs, message_digest)) => {
                // With signed attributes the signature covers them, and they bind the content
                // through messageDigest (RFC 5652, 5.4).
                let digest = openssl::hash::hash(self.digest, content)?;
                if *digest != *message_digest {
                    return Err(PkiError::BadSignature(
                        "messageDigest does not match the content".into(),
                    ));
                }
                // The signature is over the attributes' DER with the SET OF tag, not [0].
                verifier.update(&[0x31]).map_err(bad)?;
                verifier.update(&attrs[1..]).map_err(bad)?;
            }
        }
        if verifier.verify(self.signature).map_err(bad)? {
            Ok(())
        } else {
            Err(PkiError::BadSignature(
                "the signature does not match the content".into(),
            ))
        }
    }
}

mod oid {
    pub const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    pub const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
    pub const CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
    pub const MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
    pub const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
    pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    pub const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    pub const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
    pub const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    pub const SHA1_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
    pub const SHA256_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    pub const SHA384_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
    pub const SHA512_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    pub const SHA1_ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    pub const SHA256_ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    pub const SHA384_ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    pub const SHA512_ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_1: u8 = 0xa1;

/// Which digest a digestAlgorithm names, by its OID.
fn digest_of(oid: &[u8]) -> Option<(MessageDigest, u8)> {
    Some(match oid {
        oid::SHA1 => (MessageDigest::sha1(), 1),
        oid::SHA256 => (MessageDigest::sha256(), 2),
        oid::SHA384 => (MessageDigest::sha384(), 3),
        oid::SHA512 => (MessageDigest::sha512(), 5),
        _ => return None,
    })
}

/// Whether a signatureAlgorithm fits the digest (identified as in [`digest_of`]). The bare key
/// algorithms (rsaEncryption, as devices send it; id-ecPublicKey) name no digest of their own.
fn signature_fits(oid: &[u8], digest: u8) -> bool {
    match oid {
        oid::RSA | oid::EC_PUBLIC_KEY => true,
        oid::SHA1_RSA | oid::SHA1_ECDSA => digest == 1,
        oid::SHA256_RSA | oid::SHA256_ECDSA => digest == 2,
        oid::SHA384_RSA | oid::SHA384_ECDSA => digest == 3,
        oid::SHA512_RSA | oid::SHA512_ECDSA => digest == 5,
        _ => false,
    }
}

/// The OID of an AlgorithmIdentifier; parameters may be absent or NULL, nothing else.
fn algorithm(tlv: Tlv<'_>) -> Result<&[u8], Unreadable> {
    let mut r = tlv.expect(SEQUENCE)?.children();
    let oid = r.expect(OID)?.content;
    if let Some(params) = r.optional(0x05)?
        && !params.content.is_empty()
    {
        return Err(Unreadable);
    }
    r.finish()?;
    Ok(oid)
}

/// Issuer and serial number of a certificate, as encoded in it.
fn issuer_and_serial(cert: &[u8]) -> Result<(&[u8], &[u8]), Unreadable> {
    let mut tbs = Reader::new(cert)
        .expect(SEQUENCE)?
        .children()
        .expect(SEQUENCE)?
        .children();
    tbs.optional(CONTEXT_0)?;
    let serial = tbs.expect(INTEGER)?.raw;
    tbs.expect(SEQUENCE)?;
    let issuer = tbs.expect(SEQUENCE)?.raw;
    Ok((issuer, serial))
}

/// The signature in the shape [`DetachedSignature`] reads itself, or `Unreadable` for OpenSSL.
fn read_direct(bytes: &[u8]) -> Result<Direct<'_>, Unreadable> {
    let mut top = Reader::new(bytes);
    let mut content_info = top.expect(SEQUENCE)?.children();
    top.finish()?;
    if content_info.expect(OID)?.content != oid::SIGNED_DATA {
        return Err(Unreadable);
    }
    let mut explicit = content_info.expect(CONTEXT_0)?.children();
    content_info.finish()?;
    let mut signed_data = explicit.expect(SEQUENCE)?.children();
    explicit.finish()?;

    signed_data.expect(INTEGER)?;
    signed_data.expect(SET)?;
    let mut encap = signed_data.expect(SEQUENCE)?.children();
    if encap.expect(OID)?.content != oid::DATA {
        return Err(Unreadable);
    }
    // Detached: no eContent.
    encap.finish()?;
    let certificates = signed_data.expect(CONTEXT_0)?;
    signed_data.optional(CONTEXT_1)?;
    let mut signer_infos = signed_data.expect(SET)?.children();
    signed_data.finish()?;
    let mut signer_info = signer_infos.expect(SEQUENCE)?.children();
    // More than one signer: OpenSSL refuses it with its own words.
    signer_infos.finish()?;

    signer_info.expect(INTEGER)?;
    let mut sid = signer_info.expect(SEQUENCE)?.children();
    let sid_issuer = sid.expect(SEQUENCE)?.raw;
    let sid_serial = sid.expect(INTEGER)?.raw;
    sid.finish()?;
    let (digest, digest_id) = digest_of(algorithm(signer_info.next()?)?).ok_or(Unreadable)?;
    let signed_attrs = match signer_info.optional(CONTEXT_0)? {
        Some(attrs) => Some(read_signed_attrs(attrs)?),
        None => None,
    };
    if !signature_fits(algorithm(signer_info.next()?)?, digest_id) {
        return Err(Unreadable);
    }
    let signature = signer_info.expect(OCTET_STRING)?.content;
    signer_info.optional(CONTEXT_1)?;
    signer_info.finish()?;

    // The signer's certificate: the first embedded one with the issuer and serial the signer
    // names, as OpenSSL picks it. Only DER certificates: the fingerprint is over these bytes.
    let mut certs = certificates.children();
    while !certs.is_empty() {
        let cert = certs.expect(SEQUENCE)?;
        if !cert.definite {
            return Err(Unreadable);
        }
        if issuer_and_serial(cert.raw)? == (sid_issuer, sid_serial) {
            return Ok(Direct {
                signer_der: cert.raw,
                digest,
                signed_attrs,
                signature,
            });
        }
    }
    Err(Unreadable)
}

/// The signed attributes and the messageDigest among them. They must be DER (definite lengths),
/// since the signature covers their encoding; contentType, if present, must say id-data.
fn read_signed_attrs(attrs: Tlv<'_>) -> Result<(&[u8], &[u8]), Unreadable> {
    if !attrs.definite || !all_definite(attrs.children()) {
        return Err(Unreadable);
    }
    let mut message_digest = None;
    let mut r = attrs.children();
    while !r.is_empty() {
        let mut attr = r.expect(SEQUENCE)?.children();
        let kind = attr.expect(OID)?.content;
        let mut values = attr.expect(SET)?.children();
        attr.finish()?;
        let value = values.next()?;
        values.finish()?;
        match kind {
            oid::MESSAGE_DIGEST => {
                if message_digest.is_some() {
                    return Err(Unreadable);
                }
                message_digest = Some(value.expect(OCTET_STRING)?.content);
            }
            oid::CONTENT_TYPE if value.expect(OID)?.content != oid::DATA => {
                return Err(Unreadable);
            }
            _ => {}
        }
    }
    Ok((attrs.raw, message_digest.ok_or(Unreadable)?))
}

/// Whether every element is definite-length, all the way down: the signature covers the signed
/// attributes' DER, and BER sent as-is would be checked against bytes nobody signed.
fn all_definite(mut r: Reader<'_>) -> bool {
    while !r.is_empty() {
        match r.next() {
            Ok(t) if t.definite => {
                if t.tag & 0x20 != 0 && !all_definite(t.children()) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn is_direct(sig: &[u8]) -> bool {
        matches!(
            DetachedSignature::parse(sig).unwrap().inner,
            Parsed::Direct(_)
        )
    }

    /// The fast path must be the one real devices take, or it only adds code.
    #[test]
    fn device_shapes_are_read_directly() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors");
        let header = std::fs::read_to_string(dir.join("apple/mdm-signature-header.b64")).unwrap();
        let sig = base64::engine::general_purpose::STANDARD
            .decode(header.trim())
            .unwrap();
        assert!(is_direct(&sig));

        let ca_dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now();
        let ca = crate::CertificateAuthority::load_or_create(ca_dir.path(), "T", now).unwrap();
        let device = ca
            .issue_client_certificate(&crate::ClientCertificateRequest::new("d", 30), now)
            .unwrap();
        // Our simulator's shape: DER, SHA-256, signed attributes.
        let ours =
            sign_detached(b"x", &device.cert_pem, device.key_pem.as_deref().unwrap()).unwrap();
        assert!(is_direct(&ours));
    }
}
