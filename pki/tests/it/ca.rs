use std::os::unix::fs::PermissionsExt as _;

use chrono::{Datelike as _, Duration, TimeZone as _, Utc};
use flotte_pki::{
    CertificateAuthority, ClientCertificateRequest, PkiError, RevokedCertificate, certificate_info,
    sha256_fingerprint,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer as _;

use crate::{attime, now, openssl, other_ca, shared_ca, write};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_start_writes_four_files_with_private_keys_and_reload_keeps_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::load_or_create(dir.path(), "Test School Board", now()).unwrap();

    for name in [
        "ca.pem",
        "ca-key.pem",
        "issuing-ca.pem",
        "issuing-ca-key.pem",
    ] {
        assert!(dir.path().join(name).is_file(), "{name} missing");
    }
    assert_eq!(mode(&dir.path().join("ca-key.pem")), 0o600);
    assert_eq!(mode(&dir.path().join("issuing-ca-key.pem")), 0o600);
    assert_eq!(mode(&dir.path().join("ca.pem")), 0o644);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() == 4,
        "no temp files left behind"
    );

    let root = certificate_info(&ca.root_der()).unwrap();
    assert_eq!(root.common_name.as_deref(), Some("Flotte Root CA"));
    assert!(
        root.subject.contains("O=Test School Board"),
        "{}",
        root.subject
    );
    assert_eq!(root.not_after.year(), now().year() + 20);
    let issuing = certificate_info(&ca.issuing_der()).unwrap();
    assert_eq!(issuing.common_name.as_deref(), Some("Flotte Issuing CA"));
    assert_eq!(issuing.issuer, root.subject);
    assert_eq!(issuing.not_after.year(), now().year() + 10);
    assert_ne!(root.serial_hex, issuing.serial_hex);

    let reloaded =
        CertificateAuthority::load_or_create(dir.path(), "Ignored On Reload", now()).unwrap();
    assert_eq!(sha256_fingerprint(&reloaded.root_der()), root.sha256_hex);
    assert_eq!(
        sha256_fingerprint(&reloaded.issuing_der()),
        issuing.sha256_hex
    );
    assert_eq!(reloaded.root_pem(), ca.root_pem());

    // The chain the CLI builds: issuing signed by root, both CAs.
    let root_path = write(dir.path(), "check-root.pem", ca.root_pem());
    let out = openssl(&[
        "verify",
        "-attime",
        &attime(),
        "-CAfile",
        &root_path,
        &dir.path().join("issuing-ca.pem").to_string_lossy(),
    ]);
    assert!(out.ok, "{}", out.text);
}

#[test]
fn root_key_can_be_kept_offline_once_the_issuing_ca_exists() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::load_or_create(dir.path(), "Org", now()).unwrap();
    std::fs::remove_file(dir.path().join("ca-key.pem")).unwrap();
    let reloaded = CertificateAuthority::load_or_create(dir.path(), "Org", now()).unwrap();
    assert_eq!(reloaded.issuing_der(), ca.issuing_der());
    let issued = reloaded
        .issue_client_certificate(&ClientCertificateRequest::new("device", 30), now())
        .unwrap();
    reloaded.verify_issued(&issued.cert_der, now()).unwrap();
}

#[test]
fn operator_supplied_root_is_used_and_an_issuing_ca_is_made_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ca-key.pem");
    let cert = dir.path().join("ca.pem");
    let out = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-subj",
        "/CN=Operator Root/O=Operator",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    assert!(out.ok, "{}", out.text);
    let operator_root = flotte_pki::pem_to_der(&std::fs::read_to_string(&cert).unwrap()).unwrap();

    // The operator's root is only valid from the real current time, so use that here.
    let real_now = Utc::now();
    let ca = CertificateAuthority::load_or_create(dir.path(), "Flotte Org", real_now).unwrap();
    assert_eq!(ca.root_der(), operator_root);
    let issuing = certificate_info(&ca.issuing_der()).unwrap();
    assert!(
        issuing.issuer.contains("CN=Operator Root"),
        "{}",
        issuing.issuer
    );
    assert!(issuing.subject.contains("O=Flotte Org"));
    // The operator's root lives 10 years; the issuing CA must not outlive it.
    assert_eq!(
        issuing.not_after,
        certificate_info(&operator_root).unwrap().not_after
    );

    let client = ca
        .issue_client_certificate(&ClientCertificateRequest::new("device-1", 30), real_now)
        .unwrap();
    ca.verify_issued(&client.cert_der, real_now).unwrap();
    let root_path = cert.to_str().unwrap().to_owned();
    let issuing_path = write(dir.path(), "issuing-check.pem", ca.issuing_pem());
    let leaf_path = write(dir.path(), "leaf.pem", &client.cert_pem);
    let out = openssl(&[
        "verify",
        "-CAfile",
        &root_path,
        "-untrusted",
        &issuing_path,
        &leaf_path,
    ]);
    assert!(out.ok, "{}", out.text);
}

