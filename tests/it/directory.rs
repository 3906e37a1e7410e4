//! The directory in the running service: syncs from a real slapd through the
//! API and the worker, what staff may see, sign-in (API and browser), token
//! revocation, the safety rules, and the local directory without LDAP.

use flotte_config::Settings;
use flotte_tests::slapd::{
    BASE_DN, ContentSync, Fixtures, SERVICE_DN, SERVICE_PASSWORD, Slapd, TECHNICIAN_GROUP_DN,
};
use flotte_tests::{TestApp, TestEnv, eventually};
use reqwest::{Method, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

fn edge_slapd() -> Slapd {
    Slapd::builder()
        .ldif(&Fixtures::edge_cases().ldif)
        .content_sync(ContentSync::PresentPhase)
        .start()
}

/// Test settings pointing at `url`, without a sync schedule (runs are
/// started by the tests).
fn ldap_settings(env: &TestEnv, url: &str) -> Settings {
    let mut s = env.settings();
    s.ldap.url = Some(url.to_owned());
    s.ldap.bind_dn = Some(SERVICE_DN.to_owned());
    s.ldap.bind_password = Some(SERVICE_PASSWORD.to_owned());
    s.ldap.base_dn = Some(BASE_DN.to_owned());
    s.ldap.technician_group = Some(TECHNICIAN_GROUP_DN.to_owned());
    s.ldap.timeout_secs = 5;
    s.directory.sync_every_secs = 0;
    s
}

async fn ldap_app(slapd: &Slapd) -> (TestEnv, TestApp) {
    let env = TestEnv::new().await;
    let app = TestApp::spawn_in(&env, ldap_settings(&env, &slapd.url())).await;
    (env, app)
}

/// Start a sync through the API and wait for the worker to finish it.
async fn sync(app: &TestApp, full: bool) -> Value {
    let (status, body) = app
        .post_json(&format!("/api/v1/directory/sync?full={full}"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued");
    let id = body["id"].as_str().expect("run id").to_owned();
    wait_for_run(app, &id).await
}

async fn wait_for_run(app: &TestApp, id: &str) -> Value {
    let path = format!("/api/v1/directory/runs/{id}");
    eventually(30, "the directory run finishes", &mut || async {
        app.get_json(&path).await.1["finished_at"].is_string()
    })
    .await;
    let (status, run) = app.get_json(&path).await;
    assert_eq!(status, StatusCode::OK);
    run
}

async fn login(app: &TestApp, username: &str, password: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A bearer token for `username` (password `pw-<username>` in the fixture).
async fn token_of(app: &TestApp, username: &str) -> String {
    let (status, body) = login(app, username, &format!("pw-{username}")).await;
    assert_eq!(status, StatusCode::OK, "{username}: {body}");
    body["token"].as_str().expect("token").to_owned()
}

async fn get_as(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn usernames(people: &Value) -> Vec<String> {
    let mut names: Vec<String> = people
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["username"].as_str().expect("username").to_owned())
        .collect();
    names.sort();
    names
}

async fn person(app: &TestApp, key: &str) -> Value {
    let (status, body) = app.get_json(&format!("/api/v1/people/{key}")).await;
    assert_eq!(status, StatusCode::OK, "{key}: {body}");
    body
}

/// An open loan of a new device at `school` to `person_id`, written straight
/// into the table (the loans API is issue 5's).
async fn lend(app: &TestApp, serial: &str, school: &str, person_id: &str) -> String {
    use sea_orm::sea_query::{Alias, Query};
    let (status, device) = app
        .post_json(
            "/api/v1/devices",
            &json!({ "platform": "apple", "serial_number": serial, "school_id": school }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    let id = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now();
    let insert = Query::insert()
        .into_table(Alias::new("loans"))
        .columns(
            [
                "id",
                "device_id",
                "person_id",
                "school_id",
                "lent_by",
                "lent_at",
                "accessories",
                "created_at",
                "updated_at",
            ]
            .map(Alias::new),
        )
        .values_panic([
            id.clone().into(),
            device["id"].as_str().expect("device id").into(),
            person_id.into(),
            school.into(),
            "test".into(),
            now.into(),
            "[]".into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    let db = app.store.connection();
    db.execute(&insert).await.expect("loan inserted");
    id
}

async fn open_loans_of(app: &TestApp, person_id: &str) -> i64 {
    let db = app.store.connection();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT COUNT(*) AS n FROM loans WHERE returned_at IS NULL AND person_id = '{person_id}'"
            ),
        ))
        .await
        .expect("query")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("count")
}

fn school_id(schools: &Value, code: &str) -> String {
    schools
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["code"] == code)
        .and_then(|s| s["id"].as_str())
        .unwrap_or_else(|| panic!("no school {code} in {schools}"))
        .to_owned()
}

#[tokio::test]
async fn the_worker_syncs_on_its_schedule_and_the_api_shows_schools_people_and_classes() {
    let slapd = edge_slapd();
    let env = TestEnv::new().await;
    let mut settings = ldap_settings(&env, &slapd.url());
    settings.directory.sync_every_secs = 3600;
    let app = TestApp::spawn_in(&env, settings).await;

    eventually(30, "the scheduled sync is applied", &mut || async {
        app.get_json("/api/v1/directory/runs/latest").await.1["status"] == "applied"
    })
    .await;
    let (_, latest) = app.get_json("/api/v1/directory/runs/latest").await;
    assert_eq!(latest["trigger"], "schedule");
    assert_eq!(latest["kind"], "full", "the first sync reads everything");
    let report = &latest["report"];
    assert_eq!(report["added"], 17, "{report}");
    assert_eq!(report["errors"], 0);
    assert!(report["duration_ms"].is_u64());

    let (_, schools) = app.get_json("/api/v1/schools").await;
    let codes: Vec<&str> = schools
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["gs2", "gym1", "rs3"]);

    let anna = person(&app, "anna.mueller").await;
    assert_eq!(anna["family_name"], "Müller");
    assert_eq!(anna["mail"], "anna.mueller@gym1.schule.example");
    assert_eq!(anna["schools"][0]["school_code"], "gym1");
    assert_eq!(anna["schools"][0]["role"], "pupil");
    let classes: Vec<&str> = anna["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["5a", "musik"]);
    let by_id = person(&app, anna["id"].as_str().unwrap()).await;
    assert_eq!(by_id["username"], "anna.mueller");
    // Minimal data: nothing the directory has beyond what Flotte needs.
    for field in ["birthday", "password", "userPassword", "street", "address"] {
        assert!(anna.get(field).is_none(), "{field} in {anna}");
    }

    let (_, teachers) = app
        .get_json("/api/v1/people?school=gym1&role=teacher")
        .await;
    assert_eq!(usernames(&teachers), ["lena.lehrer", "max.multi"]);
    let (_, class_5a) = app.get_json("/api/v1/people?school=gym1&class=5a").await;
    assert_eq!(
        usernames(&class_5a),
        [
            "anna.mueller",
            "ben.schulz",
            "hanna.mover",
            "jonas.leaver",
            "lena.lehrer"
        ]
    );
    let (_, disabled) = app.get_json("/api/v1/people?state=disabled").await;
    assert_eq!(
        usernames(&disabled),
        [
            "ben.schulz",
            "carla.weber",
            "deniz.yilmaz",
            "emil.expired",
            "jonas.leaver"
        ]
    );
    let (_, found) = app.get_json("/api/v1/people?q=M%C3%BCller").await;
    assert_eq!(usernames(&found), ["anna.mueller"]);
    let (_, found) = app.get_json("/api/v1/people?q=lena%20leh").await;
    assert_eq!(usernames(&found), ["lena.lehrer"]);

    let (status, classes) = app.get_json("/api/v1/classes?school=gym1").await;
    assert_eq!(status, StatusCode::OK);
    let summary: Vec<(String, String, u64)> = classes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
                c["members"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("5a".to_owned(), "class".to_owned(), 5),
            ("5b".to_owned(), "class".to_owned(), 3),
            ("musik".to_owned(), "workgroup".to_owned(), 2),
        ]
    );

    // On demand, nothing new: an incremental sync changes nobody.
    let run = sync(&app, false).await;
    assert_eq!(run["status"], "applied", "{run}");
    assert_eq!(run["kind"], "incremental");
    assert_eq!(run["report"]["added"], 0);
    assert_eq!(run["report"]["changed"], 0);
}

#[tokio::test]
async fn moves_renames_and_departures_keep_identity_loans_and_people() {
    let fixture = Fixtures::edge_cases();
    let slapd = Slapd::builder()
        .ldif(&fixture.ldif)
        .content_sync(ContentSync::PresentPhase)
        .start();
    let (_env, app) = ldap_app(&slapd).await;
    assert_eq!(sync(&app, true).await["status"], "applied");
    let (_, schools) = app.get_json("/api/v1/schools").await;
    let gym1 = school_id(&schools, "gym1");

    let hanna = person(&app, "hanna.mover").await;
    let jonas = person(&app, "jonas.leaver").await;
    let ida = person(&app, "ida.rename").await;
    let hanna_id = hanna["id"].as_str().unwrap().to_owned();
    let jonas_id = jonas["id"].as_str().unwrap().to_owned();
    lend(&app, "HANNA-IPAD-1", &gym1, &hanna_id).await;
    lend(&app, "JONAS-IPAD-1", &gym1, &jonas_id).await;

    slapd.modify(&fixture.changes);
    let run = sync(&app, false).await;
    assert_eq!(run["status"], "applied", "{run}");
    assert_eq!(run["report"]["method"], "content_sync");
    let report = &run["report"];
    assert_eq!(
        (
            &report["added"],
            &report["changed"],
            &report["disabled"],
            &report["reenabled"],
            &report["departed"]
        ),
        (&json!(0), &json!(4), &json!(1), &json!(1), &json!(1)),
        "{report}"
    );
    assert_eq!(report["loan_alerts"][0]["username"], "jonas.leaver");
    assert_eq!(report["loan_alerts"][0]["reason"], "departed");

    let moved = person(&app, "hanna.mover").await;
    assert_eq!(moved["id"], hanna_id, "same person after the move");
    assert_eq!(moved["schools"][0]["school_code"], "gs2");
    assert_eq!(moved["classes"][0]["name"], "4a");
    assert_eq!(
        open_loans_of(&app, &hanna_id).await,
        1,
        "the loan moved with her"
    );

    let gone = person(&app, &jonas_id).await;
    assert_eq!(gone["state"], "departed", "kept, not deleted");
    assert_eq!(gone["loan_alert"], "departed", "flagged: holds a loan");
    assert_eq!(open_loans_of(&app, &jonas_id).await, 1);
    let (_, departed) = app.get_json("/api/v1/people?state=departed").await;
    assert_eq!(usernames(&departed), ["jonas.leaver"]);

    let renamed = person(&app, "ida.neumann").await;
    assert_eq!(renamed["id"], ida["id"]);
    assert_eq!(renamed["family_name"], "Neumann");
    let (status, _) = app.get_json("/api/v1/people/ida.rename").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, six_b) = app.get_json("/api/v1/people?class=6b").await;
    assert_eq!(
        usernames(&six_b),
        ["carla.weber", "deniz.yilmaz", "ida.neumann"]
    );
}

#[tokio::test]
async fn staff_see_their_own_schools_only_and_other_schools_are_not_found() {
    let slapd = edge_slapd();
    let (_env, app) = ldap_app(&slapd).await;
    assert_eq!(sync(&app, true).await["status"], "applied");
    let (_, schools) = app.get_json("/api/v1/schools").await;
    let gs2 = school_id(&schools, "gs2");
    let gym1 = school_id(&schools, "gym1");
    for (serial, school) in [("GYM1-DEVICE", &gym1), ("GS2-DEVICE", &gs2)] {
        let (status, body) = app
            .post_json(
                "/api/v1/devices",
                &json!({ "platform": "apple", "serial_number": serial, "school_id": school }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let (status, body) = login(&app, "mia.mitarbeiter", "pw-mia.mitarbeiter").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "staff");
    assert_eq!(body["school_ids"], json!([gym1]));
    let mia = body["token"].as_str().unwrap().to_owned();

    let (_, visible) = get_as(&app, &mia, "/api/v1/people").await;
    let names = usernames(&visible);
    assert!(names.contains(&"anna.mueller".to_owned()));
    assert!(!names.contains(&"paul.grund".to_owned()), "{names:?}");
    assert!(!names.contains(&"rita.real".to_owned()));
    let (status, _) = get_as(&app, &mia, "/api/v1/people/paul.grund").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a pupil of another school");
    // Asking for gs2 gives only who is also at gym1.
    let (status, gs2_people) = get_as(&app, &mia, "/api/v1/people?school=gs2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usernames(&gs2_people), ["lena.lehrer"]);
    // Lena teaches at gym1 and gs2; Mia sees only her gym1 side.
    let (_, lena) = get_as(&app, &mia, "/api/v1/people/lena.lehrer").await;
    assert_eq!(lena["schools"].as_array().unwrap().len(), 1);

    let (status, _) = get_as(&app, &mia, "/api/v1/devices/GS2-DEVICE").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a device of another school");
    let (status, _) = get_as(&app, &mia, "/api/v1/devices/GYM1-DEVICE").await;
    assert_eq!(status, StatusCode::OK);
    let (_, devices) = get_as(&app, &mia, "/api/v1/devices").await;
    assert_eq!(devices.as_array().unwrap().len(), 1);
    let (_, my_schools) = get_as(&app, &mia, "/api/v1/schools").await;
    assert_eq!(my_schools.as_array().unwrap().len(), 1);
    let (_, classes) = get_as(&app, &mia, "/api/v1/classes").await;
    assert!(
        classes
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["school_code"] == "gym1")
    );

    // Technician-only endpoints refuse staff.
    let create = app
        .client
        .post(app.url("/api/v1/schools"))
        .bearer_auth(&mia)
        .json(&json!({ "code": "x1", "name": "X" }))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), StatusCode::FORBIDDEN);
    let (status, _) = get_as(&app, &mia, "/api/v1/directory/runs/latest").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Lena is in the technician group: she acts for every school.
    let (status, body) = login(&app, "lena.lehrer", "pw-lena.lehrer").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["role"], "technician");
    let (status, _) = get_as(
        &app,
        body["token"].as_str().unwrap(),
        "/api/v1/devices/GS2-DEVICE",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_one_answer_and_are_throttled() {
    let slapd = edge_slapd();
    let env = TestEnv::new().await;
    let mut settings = ldap_settings(&env, &slapd.url());
    settings.auth.max_failures_per_user = 3;
    let app = TestApp::spawn_in(&env, settings).await;
    assert_eq!(sync(&app, true).await["status"], "applied");

    let (wrong, wrong_body) = login(&app, "mia.mitarbeiter", "not-her-password").await;
    let (unknown, unknown_body) = login(&app, "nobody.here", "pw-nobody.here").await;
    assert_eq!(
        (wrong, unknown),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(wrong_body, unknown_body, "the same answer either way");
    assert_eq!(wrong_body["message"], "invalid username or password");

    let (status, body) = login(&app, "anna.mueller", "pw-anna.mueller").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "pupils have no staff sign-in: {body}"
    );

    for _ in 0..2 {
        let (status, _) = login(&app, "mia.mitarbeiter", "still-wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = login(&app, "mia.mitarbeiter", "pw-mia.mitarbeiter").await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "throttled even with the right password: {body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("try again"),
        "{body}"
    );
    let (status, _) = login(&app, "max.multi", "pw-max.multi").await;
    assert_eq!(status, StatusCode::OK, "other users are not affected");

    let (_, audit) = app.get_json("/api/v1/audit?limit=100").await;
    let entries = audit.as_array().unwrap();
    let failed = entries
        .iter()
        .filter(|e| e["action"] == "auth.login.failed")
        .count();
    assert_eq!(failed, 4, "every failure is audited");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "auth.login" && e["target"] == "user:max.multi")
    );
    let text = audit.to_string();
    for secret in ["not-her-password", "still-wrong", "pw-max.multi"] {
        assert!(
            !text.contains(secret),
            "a password leaked into the audit log"
        );
    }
}

#[tokio::test]
async fn revoked_tokens_and_ended_sessions_are_refused() {
    let slapd = edge_slapd();
    let (_env, app) = ldap_app(&slapd).await;
    assert_eq!(sync(&app, true).await["status"], "applied");

    // A technician from the directory group, signing in with LDAP.
    let tech = token_of(&app, "tech.nik").await;
    let (status, created) = {
        let r = app
            .client
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&tech)
            .json(&json!({ "name": "inventory-script", "expires_in_days": 30 }))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let script = created["token"].as_str().unwrap().to_owned();
    let (status, _) = get_as(&app, &script, "/api/v1/devices").await;
    assert_eq!(status, StatusCode::OK);

    let revoke = app
        .api(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", created["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    let (status, body) = get_as(&app, &script, "/api/v1/devices").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "this token has been revoked");

    // Staff cannot revoke or create tokens; their own logout ends their token.
    let mia = token_of(&app, "mia.mitarbeiter").await;
    let r = app
        .client
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&mia)
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&mia)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, _) = get_as(&app, &mia, "/api/v1/people").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _) = get_as(&app, &tech, "/api/v1/tokens").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the technician's own token still works"
    );
}

