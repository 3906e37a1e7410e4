//! `flotte profile …` and `flotte push …`, called in-process through the `flotte` library
//! against a spawned app, over HTTPS as from another machine: templates from files, the
//! server's validation, a push followed to the end while a simulated iPad answers, the
//! exit statuses of a push that failed or was cancelled, and the server's refusals.

use flotte::client::{Client, ClientError, Connection, resolve_connection};
use flotte::remote::{self, Progress, ProgressStyle, PushControl, PushEnded, PushRequest};
use flotte_core::assignment::{AssignmentScope, PushAction, TargetStatus};
use flotte_tests::bench_profiles::{school_template, wait_queued};
use flotte_tests::{ApnsStandIn, TestApp, TestEnv};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

async fn app_with_school() -> (ApnsStandIn, TestApp) {
    let apns = ApnsStandIn::start().await;
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    apns.configure(&mut settings);
    settings.profiles.progress_every_secs = 1;
    let app = TestApp::spawn_in(&env, settings).await;
    app.create_school("GYM1", "Gymnasium am Dom").await;
    (apns, app)
}

fn connection(app: &TestApp, token: &str) -> Connection {
    Connection {
        url: app.base_url.clone(),
        token: token.to_owned(),
        ca_pem: std::fs::read(app.data_path("ca.pem")).expect("ca.pem"),
    }
}

fn client(app: &TestApp) -> Client {
    Client::new(&connection(app, &app.token)).expect("client")
}

fn write_json(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    path
}

/// What a command printed: exactly one JSON document.
fn printed(out: &[u8]) -> Value {
    serde_json::from_slice(out).expect("one JSON document on standard output")
}

fn api_error(e: &anyhow::Error) -> (StatusCode, String) {
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::Api { status, message }) => (*status, message.clone()),
        _ => panic!("not an API refusal: {e:#}"),
    }
}

fn push_to_gym1(profile: Option<&str>, action: PushAction) -> PushRequest {
    PushRequest {
        profile: profile.map(str::to_owned),
        version: None,
        action,
        scope: AssignmentScope::School("GYM1".into()),
        batch_size: None,
        silent_after_secs: None,
    }
}

/// Run `push start --wait` while the iPad, once the push's command is queued, checks in
/// and answers; returns what the command returned, printed and drew.
async fn start_and_answer(
    app: &TestApp,
    client: &Client,
    request: &PushRequest,
    ipad: &mut flotte_tests::apple_device::SimIpad,
    known_pushes: usize,
) -> (anyhow::Result<Value>, Value, String, usize) {
    let mut out = Vec::new();
    let mut log = Vec::new();
    let mut progress = Progress::new(&mut log, ProgressStyle::Lines);
    let device = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let id = loop {
            let (_, pushes) = app.get_json("/api/v1/pushes").await;
            let pushes = pushes.as_array().cloned().unwrap_or_default();
            if pushes.len() > known_pushes {
                // Newest first.
                break pushes[0]["id"].as_str().unwrap().to_owned();
            }
            assert!(std::time::Instant::now() < deadline, "no push was created");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        wait_queued(app, &id, 60).await;
        ipad.session().await.len()
    };
    let (result, handled) = tokio::join!(
        remote::push_start(client, request, Some(&mut progress), &mut out),
        device
    );
    drop(progress);
    (
        result,
        printed(&out),
        String::from_utf8(log).unwrap(),
        handled,
    )
}