#[test]
fn inconsistent_ca_directories_are_refused_not_repaired() {
    // Issuing certificate without its key.
    let dir = tempfile::tempdir().unwrap();
    CertificateAuthority::load_or_create(dir.path(), "Org", now()).unwrap();
    std::fs::remove_file(dir.path().join("issuing-ca-key.pem")).unwrap();
    let err = CertificateAuthority::load_or_create(dir.path(), "Org", now()).unwrap_err();
    assert!(matches!(err, PkiError::CaDirectory { .. }), "{err}");
    assert!(!dir.path().join("issuing-ca-key.pem").exists());

    // A root key that belongs to another root.
    let dir2 = tempfile::tempdir().unwrap();
    CertificateAuthority::load_or_create(dir2.path(), "Org", now()).unwrap();
    std::fs::copy(
        dir.path().join("ca-key.pem"),
        dir2.path().join("ca-key.pem"),
    )
    .unwrap();
    let err = CertificateAuthority::load_or_create(dir2.path(), "Org", now()).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");

    // An issuing CA from a different root.
    let dir3 = tempfile::tempdir().unwrap();
    CertificateAuthority::load_or_create(dir3.path(), "Org", now()).unwrap();
    for name in ["issuing-ca.pem", "issuing-ca-key.pem"] {
        std::fs::copy(dir2.path().join(name), dir3.path().join(name)).unwrap();
    }
    let err = CertificateAuthority::load_or_create(dir3.path(), "Org", now()).unwrap_err();
    assert!(err.to_string().contains("not signed by"), "{err}");
}

