use flotte_pki::{
    ClientCertificateRequest, PkiError, generate_csr, sign_detached, verify_detached,
};
use x509_parser::prelude::FromDer as _;

use crate::{attime, now, openssl, shared_ca, vector, write};

fn request(cn: &str) -> ClientCertificateRequest {
    ClientCertificateRequest {
        organisational_unit: Some("Flotte MDM".into()),
        ..ClientCertificateRequest::new(cn, 365)
    }
}

/// Signs the CSR, then checks with the OpenSSL CLI that the result chains to our root, and that
/// the subject and extensions are ours, not the device's.
fn sign_and_check(csr_der: &[u8], cn: &str) {
    let ca = shared_ca();
    let issued = ca.sign_csr(csr_der, &request(cn), now()).unwrap();
    assert!(issued.key_pem.is_none());

    let dir = tempfile::tempdir().unwrap();
    let root = write(dir.path(), "root.pem", ca.root_pem());
    let issuing = write(dir.path(), "issuing.pem", ca.issuing_pem());
    let leaf = write(dir.path(), "leaf.pem", &issued.cert_pem);
    let out = openssl(&[
        "verify",
        "-attime",
        &attime(),
        "-purpose",
        "sslclient",
        "-CAfile",
        &root,
        "-untrusted",
        &issuing,
        &leaf,
    ]);
    assert!(out.ok, "{}", out.text);

    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&issued.cert_der).unwrap();
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(csr_der).unwrap();
    // The device keeps its key: the certificate carries exactly the CSR's public key.
    assert_eq!(
        cert.public_key().raw,
        csr.certification_request_info.subject_pki.raw
    );
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        cn
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth && eku.other.is_empty());
    // Nothing from the CSR's extension request is copied (the Win11 device-id extension).
    let oids: Vec<String> = cert
        .extensions()
        .iter()
        .map(|e| e.oid.to_id_string())
        .collect();
    assert!(
        !oids.iter().any(|o| o.starts_with("1.3.6.1.4.1.311")),
        "{oids:?}"
    );
    assert!(!cert.is_ca());
    ca.verify_issued(&issued.cert_der, now()).unwrap();
}

#[test]
fn windows_10_sha1_oiw_csr_is_signed() {
    let csr = std::fs::read(vector("windows/win10-csr-sha1.der")).unwrap();
    sign_and_check(&csr, "5E8C6B1A-0F44-4D5B-9C1D-2B3A4C5D6E7F");
}

#[test]
fn windows_11_csr_with_device_id_extension_is_signed() {
    let csr = std::fs::read(vector("windows/win11-csr-deviceid-extension.der")).unwrap();
    sign_and_check(&csr, "device-win11");
}

#[test]
fn csr_with_a_broken_self_signature_is_refused() {
    for name in [
        "windows/win10-csr-sha1.der",
        "windows/win11-csr-deviceid-extension.der",
    ] {
        let mut csr = std::fs::read(vector(name)).unwrap();
        // The signature BIT STRING is the last element: its last byte is signature.
        let last = csr.len() - 1;
        csr[last] ^= 0x01;
        assert!(
            matches!(
                shared_ca().sign_csr(&csr, &request("x"), now()),
                Err(PkiError::BadSignature(_))
            ),
            "{name}"
        );
    }
    assert!(matches!(
        shared_ca().sign_csr(b"\x30\x03\x02\x01\x00", &request("x"), now()),
        Err(PkiError::Malformed(_))
    ));
}

#[test]
fn generated_csr_round_trips_and_the_device_key_signs_for_the_certificate() {
    let (csr, key_pem) = generate_csr("simulated-pc").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let csr_path = write(dir.path(), "req.der", &csr);
    let out = openssl(&[
        "req", "-inform", "DER", "-in", &csr_path, "-verify", "-noout", "-subject",
    ]);
    assert!(out.ok && out.text.contains("simulated-pc"), "{}", out.text);

    sign_and_check(&csr, "simulated-pc");
    let issued = shared_ca()
        .sign_csr(&csr, &request("simulated-pc"), now())
        .unwrap();
    let signature = sign_detached(b"syncml", &issued.cert_pem, &key_pem).unwrap();
    assert_eq!(
        verify_detached(b"syncml", &signature).unwrap().cert_der,
        issued.cert_der
    );
}

