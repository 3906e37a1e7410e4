use flotte_pki::{
    ClientCertificateRequest, PkiError, parse_pkcs12, pkcs12, sign_detached, verify_detached,
};

use crate::{now, openssl, shared_ca, write};

#[test]
fn pkcs12_uses_legacy_algorithms_that_openssl_reads_without_the_legacy_flag() {
    let ca = shared_ca();
    let identity = ca
        .issue_client_certificate(&ClientCertificateRequest::new("ipad-identity", 365), now())
        .unwrap();
    let key = identity.key_pem.clone().unwrap();
    let p12 = pkcs12(
        &identity.cert_pem,
        &key,
        &ca.chain_pem(),
        "Flotte identity",
        "s3cret",
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "id.p12", &p12);
    let out = openssl(&[
        "pkcs12",
        "-info",
        "-noenc",
        "-in",
        &path,
        "-passin",
        "pass:s3cret",
    ]);
    assert!(out.ok, "{}", out.text);
    assert!(out.text.contains("MAC: sha1"), "{}", out.text);
    // Both the certificate bag and the key bag, not just one of them.
    assert!(
        out.text
            .contains("PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC"),
        "{}",
        out.text
    );
    assert!(
        out.text
            .contains("Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC"),
        "{}",
        out.text
    );
    assert!(!out.text.contains("PBES2"), "{}", out.text);
    assert!(
        out.text.contains("friendlyName: Flotte identity"),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("CN = ipad-identity") || out.text.contains("CN=ipad-identity"),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("Flotte Issuing CA") && out.text.contains("Flotte Root CA"),
        "{}",
        out.text
    );
    assert!(out.text.contains("BEGIN PRIVATE KEY"), "{}", out.text);

    let out = openssl(&[
        "pkcs12",
        "-info",
        "-noenc",
        "-in",
        &path,
        "-passin",
        "pass:wrong",
    ]);
    assert!(!out.ok, "{}", out.text);
}

#[test]
fn pkcs12_round_trips_and_the_extracted_identity_can_sign() {
    let ca = shared_ca();
    let identity = ca
        .issue_client_certificate(&ClientCertificateRequest::new("ipad-sim", 365), now())
        .unwrap();
    let p12 = pkcs12(
        &identity.cert_pem,
        identity.key_pem.as_deref().unwrap(),
        &[],
        "sim",
        "pw",
    )
    .unwrap();
    let (cert_pem, key_pem) = parse_pkcs12(&p12, "pw").unwrap();
    assert_eq!(
        flotte_pki::pem_to_der(&cert_pem).unwrap(),
        identity.cert_der
    );
    assert!(key_pem.contains("BEGIN PRIVATE KEY"));
    // The simulator's use of it: the extracted pair signs, and the signature verifies.
    let signature = sign_detached(b"body", &cert_pem, &key_pem).unwrap();
    assert_eq!(
        verify_detached(b"body", &signature).unwrap().cert_der,
        identity.cert_der
    );

    assert!(matches!(
        parse_pkcs12(&p12, "PW"),
        Err(PkiError::WrongPassword)
    ));
    assert!(matches!(
        parse_pkcs12(b"not a p12", "pw"),
        Err(PkiError::Malformed(_))
    ));
}

#[test]
fn pkcs12_refuses_a_key_from_another_certificate() {
    let ca = shared_ca();
    let a = ca
        .issue_client_certificate(&ClientCertificateRequest::new("a", 30), now())
        .unwrap();
    let b = ca
        .issue_client_certificate(&ClientCertificateRequest::new("b", 30), now())
        .unwrap();
    assert!(matches!(
        pkcs12(&a.cert_pem, b.key_pem.as_deref().unwrap(), &[], "x", "pw"),
        Err(PkiError::KeyMismatch(_))
    ));
}
