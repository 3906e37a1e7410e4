use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;

use crate::PkiError;
use crate::keys::MIN_RSA_BITS;

/// Microsoft's device-id request extension (Windows enrolment): raw ASCII plus a NUL, not DER.
const DEVICE_ID_OID: &str = "1.3.6.1.4.1.311.66.1.0";

/// What a device claims in its CSR. Only for cross-checking against what it said elsewhere
/// (Windows' AdditionalContext DeviceID): none of it is ever copied into a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrInfo {
    /// Trailing NULs removed: Windows 10 ends its CN with one, inside a PrintableString.
    pub common_name: Option<String>,
    /// The 1.3.6.1.4.1.311.66.1.0 extension, trailing NUL removed.
    pub device_id: Option<String>,
    /// The PKCS#9 challengePassword, which SCEP uses as the enrolment secret.
    pub challenge_password: Option<String>,
    /// Lowercase hex SHA-256 of the SubjectPublicKeyInfo, to spot a key reused across requests.
    pub public_key_sha256: String,
}

/// Parses a PKCS#10 and checks that it proves possession of its key. The key size is checked
/// first: ring cannot even verify signatures by short RSA keys, and "weak key" is the more useful
/// answer than "bad signature".
pub(crate) fn parse_verified_csr(csr_der: &[u8]) -> Result<X509CertificationRequest<'_>, PkiError> {
    let (rest, csr) = X509CertificationRequest::from_der(csr_der)
        .map_err(|e| PkiError::Malformed(format!("CSR: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::Malformed("trailing bytes after CSR".into()));
    }
    match csr.certification_request_info.subject_pki.parsed() {
        Ok(PublicKey::RSA(rsa)) if rsa.key_size() < MIN_RSA_BITS as usize => {
            return Err(PkiError::Unsupported(format!(
                "RSA key of {} bits in CSR (minimum {MIN_RSA_BITS})",
                rsa.key_size()
            )));
        }
        Ok(_) => {}
        Err(e) => return Err(PkiError::Malformed(format!("CSR public key: {e}"))),
    }
    csr.verify_signature()
        .map_err(|e| PkiError::BadSignature(format!("CSR self-signature: {e}")))?;
    Ok(csr)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\0')
        .to_owned()
}

/// Reads a device CSR after verifying its self-signature, so that nothing is reported from a
/// request the device could not have made.
pub fn inspect_csr(csr_der: &[u8]) -> Result<CsrInfo, PkiError> {
    let csr = parse_verified_csr(csr_der)?;
    let info = &csr.certification_request_info;
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .map(|cn| text(cn.as_slice()));
    let mut device_id = None;
    let mut challenge_password = None;
    for attr in info.iter_attributes() {
        match attr.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(req) => {
                device_id = req
                    .extensions
                    .iter()
                    .find(|ext| ext.oid.to_id_string() == DEVICE_ID_OID)
                    .map(|ext| text(ext.value));
            }
            ParsedCriAttribute::ChallengePassword(pw) => challenge_password = Some(pw.0.clone()),
            ParsedCriAttribute::UnsupportedAttribute => {}
        }
    }
    Ok(CsrInfo {
        common_name,
        device_id,
        challenge_password,
        public_key_sha256: crate::sha256_fingerprint(info.subject_pki.raw),
    })
}
