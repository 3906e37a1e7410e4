//! The provisioning document a real Windows 10 accepted (`shared/vectors/windows`).

use flotte_windows::provisioning;
use std::path::PathBuf;

fn vector(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vectors/windows")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

#[test]
fn the_document_windows_10_accepted_reads_like_ours() {
    let account = provisioning::parse(&vector("win10-accepted-wap-provisioningdoc.xml")).unwrap();
    assert_eq!(
        account.management_url,
        "https://windows.fleetdm.ngrok.io/ManagementServer/MDM.svc"
    );
    assert_eq!(account.provider_id, "DEMO MDM");
    // The APPSRV credential is the device's own (w7 APPLICATION CSP: "the client authenticates
    // itself to the OMA DM server"), the one its digest is computed from.
    assert_eq!(account.client_auth.name.as_deref(), Some("dummy"));
    assert_eq!(account.client_auth.secret, "dummy");
    assert_eq!(account.client_auth.nonce_b64, "nonce");
    assert_eq!(account.poll.first_count, 8);
    let stores: Vec<&str> = account
        .certificates
        .iter()
        .map(|(store, _, _)| store.as_str())
        .collect();
    assert_eq!(stores, ["Root/System", "My/User"]);
    for (_, thumbprint, der) in &account.certificates {
        assert_eq!(
            thumbprint,
            flotte_profiles::windows::Thumbprint::of_der(der).as_str(),
            "stores name certificates by their SHA-1 thumbprint"
        );
    }
}