#[tokio::test]
async fn cli_templates_are_created_versioned_and_validated_from_files() {
    let (_apns, app) = app_with_school().await;
    let client = client(&app);
    let dir = tempfile::tempdir().unwrap();

    let v1_file = write_json(
        dir.path(),
        "portal.json",
        &school_template("de.flotte.portal", "Portal"),
    );
    let mut out = Vec::new();
    let v1 = remote::profile_create(&client, &v1_file, &mut out)
        .await
        .expect("created");
    assert_eq!(printed(&out), v1, "what was saved is printed");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["identifier"], "de.flotte.portal");

    let v2_file = write_json(
        dir.path(),
        "portal-v2.json",
        &school_template("de.flotte.portal", "Lernportal"),
    );
    let mut out = Vec::new();
    let v2 = remote::profile_update(&client, "de.flotte.portal", &v2_file, &mut out)
        .await
        .expect("updated");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["id"], v1["id"]);

    let mut out = Vec::new();
    remote::profile_versions(&client, "de.flotte.portal", &mut out)
        .await
        .unwrap();
    let versions = printed(&out);
    let labels: Vec<&Value> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["template"]["payloads"][1]["payload"]["label"])
        .collect();
    assert_eq!(labels, [&json!("Portal"), &json!("Lernportal")]);
    let mut out = Vec::new();
    remote::profile_show(&client, v1["id"].as_str().unwrap(), &mut out)
        .await
        .unwrap();
    assert_eq!(printed(&out)["version"], 2, "shown by id, newest version");

    // An unknown variable: refused with the server's reason and the JSON path, nothing
    // saved, not even under a new identifier.
    let mut bad = school_template("de.flotte.kaputt", "Portal");
    bad["payloads"][1]["payload"]["label"] = json!("{{person.email}}");
    let bad_file = write_json(dir.path(), "kaputt.json", &bad);
    let mut out = Vec::new();
    let e = remote::profile_validate(&client, &bad_file, &mut out)
        .await
        .expect_err("invalid");
    let message = e.to_string();
    assert!(message.contains("kaputt.json"), "{message}");
    assert!(message.contains("person.email"), "{message}");
    assert!(message.contains("payloads[1].payload.label"), "{message}");
    assert!(out.is_empty(), "nothing printed on standard output");
    let e = remote::profile_create(&client, &bad_file, &mut Vec::new())
        .await
        .expect_err("refused when saved too");
    assert_eq!(api_error(&e).0, StatusCode::BAD_REQUEST);
    let e = remote::profile_show(&client, "de.flotte.kaputt", &mut Vec::new())
        .await
        .expect_err("not stored");
    assert_eq!(api_error(&e).0, StatusCode::NOT_FOUND);

    let mut out = Vec::new();
    remote::profile_validate(&client, &v2_file, &mut out)
        .await
        .expect("valid");
    assert_eq!(
        printed(&out),
        json!({ "valid": true, "identifier": "de.flotte.portal" })
    );

    // A file that is not JSON never reaches the server.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "identifier: de.flotte.x").unwrap();
    let e = remote::profile_create(&client, &junk, &mut Vec::new())
        .await
        .expect_err("not JSON");
    assert!(e.to_string().contains("not JSON"), "{e}");

    let mut out = Vec::new();
    remote::profile_list(&client, &mut out).await.unwrap();
    let list = printed(&out);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["version"], 2);
    let (_, stored) = app
        .get_json("/api/v1/profiles/de.flotte.portal/versions")
        .await;
    assert_eq!(
        stored.as_array().unwrap().len(),
        2,
        "validation saved nothing"
    );
}

