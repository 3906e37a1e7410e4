use base64::Engine as _;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::PkiError;

/// The facts about a certificate that the server stores and logs; plain strings so that callers
/// need no X.509 library of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// RFC 4514-like rendering, e.g. `CN=device, O=School`.
    pub subject: String,
    pub common_name: Option<String>,
    /// Lowercase hex, big-endian, without leading zero bytes: the key a CRL and the database use.
    pub serial_hex: String,
    /// Lowercase hex SHA-256 of the DER: what Apple-style cert binding stores per enrolment.
    pub sha256_hex: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub issuer: String,
}

/// Lowercase hex so it can be compared with stored values without case folding.
pub fn sha256_fingerprint(cert_der: &[u8]) -> String {
    hex::encode(Sha256::digest(cert_der))
}

pub(crate) fn parse_cert(cert_der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    let (rest, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| PkiError::Malformed(format!("certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::Malformed(
            "trailing bytes after certificate".into(),
        ));
    }
    Ok(cert)
}

pub(crate) fn serial_hex_of(cert: &X509Certificate<'_>) -> String {
    let raw = cert.raw_serial();
    let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let hex = hex::encode(&raw[first..]);
    if hex.is_empty() { "00".into() } else { hex }
}

fn asn1_time(t: &x509_parser::time::ASN1Time) -> Result<DateTime<Utc>, PkiError> {
    DateTime::from_timestamp(t.timestamp(), 0)
        .ok_or_else(|| PkiError::Malformed("certificate time out of range".into()))
}

pub(crate) fn info_of(
    cert: &X509Certificate<'_>,
    cert_der: &[u8],
) -> Result<CertificateInfo, PkiError> {
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(CertificateInfo {
        subject: cert.subject().to_string(),
        common_name,
        serial_hex: serial_hex_of(cert),
        sha256_hex: sha256_fingerprint(cert_der),
        not_before: asn1_time(&cert.validity().not_before)?,
        not_after: asn1_time(&cert.validity().not_after)?,
        issuer: cert.issuer().to_string(),
    })
}

pub fn certificate_info(cert_der: &[u8]) -> Result<CertificateInfo, PkiError> {
    let cert = parse_cert(cert_der)?;
    info_of(&cert, cert_der)
}

/// Takes the first PEM block whatever its label, so that one helper serves certificates, keys and
/// CSRs alike; text before the block (OpenSSL's "Bag Attributes" lines) is skipped.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    pem_blocks(pem)?
        .into_iter()
        .next()
        .map(|(_, der)| der)
        .ok_or_else(|| PkiError::Malformed("no PEM block found".into()))
}

/// All PEM blocks as (label, DER). Written by hand rather than with a PEM crate because we need
/// to tolerate surrounding text and CRLF line ends from Windows-edited files.
pub(crate) fn pem_blocks(pem: &str) -> Result<Vec<(String, Vec<u8>)>, PkiError> {
    let mut blocks = Vec::new();
    let mut lines = pem.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            // RFC 1421 headers (Proc-Type, DEK-Info) mean an encrypted key, which we cannot use.
            if line.contains(':') {
                return Err(PkiError::Unsupported(format!(
                    "PEM block {label} has headers (encrypted?)"
                )));
            }
            body.push_str(line);
        }
        if !closed {
            return Err(PkiError::Malformed(format!(
                "PEM block {label} is not closed"
            )));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| PkiError::Malformed(format!("PEM block {label}: {e}")))?;
        blocks.push((label.to_owned(), der));
    }
    Ok(blocks)
}

/// PEM with 64-column lines and LF line ends, the form every consumer accepts.
pub fn der_to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk boundary is a char boundary.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub(crate) fn cert_pem(der: &[u8]) -> String {
    der_to_pem("CERTIFICATE", der)
}

pub(crate) fn to_offset(dt: DateTime<Utc>) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(dt.timestamp())
        .map_err(|e| PkiError::InvalidRequest(format!("time out of range: {e}")))
}

/// The APNs topic of an MDM push certificate: its subject's UID attribute
/// (`com.apple.mgmt.External.<uuid>` for certificates from Apple's push portal).
pub fn push_topic(cert_der: &[u8]) -> Result<Option<String>, PkiError> {
    let cert = parse_cert(cert_der)?;
    let topic = cert
        .subject()
        .iter_attributes()
        .find(|a| a.attr_type().to_id_string() == "0.9.2342.19200300.100.1.1")
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned);
    Ok(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_bytes_and_skips_surrounding_text() {
        let der: Vec<u8> = (0u8..=200).collect();
        let pem = format!(
            "Bag Attributes\r\n{}",
            der_to_pem("CERTIFICATE", &der).replace('\n', "\r\n")
        );
        assert_eq!(pem_to_der(&pem).unwrap(), der);
    }

    #[test]
    fn pem_without_block_or_unterminated_is_malformed() {
        assert!(matches!(pem_to_der("hello"), Err(PkiError::Malformed(_))));
        assert!(matches!(
            pem_to_der("-----BEGIN X-----\nAAAA\n"),
            Err(PkiError::Malformed(_))
        ));
    }

    #[test]
    fn fingerprint_is_lowercase_sha256_hex() {
        assert_eq!(
            sha256_fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