/// Settings whose directory fails in `how`; the rest as `good`.
async fn failing_run(env: &TestEnv, settings: Settings) -> Value {
    let app = TestApp::spawn_in(env, settings).await;
    let run = sync(&app, true).await;
    let (_, people) = app.get_json("/api/v1/people?state=active").await;
    app.stop().await;
    json!({ "run": run, "active": usernames(&people).len() })
}

#[tokio::test]
async fn a_directory_that_fails_or_misbehaves_changes_nothing_and_says_why() {
    let slapd = edge_slapd();
    let env = TestEnv::new().await;
    let good = ldap_settings(&env, &slapd.url());
    let app = TestApp::spawn_in(&env, good.clone()).await;
    assert_eq!(sync(&app, true).await["status"], "applied");
    let (_, before) = app.get_json("/api/v1/people?state=active").await;
    let active = usernames(&before).len();
    assert_eq!(active, 12);
    app.stop().await;

    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut unreachable = good.clone();
    unreachable.ldap.url = Some(format!("ldap://127.0.0.1:{closed_port}"));
    let mut wrong_password = good.clone();
    wrong_password.ldap.bind_password = Some("wrong".into());
    let stalled = crate::directory_ldap::silent_server(true).await;
    let mut stalls = good.clone();
    stalls.ldap.url = Some(format!("ldap://127.0.0.1:{stalled}"));
    stalls.ldap.timeout_secs = 1;

    for (settings, reason) in [
        (unreachable, "could not connect"),
        (wrong_password, "refused the service account"),
        (stalls, "did not answer the school search"),
    ] {
        let outcome = failing_run(&env, settings).await;
        let run = &outcome["run"];
        assert_eq!(run["status"], "failed", "{run}");
        assert!(
            run["error"].as_str().unwrap().contains(reason),
            "{reason}: {run}"
        );
        assert_eq!(outcome["active"], active, "nobody departed");
    }

    // A referral loop in the tree ends the read instead of being followed.
    let looping = Slapd::builder()
        .ldif(&Fixtures::edge_cases().ldif)
        .ldif(&format!(
            "dn: ou=bezirk-ost,{BASE_DN}\nobjectClass: referral\nobjectClass: extensibleObject\n\
             ou: bezirk-ost\nref: {}/ou=bezirk-ost,{BASE_DN}\n",
            slapd.url()
        ))
        .start();
    let outcome = failing_run(&env, ldap_settings(&env, &looping.url())).await;
    assert_eq!(outcome["run"]["status"], "failed");
    assert!(
        outcome["run"]["error"]
            .as_str()
            .unwrap()
            .contains("referral"),
        "{outcome}"
    );
    assert_eq!(outcome["active"], active);

    // An entry with an unexpected value is held back, not departed.
    slapd.modify(&format!(
        "dn: uid=paul.grund,cn=schueler,cn=users,ou=gs2,{BASE_DN}\nchangetype: modify\nadd: uid\nuid: paul.grund2\n-\n"
    ));
    let app = TestApp::spawn_in(&env, good).await;
    let run = sync(&app, true).await;
    assert_eq!(run["status"], "applied", "{run}");
    assert_eq!(run["report"]["errors"], 1);
    assert_eq!(run["report"]["held_back"], 1);
    assert_eq!(run["report"]["departed"], 0);
    assert_eq!(person(&app, "paul.grund").await["state"], "active");
}