#[test]
fn server_certificate_has_the_sans_and_verifies_with_openssl() {
    let ca = shared_ca();
    let hosts = vec![
        "mdm.example.org".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let issued = ca.issue_server_certificate(&hosts, now(), 397).unwrap();
    assert!(
        issued
            .key_pem
            .as_deref()
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    assert_eq!(issued.not_after, now() + Duration::days(397));
    assert_eq!(issued.not_before, now() - Duration::hours(1));
    assert!(issued.serial_hex.len() >= 32, "{}", issued.serial_hex);

    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&issued.cert_der).unwrap();
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(ip) => format!("{ip:02x?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(sans[0], "mdm.example.org");
    assert_eq!(sans[1], format!("{:02x?}", [127u8, 0, 0, 1]));
    assert_eq!(sans.len(), 3);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    assert!(!cert.is_ca());

    let dir = tempfile::tempdir().unwrap();
    let root = write(dir.path(), "root.pem", ca.root_pem());
    let issuing = write(dir.path(), "issuing.pem", ca.issuing_pem());
    let leaf = write(dir.path(), "leaf.pem", &issued.cert_pem);
    let out = openssl(&[
        "verify",
        "-attime",
        &attime(),
        "-purpose",
        "sslserver",
        "-verify_hostname",
        "mdm.example.org",
        "-CAfile",
        &root,
        "-untrusted",
        &issuing,
        &leaf,
    ]);
    assert!(out.ok, "{}", out.text);
    let out = openssl(&[
        "verify",
        "-attime",
        &attime(),
        "-verify_ip",
        "127.0.0.1",
        "-CAfile",
        &root,
        "-untrusted",
        &issuing,
        &leaf,
    ]);
    assert!(out.ok, "{}", out.text);
    // Without the issuing CA there is no chain: the root alone did not sign the leaf.
    let out = openssl(&["verify", "-attime", &attime(), "-CAfile", &root, &leaf]);
    assert!(!out.ok, "{}", out.text);

    // The key that came with it is the certificate's key.
    let key = write(dir.path(), "key.pem", issued.key_pem.unwrap());
    let cert_pub = openssl(&["x509", "-in", &leaf, "-noout", "-pubkey"]);
    let key_pub = openssl(&["pkey", "-in", &key, "-pubout"]);
    assert_eq!(cert_pub.stdout, key_pub.stdout);
}

#[test]
fn server_certificate_requests_apple_would_reject_are_refused() {
    let ca = shared_ca();
    let hosts = vec!["mdm.example.org".to_owned()];
    assert!(matches!(
        ca.issue_server_certificate(&hosts, now(), 826),
        Err(PkiError::InvalidRequest(_))
    ));
    // The longest allowed one spans exactly 825 days, the hour of backdating included.
    let longest = ca.issue_server_certificate(&hosts, now(), 825).unwrap();
    assert_eq!(longest.not_after - longest.not_before, Duration::days(825));
    assert!(matches!(
        ca.issue_server_certificate(&[], now(), 90),
        Err(PkiError::InvalidRequest(_))
    ));
    assert!(matches!(
        ca.issue_server_certificate(&["bad host name".to_owned()], now(), 90),
        Err(PkiError::InvalidRequest(_))
    ));
}

#[test]
fn client_certificate_carries_subject_and_sans_and_client_auth() {
    let ca = shared_ca();
    let req = ClientCertificateRequest {
        common_name: "student-42".into(),
        organisation: Some("Test School Board".into()),
        organisational_unit: Some("Grade 7".into()),
        email: Some("s42@school.example".into()),
        uri_sans: vec!["urn:uuid:3f1d2c4e-8a5b-4c6d-9e7f-0a1b2c3d4e5f".into()],
        upn: Some("s42@school.example".into()),
        user_id: None,
        validity_days: 365,
    };
    let issued = ca.issue_client_certificate(&req, now()).unwrap();
    let info = ca.verify_issued(&issued.cert_der, now()).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("student-42"));
    assert!(info.subject.contains("OU=Grade 7"), "{}", info.subject);
    assert_eq!(info.serial_hex, issued.serial_hex);
    assert_eq!(info.sha256_hex, issued.sha256_hex);

    let dir = tempfile::tempdir().unwrap();
    let leaf = write(dir.path(), "leaf.pem", &issued.cert_pem);
    let text = openssl(&["x509", "-in", &leaf, "-noout", "-text"]).text;
    assert!(text.contains("email:s42@school.example"), "{text}");
    assert!(text.contains("URI:urn:uuid:3f1d2c4e"), "{text}");
    assert!(
        text.contains("UPN:") && text.contains("s42@school.example"),
        "{text}"
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(
        text.contains("RSA Public-Key: (2048 bit)") || text.contains("Public-Key: (2048 bit)"),
        "{text}"
    );
}

/// The quick check of our own certificates compares the issuer's name before the signature: a
/// CA that took our name must still fail, and so must a certificate changed after signing.
#[test]
fn verify_issued_refuses_a_lookalike_issuer_and_a_changed_certificate() {
    let ca = shared_ca();
    let dir = tempfile::tempdir().unwrap();
    let lookalike =
        CertificateAuthority::load_or_create(dir.path(), "Test School Board", now()).unwrap();
    let req = ClientCertificateRequest::new("device", 30);
    let forged = lookalike.issue_client_certificate(&req, now()).unwrap();
    let ours = ca.issue_client_certificate(&req, now()).unwrap();
    let issuer_of = |der: &[u8]| {
        openssl::x509::X509::from_der(der)
            .unwrap()
            .issuer_name()
            .to_der()
            .unwrap()
    };
    assert_eq!(issuer_of(&forged.cert_der), issuer_of(&ours.cert_der));
    assert!(matches!(
        ca.verify_issued(&forged.cert_der, now()),
        Err(PkiError::UntrustedIssuer(_))
    ));

    // "device" -> "devicf" inside the signed part: same length, so it still parses.
    let mut changed = ours.cert_der.clone();
    let at = changed
        .windows(6)
        .rposition(|w| w == b"device")
        .expect("common name in the certificate");
    changed[at + 5] = b'f';
    assert!(ca.verify_issued(&changed, now()).is_err());
    ca.verify_issued(&ours.cert_der, now()).unwrap();
}

#[test]
fn verify_issued_rejects_foreign_expired_not_yet_valid_and_ca_certificates() {
    let ca = shared_ca();
    let req = ClientCertificateRequest::new("device", 30);

    let foreign = other_ca().issue_client_certificate(&req, now()).unwrap();
    assert!(matches!(
        ca.verify_issued(&foreign.cert_der, now()),
        Err(PkiError::UntrustedIssuer(_))
    ));

    let long_ago = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    // Issued before the CA itself exists: valid for one day in January.
    let old = ca
        .issue_client_certificate(
            &ClientCertificateRequest::new("old", 1),
            now() - Duration::days(20),
        )
        .unwrap();
    match ca.verify_issued(&old.cert_der, now()) {
        Err(PkiError::Expired { not_after }) => assert_eq!(not_after, old.not_after),
        other => panic!("expected Expired, got {other:?}"),
    }
    assert!(long_ago < old.not_before);
    match ca.verify_issued(&old.cert_der, long_ago) {
        Err(PkiError::NotYetValid { not_before }) => assert_eq!(not_before, old.not_before),
        other => panic!("expected NotYetValid, got {other:?}"),
    }

    assert!(matches!(
        ca.verify_issued(&ca.issuing_der(), now()),
        Err(PkiError::UntrustedIssuer(_))
    ));
    assert!(matches!(
        ca.verify_issued(&ca.root_der(), now()),
        Err(PkiError::UntrustedIssuer(_))
    ));
    assert!(matches!(
        ca.verify_issued(b"not a certificate", now()),
        Err(PkiError::Malformed(_))
    ));
}

#[test]
fn crl_lists_revoked_serials_and_openssl_honours_it() {
    let ca = shared_ca();
    let revoked = ca
        .issue_client_certificate(&ClientCertificateRequest::new("lost-ipad", 30), now())
        .unwrap();
    let kept = ca
        .issue_client_certificate(&ClientCertificateRequest::new("kept-ipad", 30), now())
        .unwrap();
    let crl = ca
        .issue_crl(
            &[RevokedCertificate {
                serial_hex: revoked.serial_hex.clone(),
                revoked_at: now(),
            }],
            7,
            now(),
            7,
        )
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let crl_path = write(dir.path(), "crl.der", &crl);
    let chain = write(
        dir.path(),
        "chain.pem",
        format!("{}{}", ca.issuing_pem(), ca.root_pem()),
    );
    let out = openssl(&[
        "crl", "-inform", "DER", "-in", &crl_path, "-CAfile", &chain, "-noout", "-text",
    ]);
    assert!(out.ok && out.text.contains("verify OK"), "{}", out.text);
    assert!(
        out.text
            .to_lowercase()
            .contains(&revoked.serial_hex.to_lowercase()),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("X509v3 CRL Number: \n                7")
            || out.text.contains("CRL Number"),
        "{}",
        out.text
    );

    let crl_pem = openssl(&["crl", "-inform", "DER", "-in", &crl_path]).stdout;
    let crl_pem = write(dir.path(), "crl.pem", crl_pem);
    let root = write(dir.path(), "root.pem", ca.root_pem());
    let issuing = write(dir.path(), "issuing.pem", ca.issuing_pem());
    for (cert, expect_ok) in [(&revoked, false), (&kept, true)] {
        let leaf = write(dir.path(), "leaf.pem", &cert.cert_pem);
        let out = openssl(&[
            "verify",
            "-attime",
            &attime(),
            "-crl_check",
            "-CRLfile",
            &crl_pem,
            "-CAfile",
            &root,
            "-untrusted",
            &issuing,
            &leaf,
        ]);
        assert_eq!(out.ok, expect_ok, "{}", out.text);
        if !expect_ok {
            assert!(out.text.contains("revoked"), "{}", out.text);
        }
    }
}

#[test]
fn a_push_certificate_topic_is_read_from_the_subject_uid() {
    let ca = shared_ca();
    let topic = "com.apple.mgmt.External.0d8a4b6e-3c1f-4e2a-9b7d-5f6a8c9e1d2b";
    let mut req = ClientCertificateRequest::new(format!("APSP:{topic}"), 365);
    req.user_id = Some(topic.into());
    let issued = ca.issue_client_certificate(&req, now()).unwrap();
    assert_eq!(
        flotte_pki::push_topic(&issued.cert_der).unwrap().as_deref(),
        Some(topic)
    );

    let plain = ca
        .issue_client_certificate(&ClientCertificateRequest::new("no uid", 30), now())
        .unwrap();
    assert_eq!(flotte_pki::push_topic(&plain.cert_der).unwrap(), None);
}
