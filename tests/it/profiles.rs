//! Profile templates through the API (saved, versioned, edited, refused when invalid), their
//! delivery to iPads (signed, variables resolved, checksum-derived version, sent once), the
//! pupils' EAP-TLS certificates (subject for RADIUS, revoked when the loan ends or the
//! person departs, renewed before expiry) and the CRL.

use flotte_core::device::Platform;
use flotte_tests::bench_profiles::{
    device_template, insert_enrolled_devices, insert_person, lend, pupil_wifi_template,
    return_loan, school_template, set_person_state, wait_queued,
};
use flotte_tests::{ApnsStandIn, TestApp, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn app_with_school() -> (ApnsStandIn, TestApp, String) {
    let apns = ApnsStandIn::start().await;
    let env = flotte_tests::TestEnv::new().await;
    let mut settings = env.settings();
    apns.configure(&mut settings);
    settings.profiles.progress_every_secs = 1;
    let app = TestApp::spawn_in(&env, settings).await;
    let school = app.create_school("GYM1", "Gymnasium am Dom").await;
    (apns, app, school)
}

async fn push(app: &TestApp, body: Value) -> Value {
    let (status, push) = app.post_json("/api/v1/pushes", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{push}");
    push
}

async fn wait_status(app: &TestApp, id: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, body) = app.get_json(&format!("/api/v1/pushes/{id}")).await;
        if body["status"] == status {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "push {id} is not {status} after 60 s: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The profile inside an InstallProfile command, with the signer's issuer.
fn installed_profile(command: &plist::Dictionary) -> (plist::Dictionary, String) {
    let signed = command["Payload"].as_data().expect("signed profile bytes");
    let (content, signer) = flotte_pki::open_attached(signed).expect("a valid CMS signature");
    (
        plist::from_bytes(&content).expect("a plist profile"),
        signer.issuer,
    )
}

fn payload<'a>(profile: &'a plist::Dictionary, payload_type: &str) -> &'a plist::Dictionary {
    profile["PayloadContent"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(plist::Value::as_dictionary)
        .find(|p| p["PayloadType"].as_string() == Some(payload_type))
        .unwrap_or_else(|| panic!("no {payload_type} payload"))
}

#[tokio::test]
async fn a_template_is_saved_versioned_and_edited_keeping_its_identifier() {
    let (_apns, app, _) = app_with_school().await;
    let (status, v1) = app
        .post_json(
            "/api/v1/profiles",
            &school_template("de.flotte.portal", "Portal"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["identifier"], "de.flotte.portal");
    assert_eq!(v1["platforms"], "apple");

    let r = app
        .api(reqwest::Method::PUT, "/api/v1/profiles/de.flotte.portal")
        .json(&school_template("de.flotte.portal", "Lernportal"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v2: Value = r.json().await.unwrap();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["id"], v1["id"]);
    assert_eq!(
        v2["template"]["payloads"][1]["payload"]["label"],
        "Lernportal"
    );

    let (_, versions) = app
        .get_json("/api/v1/profiles/de.flotte.portal/versions")
        .await;
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        versions[0]["template"]["payloads"][1]["payload"]["label"],
        "Portal"
    );

    // The identifier is what devices know a profile by: another one is another profile.
    let r = app
        .api(reqwest::Method::PUT, "/api/v1/profiles/de.flotte.portal")
        .json(&school_template("de.flotte.other", "Portal"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (status, _) = app
        .post_json(
            "/api/v1/profiles",
            &school_template("de.flotte.portal", "Portal"),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "identifiers are unique");
    let (_, list) = app.get_json("/api/v1/profiles").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["version"], 2);
}

#[tokio::test]
async fn an_invalid_template_is_refused_when_saved_and_nothing_is_stored() {
    let (_apns, app, _) = app_with_school().await;
    let mut unknown = school_template("de.flotte.portal", "Portal");
    unknown["payloads"][1]["payload"]["label"] = json!("{{person.email}}");
    let (status, body) = app.post_json("/api/v1/profiles", &unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("person.email"), "{message}");
    assert!(message.contains("payloads[1].payload.label"), "{message}");

    let mut short_key = school_template("de.flotte.portal", "Portal");
    short_key["payloads"][0]["payload"]["security"]["password"] = json!("kurz");
    let (status, body) = app.post_json("/api/v1/profiles", &short_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let mut long_ssid = school_template("de.flotte.portal", "Portal");
    long_ssid["payloads"][0]["payload"]["ssid"] = json!("x".repeat(40));
    let (status, body) = app.post_json("/api/v1/profiles", &long_ssid).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("ssid"),
        "{body}"
    );

    let (status, body) = app
        .post_json(
            "/api/v1/profiles",
            &school_template("com.vendor.portal", "Portal"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("de.flotte."),
        "{body}"
    );

    let (status, _) = app
        .post_json(
            "/api/v1/profiles",
            &json!({ "identifier": "de.flotte.x", "bogus": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, list) = app.get_json("/api/v1/profiles").await;
    assert_eq!(list, json!([]), "nothing was stored");

    // An edit with an unknown variable leaves the saved versions as they were.
    let (status, _) = app
        .post_json(
            "/api/v1/profiles",
            &school_template("de.flotte.portal", "Portal"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let r = app
        .api(reqwest::Method::PUT, "/api/v1/profiles/de.flotte.portal")
        .json(&unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (_, versions) = app
        .get_json("/api/v1/profiles/de.flotte.portal/versions")
        .await;
    assert_eq!(versions.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_pushed_profile_reaches_the_ipad_signed_resolved_and_is_not_sent_twice() {
    let (apns, app, _) = app_with_school().await;
    let mut ipad = app.enrolled_ipad("GYM1", 61).await;
    let (_, device) = app
        .get_json(&format!("/api/v1/devices/{}", ipad.udid))
        .await;
    let (status, _) = app
        .post_json(
            "/api/v1/profiles",
            &school_template("de.flotte.portal", "Portal"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let first = push(
        &app,
        json!({ "profile": "de.flotte.portal", "scope": { "kind": "school", "id": "GYM1" } }),
    )
    .await;
    assert_eq!(first["total"], 1);
    assert_eq!(first["version"], 1);
    wait_queued(&app, first["id"].as_str().unwrap(), 60).await;
    eventually(20, "the iPad is woken", &mut || async {
        apns.pushes()
            .iter()
            .any(|p| p.token_hex == ipad.token_hex())
    })
    .await;

    let handled = ipad.session().await;
    assert_eq!(handled.len(), 1, "one command: the profile");
    assert_eq!(handled[0].request_type, "InstallProfile");
    let (profile, issuer) = installed_profile(&handled[0].command);
    assert!(issuer.contains("Flotte Issuing CA"), "{issuer}");
    assert_eq!(
        profile["PayloadIdentifier"].as_string(),
        Some("de.flotte.portal")
    );
    assert_eq!(
        profile["PayloadDisplayName"].as_string(),
        Some("Portal Gymnasium am Dom"),
        "variables resolved for the device's school"
    );
    assert_eq!(
        payload(&profile, "com.apple.webClip.managed")["URL"].as_string(),
        Some("https://portal.schule.example/GYM1")
    );

    let done = wait_status(&app, first["id"].as_str().unwrap(), "completed").await;
    assert_eq!(done["counts"]["acknowledged"], 1, "{done}");
    let (_, states) = app
        .get_json(&format!(
            "/api/v1/devices/{}/profiles",
            device["id"].as_str().unwrap()
        ))
        .await;
    let checksum = states[0]["installed_checksum"].as_str().unwrap().to_owned();
    assert_eq!(states[0]["installed_version"], 1);
    // The top-level PayloadUUID names the version, so ProfileList tells what is installed.
    assert_eq!(
        profile["PayloadUUID"].as_string().unwrap().to_lowercase(),
        flotte_core::assignment::profile_version_uuid(&checksum).to_string()
    );

    // The same version again: nothing to send.
    let again = push(
        &app,
        json!({ "profile": "de.flotte.portal", "scope": { "kind": "school", "id": "GYM1" } }),
    )
    .await;
    let again = wait_status(&app, again["id"].as_str().unwrap(), "completed").await;
    assert_eq!(again["counts"]["unchanged"], 1, "{again}");
    assert!(ipad.session().await.is_empty(), "nothing was queued");

    // A sync asks for ProfileList; the device's answer agrees with Flotte's record, so a
    // later sync sends nothing but the list request again.
    let sync = push(
        &app,
        json!({ "action": "sync", "scope": { "kind": "school", "id": "GYM1" } }),
    )
    .await;
    wait_queued(&app, sync["id"].as_str().unwrap(), 60).await;
    let handled = ipad.session().await;
    assert_eq!(
        handled
            .iter()
            .map(|c| c.request_type.as_str())
            .collect::<Vec<_>>(),
        ["ProfileList"]
    );
    wait_status(&app, sync["id"].as_str().unwrap(), "completed").await;

    // Withdrawing the assignment removes the profile from the device.
    let removal = push(
        &app,
        json!({ "profile": "de.flotte.portal", "action": "remove", "scope": { "kind": "school", "id": "GYM1" } }),
    )
    .await;
    wait_queued(&app, removal["id"].as_str().unwrap(), 60).await;
    let handled = ipad.session().await;
    assert_eq!(handled.len(), 1);
    assert_eq!(handled[0].request_type, "RemoveProfile");
    assert_eq!(
        handled[0].command["Identifier"].as_string(),
        Some("de.flotte.portal")
    );
    assert!(!ipad.installed.contains_key("de.flotte.portal"));
    assert!(
        ipad.installed.contains_key("de.flotte.mdm.enrollment"),
        "the enrolment stays"
    );
    let (_, assignments) = app.get_json("/api/v1/assignments").await;
    assert_eq!(assignments, json!([]));
}

#[tokio::test]
async fn a_new_version_supersedes_the_one_still_waiting_and_progress_streams_as_events() {
    let (_apns, app, _) = app_with_school().await;
    let mut ipad = app.enrolled_ipad("GYM1", 62).await;
    app.post_json(
        "/api/v1/profiles",
        &school_template("de.flotte.portal", "Portal"),
    )
    .await;
    let v1 = push(
        &app,
        json!({ "profile": "de.flotte.portal", "scope": { "kind": "device", "id": ipad.udid } }),
    )
    .await;
    wait_queued(&app, v1["id"].as_str().unwrap(), 60).await;
    let r = app
        .api(reqwest::Method::PUT, "/api/v1/profiles/de.flotte.portal")
        .json(&school_template("de.flotte.portal", "Lernportal"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v2 = push(
        &app,
        json!({ "profile": "de.flotte.portal", "scope": { "kind": "device", "id": ipad.udid } }),
    )
    .await;
    assert_eq!(v2["version"], 2);
    wait_queued(&app, v2["id"].as_str().unwrap(), 60).await;

    let first = wait_status(&app, v1["id"].as_str().unwrap(), "completed").await;
    assert_eq!(first["counts"]["superseded"], 1, "{first}");
    let handled = ipad.session().await;
    assert_eq!(handled.len(), 1, "only the newer version is sent");
    let (profile, _) = installed_profile(&handled[0].command);
    assert_eq!(
        payload(&profile, "com.apple.webClip.managed")["Label"].as_string(),
        Some("Lernportal")
    );

    // The event stream ends with the finished push.
    let response = app
        .api(
            reqwest::Method::GET,
            &format!("/api/v1/pushes/{}/events", v2["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(std::time::Duration::from_secs(60), response.text())
        .await
        .expect("the stream ends when the push is done")
        .unwrap();
    assert!(text.contains("event: done"), "{text}");
    let data = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let last: Value = serde_json::from_str(data).unwrap();
    assert_eq!(last["counts"]["acknowledged"], 1, "{last}");
}

#[tokio::test]
async fn a_pupils_wifi_carries_their_own_certificate_for_radius_and_it_ends_with_the_loan() {
    let (_apns, app, school) = app_with_school().await;
    let mut ipad = app.enrolled_ipad("GYM1", 63).await;
    let (_, device) = app
        .get_json(&format!("/api/v1/devices/{}", ipad.udid))
        .await;
    let device_id = device["id"].as_str().unwrap().to_owned();
    let (person, entry_uuid) = insert_person(&app.store, &school, "max.muster", "pupil")
        .await
        .unwrap();
    let loan = lend(&app.store, &device_id, &person, &school)
        .await
        .unwrap();
    let (status, body) = app
        .post_json("/api/v1/profiles", &pupil_wifi_template("de.flotte.wifi"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let p = push(
        &app,
        json!({ "profile": "de.flotte.wifi", "scope": { "kind": "school", "id": "GYM1" } }),
    )
    .await;
    wait_queued(&app, p["id"].as_str().unwrap(), 60).await;
    let handled = ipad.session().await;
    assert_eq!(handled.len(), 1);
    let (profile, _) = installed_profile(&handled[0].command);
    let wifi = payload(&profile, "com.apple.wifi.managed");
    assert_eq!(wifi["SSID_STR"].as_string(), Some("Schule-GYM1"));
    let identity = payload(&profile, "com.apple.security.pkcs12");
    let (cert_pem, _key) = flotte_pki::parse_pkcs12(
        identity["PayloadContent"].as_data().unwrap(),
        identity["Password"].as_string().unwrap(),
    )
    .expect("the PKCS#12 opens with its password");
    let der = flotte_pki::pem_to_der(&cert_pem).unwrap();
    let info = app
        .ca()
        .verify_issued(&der, chrono::Utc::now())
        .expect("issued by Flotte's CA");
    assert_eq!(info.common_name.as_deref(), Some("max.muster"));
    assert!(
        info.subject.contains("GYM1"),
        "school code as OU: {}",
        info.subject
    );
    let text = String::from_utf8_lossy(&der).into_owned();
    assert!(
        text.contains("max.muster@schule.example"),
        "mail in the SAN"
    );
    assert!(
        text.contains(&format!("urn:uuid:{entry_uuid}")),
        "entryUUID in the SAN"
    );

    let (_, certificates) = app
        .get_json(&format!("/api/v1/certificates?person={person}"))
        .await;
    let certificates = certificates.as_array().unwrap().clone();
    assert_eq!(certificates.len(), 1);
    assert_eq!(certificates[0]["current"], true);
    assert_eq!(certificates[0]["serial_hex"], info.serial_hex);
    wait_status(&app, p["id"].as_str().unwrap(), "completed").await;

    // The loan ends: the certificate is revoked, the CRL lists it, the profile is removed.
    return_loan(&app.store, &loan).await.unwrap();
    app.store
        .enqueue_job(
            &flotte_core::jobs::MaintainCertificates {
                requested_by: "test".into(),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    eventually(30, "the certificate is revoked", &mut || async {
        let (_, list) = app
            .get_json(&format!("/api/v1/certificates?person={person}"))
            .await;
        list[0]["revocation_reason"] == "loan_ended"
    })
    .await;
    let crl = app
        .client
        .get(app.url("/pki/crl.der"))
        .send()
        .await
        .unwrap();
    assert_eq!(crl.status(), StatusCode::OK, "no token needed");
    assert_eq!(crl.headers()["content-type"], "application/pkix-crl");
    let crl = crl.bytes().await.unwrap();
    let serial = hex::decode(&info.serial_hex).unwrap();
    assert!(
        crl.windows(serial.len()).any(|w| w == serial.as_slice()),
        "the CRL lists the revoked serial"
    );
    eventually(
        30,
        "the profile is removed from the device",
        &mut || async {
            let (_, commands) = app
                .get_json(&format!("/api/v1/devices/{device_id}/commands"))
                .await;
            commands
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["request_type"] == "RemoveProfile")
        },
    )
    .await;
    let handled = ipad.session().await;
    assert_eq!(handled[0].request_type, "RemoveProfile");
    assert!(!ipad.installed.contains_key("de.flotte.wifi"));
}

#[tokio::test]
async fn certificates_are_renewed_before_expiry_and_revoked_when_the_person_departs() {
    let (_apns, app, school) = app_with_school().await;
    let mut ipad = app.enrolled_ipad("GYM1", 64).await;
    let (_, device) = app
        .get_json(&format!("/api/v1/devices/{}", ipad.udid))
        .await;
    let device_id = device["id"].as_str().unwrap().to_owned();
    let (person, _) = insert_person(&app.store, &school, "erika.muster", "pupil")
        .await
        .unwrap();
    lend(&app.store, &device_id, &person, &school)
        .await
        .unwrap();
    app.post_json("/api/v1/profiles", &pupil_wifi_template("de.flotte.wifi"))
        .await;
    let p = push(
        &app,
        json!({ "profile": "de.flotte.wifi", "scope": { "kind": "device", "id": device_id } }),
    )
    .await;
    wait_queued(&app, p["id"].as_str().unwrap(), 60).await;
    ipad.session().await;
    wait_status(&app, p["id"].as_str().unwrap(), "completed").await;
    let (_, before) = app
        .get_json(&format!("/api/v1/certificates?person={person}"))
        .await;
    let first_serial = before[0]["serial_hex"].as_str().unwrap().to_owned();

    // Close to expiry: the worker issues a new one and pushes the profile again.
    flotte_tests::bench_profiles::expire_certificates_soon(&app.store, &person)
        .await
        .unwrap();
    app.store
        .enqueue_job(
            &flotte_core::jobs::MaintainCertificates {
                requested_by: "renewal".into(),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    eventually(30, "a renewed certificate", &mut || async {
        let (_, list) = app
            .get_json(&format!("/api/v1/certificates?person={person}"))
            .await;
        list.as_array().unwrap().len() == 2
    })
    .await;
    let (_, after) = app
        .get_json(&format!("/api/v1/certificates?person={person}"))
        .await;
    let current: Vec<&Value> = after
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["current"] == true)
        .collect();
    assert_eq!(current.len(), 1);
    assert_ne!(current[0]["serial_hex"], first_serial);
    eventually(30, "the renewed profile is queued", &mut || async {
        let (_, commands) = app
            .get_json(&format!("/api/v1/devices/{device_id}/commands"))
            .await;
        commands
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["request_type"] == "InstallProfile")
            .count()
            == 2
    })
    .await;
    let handled = ipad.session().await;
    let (profile, _) = installed_profile(&handled[0].command);
    let identity = payload(&profile, "com.apple.security.pkcs12");
    let (cert_pem, _) = flotte_pki::parse_pkcs12(
        identity["PayloadContent"].as_data().unwrap(),
        identity["Password"].as_string().unwrap(),
    )
    .unwrap();
    let info = flotte_pki::certificate_info(&flotte_pki::pem_to_der(&cert_pem).unwrap()).unwrap();
    assert_eq!(
        Some(&Value::from(info.serial_hex)),
        current[0].get("serial_hex")
    );

    // The person departs: every certificate of theirs is revoked.
    set_person_state(&app.store, &person, "departed")
        .await
        .unwrap();
    app.store
        .enqueue_job(
            &flotte_core::jobs::MaintainCertificates {
                requested_by: "departure".into(),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    eventually(
        30,
        "all of the person's certificates are revoked",
        &mut || async {
            let (_, list) = app
                .get_json(&format!("/api/v1/certificates?person={person}"))
                .await;
            list.as_array()
                .unwrap()
                .iter()
                .any(|c| c["revocation_reason"] == "departed")
                && list
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|c| !c["revoked_at"].is_null())
        },
    )
    .await;
}

#[tokio::test]
async fn a_certificate_request_for_a_departed_person_is_refused_and_issues_nothing() {
    let (_apns, app, school) = app_with_school().await;
    let devices = insert_enrolled_devices(&app.store, &school, Platform::Apple, 2, "CERT")
        .await
        .unwrap();
    let (gone, _) = insert_person(&app.store, &school, "weg.gezogen", "pupil")
        .await
        .unwrap();
    lend(&app.store, &devices[0], &gone, &school).await.unwrap();
    set_person_state(&app.store, &gone, "departed")
        .await
        .unwrap();
    let (status, body) = app
        .post_json(
            "/api/v1/certificates",
            &json!({ "device": devices[0], "person": gone }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("departed"),
        "{body}"
    );
    // Someone who holds no loan of the device gets none either.
    let (other, _) = insert_person(&app.store, &school, "nicht.geliehen", "pupil")
        .await
        .unwrap();
    let (status, _) = app
        .post_json(
            "/api/v1/certificates",
            &json!({ "device": devices[1], "person": other }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, list) = app.get_json("/api/v1/certificates").await;
    assert_eq!(list, json!([]), "nothing was issued");

    // The device's own certificate carries no personal data.
    let (status, issued) = app
        .post_json("/api/v1/certificates", &json!({ "device": devices[1] }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["kind"], "eap_device");
    let der = flotte_pki::pem_to_der(issued["certificate_pem"].as_str().unwrap()).unwrap();
    let text = String::from_utf8_lossy(&der).into_owned();
    assert!(text.contains(&format!("urn:uuid:{}", devices[1])));
    let (_, device) = app
        .get_json(&format!("/api/v1/devices/{}", devices[1]))
        .await;
    let info = flotte_pki::certificate_info(&der).unwrap();
    assert_eq!(
        info.common_name.as_deref(),
        device["serial_number"].as_str(),
        "the serial number is the CN"
    );
    // Read the names as openssl prints them: random DER bytes may well contain a 0x40 ('@').
    let printed = {
        use std::io::Write;
        let mut child = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-ext", "subjectAltName"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("openssl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(issued["certificate_pem"].as_str().unwrap().as_bytes())
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    assert!(printed.contains("URI:urn:uuid:"), "{printed}");
    assert!(
        !printed.contains('@') && !printed.contains("email:") && !printed.contains("othername"),
        "no mail, no UPN in a device certificate: {printed}"
    );
    // Asked again: the same certificate, not a new one.
    let (_, again) = app
        .post_json("/api/v1/certificates", &json!({ "device": devices[1] }))
        .await;
    assert_eq!(again["serial_hex"], issued["serial_hex"]);
}

#[tokio::test]
async fn a_template_with_device_values_renders_per_device() {
    let (_apns, app, _) = app_with_school().await;
    let mut a = app.enrolled_ipad("GYM1", 65).await;
    let mut b = app.enrolled_ipad("GYM1", 66).await;
    app.post_json("/api/v1/profiles", &device_template("de.flotte.notice"))
        .await;
    let p = push(
        &app,
        json!({ "profile": "de.flotte.notice", "scope": { "kind": "platform", "id": "apple" } }),
    )
    .await;
    assert_eq!(p["total"], 2);
    wait_queued(&app, p["id"].as_str().unwrap(), 60).await;
    for ipad in [&mut a, &mut b] {
        let handled = ipad.session().await;
        let (profile, _) = installed_profile(&handled[0].command);
        assert_eq!(
            profile["PayloadDisplayName"].as_string().map(str::to_owned),
            Some(format!("Gerät {}", ipad.serial))
        );
    }
}