#[test]
fn csr_with_a_weak_rsa_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let csr = dir.path().join("weak.der");
    let out = openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:1024",
        "-nodes",
        "-keyout",
        "/dev/null",
        "-subj",
        "/CN=weak",
        "-outform",
        "DER",
        "-out",
        csr.to_str().unwrap(),
    ]);
    assert!(out.ok, "{}", out.text);
    let csr = std::fs::read(csr).unwrap();
    assert!(matches!(
        shared_ca().sign_csr(&csr, &request("weak"), now()),
        Err(PkiError::Unsupported(_))
    ));
}

#[test]
fn device_claims_in_windows_csrs_can_be_read_for_cross_checks() {
    let win10 =
        flotte_pki::inspect_csr(&std::fs::read(vector("windows/win10-csr-sha1.der")).unwrap())
            .unwrap();
    assert_eq!(
        win10.common_name.as_deref(),
        Some("562A7F9A-6CD8-40B0-9E7E-0DBDD8!B5B954E81FBCB94EB79BD08BE625F4EE")
    );
    assert_eq!(
        win10.device_id.as_deref(),
        Some("B5B954E81FBCB94EB79BD08BE625F4EE")
    );
    assert_eq!(win10.challenge_password, None);

    let win11 = flotte_pki::inspect_csr(
        &std::fs::read(vector("windows/win11-csr-deviceid-extension.der")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        win11.device_id.as_deref(),
        Some("8090C8B484A0E24EB5C56E806CB4EE5B")
    );
    assert!(
        win11
            .common_name
            .unwrap()
            .ends_with("!8090C8B484A0E24EB5C56E806CB4EE5B")
    );
    assert_eq!(win11.public_key_sha256.len(), 64);

    // A SCEP-style request: the challenge is readable, and only after the signature checks out.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scep.der");
    let config = write(
        dir.path(),
        "req.cnf",
        "[req]\ndistinguished_name=dn\nattributes=attrs\nprompt=no\n[dn]\nCN=scep\n[attrs]\nchallengePassword=one-time-secret\n",
    );
    let out = openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "/dev/null",
        "-config",
        &config,
        "-outform",
        "DER",
        "-out",
        path.to_str().unwrap(),
    ]);
    assert!(out.ok, "{}", out.text);
    let csr = std::fs::read(&path).unwrap();
    let info = flotte_pki::inspect_csr(&csr).unwrap();
    assert_eq!(info.challenge_password.as_deref(), Some("one-time-secret"));
    assert_eq!(info.common_name.as_deref(), Some("scep"));
    let mut broken = csr.clone();
    let last = broken.len() - 1;
    broken[last] ^= 1;
    assert!(matches!(
        flotte_pki::inspect_csr(&broken),
        Err(PkiError::BadSignature(_))
    ));
}

#[test]
fn ecdsa_p256_device_key_gets_a_certificate_and_its_signatures_verify() {
    // Hardware-bound identities (ACME on iPadOS, TPM keys) are ECDSA; the CSR path must not be RSA-only.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ec.key");
    let csr = dir.path().join("ec.der");
    let out = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        "/CN=ec-device",
        "-outform",
        "DER",
        "-out",
        csr.to_str().unwrap(),
    ]);
    assert!(out.ok, "{}", out.text);
    let csr = std::fs::read(csr).unwrap();
    sign_and_check(&csr, "ec-device");

    let issued = shared_ca()
        .sign_csr(&csr, &request("ec-device"), now())
        .unwrap();
    let cert = write(dir.path(), "ec.pem", &issued.cert_pem);
    let body = write(dir.path(), "body", b"report");
    let sig = dir.path().join("sig.der");
    let out = openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-outform",
        "DER",
        "-signer",
        &cert,
        "-inkey",
        key.to_str().unwrap(),
        "-in",
        &body,
        "-out",
        sig.to_str().unwrap(),
    ]);
    assert!(out.ok, "{}", out.text);
    let signer = verify_detached(b"report", &std::fs::read(sig).unwrap()).unwrap();
    assert_eq!(signer.cert_der, issued.cert_der);
    shared_ca().verify_issued(&signer.cert_der, now()).unwrap();
}