#[tokio::test]
async fn cli_a_push_started_with_wait_follows_the_ipad_to_the_end() {
    let (_apns, app) = app_with_school().await;
    let client = client(&app);
    let mut ipad = app.enrolled_ipad("GYM1", 71).await;
    let (_, device) = app
        .get_json(&format!("/api/v1/devices/{}", ipad.udid))
        .await;
    let device_id = device["id"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = write_json(
        dir.path(),
        "portal.json",
        &school_template("de.flotte.portal", "Portal"),
    );
    remote::profile_create(&client, &file, &mut Vec::new())
        .await
        .unwrap();

    let request = push_to_gym1(Some("de.flotte.portal"), PushAction::Install);
    let (result, printed_push, log, handled) =
        start_and_answer(&app, &client, &request, &mut ipad, 0).await;
    let done = result.expect("the push completed with every device acknowledged");
    assert_eq!(handled, 1, "the iPad received the profile");
    assert_eq!(printed_push, done, "the push as it ended is printed");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["total"], 1);
    assert_eq!(done["counts"]["acknowledged"], 1, "{done}");
    let id = done["id"].as_str().unwrap().to_owned();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "push {id}: install de.flotte.portal v1 to school "
        )),
        "{log}"
    );
    assert!(
        lines[0].ends_with(", 1 device"),
        "the first line says what was queued: {log}"
    );
    assert_eq!(
        lines.last().copied(),
        Some(
            format!("push {id}: 1/1 acknowledged · 0 failed · 0 not now · queued 1 · completed")
                .as_str()
        ),
        "{log}"
    );
    assert!(
        !log.contains("polling instead"),
        "followed through the event stream: {log}"
    );
    let (_, states) = app
        .get_json(&format!("/api/v1/devices/{device_id}/profiles"))
        .await;
    assert_eq!(states[0]["installed_version"], 1, "{states}");

    // Following a finished push ends at once, with the same answer.
    let mut out = Vec::new();
    let mut log = Vec::new();
    let watched = remote::push_watch(
        &client,
        &id,
        &mut Progress::new(&mut log, ProgressStyle::Lines),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(watched["status"], "completed");
    assert_eq!(printed(&out)["id"], json!(id));

    // A finished push cannot be cancelled: the server's 409 and its words.
    let mut out = Vec::new();
    let e = remote::push_control(&client, &id, PushControl::Cancel, &mut out)
        .await
        .expect_err("already finished");
    let (status, message) = api_error(&e);
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        message.contains("already completed and cannot be cancelled"),
        "{message}"
    );
    assert!(e.to_string().starts_with("409 Conflict: push "), "{e}");
    assert!(out.is_empty());
    let (_, after) = app.get_json(&format!("/api/v1/pushes/{id}")).await;
    assert_eq!(after["status"], "completed", "nothing changed");

    // Version 2 reaches an iPad that refuses it: the push completes, but `--wait` fails
    // with its own exit status and says where to look.
    let v2 = write_json(
        dir.path(),
        "portal-v2.json",
        &school_template("de.flotte.portal", "Lernportal"),
    );
    remote::profile_update(&client, "de.flotte.portal", &v2, &mut Vec::new())
        .await
        .unwrap();
    ipad.behaviour.fail.push("InstallProfile".into());
    let (result, printed_push, _, handled) =
        start_and_answer(&app, &client, &request, &mut ipad, 1).await;
    assert_eq!(handled, 1);
    let e = result.expect_err("a failed device is not a success");
    let ended = e.downcast_ref::<PushEnded>().expect("a push outcome");
    assert_eq!(ended.code, remote::EXIT_INCOMPLETE);
    assert!(ended.message.contains("1 failed"), "{}", ended.message);
    assert!(
        ended.message.contains("--status failed"),
        "{}",
        ended.message
    );
    assert_eq!(printed_push["status"], "completed");
    assert_eq!(printed_push["version"], 2);
    assert_eq!(printed_push["counts"]["failed"], 1, "{printed_push}");

    let mut out = Vec::new();
    remote::push_devices(
        &client,
        printed_push["id"].as_str().unwrap(),
        Some(TargetStatus::Failed),
        None,
        &mut out,
    )
    .await
    .unwrap();
    let failed = printed(&out);
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed[0]["device_id"], json!(device_id));

    let mut out = Vec::new();
    remote::push_list(&client, &mut out).await.unwrap();
    let pushes = printed(&out);
    assert_eq!(pushes.as_array().unwrap().len(), 2, "{pushes}");
}

