//! Windows MDM: MS-MDE2 enrolment with the real Windows 10 messages and the simulated laptop,
//! OMA-DM management sessions, the shared command queue, and every kind of bad input.

use flotte_storage::entity::certificate;
use flotte_tests::slapd::{BASE_DN, Fixtures, SERVICE_DN, SERVICE_PASSWORD, Slapd};
use flotte_tests::windows_device::{
    CredentialMode, SimLaptop, capture, challenge_nonce, header_status, is_fault,
};
use flotte_tests::{TestApp, TestEnv, eventually};
use flotte_windows::digest::{decode_nonce, md5_credential};
use flotte_windows::soap::{self, FaultCode};
use flotte_windows::syncml::{self, Cred, Status, SyncCommand};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

const DISCOVERY: &str = "/EnrollmentServer/Discovery.svc";
const POLICY: &str = "/EnrollmentServer/Policy.svc";
const ENROLLMENT: &str = "/EnrollmentServer/Enrollment.svc";
const MANAGEMENT: &str = "/ManagementServer/MDM.svc";

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn post(client: &reqwest::Client, url: String, body: impl Into<reqwest::Body>) -> Answer {
    let response = client
        .post(url)
        .header("content-type", "application/soap+xml; charset=utf-8")
        .body(body)
        .send()
        .await
        .expect("request");
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

fn ca_pem(app: &TestApp) -> Vec<u8> {
    std::fs::read(app.data_path("ca.pem")).expect("ca.pem")
}

/// A technician's enrolment secret through the API.
async fn enrollment_secret(app: &TestApp, body: Value) -> String {
    let (status, created) = app
        .post_json("/api/v1/windows/enrollment-secrets", &body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["secret"].as_str().expect("secret").to_owned()
}

/// A technician's local account (no directory configured): what OnPremise enrolment checks
/// the password against. Staff need a school role from the directory, technicians do not.
async fn local_technician(app: &TestApp, username: &str, password: &str) {
    let hash = flotte_server::local_auth::hash_password(password).unwrap();
    let actor = flotte_core::audit::AuditEntry::new("test", "account.set_password", "");
    app.store
        .set_local_account(username, &hash, true, &actor, chrono::Utc::now())
        .await
        .unwrap();
}

async fn enrolled_laptop(app: &TestApp, n: u64) -> SimLaptop {
    let secret = enrollment_secret(app, json!({ "label": format!("laptop {n}") })).await;
    let mut laptop = SimLaptop::new(&ca_pem(app), &app.base_url, n).expect("laptop");
    laptop
        .enroll("staging@schule.example", &secret)
        .await
        .expect("enrolment");
    laptop
}

async fn device(app: &TestApp, key: &str) -> Value {
    let (status, body) = app.get_json(&format!("/api/v1/devices/{key}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn device_count(app: &TestApp) -> usize {
    let (_, body) = app.get_json("/api/v1/devices").await;
    body.as_array().map_or(0, Vec::len)
}

async fn commands(app: &TestApp, key: &str) -> Vec<Value> {
    let (status, body) = app
        .get_json(&format!("/api/v1/devices/{key}/commands"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

/// Audit entries about devices and Windows (the worker's own housekeeping may add others).
async fn audit_len(app: &TestApp) -> usize {
    let (_, body) = app.get_json("/api/v1/audit?limit=1000").await;
    body.as_array().map_or(0, |entries| {
        entries
            .iter()
            .filter(|e| {
                let action = e["action"].as_str().unwrap_or_default();
                action.starts_with("windows.")
                    || e["target"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("device:")
            })
            .count()
    })
}

fn fault_of(answer: &Answer) -> Option<FaultCode> {
    soap::parse_discover_response(answer.body.as_bytes())
        .err()
        .and_then(|e| e.fault_code())
}

/// `openssl verify` of `cert_der` against the app's root, the issuing CA as intermediate.
fn openssl_verifies(data_dir: &std::path::Path, cert_der: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, flotte_pki::der_to_pem("CERTIFICATE", cert_der)).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(data_dir.join("ca.pem"))
        .arg("-untrusted")
        .arg(data_dir.join("issuing-ca.pem"))
        .arg(&cert)
        .output()
        .expect("openssl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn my_certificate(document: &str) -> Vec<u8> {
    flotte_windows::provisioning::parse(document)
        .expect("provisioning document")
        .certificates
        .into_iter()
        .find(|(store, _, _)| store.starts_with("My/"))
        .expect("a client certificate")
        .2
}

// ---------------------------------------------------------------------------------------------
// Enrolment with the real Windows 10 messages

#[tokio::test]
async fn the_captured_discovery_is_answered_with_this_servers_urls() {
    let app = TestApp::spawn().await;
    let probe = app.client.get(app.url(DISCOVERY)).send().await.unwrap();
    assert_eq!(probe.status(), StatusCode::OK);
    assert!(
        probe.text().await.unwrap().is_empty(),
        "the probe answer is empty"
    );

    let request = capture::request_to(DISCOVERY, 0);
    assert_eq!(
        Some(request.body.len()),
        request.content_length,
        "the capture's body is the bytes the device sent"
    );
    let answer = post(&app.client, app.url(DISCOVERY), request.body.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.headers["content-type"],
        "application/soap+xml; charset=utf-8"
    );
    assert!(
        answer.headers.get("content-length").is_some()
            && answer.headers.get("transfer-encoding").is_none(),
        "Windows refuses chunked answers"
    );
    let urls = soap::parse_discover_response(answer.body.as_bytes()).unwrap();
    assert_eq!(urls.auth_policy, "OnPremise");
    assert_eq!(urls.policy_url, app.url(POLICY));
    assert_eq!(urls.enrollment_url, app.url(ENROLLMENT));
    assert!(
        answer
            .body
            .contains("<a:RelatesTo>urn:uuid:748132ec-a575-4329-b01b-6171a9cf8478</a:RelatesTo>"),
        "RelatesTo echoes the request's MessageID: {}",
        answer.body
    );
}

#[tokio::test]
async fn the_captured_policy_request_gets_sha256_with_the_right_password_and_a_fault_otherwise() {
    let app = TestApp::spawn().await;
    // The captured device enrolled as "demio" with password "demo".
    local_technician(&app, "demio", "demo").await;
    let request = capture::request_to(POLICY, 0);
    let answer = post(&app.client, app.url(POLICY), request.body.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let policy = soap::parse_get_policies_response(answer.body.as_bytes()).unwrap();
    assert_eq!(policy.hash_algorithm_oid.as_deref(), Some(soap::OID_SHA256));
    assert_eq!(policy.min_key_length, Some(2048));

    let wrong = request
        .body
        .replace(">demo</wsse:Password>", ">guess</wsse:Password>");
    let answer = post(&app.client, app.url(POLICY), wrong).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let err = soap::parse_get_policies_response(answer.body.as_bytes()).unwrap_err();
    assert_eq!(err.fault_code(), Some(FaultCode::Authentication), "{err}");
}

#[tokio::test]
async fn an_unknown_user_or_wrong_password_is_refused_with_an_authentication_fault() {
    let app = TestApp::spawn().await;
    local_technician(&app, "demio", "not-demo").await;
    let before = audit_len(&app).await;
    for path in [POLICY, ENROLLMENT] {
        let request = capture::request_to(path, 0);
        let answer = post(&app.client, app.url(path), request.body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert!(answer.body.contains("s:Authentication"), "{}", answer.body);
    }
    assert_eq!(device_count(&app).await, 0, "nothing enrolled");
    assert_eq!(audit_len(&app).await, before, "nothing recorded");
}

#[tokio::test]
async fn the_captured_enrolment_signs_the_sha1_csr_and_the_certificate_verifies_with_openssl() {
    let app = TestApp::spawn().await;
    // The captured device enrolled as "demio" with password "demo".
    local_technician(&app, "demio", "demo").await;
    let request = capture::request_to(ENROLLMENT, 0);
    let answer = post(&app.client, app.url(ENROLLMENT), request.body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(
        answer
            .body
            .contains("urn:uuid:0d5a1441-5891-453b-becf-a2e5f6ea3749")
    );
    let document = soap::parse_enrollment_response(answer.body.as_bytes()).unwrap();
    let account = flotte_windows::provisioning::parse(&document).unwrap();
    assert_eq!(account.management_url, app.url(MANAGEMENT));

    let stores: Vec<&str> = account
        .certificates
        .iter()
        .map(|(s, _, _)| s.as_str())
        .collect();
    assert_eq!(
        stores,
        ["Root/System", "CA/System", "My/User"],
        "Full enrolment: user store"
    );
    let root = flotte_pki::pem_to_der(&String::from_utf8(ca_pem(&app)).unwrap()).unwrap();
    assert_eq!(
        account.certificates[0].2, root,
        "our root goes into Root/System"
    );
    let cert = my_certificate(&document);
    let (ok, output) = openssl_verifies(&app.data_dir, &cert);
    assert!(ok, "openssl verify: {output}");
    let info = flotte_pki::certificate_info(&cert).unwrap();
    assert_eq!(
        info.common_name.as_deref(),
        Some("B5B954E81FBCB94EB79BD08BE625F4EE"),
        "the CN is the DeviceID, never the CSR's subject"
    );
    assert!(
        document.contains("Subject=CN%3DB5B954E81FBCB94EB79BD08BE625F4EE&amp;Stores=My%5CUser")
    );
    assert!(document.contains(r#"<parm name="PROVIDER-ID" value="Flotte"/>"#));

    let enrolled = device(&app, "B5B954E81FBCB94EB79BD08BE625F4EE").await;
    assert_eq!(enrolled["platform"], "windows");
    assert_eq!(enrolled["enrollment_state"], "enrolled");
    assert_eq!(enrolled["device_name"], "DESKTOP-28FGAI6");
}

#[tokio::test]
async fn both_vector_csrs_are_signed_and_the_certificates_verify_with_openssl() {
    let app = TestApp::spawn().await;
    for (n, name) in ["win10-csr-sha1.der", "win11-csr-deviceid-extension.der"]
        .into_iter()
        .enumerate()
    {
        let csr = capture::vector(name);
        let info = flotte_pki::inspect_csr(&csr).expect("the vector CSR verifies");
        let device_id = info
            .device_id
            .clone()
            .or_else(|| {
                info.common_name
                    .as_deref()
                    .and_then(|cn| cn.rsplit_once('!'))
                    .map(|(_, id)| id.to_owned())
            })
            .expect("a device id in the CSR");
        let secret = enrollment_secret(&app, json!({ "label": name })).await;
        let body = soap::render_request_security_token(
            "urn:uuid:1",
            &app.url(ENROLLMENT),
            &soap::Credential::UsernameToken {
                username: "staging@schule.example".into(),
                password: secret,
            },
            &csr,
            &[
                ("DeviceID", device_id.as_str()),
                ("HWDevID", &format!("HW{n}")),
                ("EnrollmentType", "Device"),
            ],
        );
        let answer = post(&app.client, app.url(ENROLLMENT), body).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.body);
        let document = soap::parse_enrollment_response(answer.body.as_bytes()).unwrap();
        assert!(
            document.contains("My%5CSystem"),
            "device enrolment: system store"
        );
        let cert = my_certificate(&document);
        let (ok, output) = openssl_verifies(&app.data_dir, &cert);
        assert!(ok, "{name}: openssl verify: {output}");
        assert_eq!(
            flotte_pki::certificate_info(&cert).unwrap().common_name,
            Some(device_id.clone())
        );
        assert_eq!(device(&app, &device_id).await["platform"], "windows");
    }
}

#[tokio::test]
async fn a_csr_with_a_broken_signature_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let secret = enrollment_secret(&app, json!({ "label": "broken", "max_uses": 1 })).await;
    let mut csr = capture::vector("win10-csr-sha1.der");
    let last = csr.len() - 1;
    csr[last] ^= 0x01;
    let body = soap::render_request_security_token(
        "urn:uuid:2",
        &app.url(ENROLLMENT),
        &soap::Credential::UsernameToken {
            username: "x".into(),
            password: secret,
        },
        &csr,
        &[("DeviceID", "B5B954E81FBCB94EB79BD08BE625F4EE")],
    );
    let before = audit_len(&app).await;
    let answer = post(&app.client, app.url(ENROLLMENT), body).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let err = soap::parse_enrollment_response(answer.body.as_bytes()).unwrap_err();
    assert_eq!(
        err.fault_code(),
        Some(FaultCode::CertificateRequest),
        "{err}"
    );
    assert_eq!(device_count(&app).await, 0);
    assert_eq!(audit_len(&app).await, before);
    let (_, secrets) = app.get_json("/api/v1/windows/enrollment-secrets").await;
    assert_eq!(secrets[0]["uses"], 0, "the secret's use is not spent");
}

#[tokio::test]
async fn a_device_id_that_disagrees_with_the_csr_is_refused() {
    let app = TestApp::spawn().await;
    let secret = enrollment_secret(&app, json!({ "label": "mismatch" })).await;
    let body = soap::render_request_security_token(
        "urn:uuid:3",
        &app.url(ENROLLMENT),
        &soap::Credential::UsernameToken {
            username: "x".into(),
            password: secret,
        },
        &capture::vector("win11-csr-deviceid-extension.der"),
        &[("DeviceID", "00000000000000000000000000000000")],
    );
    let answer = post(&app.client, app.url(ENROLLMENT), body).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.body.contains("s:CertificateRequest"),
        "{}",
        answer.body
    );
    assert_eq!(device_count(&app).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Bad input at the enrolment endpoints

#[tokio::test]
async fn empty_posts_get_a_message_format_fault_and_management_a_400() {
    let app = TestApp::spawn().await;
    for path in [DISCOVERY, POLICY, ENROLLMENT] {
        let answer = post(&app.client, app.url(path), "").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(fault_of(&answer), Some(FaultCode::MessageFormat), "{path}");
    }
    let answer = post(&app.client, app.url(MANAGEMENT), "").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn doctype_and_entity_expansion_are_refused_without_effect() {
    let app = TestApp::spawn().await;
    let before = audit_len(&app).await;
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>"#;
    let discover = capture::request_to(DISCOVERY, 0).body;
    let with_doctype = format!(
        "{laughs}{}",
        discover.replace("demo@fleetdm.ngrok.io", "&c;")
    );
    let answer = post(&app.client, app.url(DISCOVERY), with_doctype).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(fault_of(&answer), Some(FaultCode::MessageFormat));
    assert!(answer.body.contains("DOCTYPE"), "{}", answer.body);

    // An entity reference without any DOCTYPE is refused too.
    let entity = discover.replace("demo@fleetdm.ngrok.io", "&c;");
    let answer = post(&app.client, app.url(DISCOVERY), entity).await;
    assert_eq!(fault_of(&answer), Some(FaultCode::MessageFormat));

    let rst = capture::request_to(ENROLLMENT, 0).body;
    let answer = post(&app.client, app.url(ENROLLMENT), format!("{laughs}{rst}")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    let syncml = capture::request_to(MANAGEMENT, 0).body;
    let answer = post(
        &app.client,
        app.url(MANAGEMENT),
        format!("<!DOCTYPE SyncML [<!ENTITY x \"y\">]>{syncml}"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(device_count(&app).await, 0);
    assert_eq!(audit_len(&app).await, before);
}

#[tokio::test]
async fn oversized_and_deeply_nested_xml_is_refused() {
    let app = TestApp::spawn().await;
    let discover = capture::request_to(DISCOVERY, 0).body;
    let padded = discover.replace(
        "<EmailAddress>",
        &format!("<!--{}--><EmailAddress>", "x".repeat(70 * 1024)),
    );
    let answer = post(&app.client, app.url(DISCOVERY), padded).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("limit"), "{}", answer.body);

    let deep = discover.replace(
        "<EmailAddress>",
        &format!("{}<EmailAddress>", "<x>".repeat(100) + &"</x>".repeat(100)),
    );
    let answer = post(&app.client, app.url(DISCOVERY), deep).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("nested"), "{}", answer.body);

    let beyond_body_limit = "<a>".repeat(400 * 1024);
    let answer = post(&app.client, app.url(MANAGEMENT), beyond_body_limit).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

// ---------------------------------------------------------------------------------------------
// Enrolment secrets

#[tokio::test]
async fn enrolment_secrets_are_shown_once_assign_a_school_count_uses_and_can_be_revoked() {
    let app = TestApp::spawn().await;
    let school = app.create_school("GYM1", "Gymnasium am Dom").await;
    let (status, created) = app
        .post_json(
            "/api/v1/windows/enrollment-secrets",
            &json!({ "label": "Lieferung 12/2026", "school_id": school, "max_uses": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("flotte-win-"));
    assert_eq!(created["discovery_url"], app.url(DISCOVERY));
    let (_, listed) = app.get_json("/api/v1/windows/enrollment-secrets").await;
    assert!(listed[0].get("secret").is_none(), "never shown again");
    assert!(!listed.to_string().contains(&secret));

    let mut first = SimLaptop::new(&ca_pem(&app), &app.base_url, 1).unwrap();
    first.enrollment_type = "Device";
    first
        .enroll("package@schule.example", &secret)
        .await
        .unwrap();
    let enrolled = device(&app, &first.device_id).await;
    assert_eq!(enrolled["school_id"], school);
    assert_eq!(enrolled["enrollment_state"], "enrolled");

    let mut second = SimLaptop::new(&ca_pem(&app), &app.base_url, 2).unwrap();
    let err = second
        .enroll("package@schule.example", &secret)
        .await
        .unwrap_err();
    assert!(is_fault(&err, FaultCode::Authentication), "{err}");
    let (_, listed) = app.get_json("/api/v1/windows/enrollment-secrets").await;
    assert_eq!(listed[0]["uses"], 1);

    let id = created["id"].as_str().unwrap();
    let revoke = app
        .api(
            reqwest::Method::DELETE,
            &format!("/api/v1/windows/enrollment-secrets/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::OK);
    let again = app
        .api(
            reqwest::Method::DELETE,
            &format!("/api/v1/windows/enrollment-secrets/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let (status, _) = app
        .post_json(
            "/api/v1/windows/enrollment-secrets",
            &json!({ "label": " ", "max_uses": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let openapi = app.get_json("/api/v1/openapi.json").await.1;
    assert!(openapi["paths"]["/api/v1/windows/enrollment-secrets"].is_object());
}

#[tokio::test]
async fn a_revoked_or_unknown_secret_does_not_enrol() {
    let app = TestApp::spawn().await;
    let mut laptop = SimLaptop::new(&ca_pem(&app), &app.base_url, 1).unwrap();
    let err = laptop
        .enroll("x", "flotte-win-0000000000000000000000000000000000000000")
        .await
        .unwrap_err();
    assert!(is_fault(&err, FaultCode::Authentication), "{err}");

    let (_, created) = app
        .post_json(
            "/api/v1/windows/enrollment-secrets",
            &json!({ "label": "leaked package" }),
        )
        .await;
    let revoke = app
        .api(
            reqwest::Method::DELETE,
            &format!(
                "/api/v1/windows/enrollment-secrets/{}",
                created["id"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::OK);
    let err = laptop
        .enroll("x", created["secret"].as_str().unwrap())
        .await
        .unwrap_err();
    assert!(is_fault(&err, FaultCode::Authentication), "{err}");
    assert_eq!(device_count(&app).await, 0);
}

// ---------------------------------------------------------------------------------------------
// Management

#[tokio::test]
async fn an_enrolled_laptop_syncs_and_reports_its_inventory() {
    let app = TestApp::spawn().await;
    let mut laptop = enrolled_laptop(&app, 7).await;
    let report = laptop.sync().await.unwrap();
    assert!(
        report.challenged,
        "Windows sends credentials only when challenged"
    );
    assert_eq!(report.header_codes[..2], [407, 212]);
    assert_eq!(
        report
            .commands
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>(),
        ["Get"],
        "the inventory queued at enrolment"
    );

    let d = device(&app, &laptop.device_id).await;
    assert_eq!(d["platform"], "windows");
    assert_eq!(d["model"], "Latitude 3440");
    assert_eq!(d["model_name"], "Dell Inc. Latitude 3440");
    assert_eq!(d["product_name"], "Windows 11 Education");
    assert_eq!(d["os_version"], "10.0.22631");
    assert_eq!(d["build_version"], "22631.4602");
    assert_eq!(d["serial_number"], "SIM0000007");
    assert_eq!(d["available_gb"], 123.46);
    assert_eq!(d["capacity_gb"], 255.0);
    assert_eq!(d["battery_level"], 0.87);
    assert!(d["last_seen_at"].is_string());

    let queue = commands(&app, &laptop.device_id).await;
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0]["request_type"], "Windows:Inventory");
    assert_eq!(queue[0]["status"], "acknowledged");
    assert_eq!(queue[0]["created_by"], "system");
    let result = queue[0]["result"].as_str().unwrap();
    assert!(
        result.contains("<Results>") && result.contains("SIM0000007"),
        "{result}"
    );
    assert!(
        queue[0]["error"].as_str().unwrap().contains("404"),
        "TotalStorage is a phone-only node: {}",
        queue[0]["error"]
    );

    let (_, windows) = app.get_json("/api/v1/devices?platform=windows").await;
    assert_eq!(windows.as_array().unwrap().len(), 1, "one fleet, one list");
    let again = laptop.sync().await.unwrap();
    assert!(again.commands.is_empty(), "nothing left to send");
    assert_eq!(again.header_codes, [407, 212], "a new nonce each session");
}

#[tokio::test]
async fn typed_commands_reach_the_laptop_and_the_session_runs_until_the_queue_is_empty() {
    let app = TestApp::spawn().await;
    let mut laptop = enrolled_laptop(&app, 1).await;
    laptop.sync().await.unwrap();
    let id = laptop.device_id.clone();
    let root = flotte_pki::pem_to_der(&String::from_utf8(ca_pem(&app)).unwrap()).unwrap();
    let queued = [
        app.queue(&id, "Windows:Reboot", json!({})).await,
        app.queue(&id, "Windows:Lock", Value::Null).await,
        app.queue(
            &id,
            "Windows:WiFi",
            json!({ "profile": { "ssid": "Schulnetz", "security": {
                "mode": "wpa2_personal", "passphrase": "geheim123" } } }),
        )
        .await,
        app.queue(
            &id,
            "Windows:RootCertificate",
            json!({ "certificate": flotte_tests::windows_device::b64(&root) }),
        )
        .await,
        app.queue(
            &id,
            "Windows:ClientCertificate",
            json!({ "certificate": { "unique_id": "wlan", "pfx": "AAEC", "password": "pw" } }),
        )
        .await,
        app.queue(
            &id,
            "Windows:Replace",
            json!({ "items": [{ "uri": "./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera",
                "format": "int", "data": "0" }] }),
        )
        .await,
        app.queue(&id, "Windows:Get", json!({ "uris": ["./DevDetail/SwV"] }))
            .await,
        app.queue(
            &id,
            "Windows:Delete",
            json!({ "uris": ["./Device/Vendor/MSFT/Nope"] }),
        )
        .await,
        app.queue(&id, "Windows:Wipe", json!({})).await,
    ];
    // Enough further commands that they need more than one message.
    for n in 0..25 {
        app.queue(
            &id,
            "Windows:Add",
            json!({ "items": [{ "uri": format!("./Device/Vendor/MSFT/Test/N{n}"), "format": "chr", "data": "x" }] }),
        )
        .await;
    }
    let report = laptop.sync().await.unwrap();
    assert_eq!(report.commands.len(), 34, "{:?}", report.commands);
    assert!(
        report.messages >= 4,
        "2 for auth, at least 2 to drain: {}",
        report.messages
    );
    assert!(
        laptop
            .executed
            .contains(&"./Device/Vendor/MSFT/Reboot/RebootNow".to_owned())
    );
    assert!(
        laptop
            .executed
            .contains(&"./Device/Vendor/MSFT/RemoteWipe/doWipe".to_owned())
    );
    assert!(
        laptop
            .tree
            .contains_key("./Device/Vendor/MSFT/WiFi/Profile/Schulnetz/WlanXml")
    );
    assert_eq!(
        laptop.tree["./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera"],
        "0"
    );
    assert!(laptop.tree.contains_key(
        "./Device/Vendor/MSFT/ClientCertificateInstall/PFXCertInstall/wlan/PFXCertBlob"
    ));

    let queue = commands(&app, &id).await;
    let by_id = |cmd: &str| {
        queue
            .iter()
            .find(|c| c["id"] == cmd)
            .unwrap_or_else(|| panic!("{cmd}"))
            .clone()
    };
    let expect = [
        ("Windows:Reboot", "acknowledged"),
        ("Windows:Lock", "error"),
        ("Windows:WiFi", "acknowledged"),
        ("Windows:RootCertificate", "acknowledged"),
        ("Windows:ClientCertificate", "acknowledged"),
        ("Windows:Replace", "acknowledged"),
        ("Windows:Get", "acknowledged"),
        ("Windows:Delete", "error"),
        ("Windows:Wipe", "acknowledged"),
    ];
    for (cmd, (request_type, status)) in queued.iter().zip(expect) {
        let c = by_id(cmd);
        assert_eq!(c["request_type"], request_type);
        assert_eq!(c["status"], status, "{request_type}: {c}");
    }
    assert!(by_id(&queued[1])["error"].as_str().unwrap().contains("405"));
    assert!(
        by_id(&queued[6])["result"]
            .as_str()
            .unwrap()
            .contains("10.0.22631.4602")
    );
    assert!(
        queue
            .iter()
            .all(|c| c["status"] != "queued" && c["status"] != "sent"),
        "the session ran until nothing was left"
    );
}

#[tokio::test]
async fn invalid_windows_commands_are_refused_when_queued() {
    let app = TestApp::spawn().await;
    let laptop = enrolled_laptop(&app, 1).await;
    for (request_type, parameters) in [
        ("Windows:Shutdown", json!({})),
        ("DeviceInformation", json!({})),
        ("Windows:Get", json!({ "uris": [] })),
        (
            "Windows:Replace",
            json!({ "items": [{ "uri": "/Device/x", "data": "1" }] }),
        ),
        ("Windows:Reboot", json!({ "now": true })),
        (
            "Windows:RootCertificate",
            json!({ "certificate": "not a certificate" }),
        ),
    ] {
        let (status, body) = app
            .post_json(
                &format!("/api/v1/devices/{}/commands", laptop.device_id),
                &json!({ "request_type": request_type, "parameters": parameters }),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request_type}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(request_type),
            "{body}"
        );
    }
    assert_eq!(
        commands(&app, &laptop.device_id).await.len(),
        1,
        "only the inventory"
    );
}

#[tokio::test]
async fn the_client_certificate_authenticates_sessions_without_a_digest() {
    let app = TestApp::spawn().await;
    let mut laptop = enrolled_laptop(&app, 1).await;
    laptop.use_client_certificate().unwrap();
    let report = laptop.sync().await.unwrap();
    assert!(!report.challenged, "{:?}", report.header_codes);
    assert_eq!(report.header_codes[0], 200);
    assert_eq!(report.commands.len(), 1);

    // Another enrolled laptop's valid certificate does not speak for this DeviceID.
    let mut other = enrolled_laptop(&app, 2).await;
    other.use_client_certificate().unwrap();
    let forged = other
        .message("9", 1, laptop.package_one(false), false)
        .unwrap();
    let mut forged = forged;
    forged.header.source = laptop.device_id.clone();
    let response = other
        .post_management(forged.to_xml().into_bytes())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_captured_management_messages_are_answered_and_alert_1226_unenrols() {
    let app = TestApp::spawn().await;
    // The captured device enrolled as "demio" with password "demo".
    local_technician(&app, "demio", "demo").await;
    let enrol = post(
        &app.client,
        app.url(ENROLLMENT),
        capture::request_to(ENROLLMENT, 0).body,
    )
    .await;
    let document = soap::parse_enrollment_response(enrol.body.as_bytes()).unwrap();
    let account = flotte_windows::provisioning::parse(&document).unwrap();
    let name = account.client_auth.name.clone().unwrap();
    let cred_for = |nonce: &str| Cred {
        auth_type: syncml::AUTH_MD5.into(),
        format: Some("b64".into()),
        data: md5_credential(&name, &account.client_auth.secret, &decode_nonce(nonce)),
    };
    let url = app.url(&format!("{MANAGEMENT}?mode=Maintenance&Platform=WoA"));

    // Session 1, as captured: no credentials, so a challenge and nothing else.
    let first = capture::request_to(MANAGEMENT, 0);
    assert_eq!(Some(first.body.len()), first.content_length);
    let answer = post(&app.client, url.clone(), first.body.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.headers["content-type"],
        "application/vnd.syncml.dm+xml"
    );
    let challenge = syncml::parse(answer.body.as_bytes()).unwrap();
    assert_eq!(header_status(&challenge).unwrap().code, "407");
    assert_eq!(challenge.body.len(), 1);
    assert_eq!(challenge.header.target, "B5B954E81FBCB94EB79BD08BE625F4EE");
    let nonce = challenge_nonce(&challenge).unwrap();
    assert_eq!(
        nonce, account.client_auth.nonce_b64,
        "the nonce of the document"
    );

    // The same package again, as Windows resends it with the digest (MsgID 2).
    let mut with_cred = syncml::parse(first.body.as_bytes()).unwrap();
    with_cred.header.msg_id = 2;
    with_cred.header.source_name = Some(name.clone());
    with_cred.header.cred = Some(cred_for(&nonce));
    let answer = post(&app.client, url.clone(), with_cred.to_xml()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let accepted = syncml::parse(answer.body.as_bytes()).unwrap();
    let statuses: Vec<(String, String, String, String)> = accepted
        .body
        .iter()
        .filter_map(|c| match c {
            SyncCommand::Status(Status {
                msg_ref,
                cmd_ref,
                cmd,
                code,
                ..
            }) => Some((msg_ref.clone(), cmd_ref.clone(), cmd.clone(), code.clone())),
            _ => None,
        })
        .collect();
    let expected: Vec<(String, String, String, String)> = [
        ("2", "0", "SyncHdr", "212"),
        ("2", "2", "Alert", "200"),
        ("2", "3", "Alert", "200"),
        ("2", "4", "Replace", "200"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect();
    assert_eq!(statuses, expected);
    assert!(
        accepted.body.iter().any(|c| c.name() == "Get"),
        "the inventory queued at enrolment follows the statuses"
    );
    let next_nonce = challenge_nonce(&accepted).expect("212 hands over the next nonce");
    assert_ne!(next_nonce, nonce);
    let d = device(&app, "B5B954E81FBCB94EB79BD08BE625F4EE").await;
    assert_eq!(d["model"], "VMware7,1", "from the DevInfo Replace");

    // Session 2, as captured: the user removed the account (alert 1226).
    let second = capture::request_to(MANAGEMENT, 1);
    let mut unenrol = syncml::parse(second.body.as_bytes()).unwrap();
    unenrol.header.source_name = Some(name.clone());
    unenrol.header.cred = Some(cred_for(&next_nonce));
    let answer = post(&app.client, url.clone(), unenrol.to_xml()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let answered = syncml::parse(answer.body.as_bytes()).unwrap();
    assert!(
        answered.body.iter().all(|c| c.name() == "Status"),
        "no commands for a leaving laptop"
    );
    assert_eq!(answered.body.len(), 5, "header + 3 alerts + replace");
    let d = device(&app, "B5B954E81FBCB94EB79BD08BE625F4EE").await;
    assert_eq!(d["enrollment_state"], "unenrolled");

    // The unenrolled laptop's next message is refused.
    let mut after = syncml::parse(second.body.as_bytes()).unwrap();
    after.header.session_id = "3".into();
    let answer = post(&app.client, url, after.to_xml()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_user_removing_the_enrolment_marks_the_laptop_unenrolled() {
    let app = TestApp::spawn().await;
    let mut laptop = enrolled_laptop(&app, 1).await;
    laptop.sync().await.unwrap();
    app.queue(&laptop.device_id, "Windows:Reboot", json!({}))
        .await;
    let report = laptop.unenroll().await.unwrap();
    assert!(
        report.commands.is_empty(),
        "nothing is sent to a leaving laptop"
    );
    let d = device(&app, &laptop.device_id).await;
    assert_eq!(d["enrollment_state"], "unenrolled");
    let err = laptop.sync().await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let (_, audit) = app.get_json("/api/v1/audit?limit=20").await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "windows.unenroll")
    );
}

#[tokio::test]
async fn unknown_devices_and_wrong_digests_get_401_and_change_nothing() {
    let app = TestApp::spawn().await;
    let laptop = enrolled_laptop(&app, 1).await;
    let before = device(&app, &laptop.device_id).await;
    let audit_before = audit_len(&app).await;

    let mut unknown = laptop
        .message("1", 1, laptop.package_one(false), true)
        .unwrap();
    unknown.header.source = "00000000000000000000000000000000".into();
    let response = laptop
        .post_management(unknown.to_xml().into_bytes())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let answer = syncml::parse(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(header_status(&answer).unwrap().code, "401");

    let mut wrong = laptop
        .message("1", 1, laptop.package_one(false), true)
        .unwrap();
    wrong.header.cred.as_mut().unwrap().data =
        md5_credential(&laptop.device_id, "not-the-secret", b"nonce");
    let response = laptop
        .post_management(wrong.to_xml().into_bytes())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let after = device(&app, &laptop.device_id).await;
    assert_eq!(after["last_seen_at"], before["last_seen_at"], "not seen");
    assert_eq!(audit_len(&app).await, audit_before);
    assert_eq!(
        commands(&app, &laptop.device_id).await[0]["status"],
        "queued",
        "nothing was handed out"
    );
}

#[tokio::test]
async fn replayed_and_out_of_order_messages_are_refused() {
    let app = TestApp::spawn().await;
    let mut laptop = enrolled_laptop(&app, 1).await;
    laptop.credential_mode = CredentialMode::Always;
    // Message 1 with a valid digest starts the session and hands out the inventory Get.
    let first = laptop
        .message("5", 1, laptop.package_one(false), true)
        .unwrap();
    let bytes = first.to_xml().into_bytes();
    let response = laptop.post_management(bytes.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let inventory = commands(&app, &laptop.device_id).await[0].clone();
    assert_eq!(inventory["status"], "sent");

    let replay = laptop.post_management(bytes).await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "same MsgID again");
    let skip = laptop
        .message("5", 3, vec![], false)
        .unwrap()
        .to_xml()
        .into_bytes();
    let skipped = laptop.post_management(skip).await.unwrap();
    assert_eq!(skipped.status(), StatusCode::BAD_REQUEST, "MsgID 3 after 1");
    let after = commands(&app, &laptop.device_id).await[0].clone();
    assert_eq!(after, inventory, "nothing changed");

    // The proper next message is still taken.
    let status = SyncCommand::Status(Status {
        cmd_id: "1".into(),
        msg_ref: "1".into(),
        cmd_ref: "0".into(),
        cmd: "SyncHdr".into(),
        code: "200".into(),
        chal: None,
        items: vec![],
    });
    let next = laptop.message("5", 2, vec![status], false).unwrap();
    let ok = laptop
        .post_management(next.to_xml().into_bytes())
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_status_for_a_command_never_sent_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let laptop = enrolled_laptop(&app, 1).await;
    let first = laptop
        .message("8", 1, laptop.package_one(false), true)
        .unwrap();
    assert_eq!(
        laptop
            .post_management(first.to_xml().into_bytes())
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // Queued after message 1 went out: this command was never sent.
    let reboot = app
        .queue(&laptop.device_id, "Windows:Reboot", json!({}))
        .await;
    let status = |cmd_ref: &str, msg_ref: &str| {
        SyncCommand::Status(Status {
            cmd_id: "2".into(),
            msg_ref: msg_ref.into(),
            cmd_ref: cmd_ref.into(),
            cmd: "Exec".into(),
            code: "200".into(),
            chal: None,
            items: vec![],
        })
    };
    let lie = laptop
        .message("8", 2, vec![status(&reboot, "1")], false)
        .unwrap();
    let response = laptop
        .post_management(lie.to_xml().into_bytes())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response.text().await.unwrap().contains("not sent"),
        "a clear reason"
    );
    let queue = commands(&app, &laptop.device_id).await;
    let reboot_now = queue.iter().find(|c| c["id"] == reboot.as_str()).unwrap();
    assert_eq!(reboot_now["status"], "queued");

    // The same message id, honest this time, is still accepted: nothing moved on.
    let inventory = queue.iter().find(|c| c["id"] != reboot.as_str()).unwrap();
    let honest = laptop
        .message(
            "8",
            2,
            vec![status(inventory["id"].as_str().unwrap(), "1")],
            false,
        )
        .unwrap();
    let response = laptop
        .post_management(honest.to_xml().into_bytes())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer = syncml::parse(&response.bytes().await.unwrap()).unwrap();
    assert!(
        answer
            .body
            .iter()
            .any(|c| c.cmd_id() == Some(reboot.as_str())),
        "the reboot goes out now"
    );
}

#[tokio::test]
async fn a_reimaged_laptop_enrols_again_as_the_same_device() {
    let app = TestApp::spawn().await;
    let laptop = enrolled_laptop(&app, 1).await;
    let first = device(&app, &laptop.device_id).await;
    let secret = enrollment_secret(&app, json!({ "label": "again" })).await;
    let mut reimaged = SimLaptop::new(&ca_pem(&app), &app.base_url, 1).unwrap();
    reimaged.hw_dev_id = laptop.hw_dev_id.clone();
    reimaged.enroll("x", &secret).await.unwrap();
    let second = device(&app, &reimaged.device_id).await;
    assert_eq!(second["id"], first["id"], "same hardware, same device");
    assert_eq!(second["udid"], reimaged.device_id.as_str());
    assert_eq!(device_count(&app).await, 1);
    let identities = certificate::Entity::find()
        .filter(certificate::Column::Kind.eq(flotte_storage::WINDOWS_IDENTITY))
        .all(app.store.connection())
        .await
        .unwrap();
    assert_eq!(identities.len(), 2, "both identities are on record");
    assert!(
        identities
            .iter()
            .all(|c| c.device_id.as_ref() == first["id"].as_str().map(str::to_owned).as_ref())
    );
    assert_eq!(
        identities.iter().filter(|c| c.revoked_at.is_some()).count(),
        1,
        "the first enrolment's identity is revoked"
    );
    let err = post(&app.client, app.url(MANAGEMENT), {
        laptop
            .message("1", 1, laptop.package_one(false), true)
            .unwrap()
            .to_xml()
    })
    .await;
    assert_eq!(
        err.status,
        StatusCode::UNAUTHORIZED,
        "the old DeviceID is gone"
    );
}

#[tokio::test]
async fn the_laptop_polls_on_the_schedule_from_its_provisioning_document() {
    let app = TestApp::spawn().await;
    let mut laptop = enrolled_laptop(&app, 1).await;
    let delays = laptop.poll_delays(25);
    assert_eq!(delays[0], std::time::Duration::from_secs(3 * 60));
    assert_eq!(delays[10], std::time::Duration::from_secs(15 * 60));
    assert_eq!(delays[20], std::time::Duration::from_secs(60 * 60));
    let reports = laptop.run_poll_schedule(3, 360_000.0).await.unwrap();
    assert_eq!(reports.len(), 3);
    assert_eq!(reports[0].commands.len(), 1);
    assert!(reports[1..].iter().all(|r| r.commands.is_empty()));
}

#[tokio::test]
async fn staff_enrol_with_their_directory_password_checked_by_an_ldap_bind_and_pupils_cannot() {
    let slapd = Slapd::builder().ldif(&Fixtures::edge_cases().ldif).start();
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.ldap.url = Some(slapd.url());
    settings.ldap.bind_dn = Some(SERVICE_DN.to_owned());
    settings.ldap.bind_password = Some(SERVICE_PASSWORD.to_owned());
    settings.ldap.base_dn = Some(BASE_DN.to_owned());
    settings.ldap.timeout_secs = 5;
    settings.directory.sync_every_secs = 0;
    let app = TestApp::spawn_in(&env, settings).await;
    // Who is staff comes from the synchronised directory.
    let (status, run) = app
        .post_json("/api/v1/directory/sync?full=true", &json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let run_path = format!("/api/v1/directory/runs/{}", run["id"].as_str().unwrap());
    eventually(30, "the directory sync finishes", &mut || async {
        app.get_json(&run_path).await.1["finished_at"].is_string()
    })
    .await;

    let mut laptop = SimLaptop::new(&ca_pem(&app), &app.base_url, 1).unwrap();
    let err = laptop
        .enroll("lena.lehrer", "not-her-password")
        .await
        .unwrap_err();
    assert!(is_fault(&err, FaultCode::Authentication), "{err}");
    let err = laptop
        .enroll("anna.mueller", "pw-anna.mueller")
        .await
        .unwrap_err();
    assert!(
        is_fault(&err, FaultCode::Authorization),
        "a pupil's right password does not enrol a laptop: {err}"
    );
    assert_eq!(device_count(&app).await, 0);

    laptop
        .enroll("lena.lehrer", "pw-lena.lehrer")
        .await
        .expect("the LDAP bind accepts the teacher's password");
    assert_eq!(
        device(&app, &laptop.device_id).await["enrollment_state"],
        "enrolled"
    );
    let (_, audit) = app.get_json("/api/v1/audit?limit=100").await;
    let entries = audit.as_array().unwrap();
    let enrol = entries
        .iter()
        .find(|e| e["action"] == "windows.enroll")
        .expect("an audit row");
    assert_eq!(enrol["details"]["via"], "staff:lena.lehrer");
    assert!(
        entries.iter().any(|e| e["action"] == "auth.login.failed"),
        "failed attempts are audited like any sign-in"
    );
}
