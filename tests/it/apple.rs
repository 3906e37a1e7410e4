//! Apple MDM: enrolment, check-in, the command loop, pushes, inventory, and
//! every kind of bad input a device (or an impostor) can send.

use flotte_apple::{
    CheckinMessage, CommandReport, DeclarativeManagement, Status, UserAuthenticate,
};
use flotte_tests::apple_device::{EnrollmentPayload, SimIpad};
use flotte_tests::{ApnsStandIn, TestApp, TestEnv, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors/apple");

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!("{VECTORS}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn app_with_school() -> (ApnsStandIn, TestApp) {
    let apns = ApnsStandIn::start().await;
    let app = TestApp::spawn_with_apns(&apns).await;
    app.create_school("GYM1", "Gymnasium am Dom").await;
    (apns, app)
}

async fn device(app: &TestApp, key: &str) -> Value {
    let (status, body) = app.get_json(&format!("/api/v1/devices/{key}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn commands(app: &TestApp, key: &str) -> Vec<Value> {
    let (_, body) = app
        .get_json(&format!("/api/v1/devices/{key}/commands"))
        .await;
    body.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_enrolment_profile_is_signed_and_carries_root_identity_and_mdm_payload() {
    let (apns, app) = app_with_school().await;
    let signed = app.enrollment_profile("GYM1").await;

    let (content, signer) = flotte_pki::open_attached(&signed).expect("valid CMS signature");
    assert!(
        signer.issuer.contains("Flotte Issuing CA"),
        "{}",
        signer.issuer
    );
    let profile: plist::Dictionary = plist::from_bytes(&content).unwrap();
    let payloads = profile["PayloadContent"].as_array().unwrap();
    let types: Vec<&str> = payloads
        .iter()
        .map(|p| {
            p.as_dictionary().unwrap()["PayloadType"]
                .as_string()
                .unwrap()
        })
        .collect();
    assert_eq!(
        types,
        [
            "com.apple.security.root",
            "com.apple.security.pkcs12",
            "com.apple.mdm"
        ]
    );

    let mdm = payloads[2].as_dictionary().unwrap();
    assert_eq!(
        mdm["ServerURL"].as_string(),
        Some(app.url("/mdm/apple/connect").as_str())
    );
    assert_eq!(
        mdm["CheckInURL"].as_string(),
        Some(app.url("/mdm/apple/checkin").as_str())
    );
    assert_eq!(mdm["Topic"].as_string(), Some(apns.topic.as_str()));
    assert_eq!(mdm["SignMessage"].as_boolean(), Some(true));
    assert_eq!(mdm["AccessRights"].as_signed_integer(), Some(8191));
    assert_eq!(mdm["CheckOutWhenRemoved"].as_boolean(), Some(true));
    assert_eq!(
        mdm["IdentityCertificateUUID"].as_string(),
        payloads[1].as_dictionary().unwrap()["PayloadUUID"].as_string()
    );

    let enrollment = EnrollmentPayload::from_signed_profile(&signed).unwrap();
    let der = flotte_pki::pem_to_der(&enrollment.identity_cert_pem).unwrap();
    app.ca()
        .verify_issued(&der, chrono::Utc::now())
        .expect("identity from our CA");

    let second =
        EnrollmentPayload::from_signed_profile(&app.enrollment_profile("GYM1").await).unwrap();
    assert_ne!(
        second.identity_cert_pem, enrollment.identity_cert_pem,
        "a new identity per download"
    );
    assert_eq!(
        second.profile_uuid, enrollment.profile_uuid,
        "stable UUID: a new profile replaces the old"
    );
}

#[tokio::test]
async fn without_a_push_certificate_no_profile_is_handed_out() {
    let app = TestApp::spawn().await;
    app.create_school("GS2", "Grundschule").await;
    let (status, body) = app
        .get_json("/api/v1/apple/enrollment-profile?school=GS2")
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("push certificate"),
        "{body}"
    );
    let (status, _) = app
        .get_json("/api/v1/apple/enrollment-profile?school=NOPE")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_ipad_enrols_is_woken_and_fills_the_inventory_with_device_information() {
    let (apns, app) = app_with_school().await;
    let mut ipad = app.enrolled_ipad("GYM1", 1).await;

    let d = device(&app, &ipad.udid).await;
    assert_eq!(d["enrollment_state"], "enrolled");
    assert_eq!(d["serial_number"], ipad.serial);
    let (_, schools) = app.get_json("/api/v1/schools").await;
    assert_eq!(
        d["school_id"], schools[0]["id"],
        "joined the profile's school"
    );

    let uuid = app
        .queue(&ipad.udid, "DeviceInformation", Value::Null)
        .await;
    eventually(20, "a push reaches the iPad's token", &mut || async {
        apns.pushes()
            .iter()
            .any(|p| p.token_hex == ipad.token_hex())
    })
    .await;
    let push = apns
        .pushes()
        .into_iter()
        .find(|p| p.token_hex == ipad.token_hex())
        .unwrap();
    assert_eq!(push.push_magic.as_deref(), Some(ipad.push_magic.as_str()));

    let handled = ipad.session().await;
    assert_eq!(handled.len(), 1);
    assert_eq!(handled[0].uuid, uuid);
    assert!(handled[0].command["Queries"].as_array().unwrap().len() >= 10);

    let d = device(&app, &ipad.serial).await;
    assert_eq!(d["model"], "MK2K3FD/A");
    assert_eq!(d["product_name"], "iPad12,1");
    assert_eq!(d["os_version"], "17.6.1");
    assert_eq!(d["capacity_gb"], 64.0);
    assert_eq!(d["battery_level"], 0.87);
    assert_eq!(d["supervised"], true);
    let list = commands(&app, &ipad.udid).await;
    assert_eq!(list[0]["status"], "acknowledged");
    assert!(list[0]["result"].as_str().unwrap().contains("SerialNumber"));
}

#[tokio::test]
async fn the_queue_follows_the_nanomdm_scenarios_including_not_now() {
    let (_apns, app) = app_with_school().await;
    let mut ipad = app.enrolled_ipad("GYM1", 2).await;
    let udid = ipad.udid.clone();

    let (status, none) = ipad.report(&CommandReport::idle(&udid)).await;
    assert_eq!(
        (status, none.is_none()),
        (StatusCode::OK, true),
        "Idle on an empty queue"
    );

    let one = app.queue(&udid, "ProfileList", Value::Null).await;
    let two = app.queue(&udid, "SecurityInfo", Value::Null).await;
    let (_, next) = ipad.report(&CommandReport::idle(&udid)).await;
    assert_eq!(next.as_ref().unwrap().uuid, one);
    let answer = ipad.answer(&next.unwrap());
    let (_, next) = ipad.report(&answer).await;
    assert_eq!(next.as_ref().unwrap().uuid, two);
    let answer = ipad.answer(&next.unwrap());
    let (_, next) = ipad.report(&answer).await;
    assert!(next.is_none());

    ipad.behaviour.not_now_first = vec!["InstalledApplicationList".into()];
    let three = app
        .queue(&udid, "InstalledApplicationList", Value::Null)
        .await;
    let (_, next) = ipad.report(&CommandReport::idle(&udid)).await;
    let cmd = next.unwrap();
    assert_eq!(cmd.uuid, three);
    let answer = ipad.answer(&cmd);
    let (_, after_not_now) = ipad.report(&answer).await;
    assert!(
        after_not_now.is_none(),
        "a NotNow command waits for the next Idle"
    );
    assert_eq!(commands(&app, &udid).await[0]["status"], "not_now");
    let (_, again) = ipad.report(&CommandReport::idle(&udid)).await;
    let cmd = again.unwrap();
    assert_eq!(cmd.uuid, three);
    let answer = ipad.answer(&cmd);
    let (_, done) = ipad.report(&answer).await;
    assert!(done.is_none());
    assert_eq!(commands(&app, &udid).await[0]["status"], "acknowledged");

    let device_id = device(&app, &udid).await["id"].as_str().unwrap().to_owned();
    let profiles = app.store.installed_profiles(&device_id).await.unwrap();
    assert!(
        profiles
            .iter()
            .any(|p| p.identifier == "de.flotte.mdm.enrollment"),
        "{profiles:?}"
    );
}

#[tokio::test]
async fn an_error_report_stores_the_error_chain() {
    let (_apns, app) = app_with_school().await;
    let mut ipad = app.enrolled_ipad("GYM1", 3).await;
    ipad.behaviour.fail = vec!["RestartDevice".into()];
    app.queue(&ipad.udid, "RestartDevice", Value::Null).await;
    ipad.session().await;
    let c = &commands(&app, &ipad.udid).await[0];
    assert_eq!(c["status"], "error");
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains("MCMDMErrorDomain 12021"),
        "{c}"
    );
}

#[tokio::test]
async fn typed_commands_are_checked_when_queued_and_can_be_cancelled_until_answered() {
    let (_apns, app) = app_with_school().await;
    let mut ipad = app.enrolled_ipad("GYM1", 4).await;
    let (status, body) = app
        .post_json(
            &format!("/api/v1/devices/{}/commands", ipad.udid),
            &json!({ "request_type": "RemoveProfile" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("identifier"),
        "{body}"
    );
    assert!(
        commands(&app, &ipad.udid).await.is_empty(),
        "nothing queued"
    );

    let name = app
        .queue(
            &ipad.udid,
            "Settings",
            json!({ "settings": [{ "kind": "device_name", "device_name": "Klasse 7b – 03" }] }),
        )
        .await;
    let cancelled = app.queue(&ipad.udid, "EraseDevice", Value::Null).await;
    let r = app
        .api(
            reqwest::Method::DELETE,
            &format!("/api/v1/devices/{}/commands/{cancelled}", ipad.udid),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let handled = ipad.session().await;
    assert_eq!(
        handled.iter().map(|c| c.uuid.clone()).collect::<Vec<_>>(),
        vec![name.clone()]
    );
    assert_eq!(ipad.device_name, "Klasse 7b – 03");
    let r = app
        .api(
            reqwest::Method::DELETE,
            &format!("/api/v1/devices/{}/commands/{name}", ipad.udid),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "an answered command cannot be cancelled"
    );
}

#[tokio::test]
async fn a_one_time_link_serves_one_profile_and_then_says_gone() {
    let (_apns, app) = app_with_school().await;
    let (status, link) = app
        .post_json(
            "/api/v1/apple/enrollment-links",
            &json!({ "school": "GYM1" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&app.url("/mdm/apple/enroll/")));

    let first = app.client.get(url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        first.headers()["content-type"],
        "application/x-apple-aspen-config"
    );
    let ipad = SimIpad::new(
        EnrollmentPayload::from_signed_profile(&first.bytes().await.unwrap()).unwrap(),
        app.client.clone(),
        5,
    );
    ipad.enrol().await.unwrap();
    assert!(device(&app, &ipad.udid).await["school_id"].is_string());

    let second = app.client.get(url).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::GONE);
    assert!(second.text().await.unwrap().contains("already been used"));
    let unknown = app
        .client
        .get(app.url("/mdm/apple/enroll/not-a-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_expired_link_is_gone() {
    let apns = ApnsStandIn::start().await;
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    apns.configure(&mut settings);
    settings.apple.enrollment_link_hours = 0;
    let app = TestApp::spawn_in(&env, settings).await;
    app.create_school("GYM1", "Gymnasium").await;
    let (_, link) = app
        .post_json(
            "/api/v1/apple/enrollment-links",
            &json!({ "school": "GYM1" }),
        )
        .await;
    let r = app
        .client
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.unwrap().contains("expired"));
}

/// Every refusal below must be a 400 (never 401), and change nothing.
async fn assert_refused(resp: (StatusCode, Vec<u8>), why: &str) {
    assert_ne!(
        resp.0,
        StatusCode::UNAUTHORIZED,
        "never 401 to an Apple device"
    );
    assert_eq!(
        resp.0,
        StatusCode::BAD_REQUEST,
        "{why}: {}",
        String::from_utf8_lossy(&resp.1)
    );
    let text = String::from_utf8_lossy(&resp.1).to_lowercase();
    assert!(
        text.contains(why),
        "expected a reason mentioning {why:?}, got {text:?}"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason_and_changes_nothing() {
    let (_apns, app) = app_with_school().await;
    let a = app.enrolled_ipad("GYM1", 10).await;
    let b = app.enrolled_ipad("GYM1", 11).await;
    let audit_before = changes_recorded(&app).await;
    let before_a = device(&app, &a.udid).await;

    // Malformed plist, unknown MessageType, unknown Status.
    assert_refused(
        a.send(
            &a.enrollment.check_in_url,
            "application/x-apple-aspen-mdm-checkin",
            b"<plist><dict>".to_vec(),
        )
        .await,
        "malformed",
    )
    .await;
    let unknown = b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>MessageType</key><string>Teleport</string><key>UDID</key><string>x</string></dict></plist>";
    assert_refused(
        a.send(
            &a.enrollment.check_in_url,
            "application/x-apple-aspen-mdm-checkin",
            unknown.to_vec(),
        )
        .await,
        "teleport",
    )
    .await;
    let status = format!(
        "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Status</key><string>Maybe</string><key>UDID</key><string>{}</string></dict></plist>",
        a.udid
    );
    assert_refused(
        a.send(
            &a.enrollment.server_url,
            "application/x-apple-aspen-mdm",
            status.into_bytes(),
        )
        .await,
        "maybe",
    )
    .await;

    // No signature at all.
    let r = app
        .client
        .put(&a.enrollment.server_url)
        .body(CommandReport::idle(&a.udid).to_plist())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("no Mdm-Signature header"));

    // A signature over other bytes.
    let body = CommandReport::idle(&a.udid).to_plist();
    let other = flotte_pki::sign_detached(
        b"other bytes",
        &a.enrollment.identity_cert_pem,
        &a.enrollment.identity_key_pem,
    )
    .unwrap();
    let r = app
        .client
        .put(&a.enrollment.server_url)
        .header("mdm-signature", base64_encode(&other))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("does not verify"));

    // An identity from another CA, and an expired one from ours.
    let foreign_dir = tempfile::tempdir().unwrap();
    let foreign = flotte_pki::CertificateAuthority::load_or_create(
        foreign_dir.path(),
        "Other",
        chrono::Utc::now(),
    )
    .unwrap();
    let idle = || CommandReport::idle(&a.udid).to_plist();
    let connect = a.enrollment.server_url.clone();
    let mdm = "application/x-apple-aspen-mdm";
    let impostor = clone_with_identity(&a, &foreign, chrono::Utc::now(), 30, &app);
    assert_refused(impostor.send(&connect, mdm, idle()).await, "identity").await;
    let expired = clone_with_identity(
        &a,
        &app.ca(),
        chrono::Utc::now() - chrono::Duration::days(400),
        30,
        &app,
    );
    assert_refused(expired.send(&connect, mdm, idle()).await, "expired").await;

    // Device B impersonated with device A's identity; CheckOut for another device.
    let mut b_as_a = SimIpad::new(a.enrollment.clone(), app.client.clone(), 11);
    b_as_a.push_magic = "stolen".into();
    assert_refused(
        b_as_a.checkin(&b_as_a.token_update_message()).await,
        "another device",
    )
    .await;
    assert_refused(
        b_as_a.checkin(&b_as_a.checkout_message()).await,
        "another device",
    )
    .await;
    assert_refused(
        b_as_a
            .send(&connect, mdm, CommandReport::idle(&b.udid).to_plist())
            .await,
        "another device",
    )
    .await;
    assert_eq!(
        device(&app, &b.udid).await["enrollment_state"],
        "enrolled",
        "B untouched"
    );

    // A result for a command never sent to that device.
    let for_b = app.queue(&b.udid, "ProfileList", Value::Null).await;
    let mut forged = CommandReport::acknowledged(&a.udid, &for_b);
    forged.request_type = Some("ProfileList".into());
    assert_refused(a.send(&connect, mdm, forged.to_plist()).await, "never sent").await;
    assert_eq!(
        commands(&app, &b.udid).await[0]["status"],
        "queued",
        "B's command untouched"
    );
    let never = CommandReport::acknowledged(&a.udid, "5D3C0F1E-0000-4000-8000-000000000000");
    assert_refused(a.send(&connect, mdm, never.to_plist()).await, "never sent").await;

    // A body over the limit.
    let huge = vec![b' '; 2 * 1024 * 1024];
    let r = app
        .client
        .put(&a.enrollment.check_in_url)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let after_a = device(&app, &a.udid).await;
    assert_eq!(before_a["enrollment_state"], after_a["enrollment_state"]);
    assert_eq!(before_a["school_id"], after_a["school_id"]);
    let audit_after = changes_recorded(&app).await;
    // Only B's queued command was written (by the technician), nothing by the refused requests.
    assert_eq!(audit_after.len(), audit_before.len() + 1, "{audit_after:?}");
    assert!(
        audit_after[0].contains("command.queue"),
        "the one new entry is the queued command: {audit_after:?}"
    );
}

/// The audit log's entries as "action target", newest first, without the worker's own
/// housekeeping (wake-up pushes, CRL publication): that runs on the worker's schedule, so a
/// busy machine may record it at any moment of a test.
async fn changes_recorded(app: &TestApp) -> Vec<String> {
    let (_, entries) = app.get_json("/api/v1/audit?limit=1000").await;
    entries
        .as_array()
        .expect("audit entries")
        .iter()
        .filter(|e| e["actor"] != "system")
        .map(|e| format!("{} {}", e["action"], e["target"]))
        .collect()
}

#[tokio::test]
async fn a_stale_identity_cannot_update_the_token_after_a_re_enrolment() {
    let (apns, app) = app_with_school().await;
    let old = app.enrolled_ipad("GYM1", 20).await;
    let device_id = device(&app, &old.udid).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = app.queue(&old.udid, "SecurityInfo", Value::Null).await;
    let mut old_session = SimIpad::new(old.enrollment.clone(), app.client.clone(), 20);
    old_session.session().await;

    // The same iPad installs a new profile: new identity, new PushMagic.
    let mut renewed = app.new_ipad("GYM1", 20).await;
    renewed.push_magic = "NEW-MAGIC".into();
    renewed.enrol().await.unwrap();
    let d = device(&app, &renewed.udid).await;
    assert_eq!(d["id"], device_id, "same device after re-enrolment");
    assert_eq!(
        commands(&app, &renewed.udid).await[0]["id"],
        done,
        "history kept"
    );

    assert_refused(old.checkin(&old.token_update_message()).await, "ended").await;
    let target = app.store.push_target(&device_id).await.unwrap().unwrap();
    assert_eq!(target.push_magic, "NEW-MAGIC", "the current token stays");
    let _ = apns;
}

#[tokio::test]
async fn checkout_marks_the_device_unenrolled_and_stops_pushes() {
    let (_apns, app) = app_with_school().await;
    let ipad = app.enrolled_ipad("GYM1", 30).await;
    let (status, _) = ipad.checkin(&ipad.checkout_message()).await;
    assert_eq!(status, StatusCode::OK);
    let d = device(&app, &ipad.udid).await;
    assert_eq!(d["enrollment_state"], "unenrolled");
    assert!(
        app.store
            .push_target(d["id"].as_str().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let (status, _) = ipad.report(&CommandReport::idle(&ipad.udid)).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an ended enrolment gets no commands"
    );
}

#[tokio::test]
async fn the_other_check_in_messages_get_their_protocol_answers() {
    let (_apns, app) = app_with_school().await;
    let ipad = app.enrolled_ipad("GYM1", 40).await;
    let (status, _) = ipad
        .checkin(&CheckinMessage::UserAuthenticate(UserAuthenticate {
            udid: Some(ipad.udid.clone()),
            user_id: "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF".into(),
            ..UserAuthenticate::default()
        }))
        .await;
    assert_eq!(status, StatusCode::GONE);

    let (status, body) = ipad
        .checkin(&CheckinMessage::DeclarativeManagement(
            DeclarativeManagement {
                udid: Some(ipad.udid.clone()),
                endpoint: "declaration-items".into(),
                ..DeclarativeManagement::default()
            },
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let items: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(items["Declarations"]["Configurations"], json!([]));
    assert!(items["DeclarationsToken"].is_string());

    let get = CheckinMessage::GetBootstrapToken(flotte_apple::GetBootstrapToken {
        udid: Some(ipad.udid.clone()),
        ..Default::default()
    });
    let (status, body) = ipad.checkin(&get).await;
    assert_eq!(
        (status, body.len()),
        (StatusCode::OK, 0),
        "no token yet: empty 200"
    );
    let set = CheckinMessage::SetBootstrapToken(flotte_apple::SetBootstrapToken {
        udid: Some(ipad.udid.clone()),
        bootstrap_token: Some(b"bootstrap-secret".to_vec()),
        ..Default::default()
    });
    assert_eq!(ipad.checkin(&set).await.0, StatusCode::OK);
    let (status, body) = ipad.checkin(&get).await;
    assert_eq!(status, StatusCode::OK);
    let dict: plist::Dictionary = plist::from_bytes(&body).unwrap();
    assert_eq!(
        dict["BootstrapToken"].as_data(),
        Some(&b"bootstrap-secret"[..])
    );
}

#[tokio::test]
async fn the_single_endpoint_form_dispatches_by_content_type() {
    let (_apns, app) = app_with_school().await;
    let mut ipad = app.new_ipad("GYM1", 50).await;
    let single = app.url("/mdm/apple/mdm");
    ipad.enrollment.server_url = single.clone();
    ipad.enrollment.check_in_url = single;
    ipad.enrol().await.unwrap();
    app.queue(&ipad.udid, "ProfileList", Value::Null).await;
    assert_eq!(ipad.session().await.len(), 1);
}

#[tokio::test]
async fn a_client_certificate_over_tls_identifies_the_device_without_a_signature() {
    let (_apns, app) = app_with_school().await;
    let mut ipad = app.new_ipad("GYM1", 60).await;
    ipad.enrollment.sign_message = false;
    let identity = reqwest::Identity::from_pem(
        format!(
            "{}{}",
            ipad.enrollment.identity_cert_pem, ipad.enrollment.identity_key_pem
        )
        .as_bytes(),
    )
    .unwrap();
    let ca = std::fs::read(app.data_path("ca.pem")).unwrap();
    let mtls = reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
        .identity(identity)
        .build()
        .unwrap();
    let mut ipad = SimIpad::new(ipad.enrollment.clone(), mtls, 60);
    ipad.enrollment.sign_message = false;
    ipad.enrol().await.unwrap();
    app.queue(&ipad.udid, "SecurityInfo", Value::Null).await;
    assert_eq!(ipad.session().await.len(), 1);
}

#[tokio::test]
async fn a_proxy_certificate_header_is_ignored_unless_configured_for_a_trusted_proxy() {
    let apns = ApnsStandIn::start().await;
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    apns.configure(&mut settings);
    let off = TestApp::spawn_in(&env, settings.clone()).await;
    off.create_school("GYM1", "Gymnasium").await;
    let ipad = off.new_ipad("GYM1", 70).await;
    let header_value = format!(
        ":{}:",
        base64_encode(&flotte_pki::pem_to_der(&ipad.enrollment.identity_cert_pem).unwrap())
    );
    let send = |app: &TestApp| {
        let body = ipad.authenticate_message().to_plist();
        app.client
            .put(app.url("/mdm/apple/checkin"))
            .header("x-client-cert", header_value.clone())
            .body(body)
            .send()
    };
    assert_eq!(
        send(&off).await.unwrap().status(),
        StatusCode::BAD_REQUEST,
        "off by default"
    );
    off.stop().await;

    settings.apple.cert_header = Some("x-client-cert".into());
    settings.apple.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let on = TestApp::spawn_in(&env, settings).await;
    assert_eq!(
        send(&on).await.unwrap().status(),
        StatusCode::OK,
        "trusted proxy header accepted"
    );
}

#[tokio::test]
async fn the_real_device_messages_are_accepted_re_signed_with_a_simulator_identity() {
    let (_apns, app) = app_with_school().await;
    let sim = app.new_ipad("GYM1", 80).await;

    // The real iPad's Authenticate and TokenUpdate, signed as the simulator signs.
    let auth = vector("checkin-authenticate-ipad.plist");
    let real_udid = match flotte_apple::parse_checkin(&auth).unwrap() {
        CheckinMessage::Authenticate(a) => a.udid.unwrap(),
        other => panic!("{other:?}"),
    };
    // The vector's topic is its server's; ours must match our push certificate.
    let mut a = match flotte_apple::parse_checkin(&auth).unwrap() {
        CheckinMessage::Authenticate(a) => a,
        _ => unreachable!(),
    };
    a.topic = sim.enrollment.topic.clone();
    let (status, body) = sim
        .send(
            &sim.enrollment.check_in_url,
            "application/x-apple-aspen-mdm-checkin",
            CheckinMessage::Authenticate(a).to_plist(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let mut t =
        match flotte_apple::parse_checkin(&vector("checkin-tokenupdate-ipad.plist")).unwrap() {
            CheckinMessage::TokenUpdate(t) => t,
            _ => unreachable!(),
        };
    t.topic = sim.enrollment.topic.clone();
    let (status, _) = sim
        .send(
            &sim.enrollment.check_in_url,
            "application/x-apple-aspen-mdm-checkin",
            CheckinMessage::TokenUpdate(t).to_plist(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let d = device(&app, &real_udid).await;
    assert_eq!(d["serial_number"], "F5JM992LF193");
    assert_eq!(d["product_name"], "iPad2,5");
    assert_eq!(d["os_version"], "9.3.5");
    assert_eq!(d["enrollment_state"], "enrolled");
    let target = app
        .store
        .push_target(d["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        target.token_hex,
        "47e8eec062c2f729ec1703c1b3e18f1971d85f00be76445d34080baa701b5f51"
    );

    // The real DeviceInformation answer, given the queued command's UUID.
    let uuid = app
        .queue(&real_udid, "DeviceInformation", Value::Null)
        .await;
    let poll = CommandReport::idle(&real_udid).to_plist();
    let (status, _) = sim
        .send(
            &sim.enrollment.server_url,
            "application/x-apple-aspen-mdm",
            poll,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut report =
        flotte_apple::parse_report(&vector("report-deviceinformation-acknowledged.plist")).unwrap();
    assert_eq!(report.status, Status::Acknowledged);
    report.udid = Some(real_udid.clone());
    report.command_uuid = Some(uuid.clone());
    let (status, _) = sim
        .send(
            &sim.enrollment.server_url,
            "application/x-apple-aspen-mdm",
            report.to_plist(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let c = &commands(&app, &real_udid).await[0];
    assert_eq!(c["status"], "acknowledged");
    assert!(c["result"].as_str().unwrap().contains("QueryResponses"));

    // The real error reports, for two more commands.
    for (name, rt) in [
        ("report-error-errorchain.plist", "ProfileList"),
        (
            "report-error-invalid-request-type-macos.plist",
            "SecurityInfo",
        ),
    ] {
        let uuid = app.queue(&real_udid, rt, Value::Null).await;
        sim.send(
            &sim.enrollment.server_url,
            "application/x-apple-aspen-mdm",
            CommandReport::idle(&real_udid).to_plist(),
        )
        .await;
        let mut report = flotte_apple::parse_report(&vector(name)).unwrap();
        report.udid = Some(real_udid.clone());
        report.command_uuid = Some(uuid.clone());
        let (status, _) = sim
            .send(
                &sim.enrollment.server_url,
                "application/x-apple-aspen-mdm",
                report.to_plist(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let c = commands(&app, &real_udid)
            .await
            .into_iter()
            .find(|c| c["id"] == uuid)
            .unwrap();
        assert_eq!(c["status"], "error", "{name}");
        assert!(!c["error"].as_str().unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn finished_commands_are_pruned_after_the_retention() {
    let (_apns, app) = app_with_school().await;
    let mut ipad = app.enrolled_ipad("GYM1", 90).await;
    for _ in 0..5 {
        app.queue(&ipad.udid, "ProfileList", Value::Null).await;
    }
    ipad.session().await;
    let pending = app.queue(&ipad.udid, "SecurityInfo", Value::Null).await;
    assert_eq!(commands(&app, &ipad.udid).await.len(), 6);
    let report = app
        .store
        .prune(chrono::Utc::now() + chrono::Duration::days(31), 30, 7)
        .await
        .unwrap();
    assert_eq!(report.commands_deleted, 5);
    let left = commands(&app, &ipad.udid).await;
    assert_eq!(left.len(), 1, "the pending command stays");
    assert_eq!(left[0]["id"], pending);
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A device presenting another identity (minted by `ca` at `at`), same UDID.
fn clone_with_identity(
    ipad: &SimIpad,
    ca: &flotte_pki::CertificateAuthority,
    at: chrono::DateTime<chrono::Utc>,
    days: u32,
    app: &TestApp,
) -> SimIpad {
    let issued = ca
        .issue_client_certificate(
            &flotte_pki::ClientCertificateRequest::new("impostor", days),
            at,
        )
        .unwrap();
    let mut enrollment = ipad.enrollment.clone();
    enrollment.identity_cert_pem = issued.cert_pem;
    enrollment.identity_key_pem = issued.key_pem.unwrap();
    let mut sim = SimIpad::new(enrollment, app.client.clone(), 0);
    sim.udid = ipad.udid.clone();
    sim
}

#[tokio::test]
async fn a_not_now_answer_brings_another_push_later() {
    let apns = ApnsStandIn::start().await;
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    apns.configure(&mut settings);
    settings.apple.not_now_retry_secs = 1;
    let app = TestApp::spawn_in(&env, settings).await;
    app.create_school("GYM1", "Gymnasium").await;
    let mut ipad = app.enrolled_ipad("GYM1", 95).await;
    ipad.behaviour.not_now_first = vec!["InstalledApplicationList".into()];
    app.queue(&ipad.udid, "InstalledApplicationList", Value::Null)
        .await;
    let token = ipad.token_hex();
    let pushes = || {
        apns.pushes()
            .iter()
            .filter(|p| p.token_hex == token)
            .count()
    };
    eventually(20, "the first push", &mut || async { pushes() == 1 }).await;
    ipad.session().await;
    eventually(20, "a second push after NotNow", &mut || async {
        pushes() == 2
    })
    .await;
    let handled = ipad.session().await;
    assert_eq!(handled.len(), 1, "the device runs the command now");
    assert_eq!(
        commands(&app, &ipad.udid).await[0]["status"],
        "acknowledged"
    );
}

#[tokio::test]
async fn a_push_certificate_with_another_topic_is_refused_unless_forced() {
    let (apns, app) = app_with_school().await;
    app.enrolled_ipad("GYM1", 96).await;
    let (status, current) = app.get_json("/api/v1/apple/push-certificate").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(current["topic"], apns.topic);

    let ca = app.ca();
    let other_topic = "com.apple.mgmt.External.11111111-2222-3333-4444-555555555555";
    let mut req = flotte_pki::ClientCertificateRequest::new("APSP:other", 365);
    req.user_id = Some(other_topic.into());
    let cert = ca
        .issue_client_certificate(&req, chrono::Utc::now())
        .unwrap();
    let pem = format!("{}{}", cert.cert_pem, cert.key_pem.unwrap());
    let put = |force: bool| {
        app.api(reqwest::Method::PUT, "/api/v1/apple/push-certificate")
            .json(&json!({ "pem": pem, "force": force }))
            .send()
    };
    let refused = put(false).await.unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let body: Value = refused.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("stop"), "{body}");
    assert_eq!(
        app.get_json("/api/v1/apple/push-certificate").await.1["topic"],
        apns.topic,
        "unchanged"
    );

    let forced = put(true).await.unwrap();
    assert_eq!(forced.status(), StatusCode::OK);
    assert_eq!(
        app.get_json("/api/v1/apple/push-certificate").await.1["topic"],
        other_topic
    );

    let not_push = ca
        .issue_client_certificate(
            &flotte_pki::ClientCertificateRequest::new("plain", 30),
            chrono::Utc::now(),
        )
        .unwrap();
    let r = app
        .api(reqwest::Method::PUT, "/api/v1/apple/push-certificate")
        .json(&json!({ "pem": format!("{}{}", not_push.cert_pem, not_push.key_pem.unwrap()) }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "no topic in the certificate"
    );
}

/// Check-ins of new iPads are written in batches: many at once all enrol, each with its own
/// device, enrolment, push token and audit entries; the same iPad enrolling twice at once with
/// two identities stays one device with one open enrolment.
#[tokio::test]
async fn ipads_checking_in_at_once_are_written_together_and_each_gets_its_own_answer() {
    let (apns, app) = app_with_school().await;
    let mut ipads = Vec::new();
    for n in 0..24 {
        ipads.push(app.new_ipad("GYM1", 300 + n).await);
    }
    let before = changes_recorded(&app).await.len();
    let authenticated = futures::future::join_all(
        ipads
            .iter()
            .map(|i| async move { i.checkin(&i.authenticate_message()).await }),
    )
    .await;
    let updated = futures::future::join_all(
        ipads
            .iter()
            .map(|i| async move { i.checkin(&i.token_update_message()).await }),
    )
    .await;
    for (status, body) in authenticated.iter().chain(&updated) {
        assert_eq!(*status, StatusCode::OK, "{}", String::from_utf8_lossy(body));
    }
    let mut ids = std::collections::HashSet::new();
    for ipad in &ipads {
        let d = device(&app, &ipad.udid).await;
        assert_eq!(d["serial_number"], ipad.serial.as_str());
        assert_eq!(d["enrollment_state"], "enrolled");
        let id = d["id"].as_str().unwrap().to_owned();
        let target = app
            .store
            .push_target(&id)
            .await
            .unwrap()
            .expect("push target");
        assert_eq!(target.token_hex, ipad.token_hex());
        assert_eq!(target.push_magic, ipad.push_magic);
        ids.insert(id);
    }
    assert_eq!(ids.len(), ipads.len(), "one device each");
    let recorded = changes_recorded(&app).await;
    let new: Vec<&String> = recorded[..recorded.len() - before].iter().collect();
    let count = |action: &str| new.iter().filter(|e| e.contains(action)).count();
    assert_eq!(count("device.authenticate"), ipads.len());
    assert_eq!(count("device.token_update"), ipads.len());

    // One iPad, two profiles installed at the same moment: two identities, one device.
    let first = app.new_ipad("GYM1", 400).await;
    let second = app.new_ipad("GYM1", 400).await;
    let (a, b) = futures::future::join(
        first.checkin(&first.authenticate_message()),
        second.checkin(&second.authenticate_message()),
    )
    .await;
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK));
    let (_, list) = app.get_json("/api/v1/devices?platform=apple").await;
    let same: Vec<&Value> = list
        .as_array()
        .or_else(|| list["devices"].as_array())
        .expect("device list")
        .iter()
        .filter(|d| d["udid"] == first.udid.as_str())
        .collect();
    assert_eq!(same.len(), 1, "{list}");
    use flotte_storage::entity::enrollment;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let open = enrollment::Entity::find()
        .filter(enrollment::Column::DeviceId.eq(same[0]["id"].as_str().unwrap()))
        .filter(enrollment::Column::EndedAt.is_null())
        .count(app.store.connection())
        .await
        .unwrap();
    assert_eq!(open, 1);
    let _ = apns;
}

/// An Authenticate for another server's push topic is refused before anything is written.
#[tokio::test]
async fn an_authenticate_for_another_push_topic_is_refused_and_records_nothing() {
    let (apns, app) = app_with_school().await;
    let ipad = app.new_ipad("GYM1", 600).await;
    let mut message = ipad.authenticate_message();
    if let CheckinMessage::Authenticate(a) = &mut message {
        a.topic = "com.apple.mgmt.External.someone-else".into();
    }
    assert_refused(ipad.checkin(&message).await, "push topic").await;
    let (status, _) = app
        .get_json(&format!("/api/v1/devices/{}", ipad.udid))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The right topic still enrols the same iPad.
    ipad.enrol().await.unwrap();
    assert_eq!(
        device(&app, &ipad.udid).await["enrollment_state"],
        "enrolled"
    );
    let _ = apns;
}