const RITA: &str = "rs3,student,Rita,Real,,,,\n";

const CITY_HEADER: &str = "Schulen,Benutzertyp,Vorname,Nachname,Klassen,Beschreibung,Telefon,EMail";

/// A UCS@school CSV with `pupils` pupils at gym1 and gs2 and one teacher.
fn city_csv(pupils: usize) -> String {
    let mut csv = format!(
        "{CITY_HEADER}\n\"gym1,gs2\",teacher,Lena,Lehrer,\"gym1-5a,gs2-4a\",,,lena@schule.example\n"
    );
    for n in 0..pupils {
        let school = if n % 2 == 0 { "gym1" } else { "gs2" };
        csv.push_str(&format!(
            "{school},student,Kind{n},Muster,{school}-5a,,0451 {n},\n"
        ));
    }
    csv
}

async fn import(app: &TestApp, csv: &str) -> (StatusCode, Value) {
    let response = app
        .api(Method::POST, "/api/v1/directory/import")
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn without_ldap_a_csv_import_fills_the_local_directory_and_local_accounts_sign_in() {
    let app = TestApp::spawn().await;
    let (status, run) = import(&app, &city_csv(20)).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["kind"], "import");
    assert_eq!(run["report"]["added"], 21);
    assert_eq!(run["report"]["method"], "csv");
    let (_, again) = import(&app, &city_csv(20)).await;
    assert_eq!(
        again["report"]["unchanged"], 21,
        "importing the same file changes nothing"
    );

    let (_, people) = app.get_json("/api/v1/people?school=gs2&role=student").await;
    assert_eq!(usernames(&people).len(), 10);
    let lena = person(&app, "lena.lehrer").await;
    assert_eq!(lena["schools"].as_array().unwrap().len(), 2);
    let (_, everyone) = app.get_json("/api/v1/people").await;
    assert!(
        !everyone.to_string().contains("0451"),
        "phone numbers are never stored"
    );

    // No password works before an account is set.
    let (status, _) = login(&app, "lena.lehrer", "irgendwas-geheimes").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let hash = flotte_server::local_auth::hash_password("Lehrerzimmer-2026").unwrap();
    let actor = flotte_core::audit::AuditEntry::new("test", "account.set_password", "");
    app.store
        .set_local_account("lena.lehrer", &hash, false, &actor, chrono::Utc::now())
        .await
        .unwrap();
    let (status, body) = login(&app, "Lena.Lehrer", "Lehrerzimmer-2026").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "staff");
    assert_eq!(body["school_ids"].as_array().unwrap().len(), 2);
    let (status, body) = login(&app, "lena.lehrer", "lehrerzimmer-2026").await;
    assert_eq!(
        (status, &body["message"]),
        (
            StatusCode::UNAUTHORIZED,
            &json!("invalid username or password")
        )
    );

    let stored = app
        .store
        .find_local_account("lena.lehrer")
        .await
        .unwrap()
        .unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"));

    // The LDAP sync endpoint says what to do instead.
    let (status, body) = app.post_json("/api/v1/directory/sync", &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["message"].as_str().unwrap().contains("import"),
        "{body}"
    );
}

