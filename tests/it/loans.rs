//! Loans and the device register through the API and the worker: lending and taking
//! back (with the device's name, erase and certificate revocation), every refusal, the
//! race for one device, the delivery list, and the daily check with its mail.

use flotte_tests::{TestApp, TestEnv, eventually};
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Statement, Value as DbValue};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The local directory: two schools, three teachers, a school administrator, pupils.
pub(crate) const DIRECTORY: &str = "Schulen,Benutzertyp,Vorname,Nachname,Klassen,EMail\n\
gym1,teacher,Lena,Lehrer,gym1-7b,lena@gym1.example\n\
gym1,teacher,Tom,Tafel,gym1-7b,\n\
gym1,school_admin,Sabine,Sekretariat,,sekretariat@gym1.example\n\
gs2,teacher,Gerd,Grund,gs2-4a,\n\
gym1,student,Anna,Muster,gym1-7b,\n\
gym1,student,Ben,Beispiel,gym1-7b,\n\
gym1,student,Carla,Christ,gym1-7b,\n\
gym1,student,Dora,Dach,gym1-8a,\n\
gym1,student,Emil,Ecke,gym1-8a,\n\
gym1,student,Fritz,Feld,gym1-8a,\n\
gym1,student,Gina,Gans,gym1-8a,\n\
gym1,student,Hugo,Hut,gym1-8a,\n\
gym1,student,Ida,Igel,gym1-8a,\n\
gym1,student,Jan,Jung,gym1-8a,\n\
gym1,student,Kim,Kalt,gym1-8a,\n\
gym1,student,Lou,Lang,gym1-8a,\n\
gs2,student,Greta,Garten,gs2-4a,\n\
gs2,student,Hans,Hof,gs2-4a,\n\
gs2,student,Ina,Insel,gs2-4a,\n";

/// The supplier's delivery list for the fixture.
pub(crate) const DELIVERY: &str = "Seriennummer;Modell;Plattform;Inventarnummer;Schule;Förderprogramm;Kaufdatum;Garantie bis\n\
DMP000000001;iPad 10;iPadOS;GYM1-0001;gym1;DigitalPakt;2026-08-01;31.07.2029\n\
DMP000000002;iPad 10;iPadOS;GYM1-0002;gym1;DigitalPakt;2026-08-01;31.07.2029\n\
DMP000000003;iPad 10;iPadOS;GYM1-0003;gym1;DigitalPakt;2026-08-01;31.07.2029\n\
DMP000000004;iPad 10;iPadOS;GYM1-0004;gym1;DigitalPakt;2026-08-01;31.07.2029\n\
DMP000000005;iPad 10;iPadOS;GYM1-0005;gym1;DigitalPakt;2026-08-01;31.07.2029\n\
DMP000000006;iPad 10;iPadOS;GYM1-0006;gym1;DigitalPakt;2026-08-01;31.07.2029\n\
DMP000000007;iPad 10;iPadOS;GYM1-0007;gym1;DigitalPakt;2026-08-01;31.07.2029\n\
PF3LAP01;ThinkPad L13;Windows;GYM1-0100;gym1;Sofortausstattung;2026-08-15;\n\
DMP000000021;iPad 10;iPadOS;GS2-0001;gs2;DigitalPakt;2026-08-01;\n";

pub(crate) const PASSWORD: &str = "Lehrerzimmer-2026";

/// A running Flotte with the fixture's directory, staff accounts and devices.
pub(crate) struct Fixture {
    pub app: TestApp,
    /// Bearer tokens of lena.lehrer and tom.tafel (gym1) and gerd.grund (gs2).
    pub lena: String,
    pub tom: String,
    pub gerd: String,
}

async fn import_directory(app: &TestApp, csv: &str) -> Value {
    let response = app
        .api(Method::POST, "/api/v1/directory/import")
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("run")
}

pub(crate) async fn import_devices(app: &TestApp, csv: &str, dry_run: bool) -> (StatusCode, Value) {
    let response = app
        .api(
            Method::POST,
            &format!("/api/v1/devices/import?dry_run={dry_run}"),
        )
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn token(app: &TestApp, username: &str) -> String {
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK, "{username} signs in");
    let body: Value = response.json().await.expect("json");
    body["token"].as_str().expect("token").to_owned()
}

