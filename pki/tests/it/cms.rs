use base64::Engine as _;
use chrono::{Datelike as _, Duration, TimeZone as _, Utc};
use flotte_pki::{
    ClientCertificateRequest, PkiError, open_attached, sign_attached, sign_detached,
    verify_detached,
};

use crate::{attime, now, openssl, other_ca, shared_ca, vector, write};

fn real_vector() -> (Vec<u8>, Vec<u8>) {
    let body = std::fs::read(vector("apple/mdm-signature-body.plist")).unwrap();
    let header = std::fs::read_to_string(vector("apple/mdm-signature-header.b64")).unwrap();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .unwrap();
    (body, signature)
}

#[test]
fn real_ipad_mdm_signature_verifies() {
    let (body, signature) = real_vector();
    // The vector is BER with indefinite lengths, as devices send it.
    assert_eq!(&signature[..2], &[0x30, 0x80]);
    let signer = verify_detached(&body, &signature).unwrap();
    assert_eq!(signer.info.serial_hex, "22");
    assert!(
        signer.info.issuer.contains("CN=ca"),
        "{}",
        signer.info.issuer
    );
    assert_eq!(signer.info.not_after.year(), 2031);
    assert_eq!(signer.info.common_name, None);
    assert_eq!(
        signer.info.sha256_hex,
        flotte_pki::sha256_fingerprint(&signer.cert_der)
    );
}

#[test]
fn real_signature_fails_on_any_changed_body_byte_and_on_other_bytes() {
    let (body, signature) = real_vector();
    for index in [0, body.len() / 2, body.len() - 1] {
        let mut tampered = body.clone();
        tampered[index] ^= 0x01;
        assert!(
            matches!(
                verify_detached(&tampered, &signature),
                Err(PkiError::BadSignature(_))
            ),
            "byte {index}"
        );
    }
    let mut longer = body.clone();
    longer.push(b'\n');
    assert!(matches!(
        verify_detached(&longer, &signature),
        Err(PkiError::BadSignature(_))
    ));
    assert!(matches!(
        verify_detached(b"", &signature),
        Err(PkiError::BadSignature(_))
    ));
}

#[test]
fn garbage_and_truncated_signatures_are_malformed() {
    let (body, signature) = real_vector();
    assert!(matches!(
        verify_detached(&body, b"garbage"),
        Err(PkiError::Malformed(_))
    ));
    assert!(matches!(
        verify_detached(&body, &[]),
        Err(PkiError::Malformed(_))
    ));
    assert!(matches!(
        verify_detached(&body, &signature[..signature.len() / 2]),
        Err(PkiError::Malformed(_))
    ));
    // A certificate is DER but not a signature.
    assert!(verify_detached(&body, &shared_ca().root_der()).is_err());
}

#[test]
fn device_signature_round_trip_then_chain_check_against_our_ca() {
    let ca = shared_ca();
    let device = ca
        .issue_client_certificate(&ClientCertificateRequest::new("ipad-7", 365), now())
        .unwrap();
    let key = device.key_pem.clone().unwrap();
    let body = b"<?xml version=\"1.0\"?><plist><dict><key>MessageType</key></dict></plist>\n";

    let signature = sign_detached(body, &device.cert_pem, &key).unwrap();
    let signer = verify_detached(body, &signature).unwrap();
    assert_eq!(signer.cert_der, device.cert_der);
    let info = ca.verify_issued(&signer.cert_der, now()).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("ipad-7"));

    // A signature over other bytes does not verify this body.
    let other = sign_detached(b"other body", &device.cert_pem, &key).unwrap();
    assert!(matches!(
        verify_detached(body, &other),
        Err(PkiError::BadSignature(_))
    ));

    // Cryptographically fine but from another CA: the chain check is what refuses it.
    let stranger = other_ca()
        .issue_client_certificate(&ClientCertificateRequest::new("ipad-7", 365), now())
        .unwrap();
    let signature = sign_detached(
        body,
        &stranger.cert_pem,
        stranger.key_pem.as_deref().unwrap(),
    )
    .unwrap();
    let signer = verify_detached(body, &signature).unwrap();
    assert!(matches!(
        ca.verify_issued(&signer.cert_der, now()),
        Err(PkiError::UntrustedIssuer(_))
    ));

    // Issued long ago for a short time: the signature is fine, the identity has expired.
    let long_ago = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
    let old = ca
        .issue_client_certificate(&ClientCertificateRequest::new("ipad-old", 2), long_ago)
        .unwrap();
    let signature = sign_detached(body, &old.cert_pem, old.key_pem.as_deref().unwrap()).unwrap();
    let signer = verify_detached(body, &signature).unwrap();
    match ca.verify_issued(&signer.cert_der, now()) {
        Err(PkiError::Expired { not_after }) => {
            assert_eq!(not_after, long_ago + Duration::days(2))
        }
        other => panic!("expected Expired, got {other:?}"),
    }
}