#[tokio::test]
async fn a_read_missing_forty_percent_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (status, _) = import(&app, &(city_csv(48) + RITA)).await;
    assert_eq!(status, StatusCode::CREATED);
    // 20 of 50 people missing: 40 %, above the 10 % threshold.
    let (status, run) = import(&app, &(city_csv(28) + RITA)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{run}");
    assert_eq!(run["status"], "aborted");
    assert!(
        run["error"].as_str().unwrap().contains("40 % missing"),
        "{run}"
    );
    let (_, active) = app.get_json("/api/v1/people?state=active").await;
    assert_eq!(active.as_array().unwrap().len(), 50, "nobody departed");
    let (_, latest) = app.get_json("/api/v1/directory/runs/latest").await;
    assert_eq!(latest["id"], run["id"]);

    // A school that comes back empty stops it as well (1 of 50 missing).
    let (status, run) = import(&app, &city_csv(48)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        run["error"].as_str().unwrap().contains("came back empty"),
        "{run}"
    );

    let (status, body) = import(&app, "Vorname,Nachname\nA,B\n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("Schule"),
        "{body}"
    );
}

/// `application/x-www-form-urlencoded`, as a browser sends a form.
fn form(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                other => format!("%{other:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(set_cookies: &[String], name: &str) -> String {
    set_cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookies:?}"))
        .to_owned()
}