impl Fixture {
    pub(crate) async fn start() -> Fixture {
        let env = TestEnv::new().await;
        Self::start_with(&env, env.settings()).await
    }

    pub(crate) async fn start_with(env: &TestEnv, settings: flotte_config::Settings) -> Fixture {
        let app = TestApp::spawn_in(env, settings).await;
        import_directory(&app, DIRECTORY).await;
        let hash = flotte_server::local_auth::hash_password(PASSWORD).expect("hash");
        let actor = flotte_core::audit::AuditEntry::new("test", "account.set_password", "");
        for user in ["lena.lehrer", "tom.tafel", "gerd.grund"] {
            app.store
                .set_local_account(user, &hash, false, &actor, chrono::Utc::now())
                .await
                .expect("account");
        }
        let (status, body) = import_devices(&app, DELIVERY, false).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let lena = token(&app, "lena.lehrer").await;
        let tom = token(&app, "tom.tafel").await;
        let gerd = token(&app, "gerd.grund").await;
        Fixture {
            app,
            lena,
            tom,
            gerd,
        }
    }

    pub(crate) async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn lend(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(token, Method::POST, "/api/v1/loans", Some(body))
            .await
    }

    pub(crate) async fn sql(&self, sql: &str, values: Vec<DbValue>) -> u64 {
        let db = self.app.store.connection();
        let sql = if matches!(db.get_database_backend(), sea_orm::DbBackend::Postgres) {
            let mut n = 0;
            sql.chars()
                .map(|c| {
                    if c == '?' {
                        n += 1;
                        format!("${n}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        } else {
            sql.to_owned()
        };
        db.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await
        .expect("SQL")
        .rows_affected()
    }

    pub(crate) async fn count(&self, sql: &str) -> i64 {
        let db = self.app.store.connection();
        db.query_one_raw(Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .expect("query")
        .expect("row")
        .try_get::<i64>("", "n")
        .expect("count")
    }
}

pub(crate) fn in_days(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .date_naive()
        .to_string()
}

fn message(body: &Value) -> String {
    body["message"].as_str().unwrap_or_default().to_owned()
}

async fn commands_of(app: &TestApp, device: &str) -> Vec<Value> {
    let (status, body) = app
        .get_json(&format!("/api/v1/devices/{device}/commands"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn lending_and_returning_name_the_device_keep_history_revoke_and_erase() {
    let apns = flotte_tests::ApnsStandIn::start().await;
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    apns.configure(&mut settings);
    let f = Fixture::start_with(&env, settings).await;
    let app = &f.app;
    // The register entry from the delivery list is found by the enrolling iPad's serial.
    let (_, entry) = app.get_json("/api/v1/devices/DMP000000007").await;
    let mut ipad = app.enrolled_ipad("gym1", 7).await;
    let (_, enrolled) = app
        .get_json(&format!("/api/v1/devices/{}", ipad.udid))
        .await;
    assert_eq!(
        enrolled["id"], entry["id"],
        "the enrolment found its register entry"
    );
    assert_eq!(enrolled["asset_tag"], "GYM1-0007");
    let device = entry["id"].as_str().unwrap().to_owned();

    let (status, loan) = f
        .lend(
            &f.lena,
            json!({
                "device": "gym1-0007", "person": "anna.muster", "due_date": in_days(30),
                "accessories": ["ladegerät", "Hülle"], "condition": "good", "notes": "mit Kratzer links",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{loan}");
    assert_eq!(loan["status"], "open");
    assert_eq!(loan["class_name"], "7b");
    assert_eq!(loan["lent_by"], "lena.lehrer");
    assert_eq!(loan["school"]["code"], "gym1");
    assert_eq!(loan["accessories"], json!(["Ladegerät", "Hülle"]));
    let id = loan["id"].as_str().unwrap().to_owned();
    assert_eq!(
        f.count(&format!(
            "SELECT COUNT(*) AS n FROM devices d JOIN people p ON p.id = d.assigned_person_id \
             WHERE d.id = '{device}' AND p.username = 'anna.muster'"
        ))
        .await,
        1,
        "the device is assigned to the pupil"
    );

    // The worker names the iPad after the pupil; the iPad receives it when it checks in.
    eventually(20, "the device name is queued", &mut || async {
        f.call(&f.lena, Method::GET, &format!("/api/v1/loans/{id}"), None)
            .await
            .1["personalised_at"]
            .is_string()
    })
    .await;
    let commands = commands_of(app, &device).await;
    assert!(
        commands.iter().any(|c| c["request_type"] == "Settings"),
        "{commands:?}"
    );
    let received = ipad.session().await;
    let settings = received
        .iter()
        .find(|c| c.request_type == "Settings")
        .expect("the iPad got its name");
    let item = &settings.command["Settings"].as_array().unwrap()[0];
    let item = item.as_dictionary().unwrap();
    assert_eq!(item["Item"].as_string(), Some("DeviceName"));
    assert_eq!(item["DeviceName"].as_string(), Some("Anna M. 7b"));

    // A certificate issued for Anna on this iPad (by the profiles module).
    let now = chrono::Utc::now();
    f.sql(
        "INSERT INTO certificates (id, serial_hex, sha256, kind, subject, person_id, device_id, \
         not_before, not_after, created_at, is_current) \
         SELECT ?, ?, ?, 'eap_person', 'CN=anna.muster', p.id, ?, ?, ?, ?, ? FROM people p WHERE p.username = 'anna.muster'",
        vec![
            "cert-1".into(),
            "0A1B".into(),
            "ab".repeat(32).into(),
            device.clone().into(),
            now.into(),
            (now + chrono::Duration::days(365)).into(),
            now.into(),
            true.into(),
        ],
    )
    .await;

    // Taking it back: the erase is confirmed, the certificate revoked.
    let (status, returned) = f
        .call(
            &f.tom,
            Method::POST,
            &format!("/api/v1/loans/{id}/return"),
            Some(json!({
                "condition": "worn", "accessories_returned": ["Ladegerät"],
                "damage": "Hülle fehlt", "confirm_erase": true,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{returned}");
    assert_eq!(returned["status"], "returned");
    assert_eq!(returned["returned_to"], "tom.tafel");
    assert_eq!(returned["condition_in"], "worn");
    assert_eq!(returned["accessories_returned"], json!(["Ladegerät"]));
    assert!(returned["erase_command_id"].is_string(), "{returned}");
    assert_eq!(
        f.count(
            "SELECT COUNT(*) AS n FROM certificates WHERE id = 'cert-1' AND revoked_at IS NOT NULL"
        )
        .await,
        1,
        "the pupil's certificate for the device is revoked"
    );
    assert_eq!(
        f.count(&format!(
            "SELECT COUNT(*) AS n FROM devices WHERE id = '{device}' AND assigned_person_id IS NULL"
        ))
        .await,
        1
    );
    let received = ipad.session().await;
    assert!(
        received.iter().any(|c| c.request_type == "EraseDevice"),
        "{:?}",
        received.iter().map(|c| &c.request_type).collect::<Vec<_>>()
    );

    // Returning it again is refused and says when it came back.
    let (status, body) = f
        .call(
            &f.tom,
            Method::POST,
            &format!("/api/v1/loans/{id}/return"),
            Some(json!({ "condition": "good", "confirm_erase": true })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("already returned"), "{body}");

    // History per device and per pupil; a second loan of the same device is fine now.
    let (status, again) = f
        .lend(
            &f.lena,
            json!({ "device": "DMP000000007", "person": "ben.beispiel", "due_date": in_days(10) }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    let (_, history) = f
        .call(
            &f.lena,
            Method::GET,
            "/api/v1/loans?status=all&device=GYM1-0007",
            None,
        )
        .await;
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    let (_, annas) = f
        .call(
            &f.lena,
            Method::GET,
            "/api/v1/loans?status=all&person=anna.muster",
            None,
        )
        .await;
    assert_eq!(annas.as_array().unwrap().len(), 1);
    assert_eq!(annas[0]["damage"], "Hülle fehlt");
    let (_, open) = f
        .call(
            &f.lena,
            Method::GET,
            "/api/v1/loans?status=open&class=7b",
            None,
        )
        .await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(open[0]["person"]["username"], "ben.beispiel");
    // Staff of another school see none of it.
    let (status, _) = f
        .call(&f.gerd, Method::GET, &format!("/api/v1/loans/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A Windows laptop gets its computer name; returning it needs no erase decision
    // (laptops are not wiped by default).
    let (status, laptop) = f
        .lend(
            &f.lena,
            json!({ "device": "GYM1-0100", "person": "carla.christ", "due_date": in_days(10) }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{laptop}");
    let laptop_id = laptop["device"]["id"].as_str().unwrap().to_owned();
    eventually(20, "the computer name is queued", &mut || async {
        commands_of(app, &laptop_id)
            .await
            .iter()
            .any(|c| c["request_type"] == "Windows:Replace")
    })
    .await;
    let payload = f
        .count(&format!(
            "SELECT COUNT(*) AS n FROM commands WHERE device_id = '{laptop_id}' \
             AND payload LIKE '%DNSComputerName%' AND payload LIKE '%Carla-C-7b%'"
        ))
        .await;
    assert_eq!(payload, 1, "the DNSComputerName node gets the pupil's name");
    let (status, body) = f
        .call(
            &f.lena,
            Method::POST,
            &format!("/api/v1/loans/{}/return", laptop["id"].as_str().unwrap()),
            Some(json!({ "condition": "good" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["erase_command_id"], Value::Null);

    let (_, audit) = app.get_json("/api/v1/audit?limit=200").await;
    let actions: Vec<&str> = audit
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    for action in ["loan.lend", "loan.personalise", "loan.return"] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
}

#[tokio::test]
async fn every_broken_rule_is_refused_with_a_reason_and_changes_nothing() {
    let f = Fixture::start().await;
    let lend = |device: &str, person: &str, due: String| json!({ "device": device, "person": person, "due_date": due });
    let (status, first) = f
        .lend(&f.lena, lend("GYM1-0001", "anna.muster", in_days(30)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let first_id = first["id"].as_str().unwrap();

    // Already lent: 409, naming the open loan.
    let (status, body) = f
        .lend(&f.tom, lend("GYM1-0001", "ben.beispiel", in_days(30)))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains(first_id), "{body}");

    // A departed or disabled pupil.
    f.sql(
        "UPDATE people SET state = 'departed' WHERE username = 'carla.christ'",
        vec![],
    )
    .await;
    f.sql(
        "UPDATE people SET state = 'disabled' WHERE username = 'dora.dach'",
        vec![],
    )
    .await;
    let (status, body) = f
        .lend(&f.lena, lend("GYM1-0002", "carla.christ", in_days(30)))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("departed"), "{body}");
    let (status, body) = f
        .lend(&f.lena, lend("GYM1-0002", "dora.dach", in_days(30)))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("disabled"), "{body}");

    // A pupil of another school: staff cannot see them at all; a technician is told why.
    let (status, body) = f
        .lend(&f.lena, lend("GYM1-0002", "greta.garten", in_days(30)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(message(&body).contains("greta.garten"), "{body}");
    let (status, body) = f
        .app
        .post_json(
            "/api/v1/loans",
            &lend("GYM1-0002", "greta.garten", in_days(30)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        message(&body).contains("not a pupil of the school"),
        "{body}"
    );

    // Staff of another school: the device is not theirs to see.
    let (status, body) = f
        .lend(&f.gerd, lend("GYM1-0002", "greta.garten", in_days(30)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(message(&body).contains("GYM1-0002"), "{body}");

    // A due date in the past, an unknown accessory, an unknown condition.
    let (status, body) = f
        .lend(&f.lena, lend("GYM1-0002", "ben.beispiel", in_days(-1)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("in the past"), "{body}");
    let (status, body) = f
        .lend(
            &f.lena,
            json!({ "device": "GYM1-0002", "person": "ben.beispiel", "due_date": in_days(5), "accessories": ["Maus"] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("Maus"), "{body}");
    let (status, _) = f
        .lend(
            &f.lena,
            json!({ "device": "GYM1-0002", "person": "ben.beispiel", "due_date": in_days(5), "condition": "shiny" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Returning without saying whether to erase (iPads are erased on return by default).
    let (status, body) = f
        .call(
            &f.lena,
            Method::POST,
            &format!("/api/v1/loans/{first_id}/return"),
            Some(json!({ "condition": "good" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("confirm_erase"), "{body}");
    // Staff of another school cannot return it either.
    let (status, _) = f
        .call(
            &f.gerd,
            Method::POST,
            &format!("/api/v1/loans/{first_id}/return"),
            Some(json!({ "condition": "good", "confirm_erase": false })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Nothing of the above changed anything: one loan, still open, no erase queued.
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM loans").await, 1);
    assert_eq!(
        f.count("SELECT COUNT(*) AS n FROM loans WHERE returned_at IS NULL")
            .await,
        1
    );
    assert_eq!(
        f.count("SELECT COUNT(*) AS n FROM commands WHERE request_type = 'EraseDevice'")
            .await,
        0
    );

    // A bulk lending with one bad pair lends nothing, and names the pair.
    let (status, body) = f
        .call(
            &f.lena,
            Method::POST,
            "/api/v1/loans/bulk",
            Some(json!({
                "due_date": in_days(20),
                "pairs": [
                    { "device": "GYM1-0003", "person": "emil.ecke" },
                    { "device": "GYM1-0001", "person": "fritz.feld" },
                ],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("GYM1-0001 → fritz.feld"), "{body}");
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM loans").await, 1);
    let (status, loans) = f
        .call(
            &f.lena,
            Method::POST,
            "/api/v1/loans/bulk",
            Some(json!({
                "due_date": in_days(20), "accessories": ["Ladegerät"],
                "pairs": [
                    { "device": "GYM1-0003", "person": "emil.ecke" },
                    { "device": "GYM1-0004", "person": "fritz.feld" },
                ],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{loans}");
    assert_eq!(loans.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn two_staff_lending_one_device_at_the_same_moment_exactly_one_wins() {
    let f = Fixture::start().await;
    for (n, device) in ["GYM1-0001", "GYM1-0002", "GYM1-0003", "GYM1-0004"]
        .into_iter()
        .enumerate()
    {
        let a = json!({ "device": device, "person": "anna.muster", "due_date": in_days(7) });
        let b = json!({ "device": device, "person": "ben.beispiel", "due_date": in_days(7) });
        let ((sa, ba), (sb, bb)) = tokio::join!(f.lend(&f.lena, a), f.lend(&f.tom, b));
        let statuses = [sa, sb];
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::CREATED)
                .count(),
            1,
            "round {n}: {ba} / {bb}"
        );
        let (winner, loser) = if sa == StatusCode::CREATED {
            (ba, bb)
        } else {
            (bb, ba)
        };
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::CONFLICT)
                .count(),
            1
        );
        assert!(
            message(&loser).contains(winner["id"].as_str().unwrap()),
            "the loser is told which loan won: {loser}"
        );
    }
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM loans").await, 4);

    // The rule is the database's own: a second open loan written past the code fails.
    let db = f.app.store.connection();
    let now = chrono::Utc::now();
    let sql = if matches!(db.get_database_backend(), sea_orm::DbBackend::Postgres) {
        "INSERT INTO loans (id, device_id, person_id, school_id, lent_by, lent_at, accessories, created_at, updated_at) \
         SELECT $1, device_id, person_id, school_id, 'sql', $2, '[]', $2, $2 FROM loans LIMIT 1"
    } else {
        "INSERT INTO loans (id, device_id, person_id, school_id, lent_by, lent_at, accessories, created_at, updated_at) \
         SELECT ?, device_id, person_id, school_id, 'sql', ?, '[]', ?, ? FROM loans LIMIT 1"
    };
    let values: Vec<DbValue> = if sql.contains("$1") {
        vec!["sneaky".into(), now.into()]
    } else {
        vec!["sneaky".into(), now.into(), now.into(), now.into()]
    };
    let refused = db
        .execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await;
    assert!(refused.is_err(), "idx_loans_one_open_per_device refuses it");
}

#[tokio::test]
async fn a_delivery_list_is_checked_dry_run_imported_and_refused_whole_when_bad() {
    let app = TestApp::spawn().await;
    app.create_school("gym1", "Gymnasium am Dom").await;
    app.create_school("gs2", "Grundschule Hafen").await;

    let (status, check) = import_devices(&app, DELIVERY, true).await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["dry_run"], true);
    assert_eq!(check["created"], 9);
    assert_eq!(check["changes"][0]["action"], "create");
    let (_, devices) = app.get_json("/api/v1/devices").await;
    assert_eq!(
        devices.as_array().unwrap().len(),
        0,
        "a dry run changes nothing"
    );

    let (status, done) = import_devices(&app, DELIVERY, false).await;
    assert_eq!(status, StatusCode::CREATED, "{done}");
    assert_eq!(done["created"], 9);
    let (_, devices) = app.get_json("/api/v1/devices").await;
    assert_eq!(devices.as_array().unwrap().len(), 9);
    let (_, again) = import_devices(&app, DELIVERY, false).await;
    assert_eq!(
        (again["created"].clone(), again["unchanged"].clone()),
        (json!(0), json!(9))
    );

    // A corrected list: a tag swapped between two devices, a warranty date added.
    let corrected = "serial_number,model,platform,asset_tag,school,funding_programme,purchase_date,warranty_end\n\
        DMP000000001,iPad 10,apple,GYM1-0002,gym1,,,\n\
        DMP000000002,iPad 10,apple,GYM1-0001,gym1,,,\n\
        PF3LAP01,ThinkPad L13,windows,GYM1-0100,gym1,,,2029-08-14\n";
    let (status, check) = import_devices(&app, corrected, true).await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["updated"], 3);
    assert_eq!(check["changes"][2]["changed"], json!(["warranty_end"]));
    let (status, _) = import_devices(&app, corrected, false).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, one) = app.get_json("/api/v1/devices/DMP000000001").await;
    assert_eq!(one["asset_tag"], "GYM1-0002");

    // A bad list is refused whole, every bad row named.
    let bad = "serial_number,model,platform,asset_tag,school,funding_programme,purchase_date,warranty_end\n\
        NEW0001,iPad,apple,GYM1-0200,gym1,,2026-08-01,\n\
        NEW0001,iPad,apple,GYM1-0201,gym1,,,\n\
        NEW0003,iPad,apple,GYM1-0200,gym1,,,\n\
        NEW0004,iPad,apple,GYM1-0204,rs9,,,\n\
        NEW0005,iPad,apple,GYM1-0205,gym1,,31.02.2026,\n\
        NEW0006,iPad,apple,GYM1-0100,gym1,,,\n";
    let (status, refused) = import_devices(&app, bad, false).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let errors = refused["errors"].as_array().unwrap();
    let lines: Vec<i64> = errors.iter().map(|e| e["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, vec![3, 4, 6], "{refused}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("serial number NEW0001 also on line 2")
    );
    assert!(
        errors[1]["message"]
            .as_str()
            .unwrap()
            .contains("asset tag GYM1-0200 also on line 2")
    );
    assert!(
        errors[2]["message"]
            .as_str()
            .unwrap()
            .contains("31.02.2026")
    );
    // Once the rows read well, the register's own clashes are named as well.
    let clashing = "serial_number,platform,asset_tag,school\n\
        NEW0004,apple,GYM1-0204,rs9\n\
        NEW0006,apple,GYM1-0100,gym1\n";
    let (status, refused) = import_devices(&app, clashing, true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let text = refused.to_string();
    assert!(text.contains("unknown school \\\"rs9\\\""), "{text}");
    assert!(
        text.contains("asset tag GYM1-0100 belongs to another device"),
        "{text}"
    );
    let (_, devices) = app.get_json("/api/v1/devices").await;
    assert_eq!(devices.as_array().unwrap().len(), 9, "nothing was imported");
    let (status, _) = import_devices(&app, "", false).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_register_import_is_for_technicians_and_the_api_is_documented() {
    let f = Fixture::start().await;
    let response = f
        .app
        .client
        .post(f.app.url("/api/v1/devices/import"))
        .bearer_auth(&f.lena)
        .header("content-type", "text/csv")
        .body(DELIVERY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, doc) = f.app.get_json("/api/v1/openapi.json").await;
    for path in [
        "/api/v1/loans",
        "/api/v1/loans/bulk",
        "/api/v1/loans/{id}",
        "/api/v1/loans/{id}/return",
        "/api/v1/devices/import",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    let params = doc["paths"]["/api/v1/loans"]["get"]["parameters"].to_string();
    for filter in ["status", "school", "class", "person", "device"] {
        assert!(params.contains(filter), "{filter} documented");
    }
}

/// A mail as the SMTP stand-in received it, its body decoded.
#[derive(Debug, Clone)]
struct Mail {
    to: Vec<String>,
    text: String,
}

/// A minimal SMTP server that accepts every message and keeps it.
struct SmtpStandIn {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn decode_body(raw: &str) -> String {
    let (headers, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let lower = headers.to_ascii_lowercase();
    if lower.contains("content-transfer-encoding: base64") {
        use base64::Engine as _;
        let joined: String = body.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(joined)
            .unwrap_or_default();
        return format!("{headers}\r\n\r\n{}", String::from_utf8_lossy(&bytes));
    }
    if lower.contains("content-transfer-encoding: quoted-printable") {
        let soft = body.replace("=\r\n", "");
        let mut out = Vec::new();
        let bytes = soft.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(&soft[i + 1..i + 3], 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        return format!("{headers}\r\n\r\n{}", String::from_utf8_lossy(&out));
    }
    raw.to_owned()
}

impl SmtpStandIn {
    async fn start() -> SmtpStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read);
                    let _ = write.write_all(b"220 stand-in ESMTP\r\n").await;
                    let mut to = Vec::new();
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO")
                        {
                            b"250-stand-in\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                            b"250 OK\r\n"
                        } else if upper.starts_with("DATA") {
                            let _ = write.write_all(b"354 go ahead\r\n").await;
                            let mut raw = String::new();
                            loop {
                                let mut l = String::new();
                                if lines.read_line(&mut l).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if l == ".\r\n" {
                                    break;
                                }
                                raw.push_str(&l);
                            }
                            kept.lock().unwrap().push(Mail {
                                to: std::mem::take(&mut to),
                                text: decode_body(&raw),
                            });
                            b"250 queued\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 OK\r\n"
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        SmtpStandIn { port, mails, task }
    }

    fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn the_daily_check_mails_overdue_loans_flags_leavers_and_anonymises_old_returns() {
    let smtp = SmtpStandIn::start().await;
    let env = TestEnv::new().await;
    let mut settings = env.settings();
    settings.mail.host = Some("127.0.0.1".into());
    settings.mail.port = smtp.port;
    settings.mail.security = flotte_config::MailSecurity::None;
    settings.mail.from = "Flotte <flotte@schulen.example>".into();
    settings.mail.overdue_to = vec!["schulamt@stadt.example".into()];
    let f = Fixture::start_with(&env, settings).await;
    // The worker's own check at start-up must not run in the middle of the scene below.
    let jobs = if matches!(f.app.store.backend(), flotte_storage::Backend::Postgres) {
        "apalis.jobs"
    } else {
        "Jobs"
    };
    let startup = format!(
        "SELECT COUNT(*) AS n FROM {jobs} WHERE job_type = 'flotte.maintain_loans' \
         AND idempotency_key LIKE 'schedule:%' AND status = 'Done'"
    );
    eventually(30, "the start-up loan check is done", &mut || async {
        f.count(&startup).await == 1
    })
    .await;
    let lend = |device: &str, person: &str| json!({ "device": device, "person": person, "due_date": in_days(14) });
    let (_, late) = f.lend(&f.lena, lend("GYM1-0001", "anna.muster")).await;
    let (_, leaver) = f.lend(&f.lena, lend("GYM1-0002", "lou.lang")).await;
    let (_, old) = f.lend(&f.lena, lend("GYM1-0003", "ben.beispiel")).await;
    let (_, damaged) = f.lend(&f.lena, lend("GYM1-0004", "emil.ecke")).await;
    let late = late["id"].as_str().unwrap().to_owned();
    let leaver = leaver["id"].as_str().unwrap().to_owned();
    for (id, damage) in [
        (&old["id"], None),
        (&damaged["id"], Some("Display gesprungen")),
    ] {
        let (status, body) = f
            .call(
                &f.lena,
                Method::POST,
                &format!("/api/v1/loans/{}/return", id.as_str().unwrap()),
                Some(json!({ "condition": "good", "damage": damage, "confirm_erase": false })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Time passes: one loan is past its due day, two returns lie seven months back.
    let long_ago = chrono::Utc::now() - chrono::Duration::days(213);
    f.sql(
        "UPDATE loans SET due_at = ? WHERE id = ?",
        vec![
            (chrono::Utc::now() - chrono::Duration::days(3)).into(),
            late.clone().into(),
        ],
    )
    .await;
    f.sql(
        "UPDATE loans SET returned_at = ? WHERE returned_at IS NOT NULL",
        vec![long_ago.into()],
    )
    .await;
    // Lou leaves: the next directory file does not name her.
    import_directory(
        &f.app,
        &DIRECTORY.replace("gym1,student,Lou,Lang,gym1-8a,\n", ""),
    )
    .await;

    f.app
        .store
        .enqueue_job(
            &flotte_core::jobs::MaintainLoans {
                requested_by: "test:1".into(),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    eventually(30, "the school is told", &mut || async {
        !smtp.mails().is_empty()
    })
    .await;
    eventually(10, "the old return is anonymised", &mut || async {
        f.count("SELECT COUNT(*) AS n FROM loan_history").await == 1
    })
    .await;

    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "one mail for the one school");
    let mut to = mails[0].to.clone();
    to.sort();
    assert_eq!(
        to,
        vec!["schulamt@stadt.example", "sekretariat@gym1.example"]
    );
    let text = &mails[0].text;
    assert!(text.contains("Subject:"), "{text}");
    assert!(
        text.contains("Muster, Anna (7b): Gerät GYM1-0001"),
        "{text}"
    );
    assert!(text.contains("Lang, Lou (8a): Gerät GYM1-0002"), "{text}");
    assert!(text.contains("/loans?status=overdue&school=gym1"), "{text}");

    let (_, overdue) = f
        .call(&f.lena, Method::GET, "/api/v1/loans?status=overdue", None)
        .await;
    assert_eq!(overdue.as_array().unwrap().len(), 1, "{overdue}");
    assert_eq!(overdue[0]["id"], late.as_str());
    assert!(overdue[0]["overdue_notified_at"].is_string());
    let (_, flagged) = f
        .call(&f.lena, Method::GET, "/api/v1/loans?status=flagged", None)
        .await;
    assert_eq!(flagged.as_array().unwrap().len(), 1, "{flagged}");
    assert_eq!(flagged[0]["id"], leaver.as_str());
    assert_eq!(flagged[0]["alert"], "departed");

    // Retention: the clean return is anonymised, the damaged one kept for its claim.
    assert_eq!(
        f.count("SELECT COUNT(*) AS n FROM loans WHERE returned_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        f.count("SELECT COUNT(*) AS n FROM loans WHERE damage IS NOT NULL")
            .await,
        1
    );
    let (_, audit) = f.app.get_json("/api/v1/audit?limit=200").await;
    let text = audit.to_string();
    assert!(
        text.contains("loan.anonymise"),
        "the audit log keeps that it happened"
    );
    assert!(text.contains("loans.overdue"));
    assert!(text.contains("loan.flag"));

    // The next day's check tells nobody again about the same loans.
    f.app
        .store
        .enqueue_job(
            &flotte_core::jobs::MaintainLoans {
                requested_by: "test:2".into(),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let done = format!(
        "SELECT COUNT(*) AS n FROM {jobs} WHERE idempotency_key = 'test:2' AND status = 'Done'"
    );
    eventually(20, "the second check ran", &mut || async {
        f.count(&done).await == 1
    })
    .await;
    assert_eq!(smtp.mails().len(), 1, "no second mail");
}
