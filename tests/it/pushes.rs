//! Bulk pushes: the scopes they reach (and the refusals: an empty scope, staff outside
//! their school), pause, resume and cancel, waking silent devices again, a worker killed
//! mid-push, two servers and two workers on one database, Windows delivery, and the queue
//! tables staying bounded over a hundred pushes to the whole fleet.

use flotte_core::device::Platform;
use flotte_core::jobs::Job as _;
use flotte_core::jobs::PushBatch;
use flotte_tests::bench_profiles::{
    commands_per_device, give_push_tokens, insert_class, insert_enrolled_devices, insert_person,
    lend, school_template, staff_token, wait_queued, workers_of,
};
use flotte_tests::worker::KillableWorker;
use flotte_tests::{ApnsStandIn, TestApp, TestEnv, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn app() -> (TestApp, String) {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.profiles.progress_every_secs = 1;
    let app = TestApp::spawn_in(&env, settings).await;
    let school = app.create_school("GYM1", "Gymnasium am Dom").await;
    (app, school)
}

async fn create_profile(app: &TestApp, identifier: &str) {
    let (status, body) = app
        .post_json("/api/v1/profiles", &school_template(identifier, "Portal"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn get_push(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get_json(&format!("/api/v1/pushes/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn post(app: &TestApp, path: &str) -> (StatusCode, Value) {
    app.post_json(path, &json!({})).await
}

#[tokio::test]
async fn a_push_to_an_empty_scope_is_refused_and_changes_nothing() {
    let (app, school) = app().await;
    create_profile(&app, "de.flotte.portal").await;
    let (status, body) = app
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.portal", "scope": { "kind": "school", "id": "GYM1" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no enrolled device"),
        "{body}"
    );

    // Laptops only: an Apple-only template reaches none of them.
    insert_enrolled_devices(&app.store, &school, Platform::Windows, 3, "WIN")
        .await
        .unwrap();
    let (status, body) = app
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.portal", "scope": { "kind": "all" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // A class whose pupils hold no loans.
    let (pupil, _) = insert_person(&app.store, &school, "ohne.geraet", "pupil")
        .await
        .unwrap();
    let class = insert_class(&app.store, &school, "5a", &[&pupil])
        .await
        .unwrap();
    let (status, _) = app
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.portal", "scope": { "kind": "class", "id": class } }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Unknown things are not found, not empty.
    let (status, _) = app
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.nope", "scope": { "kind": "all" } }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.portal", "version": 7, "scope": { "kind": "all" } }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, pushes) = app.get_json("/api/v1/pushes").await;
    assert_eq!(pushes, json!([]), "no push was recorded");
    let (_, assignments) = app.get_json("/api/v1/assignments").await;
    assert_eq!(assignments, json!([]), "no assignment was made");
}

#[tokio::test]
async fn a_class_scope_reaches_the_devices_lent_to_its_pupils_only() {
    let (app, school) = app().await;
    create_profile(&app, "de.flotte.portal").await;
    let devices = insert_enrolled_devices(&app.store, &school, Platform::Apple, 4, "CLS")
        .await
        .unwrap();
    let (a, _) = insert_person(&app.store, &school, "a.pupil", "pupil")
        .await
        .unwrap();
    let (b, _) = insert_person(&app.store, &school, "b.pupil", "pupil")
        .await
        .unwrap();
    let (c, _) = insert_person(&app.store, &school, "c.pupil", "pupil")
        .await
        .unwrap();
    let class = insert_class(&app.store, &school, "7b", &[&a, &b])
        .await
        .unwrap();
    insert_class(&app.store, &school, "8c", &[&c])
        .await
        .unwrap();
    lend(&app.store, &devices[0], &a, &school).await.unwrap();
    lend(&app.store, &devices[1], &b, &school).await.unwrap();
    lend(&app.store, &devices[2], &c, &school).await.unwrap();
    let (status, push) = app
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.portal", "scope": { "kind": "class", "id": class } }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{push}");
    assert_eq!(push["total"], 2);
    wait_queued(&app, push["id"].as_str().unwrap(), 60).await;
    let sent = commands_per_device(&app.store, push["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        sent.keys().cloned().collect::<Vec<_>>(),
        vec![devices[0].clone(), devices[1].clone()]
    );
}

#[tokio::test]
async fn school_staff_push_within_their_school_only() {
    let (app, school) = app().await;
    let other = app.create_school("GS2", "Grundschule Nord").await;
    create_profile(&app, "de.flotte.portal").await;
    let ours = insert_enrolled_devices(&app.store, &school, Platform::Apple, 2, "OURS")
        .await
        .unwrap();
    let theirs = insert_enrolled_devices(&app.store, &other, Platform::Apple, 2, "THEIRS")
        .await
        .unwrap();
    let token = staff_token(&app.store, &school, "l.lehrerin")
        .await
        .unwrap();
    let as_staff = |body: Value| {
        app.client
            .post(app.url("/api/v1/pushes"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    for scope in [
        json!({ "kind": "school", "id": "GS2" }),
        json!({ "kind": "school", "id": other }),
        json!({ "kind": "device", "id": theirs[0] }),
    ] {
        let r = as_staff(json!({ "profile": "de.flotte.portal", "scope": scope }))
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "{scope}: outside the school is not found"
        );
    }
    for scope in [
        json!({ "kind": "all" }),
        json!({ "kind": "platform", "id": "apple" }),
    ] {
        let r = as_staff(json!({ "profile": "de.flotte.portal", "scope": scope }))
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "{scope}: fleet-wide is for technicians"
        );
    }
    let (_, pushes) = app.get_json("/api/v1/pushes").await;
    assert_eq!(pushes, json!([]), "nothing was pushed");
    let r = app
        .client
        .post(app.url("/api/v1/profiles"))
        .bearer_auth(&token)
        .json(&school_template("de.flotte.staff", "Staff"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "templates are technicians' work"
    );

    // Within their school they may push, and see only their school's pushes.
    let r = as_staff(
        json!({ "profile": "de.flotte.portal", "scope": { "kind": "school", "id": "GYM1" } }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mine: Value = r.json().await.unwrap();
    assert_eq!(mine["total"], 2);
    let (_, fleet) = app
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.portal", "scope": { "kind": "all" } }),
        )
        .await;
    let r = app
        .client
        .get(app.url(&format!("/api/v1/pushes/{}", fleet["id"].as_str().unwrap())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "a fleet-wide push is not theirs to see"
    );
    let listed: Value = app
        .client
        .get(app.url("/api/v1/pushes"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], mine["id"]);
    let sent = commands_per_device(&app.store, mine["id"].as_str().unwrap())
        .await
        .unwrap();
    assert!(sent.keys().all(|d| ours.contains(d)));
}

#[tokio::test]
async fn pause_resume_and_cancel_follow_the_rules_and_a_finished_push_cannot_be_cancelled() {
    // The server alone first, so the push waits for a worker.
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.profiles.progress_every_secs = 1;
    let app = TestApp::spawn_roles(&env, settings.clone(), true, false).await;
    let school = app.create_school("GYM1", "Gymnasium am Dom").await;
    create_profile(&app, "de.flotte.portal").await;
    let devices = insert_enrolled_devices(&app.store, &school, Platform::Apple, 30, "PAUSE")
        .await
        .unwrap();
    let (status, push) = app
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.portal", "scope": { "kind": "school", "id": "GYM1" }, "batch_size": 7 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{push}");
    assert_eq!(push["status"], "queued");
    assert_eq!(push["batches"], 5);
    assert_eq!(push["counts"]["pending"], 30);
    let id = push["id"].as_str().unwrap().to_owned();

    let (status, paused) = post(&app, &format!("/api/v1/pushes/{id}/pause")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(paused["status"], "paused");
    let (status, _) = post(&app, &format!("/api/v1/pushes/{id}/pause")).await;
    assert_eq!(status, StatusCode::CONFLICT, "already paused");

    // A worker now finds the push paused and plans nothing.
    let worker = KillableWorker::start(settings.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(get_push(&app, &id).await["counts"]["pending"], 30);
    assert!(
        commands_per_device(&app.store, &id)
            .await
            .unwrap()
            .is_empty()
    );

    let (status, resumed) = post(&app, &format!("/api/v1/pushes/{id}/resume")).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "running");
    wait_queued(&app, &id, 60).await;
    let sent = commands_per_device(&app.store, &id).await.unwrap();
    assert_eq!(sent.len(), devices.len());
    assert!(sent.values().all(|n| *n == 1));

    // Cancel: the commands no device has fetched are withdrawn.
    let (status, cancelled) = post(&app, &format!("/api/v1/pushes/{id}/cancel")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["counts"]["cancelled"], 30, "{cancelled}");
    let (_, commands) = app
        .get_json(&format!("/api/v1/devices/{}/commands", devices[0]))
        .await;
    assert_eq!(commands[0]["status"], "cancelled");
    let (status, body) = post(&app, &format!("/api/v1/pushes/{id}/cancel")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already cancelled"),
        "{body}"
    );
    let (status, _) = post(&app, &format!("/api/v1/pushes/{id}/resume")).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A push that completed (removing a profile the device never had: nothing to do)
    // cannot be cancelled either.
    create_profile(&app, "de.flotte.other").await;
    let (_, again) = app
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.other", "action": "remove", "scope": { "kind": "device", "id": devices[0] } }),
        )
        .await;
    let again_id = again["id"].as_str().unwrap().to_owned();
    eventually(60, "the push completes", &mut || async {
        get_push(&app, &again_id).await["status"] == "completed"
    })
    .await;
    let (status, body) = post(&app, &format!("/api/v1/pushes/{again_id}/cancel")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = post(&app, "/api/v1/pushes/not-a-push/cancel").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    worker.kill();
}

#[tokio::test]
async fn devices_that_stay_silent_are_woken_again() {
    let apns = ApnsStandIn::start().await;
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    apns.configure(&mut settings);
    settings.profiles.progress_every_secs = 1;
    settings.apns.coalesce_secs = 1;
    let app = TestApp::spawn_in(&env, settings).await;
    let school = app.create_school("GYM1", "Gymnasium am Dom").await;
    create_profile(&app, "de.flotte.portal").await;
    let devices = insert_enrolled_devices(&app.store, &school, Platform::Apple, 3, "SILENT")
        .await
        .unwrap();
    give_push_tokens(&app.store, &devices, &apns.topic)
        .await
        .unwrap();
    let (_, push) = app
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.portal", "scope": { "kind": "school", "id": "GYM1" }, "silent_after_secs": 2 }),
        )
        .await;
    let id = push["id"].as_str().unwrap().to_owned();
    eventually(
        60,
        "every silent device is pushed at least three times",
        &mut || async {
            let pushes = apns.pushes();
            (0..3).all(|i| {
                let token = format!("{i:064x}");
                pushes.iter().filter(|p| p.token_hex == token).count() >= 3
            })
        },
    )
    .await;
    let (_, targets) = app.get_json(&format!("/api/v1/pushes/{id}/devices")).await;
    assert!(
        targets
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["wakes"].as_i64().unwrap() >= 2),
        "{targets}"
    );
    // Waking again sends no command again.
    let sent = commands_per_device(&app.store, &id).await.unwrap();
    assert!(sent.values().all(|n| *n == 1), "{sent:?}");
}

#[tokio::test]
async fn a_worker_killed_mid_push_leaves_no_device_with_two_commands() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.profiles.progress_every_secs = 1;
    let app = TestApp::spawn_roles(&env, settings.clone(), true, false).await;
    let school = app.create_school("GYM1", "Gymnasium am Dom").await;
    // Per-device renderings make each batch slow enough to be caught mid-push.
    let (status, body) = app
        .post_json(
            "/api/v1/profiles",
            &flotte_tests::bench_profiles::device_template("de.flotte.notice"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let devices = insert_enrolled_devices(&app.store, &school, Platform::Apple, 600, "KILL")
        .await
        .unwrap();
    let (_, push) = app
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.notice", "scope": { "kind": "school", "id": "GYM1" }, "batch_size": 25 }),
        )
        .await;
    let id = push["id"].as_str().unwrap().to_owned();
    let first = KillableWorker::start(settings.clone());
    let mut caught = false;
    for _ in 0..600 {
        let p = get_push(&app, &id).await;
        let pending = p["counts"]["pending"].as_i64().unwrap();
        if pending < 600 && pending > 0 {
            caught = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    assert!(
        caught,
        "the push was caught between its first and last batch"
    );
    let after_kill = get_push(&app, &id).await["counts"]["pending"]
        .as_i64()
        .unwrap();
    assert!(after_kill > 0, "devices were left for the next worker");

    let second = KillableWorker::start(settings.clone());
    wait_queued(&app, &id, 120).await;
    let sent = commands_per_device(&app.store, &id).await.unwrap();
    assert_eq!(sent.len(), devices.len(), "every device got its command");
    assert!(
        sent.values().all(|n| *n == 1),
        "no device got two: {sent:?}"
    );
    second.kill();
}

#[tokio::test]
async fn two_servers_and_two_workers_carry_out_one_push_together() {
    // PostgreSQL when the environment names one (as CI does), else one SQLite file.
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.profiles.progress_every_secs = 1;
    settings.worker.concurrency = 2;
    let a = TestApp::spawn_roles(&env, settings.clone(), true, false).await;
    let school = a.create_school("GYM1", "Gymnasium am Dom").await;
    let b = TestApp::spawn_roles(&env, env.settings(), true, false).await;
    assert_ne!(a.addr, b.addr);
    let (status, body) = a
        .post_json(
            "/api/v1/profiles",
            &flotte_tests::bench_profiles::device_template("de.flotte.notice"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let devices = insert_enrolled_devices(&a.store, &school, Platform::Apple, 800, "SCALE")
        .await
        .unwrap();
    let first = KillableWorker::start(settings.clone());
    let second = KillableWorker::start(settings.clone());
    let (status, push) = a
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.notice", "scope": { "kind": "school", "id": "GYM1" }, "batch_size": 20 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{push}");
    let id = push["id"].as_str().unwrap().to_owned();
    // Followed through the other server.
    let done = wait_queued(&b, &id, 180).await;
    assert_eq!(done["counts"]["queued"], 800, "{done}");
    let sent = commands_per_device(&a.store, &id).await.unwrap();
    assert_eq!(sent.len(), devices.len(), "every device got its command");
    assert!(
        sent.values().all(|n| *n == 1),
        "no device got two: {sent:?}"
    );
    let workers = workers_of(&a.store, PushBatch::QUEUE).await.unwrap();
    assert!(
        workers.len() >= 2,
        "both workers planned batches: {workers:?}"
    );
    first.kill();
    second.kill();
}

#[tokio::test]
async fn a_push_to_windows_laptops_queues_syncml_the_windows_queue_can_send() {
    let (app, school) = app().await;
    let laptops = insert_enrolled_devices(&app.store, &school, Platform::Windows, 2, "WIN")
        .await
        .unwrap();
    let template = json!({
        "identifier": "de.flotte.win.base",
        "display_name": "Grundeinstellungen {{school.code}}",
        "platforms": "windows",
        "payloads": [
            { "key": "flotte-ca", "payload": { "type": "root-ca", "ca": "flotte-root" } },
            { "key": "restrictions", "payload": { "type": "restrictions",
              "windows": { "allow_camera": false } } },
            { "key": "wifi", "payload": { "type": "wifi", "ssid": "Schule-{{school.code}}",
              "security": { "mode": "psk", "password": "lang-genug-geheim" } } }
        ]
    });
    let (status, body) = app.post_json("/api/v1/profiles", &template).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, push) = app
        .post_json(
            "/api/v1/pushes",
            &json!({ "profile": "de.flotte.win.base", "scope": { "kind": "platform", "id": "windows" } }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{push}");
    wait_queued(&app, push["id"].as_str().unwrap(), 60).await;
    for laptop in &laptops {
        let (_, commands) = app
            .get_json(&format!("/api/v1/devices/{laptop}/commands"))
            .await;
        let commands = commands.as_array().unwrap();
        assert!(commands.len() >= 3, "{commands:?}");
        assert!(
            commands
                .iter()
                .all(|c| c["request_type"].as_str().unwrap().starts_with("Windows:")),
            "{commands:?}"
        );
    }
    // What the Windows queue will read back and render, in order.
    let rows = flotte_tests::bench_profiles::queued_payloads(&app.store, &laptops[0])
        .await
        .unwrap();
    for (request_type, payload) in &rows {
        flotte_windows::commands::render_command(request_type, payload, "1")
            .unwrap_or_else(|e| panic!("{request_type}: {e}"));
    }
    assert!(
        rows.iter()
            .any(|(_, p)| p.to_string().contains("Schule-GYM1"))
    );
}

#[tokio::test]
async fn a_hundred_pushes_to_2703_devices_leave_the_queue_tables_bounded() {
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.profiles.progress_every_secs = 1;
    settings.retention.command_days = 0;
    settings.retention.job_days = 0;
    let app = TestApp::spawn_in(&env, settings).await;
    let school = app.create_school("GYM1", "Gymnasium am Dom").await;
    let fleet = 2703;
    insert_enrolled_devices(&app.store, &school, Platform::Apple, fleet, "FLEET")
        .await
        .unwrap();
    create_profile(&app, "de.flotte.portal").await;
    let mut last = String::new();
    for round in 1..=100 {
        if round > 1 {
            // A new version each time, so each push replaces the one before.
            let r = app
                .api(reqwest::Method::PUT, "/api/v1/profiles/de.flotte.portal")
                .json(&school_template(
                    "de.flotte.portal",
                    &format!("Portal {round}"),
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
        let (status, push) = app
            .post_json(
                "/api/v1/pushes",
                &json!({ "profile": "de.flotte.portal", "scope": { "kind": "all" } }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{push}");
        last = push["id"].as_str().unwrap().to_owned();
        wait_queued(&app, &last, 300).await;
    }
    // Every earlier push ends superseded; the last one waits for its devices.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (_, pushes) = app.get_json("/api/v1/pushes").await;
        let open: Vec<&Value> = pushes
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["id"] != last.as_str() && p["status"] != "completed")
            .collect();
        if open.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} earlier pushes still open, the first: {}",
            open.len(),
            open[0]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, pushes) = app.get_json("/api/v1/pushes").await;
    let earlier = pushes
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] != last.as_str())
        .unwrap()
        .clone();
    assert_eq!(earlier["counts"]["superseded"], fleet, "{earlier}");

    app.store
        .enqueue_job(
            &flotte_core::jobs::PruneTables {
                requested_by: "hygiene".into(),
            },
            chrono::Utc::now() + chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let rows = loop {
        let rows = app.store.queue_table_rows().await.unwrap();
        if rows["commands"] <= fleet as i64 && rows["pushes"] <= 1 {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pruning did not bound the queue tables: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        rows["commands"], fleet as i64,
        "one pending command per device: {rows:?}"
    );
    assert_eq!(rows["push_targets"], fleet as i64, "{rows:?}");
    assert_eq!(rows["device_profile_state"], fleet as i64, "{rows:?}");
    // Jobs: the ones still to run (the next progress tick, the next prune) and the ones
    // finished since the prune started.
    assert!(rows["jobs"] < fleet as i64, "{rows:?}");
    let sent = commands_per_device(&app.store, &last).await.unwrap();
    assert_eq!(sent.len(), fleet);
}
