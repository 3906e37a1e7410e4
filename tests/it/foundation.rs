//! The skeleton: first start, restarts, tokens, limits, migrations, jobs.

use flotte_storage::{NewDevice, Store, TokenUpdate};
use flotte_tests::worker::KillableWorker;
use flotte_tests::{ApnsStandIn, TestApp, TestEnv, eventually};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("file exists")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn first_start_creates_ca_tls_certificate_and_token_and_serves_health_over_https() {
    let app = TestApp::spawn().await;

    for file in ["ca.pem", "issuing-ca.pem", "tls.pem"] {
        assert!(app.data_path(file).exists(), "{file} written");
    }
    for secret in [
        "ca-key.pem",
        "issuing-ca-key.pem",
        "tls-key.pem",
        "admin-token",
    ] {
        assert_eq!(mode(&app.data_path(secret)), 0o600, "{secret} is private");
    }
    assert!(app.token.len() >= 40, "a long random token");

    let response = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("https");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.version(),
        reqwest::Version::HTTP_2,
        "ALPN offers h2"
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn a_restart_keeps_the_ca_the_tls_certificate_and_the_token() {
    let env = TestEnv::new().await;
    let first = TestApp::spawn_in(&env, env.settings()).await;
    let ca = std::fs::read(first.data_path("ca.pem")).unwrap();
    let tls = std::fs::read(first.data_path("tls.pem")).unwrap();
    let token = first.token.clone();
    first.stop().await;

    let second = TestApp::spawn_in(&env, env.settings()).await;
    assert_eq!(std::fs::read(second.data_path("ca.pem")).unwrap(), ca);
    assert_eq!(std::fs::read(second.data_path("tls.pem")).unwrap(), tls);
    assert_eq!(second.token, token);
    let (status, _) = second.get_json("/api/v1/devices").await;
    assert_eq!(status, StatusCode::OK, "the old token still works");
}

#[tokio::test]
async fn a_configured_admin_token_is_used_instead_of_a_generated_one() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.admin_token = Some("configured-token-0123456789".into());
    let mut app = TestApp::spawn_in(&env, settings).await;
    assert!(
        !app.data_path("admin-token").exists(),
        "no token file when one is configured"
    );
    app.token = "configured-token-0123456789".into();
    let (status, _) = app.get_json("/api/v1/devices").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn no_token_or_a_wrong_token_is_answered_401_with_a_json_reason() {
    let app = TestApp::spawn().await;

    let none = app
        .client
        .get(app.url("/api/v1/devices"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = none.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("Authorization"),
        "{body}"
    );

    let wrong = app
        .client
        .get(app.url("/api/v1/devices"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = wrong.json().await.unwrap();
    assert_eq!(body["message"], "unknown token");
}

#[tokio::test]
async fn migrations_run_twice_are_harmless_and_keep_the_data() {
    let env = TestEnv::new().await;
    let store = Store::connect(&env.database_url).await.unwrap();
    store.migrate().await.unwrap();
    let actor = flotte_core::audit::AuditEntry::new("test", "device.register", "");
    store
        .register_device(
            NewDevice {
                platform: flotte_core::device::Platform::Apple,
                serial_number: Some("DMPXK1ABCDEF".into()),
                udid: None,
                asset_tag: None,
                model: None,
                school_id: None,
            },
            &actor,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let again = Store::connect(&env.database_url).await.unwrap();
    again.migrate().await.unwrap();
    let found = again
        .find_device("DMPXK1ABCDEF", &flotte_core::auth::SchoolScope::All)
        .await
        .unwrap();
    assert_eq!(found.serial_number.as_deref(), Some("DMPXK1ABCDEF"));
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_413_and_nothing_is_stored() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.http.body_limit_bytes = 32 * 1024;
    let app = TestApp::spawn_in(&env, settings).await;

    let big = json!({ "platform": "apple", "serial_number": "X".repeat(64 * 1024) });
    let (status, body) = app.post_json("/api/v1/devices", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // The same without a Content-Length (a chunked stream) must not be read to the end either.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..64).map(|_| Ok(vec![b' '; 1024])).collect();
    let streamed = app
        .api(Method::POST, "/api/v1/devices")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let (_, devices) = app.get_json("/api/v1/devices").await;
    assert_eq!(devices, json!([]), "nothing stored");
}

#[tokio::test]
async fn malformed_json_is_refused_with_a_reason_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let response = app
        .api(Method::POST, "/api/v1/devices")
        .header("content-type", "application/json")
        .body("{\"platform\": \"apple\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body"),
        "{body}"
    );

    let (status, body) = app
        .post_json(
            "/api/v1/devices",
            &json!({ "platform": "android", "serial_number": "A1" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("android"),
        "{body}"
    );

    let (_, devices) = app.get_json("/api/v1/devices").await;
    assert_eq!(devices, json!([]));
}

#[tokio::test]
async fn a_duplicate_serial_number_is_a_409_conflict() {
    let app = TestApp::spawn().await;
    let device = json!({ "platform": "windows", "serial_number": "PF3ABCDE" });
    let (status, _) = app.post_json("/api/v1/devices", &device).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.post_json("/api/v1/devices", &device).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, devices) = app.get_json("/api/v1/devices").await;
    assert_eq!(devices.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_openapi_document_and_metrics_are_served() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/devices",
        "/api/v1/devices/{id}",
        "/api/v1/devices/{id}/commands",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }

    app.post_json(
        "/api/v1/devices",
        &json!({ "platform": "apple", "serial_number": "M1" }),
    )
    .await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("flotte_devices{platform=\"apple\",state=\"registered\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE flotte_http_responses_total counter"));
}

async fn enrolled_device(app: &TestApp, serial: &str, token_hex: &str, topic: &str) -> String {
    let (status, device) = app
        .post_json(
            "/api/v1/devices",
            &json!({ "platform": "apple", "serial_number": serial }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    let id = device["id"].as_str().unwrap().to_owned();
    app.store
        .record_token_update(
            &id,
            TokenUpdate {
                token_hex: token_hex.into(),
                push_magic: format!("magic-{serial}"),
                topic: topic.into(),
                unlock_token: None,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    id
}

async fn wake_outcomes(app: &TestApp, device_id: &str) -> Vec<String> {
    let (_, audit) = app.get_json("/api/v1/audit?limit=1000").await;
    audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "device.wake" && e["target"] == format!("device:{device_id}"))
        .map(|e| {
            e["details"]["outcome"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_job_enqueued_with_a_data_change_is_done_by_the_worker() {
    let apns = ApnsStandIn::start().await;
    let app = TestApp::spawn_with_apns(&apns).await;
    let token = "47e8eec062c2f729ec1703c1b3e18f1971d85f00be76445d34080baa701b5f51";
    let id = enrolled_device(&app, "DMPWAKE1", token, &apns.topic).await;

    let (status, queued) = app
        .post_json(
            &format!("/api/v1/devices/{id}/commands"),
            &json!({ "request_type": "DeviceInformation" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");

    app.eventually(20, "the worker pushes to the device", || async {
        !apns.pushes().is_empty()
    })
    .await;
    let push = &apns.pushes()[0];
    assert_eq!(push.token_hex, token);
    assert_eq!(push.push_magic.as_deref(), Some("magic-DMPWAKE1"));
    assert!(push.expiration.as_deref().unwrap().parse::<u64>().unwrap() > 0);
    app.eventually(10, "the wake-up is audited", || async {
        wake_outcomes(&app, &id).await == vec!["pushed".to_owned()]
    })
    .await;

    let (_, commands) = app
        .get_json(&format!("/api/v1/devices/{id}/commands"))
        .await;
    assert_eq!(commands[0]["status"], "queued");
    assert_eq!(commands[0]["id"], queued["command_uuid"]);
}

#[tokio::test]
async fn a_dead_push_token_marks_the_device_and_is_not_retried() {
    let apns = ApnsStandIn::start().await;
    let app = TestApp::spawn_with_apns(&apns).await;
    let token = "aa".repeat(32);
    apns.fail_token(&token, 410, "Unregistered");
    let id = enrolled_device(&app, "DMPDEAD1", &token, &apns.topic).await;
    app.post_json(
        &format!("/api/v1/devices/{id}/commands"),
        &json!({ "request_type": "ProfileList" }),
    )
    .await;
    app.eventually(20, "the failed push is audited", || async {
        wake_outcomes(&app, &id).await == vec!["token invalid: Unregistered".to_owned()]
    })
    .await;
    assert!(
        app.store.push_target(&id).await.unwrap().is_none(),
        "no more pushes to a dead token"
    );
    assert_eq!(apns.arrivals(), 1);
}

#[tokio::test]
async fn a_worker_killed_mid_job_finishes_the_job_after_restart() {
    let apns = ApnsStandIn::start().await;
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    apns.configure(&mut settings);
    // Only the server here: the worker runs on its own so it can be killed.
    let app = TestApp::spawn_roles(&env, settings.clone(), true, false).await;
    let token = "bb".repeat(32);
    let id = enrolled_device(&app, "DMPKILL1", &token, &apns.topic).await;

    apns.set_delay(Some(Duration::from_secs(600)));
    let worker = KillableWorker::start(settings.clone());
    app.post_json(
        &format!("/api/v1/devices/{id}/commands"),
        &json!({ "request_type": "DeviceInformation" }),
    )
    .await;
    eventually(20, "the first worker is mid-push", &mut || async {
        apns.arrivals() >= 1
    })
    .await;
    worker.kill();
    assert!(
        apns.pushes().is_empty(),
        "the first attempt never completed"
    );
    assert!(wake_outcomes(&app, &id).await.is_empty());

    apns.set_delay(None);
    let _second = KillableWorker::start(settings);
    eventually(
        30,
        "the job is picked up again and completed",
        &mut || async { apns.pushes().len() == 1 },
    )
    .await;
    eventually(10, "the outcome is audited once", &mut || async {
        wake_outcomes(&app, &id).await == vec!["pushed".to_owned()]
    })
    .await;
}