#[tokio::test]
async fn cli_a_push_is_paused_resumed_and_cancelled_and_watching_it_says_so() {
    let (_apns, app) = app_with_school().await;
    let client = client(&app);
    // Enrolled, but never checks in: the push waits for it.
    let _ipad = app.enrolled_ipad("GYM1", 72).await;

    let mut out = Vec::new();
    let push = remote::push_start(
        &client,
        &push_to_gym1(None, PushAction::Sync),
        None,
        &mut out,
    )
    .await
    .expect("queued");
    assert_eq!(printed(&out), push, "without --wait, the push as created");
    assert_eq!(push["action"], "sync");
    assert_eq!(push["total"], 1);
    let id = push["id"].as_str().unwrap();

    let paused = remote::push_control(&client, id, PushControl::Pause, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(paused["status"], "paused");
    let e = remote::push_control(&client, id, PushControl::Pause, &mut Vec::new())
        .await
        .expect_err("paused already");
    assert_eq!(api_error(&e).0, StatusCode::CONFLICT);
    let resumed = remote::push_control(&client, id, PushControl::Resume, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(resumed["status"], "running");
    let cancelled = remote::push_control(&client, id, PushControl::Cancel, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled");

    let mut out = Vec::new();
    let mut log = Vec::new();
    let e = remote::push_watch(
        &client,
        id,
        &mut Progress::new(&mut log, ProgressStyle::Lines),
        &mut out,
    )
    .await
    .expect_err("a cancelled push is not a success");
    let ended = e.downcast_ref::<PushEnded>().expect("a push outcome");
    assert_eq!(ended.code, remote::EXIT_CANCELLED);
    assert_eq!(ended.push["status"], "cancelled");
    assert_eq!(printed(&out)["status"], "cancelled");
    assert!(
        String::from_utf8(log)
            .unwrap()
            .trim_end()
            .ends_with("cancelled"),
        "the last progress line says how it ended"
    );

    let mut out = Vec::new();
    let status = remote::push_status(&client, id, &mut out).await.unwrap();
    assert_eq!(status["status"], "cancelled");
    // An install names a profile: the server says so, and no push is recorded.
    let e = remote::push_start(
        &client,
        &push_to_gym1(None, PushAction::Install),
        None,
        &mut Vec::new(),
    )
    .await
    .expect_err("no profile");
    let (code, message) = api_error(&e);
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(message.contains("names a profile"), "{message}");
    let (_, pushes) = app.get_json("/api/v1/pushes").await;
    assert_eq!(pushes.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn cli_connects_with_the_local_defaults_and_refuses_a_wrong_token_clearly() {
    let (_apns, app) = app_with_school().await;

    // Nothing given: the public URL, the bootstrap token and ca.pem of the data directory.
    let defaults = resolve_connection(None, None, None, || Ok(app.settings.clone())).unwrap();
    assert_eq!(defaults.url, app.settings.public_url());
    assert_eq!(defaults.token, app.token);
    let mut out = Vec::new();
    remote::profile_list(&Client::new(&defaults).unwrap(), &mut out)
        .await
        .expect("the defaults reach the local server");
    assert_eq!(printed(&out), json!([]));
    // Everything given: no settings are needed at all.
    let given = resolve_connection(
        Some(app.base_url.clone()),
        Some("x".repeat(20)),
        Some(app.data_path("ca.pem")),
        || panic!("the settings are not read"),
    )
    .unwrap();
    assert_eq!(given.token, "x".repeat(20));

    let wrong = Client::new(&connection(&app, "not-a-flotte-token-at-all")).unwrap();
    let e = remote::push_list(&wrong, &mut Vec::new())
        .await
        .expect_err("refused");
    let (status, message) = api_error(&e);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(message, "unknown token");
    let text = e.to_string();
    assert!(
        text.contains("unknown token") && text.contains("--token"),
        "{text}"
    );
    // The same for the event stream, which is not polled after a refusal.
    let e = remote::push_watch(
        &wrong,
        "no-such-push",
        &mut Progress::new(&mut Vec::new(), ProgressStyle::Lines),
        &mut Vec::new(),
    )
    .await
    .expect_err("refused");
    assert_eq!(api_error(&e).0, StatusCode::UNAUTHORIZED);

    // An unknown push, with the right token: not found, straight away.
    let e = remote::push_watch(
        &client(&app),
        "no-such-push",
        &mut Progress::new(&mut Vec::new(), ProgressStyle::Lines),
        &mut Vec::new(),
    )
    .await
    .expect_err("unknown");
    assert_eq!(api_error(&e).0, StatusCode::NOT_FOUND);
}
