use base64::Engine as _;
use chrono::{Datelike as _, Duration, TimeZone as _, Utc};
use flotte_pki::{
    ClientCertificateRequest, DetachedSignature, PkiError, SignerKey, open_attached, sign_attached,
    sign_detached, verify_detached,
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

/// A signature in the shape iPads send (SHA-1 or another digest, no signed attributes, BER
/// streamed), made by the OpenSSL CLI so that it is not our own code agreeing with itself.
fn device_style(body: &[u8], cert_pem: &str, key_pem: &str, md: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let body_path = write(dir.path(), "body", body);
    let cert = write(dir.path(), "cert.pem", cert_pem);
    let key = write(dir.path(), "key.pem", key_pem);
    let out_path = dir.path().join("sig.der");
    let out = openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-noattr",
        "-md",
        md,
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
        out_path.to_str().unwrap(),
    ]);
    assert!(out.ok, "{}", out.text);
    std::fs::read(out_path).unwrap()
}

#[test]
fn a_signature_by_another_key_under_the_same_certificate_fails() {
    let ca = shared_ca();
    let a = ca
        .issue_client_certificate(&ClientCertificateRequest::new("ipad-a", 365), now())
        .unwrap();
    let b = ca
        .issue_client_certificate(&ClientCertificateRequest::new("ipad-b", 365), now())
        .unwrap();
    let body = b"<plist><dict><key>Status</key><string>Idle</string></dict></plist>";
    let genuine = device_style(body, &a.cert_pem, a.key_pem.as_deref().unwrap(), "sha1");
    verify_detached(body, &genuine).unwrap();

    // PKCS#1 v1.5 is deterministic: the signature value in the CMS is exactly this, and can be
    // swapped for B's signature over the same body while A's certificate stays embedded.
    let sign = |key_pem: &str| {
        let key = openssl::pkey::PKey::private_key_from_pem(key_pem.as_bytes()).unwrap();
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha1(), &key).unwrap();
        signer.sign_oneshot_to_vec(body).unwrap()
    };
    let by_a = sign(a.key_pem.as_deref().unwrap());
    let by_b = sign(b.key_pem.as_deref().unwrap());
    assert_eq!(by_a.len(), by_b.len());
    let at = genuine
        .windows(by_a.len())
        .position(|w| w == by_a.as_slice())
        .expect("signature value inside the CMS");
    let mut forged = genuine.clone();
    forged[at..at + by_b.len()].copy_from_slice(&by_b);
    assert!(matches!(
        verify_detached(body, &forged),
        Err(PkiError::BadSignature(_))
    ));

    // The server's path: the key cached for A's certificate, and a key that is not A's.
    let parsed = DetachedSignature::parse(&forged).unwrap();
    assert_eq!(parsed.signer_der(), a.cert_der.as_slice());
    let key_a = SignerKey::from_certificate(&a.cert_der).unwrap();
    assert!(matches!(
        parsed.verify(body, &key_a),
        Err(PkiError::BadSignature(_))
    ));
    let parsed = DetachedSignature::parse(&genuine).unwrap();
    parsed.verify(body, &key_a).unwrap();
    let key_b = SignerKey::from_certificate(&b.cert_der).unwrap();
    assert!(matches!(
        parsed.verify(body, &key_b),
        Err(PkiError::BadSignature(_))
    ));
    assert!(matches!(
        parsed.verify(b"another body", &key_a),
        Err(PkiError::BadSignature(_))
    ));
}

#[test]
fn signed_attributes_bind_the_content_through_message_digest() {
    let ca = shared_ca();
    let device = ca
        .issue_client_certificate(&ClientCertificateRequest::new("ipad-attrs", 365), now())
        .unwrap();
    let key = device.key_pem.as_deref().unwrap();
    let body = b"checkin with attributes";
    // sign_detached adds signed attributes (contentType, signingTime, messageDigest).
    let signature = sign_detached(body, &device.cert_pem, key).unwrap();
    let parsed = DetachedSignature::parse(&signature).unwrap();
    let cached = SignerKey::from_certificate(&device.cert_der).unwrap();
    parsed.verify(body, &cached).unwrap();
    // The attributes are signed and still intact; only the content differs, so only the
    // messageDigest comparison can refuse it.
    assert!(matches!(
        parsed.verify(b"checkin with attributeS", &cached),
        Err(PkiError::BadSignature(_))
    ));

    // Changing the messageDigest attribute breaks the signature over the attributes.
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(body);
    let at = signature
        .windows(digest.len())
        .position(|w| w == &digest[..])
        .expect("messageDigest inside the CMS");
    let mut tampered = signature.clone();
    tampered[at] ^= 1;
    assert!(matches!(
        verify_detached(body, &tampered),
        Err(PkiError::BadSignature(_))
    ));
}

#[test]
fn digests_other_than_sha1_verify_and_uncommon_ones_still_go_through_openssl() {
    let ca = shared_ca();
    let device = ca
        .issue_client_certificate(&ClientCertificateRequest::new("ipad-md", 365), now())
        .unwrap();
    let key = device.key_pem.as_deref().unwrap();
    let body = b"body";
    // sha224 is not read directly; OpenSSL's PKCS7_verify judges it, as before.
    for md in ["sha1", "sha256", "sha384", "sha512", "sha224"] {
        let signature = device_style(body, &device.cert_pem, key, md);
        let signer = verify_detached(body, &signature).unwrap_or_else(|e| panic!("{md}: {e}"));
        assert_eq!(signer.cert_der, device.cert_der);
        assert!(
            matches!(
                verify_detached(b"bodY", &signature),
                Err(PkiError::BadSignature(_))
            ),
            "{md}"
        );
        let parsed = DetachedSignature::parse(&signature).unwrap();
        let other = ca
            .issue_client_certificate(&ClientCertificateRequest::new("other", 365), now())
            .unwrap();
        assert!(matches!(
            parsed.verify(body, &SignerKey::from_certificate(&other.cert_der).unwrap()),
            Err(PkiError::BadSignature(_))
        ));
    }
}

#[test]
fn every_truncation_and_flipped_signature_byte_of_the_real_vector_is_refused() {
    let (body, signature) = real_vector();
    for len in 0..signature.len() {
        assert!(verify_detached(&body, &signature[..len]).is_err(), "{len}");
    }
    // The RSA-2048 signature value sits just before the three end-of-contents pairs that
    // close SignedData, [0] and ContentInfo.
    let end = signature.len() - 6;
    assert_eq!(&signature[end..], &[0; 6]);
    for at in end - 256..end {
        let mut flipped = signature.clone();
        flipped[at] ^= 0x40;
        assert!(
            matches!(
                verify_detached(&body, &flipped),
                Err(PkiError::BadSignature(_))
            ),
            "byte {at}"
        );
    }
    // Elsewhere CMS has fields nobody signs (versions, the digest list, the embedded
    // certificate's own signature, which the chain check judges): a flip there may be
    // accepted, as by OpenSSL. What matters here is that hostile bytes never panic the reader.
    for at in 0..end - 256 {
        for bit in [0x01, 0x80] {
            let mut flipped = signature.clone();
            flipped[at] ^= bit;
            let _ = verify_detached(&body, &flipped);
        }
    }
}