fn hidden_csrf(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("a csrf_token field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_browser_signs_in_with_a_form_and_forms_without_the_csrf_token_change_nothing() {
    let slapd = edge_slapd();
    let (_env, app) = ldap_app(&slapd).await;
    assert_eq!(sync(&app, true).await["status"], "applied");
    let no_redirects = flotte_tests::app::https_client_without_redirects(
        &std::fs::read(app.data_path("ca.pem")).unwrap(),
    );

    let page = no_redirects.get(app.url("/login")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let login_cookie = cookie_value(&set_cookies(&page), "flotte_login_csrf");
    let html = page.text().await.unwrap();
    for text in [
        "Anmelden",
        "Benutzername",
        "Passwort",
        "<form method=\"post\" action=\"/login\"",
    ] {
        assert!(html.contains(text), "{text} in {html}");
    }
    let token = hidden_csrf(&html);
    let credentials = [
        ("username", "mia.mitarbeiter"),
        ("password", "pw-mia.mitarbeiter"),
    ];

    // Without the login cookie (a cross-site post), the form is refused.
    let forged = no_redirects
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            credentials[0],
            credentials[1],
            ("csrf_token", &token),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let wrong = no_redirects
        .post(app.url("/login"))
        .header("cookie", format!("flotte_login_csrf={login_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            credentials[0],
            ("password", "falsch"),
            ("csrf_token", &token),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Benutzername oder Passwort ist falsch")
    );

    let signed_in = no_redirects
        .post(app.url("/login"))
        .header("cookie", format!("flotte_login_csrf={login_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            credentials[0],
            credentials[1],
            ("csrf_token", &token),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in.headers()["location"], "/");
    let cookies = set_cookies(&signed_in);
    let session_header = cookies
        .iter()
        .find(|c| c.starts_with("flotte_session="))
        .expect("a session cookie");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            session_header.contains(attribute),
            "{attribute} in {session_header}"
        );
    }
    let session = format!(
        "flotte_session={}",
        cookie_value(&cookies, "flotte_session")
    );

    let start = no_redirects
        .get(app.url("/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::OK);
    let page = start.text().await.unwrap();
    assert!(page.contains("mia.mitarbeiter"), "{page}");
    let csrf = hidden_csrf(&page);

    // The API accepts the session for reads, with its scope.
    let people = no_redirects
        .get(app.url("/api/v1/people/paul.grund"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        people.status(),
        StatusCode::NOT_FOUND,
        "scoped like a token"
    );
    // A state-changing API call with only the cookie is refused.
    let post = no_redirects
        .post(app.url("/api/v1/auth/logout"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::FORBIDDEN);

    for forged in [vec![("csrf_token", "forged-token")], vec![]] {
        let refused = no_redirects
            .post(app.url("/logout"))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&forged))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let still = no_redirects
            .get(app.url("/"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(still.status(), StatusCode::OK, "the session was not ended");
    }

    let out = no_redirects
        .post(app.url("/logout"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf_token", csrf.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(out.headers()["location"], "/login");
    let after = no_redirects
        .get(app.url("/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(after.headers()["location"], "/login");

    // An expired session sends the browser to the form and the API says so.
    let now = chrono::Utc::now();
    app.store
        .create_session(
            "expired-session-secret",
            &flotte_storage::NewSession {
                csrf_token: "t".into(),
                role: "technician".into(),
                name: "tech.nik".into(),
                person_id: None,
                expires_at: now - chrono::Duration::minutes(1),
            },
            now - chrono::Duration::hours(10),
        )
        .await
        .unwrap();
    let expired = "flotte_session=expired-session-secret";
    let page = no_redirects
        .get(app.url("/"))
        .header("cookie", expired)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert!(
        set_cookies(&page)
            .iter()
            .any(|c| c.starts_with("flotte_session=;")),
        "cookie cleared"
    );
    let api = no_redirects
        .get(app.url("/api/v1/devices"))
        .header("cookie", expired)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["message"], "your session has expired");
}

#[tokio::test]
async fn the_openapi_document_lists_the_directory_and_sign_in_endpoints() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.get_json("/api/v1/openapi.json").await;
    for path in [
        "/api/v1/directory/sync",
        "/api/v1/directory/runs/{id}",
        "/api/v1/directory/runs/latest",
        "/api/v1/directory/import",
        "/api/v1/people",
        "/api/v1/people/{id}",
        "/api/v1/classes",
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
}