#[test]
fn openssl_accepts_our_detached_signature_and_we_accept_its_sha1_ber_unattributed_ones() {
    let ca = shared_ca();
    let device = ca
        .issue_client_certificate(&ClientCertificateRequest::new("ipad-8", 365), now())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let body = b"checkin body\r\nwith CRLF and \x00 bytes\n";
    let body_path = write(dir.path(), "body", body);
    let cert = write(dir.path(), "cert.pem", &device.cert_pem);
    let key = write(dir.path(), "key.pem", device.key_pem.as_deref().unwrap());

    let ours = sign_detached(body, &device.cert_pem, device.key_pem.as_deref().unwrap()).unwrap();
    let sig_path = write(dir.path(), "ours.der", &ours);
    let out = openssl(&[
        "cms",
        "-verify",
        "-noverify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &sig_path,
        "-content",
        &body_path,
        "-out",
        "/dev/null",
    ]);
    assert!(out.ok, "{}", out.text);

    // What a device sends: SHA-1, no signed attributes, streamed (BER, indefinite lengths).
    let theirs = dir.path().join("theirs.der");
    let out = openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-noattr",
        "-md",
        "sha1",
        "-stream",
        "-outform",
        "DER",
        "-signer",
        &cert,
        "-inkey",
        &key,
        "-in",
        &body_path,
        "-out",
        theirs.to_str().unwrap(),
    ]);
    assert!(out.ok, "{}", out.text);
    let theirs = std::fs::read(theirs).unwrap();
    assert_eq!(
        &theirs[..2],
        &[0x30, 0x80],
        "expected BER indefinite length"
    );
    let signer = verify_detached(body, &theirs).unwrap();
    assert_eq!(signer.cert_der, device.cert_der);
    assert!(matches!(
        verify_detached(b"checkin body", &theirs),
        Err(PkiError::BadSignature(_))
    ));
}

#[test]
fn signed_profile_verifies_with_openssl_against_the_root_and_opens_again() {
    let ca = shared_ca();
    let signer = ca
        .issue_signing_certificate("Flotte Profile Signing", now(), 365)
        .unwrap();
    let profile =
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict/></plist>\n";
    let signed = sign_attached(
        profile,
        &signer.cert_pem,
        signer.key_pem.as_deref().unwrap(),
        &[ca.issuing_pem()],
    )
    .unwrap();
    assert!(!signed.starts_with(b"<?xml"));

    let dir = tempfile::tempdir().unwrap();
    let root = write(dir.path(), "root.pem", ca.root_pem());
    let signed_path = write(dir.path(), "signed.mobileconfig", &signed);
    let out_path = dir.path().join("out.mobileconfig");
    // Full chain check by OpenSSL: the issuing CA travels inside the signature.
    let out = openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-attime",
        &attime(),
        "-CAfile",
        &root,
        "-inform",
        "DER",
        "-in",
        &signed_path,
        "-out",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.ok, "{}", out.text);
    assert_eq!(std::fs::read(&out_path).unwrap(), profile);
    let out = openssl(&[
        "smime",
        "-verify",
        "-binary",
        "-attime",
        &attime(),
        "-CAfile",
        &root,
        "-inform",
        "DER",
        "-in",
        &signed_path,
        "-out",
        "/dev/null",
    ]);
    assert!(out.ok, "{}", out.text);
    // A different root must not verify it.
    let other_root = write(dir.path(), "other.pem", other_ca().root_pem());
    let out = openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-attime",
        &attime(),
        "-CAfile",
        &other_root,
        "-inform",
        "DER",
        "-in",
        &signed_path,
        "-out",
        "/dev/null",
    ]);
    assert!(!out.ok, "{}", out.text);

    let structure = openssl(&[
        "cms",
        "-cmsout",
        "-print",
        "-noout",
        "-inform",
        "DER",
        "-in",
        &signed_path,
    ]);
    assert!(structure.text.contains("sha256"), "{}", structure.text);
    assert!(
        structure.text.contains("Flotte Issuing CA"),
        "chain embedded: {}",
        structure.text
    );

    let (content, info) = open_attached(&signed).unwrap();
    assert_eq!(content, profile);
    assert_eq!(info.common_name.as_deref(), Some("Flotte Profile Signing"));
    assert_eq!(info.sha256_hex, signer.sha256_hex);

    // Flip one byte of the embedded plist: the content is still there, the signature is not.
    let at = signed.windows(5).position(|w| w == b"plist").unwrap();
    let mut tampered = signed.clone();
    tampered[at] = b'P';
    assert!(matches!(
        open_attached(&tampered),
        Err(PkiError::BadSignature(_))
    ));
    assert!(matches!(
        open_attached(b"<?xml"),
        Err(PkiError::Malformed(_))
    ));
}

#[test]
fn signing_with_a_key_that_is_not_the_certificates_is_refused() {
    let ca = shared_ca();
    let a = ca
        .issue_client_certificate(&ClientCertificateRequest::new("a", 30), now())
        .unwrap();
    let b = ca
        .issue_client_certificate(&ClientCertificateRequest::new("b", 30), now())
        .unwrap();
    assert!(matches!(
        sign_detached(b"x", &a.cert_pem, b.key_pem.as_deref().unwrap()),
        Err(PkiError::KeyMismatch(_))
    ));
    assert!(matches!(
        sign_attached(b"x", &a.cert_pem, b.key_pem.as_deref().unwrap(), &[]),
        Err(PkiError::KeyMismatch(_))
    ));
}
