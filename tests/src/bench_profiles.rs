//! Profiles and bulk pushes: how fast templates render and sign, and how one push to a
//! whole fleet goes (until every command is queued, until every simulated iPad has
//! acknowledged, APNs pushes per second against the local stand-in, and the rows left in
//! the queue tables afterwards). Also the fleet builders the integration tests share:
//! devices, pupils, loans and staff tokens written straight into the database, because the
//! tests are about what happens after.

use crate::apns::ApnsStandIn;
use crate::app::{TestApp, TestEnv};
use crate::apple_device::{EnrollmentPayload, SimIpad};
use crate::benchmarks::Figure;
use chrono::Utc;
use flotte_core::device::Platform;
use flotte_storage::Store;
use flotte_storage::entity::{command, device, enrollment};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A school-wide template (no per-device values, no client certificate): rendered and
/// signed once per fan-out batch, as a school's Wi-Fi, portal clip and restrictions are.
pub fn school_template(identifier: &str, label: &str) -> serde_json::Value {
    serde_json::json!({
        "identifier": identifier,
        "display_name": format!("{label} {{{{school.name}}}}"),
        "organisation": "Schulträger Musterstadt",
        "platforms": "apple",
        "payloads": [
            { "key": "wifi", "payload": { "type": "wifi", "ssid": "Schule-{{school.code}}",
              "security": { "mode": "psk", "password": "lang-genug-geheim" } } },
            { "key": "portal", "payload": { "type": "web-clip",
              "url": "https://portal.schule.example/{{school.code}}", "label": label } },
            { "key": "flotte-ca", "payload": { "type": "root-ca", "ca": "flotte-root" } },
            { "key": "restrictions", "payload": { "type": "restrictions",
              "apple": { "allow_air_drop": false } } }
        ]
    })
}

/// A template with the device's own values in it: rendered and signed once per device.
pub fn device_template(identifier: &str) -> serde_json::Value {
    serde_json::json!({
        "identifier": identifier,
        "display_name": "Gerät {{device.serial}}",
        "platforms": "apple",
        "payloads": [
            { "key": "flotte-ca", "payload": { "type": "root-ca", "ca": "flotte-root" } },
            { "key": "notice", "payload": { "type": "lock-screen",
              "footnote": "{{school.name}} – {{device.serial}}", "asset_tag": "Inventar {{device.serial}}" } }
        ]
    })
}

/// A pupil's Wi-Fi with their own EAP-TLS certificate (the same identity the RADIUS maps).
pub fn pupil_wifi_template(identifier: &str) -> serde_json::Value {
    serde_json::json!({
        "identifier": identifier,
        "display_name": "WLAN {{school.name}}",
        "platforms": "apple",
        "payloads": [
            { "key": "wifi", "payload": { "type": "wifi", "ssid": "Schule-{{school.code}}",
              "security": { "mode": "eap-tls", "identity": "pupil", "user_name": "{{person.username}}",
                "trust": { "root_cas": ["flotte-ca"], "server_names": ["radius.schule.example"] } } } },
            { "key": "flotte-ca", "payload": { "type": "root-ca", "ca": "flotte-root" } },
            { "key": "pupil", "payload": { "type": "client-identity", "certificate": "per-person" } }
        ]
    })
}

/// `n` enrolled devices of `platform` in `school_id`, written straight into the database
/// (no push token: waking them is a no-op). Returns their ids, sorted.
pub async fn insert_enrolled_devices(
    store: &Store,
    school_id: &str,
    platform: Platform,
    n: usize,
    label: &str,
) -> anyhow::Result<Vec<String>> {
    let now = Utc::now();
    let mut ids = Vec::with_capacity(n);
    let rows: Vec<device::ActiveModel> = (0..n)
        .map(|i| {
            let id = uuid::Uuid::new_v4().to_string();
            ids.push(id.clone());
            device_row(
                &id,
                platform,
                &format!("{label}{i:07}"),
                None,
                school_id,
                now,
            )
        })
        .collect();
    for chunk in rows.chunks(500) {
        device::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(store.connection())
            .await?;
    }
    ids.sort();
    Ok(ids)
}

fn device_row(
    id: &str,
    platform: Platform,
    serial: &str,
    udid: Option<&str>,
    school_id: &str,
    now: chrono::DateTime<Utc>,
) -> device::ActiveModel {
    device::ActiveModel {
        id: Set(id.to_owned()),
        platform: Set(platform.as_str().to_owned()),
        serial_number: Set(Some(serial.to_owned())),
        udid: Set(udid.map(str::to_owned)),
        asset_tag: Set(None),
        model: Set(None),
        model_name: Set(None),
        product_name: Set(Some("iPad12,1".to_owned())),
        os_version: Set(None),
        build_version: Set(None),
        device_name: Set(None),
        capacity_gb: Set(None),
        available_gb: Set(None),
        battery_level: Set(None),
        school_id: Set(Some(school_id.to_owned())),
        assigned_person_id: Set(None),
        enrollment_state: Set("enrolled".to_owned()),
        enrolled_at: Set(Some(now)),
        last_seen_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        wifi_mac: Set(None),
        supervised: Set(Some(true)),
    }
}

/// Simulated iPads, enrolled straight in the database: each has an identity from the
/// app's CA (RSA keys from a small pool), a device row and an active enrolment with a push
/// token, exactly as after Authenticate and TokenUpdate. Returns them with their device ids.
pub async fn enrolled_sim_ipads(
    app: &TestApp,
    school_id: &str,
    topic: &str,
    n: usize,
    first: u64,
) -> anyhow::Result<Vec<(String, SimIpad)>> {
    const KEY_POOL: usize = 16;
    let ca = app.ca();
    let now = Utc::now();
    let keys: Vec<String> = (0..KEY_POOL.min(n.max(1)))
        .map(|i| flotte_pki::generate_csr(&format!("pool {i}")).map(|(_, key)| key))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(n);
    let mut devices = Vec::with_capacity(n);
    let mut enrollments = Vec::with_capacity(n);
    for i in 0..n {
        let key = &keys[i % keys.len()];
        let csr = flotte_pki::csr_with_key(&format!("sim {i}"), key)?;
        let issued = ca.sign_csr(
            &csr,
            &flotte_pki::ClientCertificateRequest::new(
                format!("Flotte device identity sim {i}"),
                30,
            ),
            now,
        )?;
        let enrollment = EnrollmentPayload {
            server_url: app.url("/mdm/apple/connect"),
            check_in_url: app.url("/mdm/apple/checkin"),
            topic: topic.to_owned(),
            sign_message: true,
            access_rights: 8191,
            identity_cert_pem: issued.cert_pem.clone(),
            identity_key_pem: key.clone(),
            profile_identifier: "de.flotte.mdm.enrollment".into(),
            profile_uuid: uuid::Uuid::new_v4().to_string().to_uppercase(),
        };
        let ipad = SimIpad::new(enrollment, app.client.clone(), first + i as u64);
        let id = uuid::Uuid::new_v4().to_string();
        devices.push(device_row(
            &id,
            Platform::Apple,
            &ipad.serial,
            Some(&ipad.udid),
            school_id,
            now,
        ));
        enrollments.push(enrollment::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            device_id: Set(id.clone()),
            platform: Set("apple".into()),
            identity_sha256: Set(Some(issued.sha256_hex.clone())),
            identity_serial: Set(Some(issued.serial_hex.clone())),
            identity_not_after: Set(Some(issued.not_after)),
            push_token: Set(Some(ipad.token_hex())),
            push_magic: Set(Some(ipad.push_magic.clone())),
            push_topic: Set(Some(topic.to_owned())),
            unlock_token: Set(None),
            token_invalid_at: Set(None),
            bootstrap_token: Set(None),
            started_at: Set(now),
            ended_at: Set(None),
        });
        out.push((id, ipad));
    }
    for chunk in devices.chunks(500) {
        device::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(app.store.connection())
            .await?;
    }
    for chunk in enrollments.chunks(500) {
        enrollment::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(app.store.connection())
            .await?;
    }
    Ok(out)
}

async fn execute(store: &Store, sql: &str, values: Vec<sea_orm::Value>) -> anyhow::Result<()> {
    let conn = store.connection();
    let sql = if matches!(conn.get_database_backend(), sea_orm::DbBackend::Postgres) {
        // `?` → `$n` for PostgreSQL.
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
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        sql,
        values,
    ))
    .await?;
    Ok(())
}

/// Active enrolments with push tokens for these devices (token = the index in hex), so
/// that waking them goes through APNs (the stand-in in tests).
pub async fn give_push_tokens(
    store: &Store,
    device_ids: &[String],
    topic: &str,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let rows: Vec<enrollment::ActiveModel> = device_ids
        .iter()
        .enumerate()
        .map(|(i, id)| enrollment::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            device_id: Set(id.clone()),
            platform: Set("apple".into()),
            identity_sha256: Set(None),
            identity_serial: Set(None),
            identity_not_after: Set(None),
            push_token: Set(Some(format!("{i:064x}"))),
            push_magic: Set(Some(format!("magic-{i}"))),
            push_topic: Set(Some(topic.to_owned())),
            unlock_token: Set(None),
            token_invalid_at: Set(None),
            bootstrap_token: Set(None),
            started_at: Set(now),
            ended_at: Set(None),
        })
        .collect();
    for chunk in rows.chunks(500) {
        enrollment::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(store.connection())
            .await?;
    }
    Ok(())
}

/// A person from the directory (active), member of `school_id` with `role`. Returns
/// `(person id, entryUUID)`.
pub async fn insert_person(
    store: &Store,
    school_id: &str,
    username: &str,
    role: &str,
) -> anyhow::Result<(String, String)> {
    let id = uuid::Uuid::new_v4().to_string();
    let external = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    execute(
        store,
        "INSERT INTO people (id, external_id, username, given_name, family_name, mail, state, \
         state_changed_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'active', NULL, ?, ?)",
        vec![
            id.clone().into(),
            external.clone().into(),
            username.into(),
            "Max".into(),
            "Muster".into(),
            format!("{username}@schule.example").into(),
            now.into(),
            now.into(),
        ],
    )
    .await?;
    execute(
        store,
        "INSERT INTO person_schools (person_id, school_id, role) VALUES (?, ?, ?)",
        vec![id.clone().into(), school_id.into(), role.into()],
    )
    .await?;
    Ok((id, external))
}

/// A class of `school_id` with these members; returns its id.
pub async fn insert_class(
    store: &Store,
    school_id: &str,
    name: &str,
    members: &[&str],
) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    execute(
        store,
        "INSERT INTO classes (id, external_id, school_id, name, kind, created_at, updated_at) \
         VALUES (?, NULL, ?, ?, 'class', ?, ?)",
        vec![
            id.clone().into(),
            school_id.into(),
            name.into(),
            now.into(),
            now.into(),
        ],
    )
    .await?;
    for person in members {
        execute(
            store,
            "INSERT INTO class_members (class_id, person_id) VALUES (?, ?)",
            vec![id.clone().into(), (*person).into()],
        )
        .await?;
    }
    Ok(id)
}

/// Lend a device to a person (an open loan); returns the loan id.
pub async fn lend(
    store: &Store,
    device_id: &str,
    person_id: &str,
    school_id: &str,
) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    execute(
        store,
        "INSERT INTO loans (id, device_id, person_id, school_id, lent_by, lent_at, due_at, \
         accessories, condition_out, returned_at, returned_to, condition_in, damage, notes, \
         created_at, updated_at) VALUES (?, ?, ?, ?, 'test', ?, NULL, '[]', NULL, NULL, NULL, \
         NULL, NULL, NULL, ?, ?)",
        vec![
            id.clone().into(),
            device_id.into(),
            person_id.into(),
            school_id.into(),
            now.into(),
            now.into(),
            now.into(),
        ],
    )
    .await?;
    Ok(id)
}

/// End a loan (the device came back).
pub async fn return_loan(store: &Store, loan_id: &str) -> anyhow::Result<()> {
    execute(
        store,
        "UPDATE loans SET returned_at = ? WHERE id = ?",
        vec![Utc::now().into(), loan_id.into()],
    )
    .await
}

/// Set a person's directory state (`active`, `disabled`, `departed`).
pub async fn set_person_state(store: &Store, person_id: &str, state: &str) -> anyhow::Result<()> {
    execute(
        store,
        "UPDATE people SET state = ? WHERE id = ?",
        vec![state.into(), person_id.into()],
    )
    .await
}

/// Move the person's current certificates to expire tomorrow (inside any renewal window).
pub async fn expire_certificates_soon(store: &Store, person_id: &str) -> anyhow::Result<()> {
    execute(
        store,
        "UPDATE certificates SET not_after = ? WHERE person_id = ? AND revoked_at IS NULL",
        vec![
            (Utc::now() + chrono::Duration::days(1)).into(),
            person_id.into(),
        ],
    )
    .await
}

/// A bearer token for a staff member of `school_id` (a teacher), as `POST
/// /api/v1/auth/login` would issue one.
pub async fn staff_token(store: &Store, school_id: &str, username: &str) -> anyhow::Result<String> {
    let (person_id, _) = insert_person(store, school_id, username, "teacher").await?;
    let token = format!("staff-{}", uuid::Uuid::new_v4().simple());
    execute(
        store,
        "INSERT INTO api_tokens (id, name, token_hash, role, created_at, last_used_at, \
         revoked_at, person_id, expires_at) VALUES (?, ?, ?, 'staff', ?, NULL, NULL, ?, NULL)",
        vec![
            uuid::Uuid::new_v4().to_string().into(),
            username.into(),
            flotte_storage::hash_token(&token).into(),
            Utc::now().into(),
            person_id.into(),
        ],
    )
    .await?;
    Ok(token)
}

/// Wait until the push's commands are all queued; returns the push as the API shows it.
pub async fn wait_queued(app: &TestApp, push_id: &str, secs: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, body) = app.get_json(&format!("/api/v1/pushes/{push_id}")).await;
        if !body["queued_at"].is_null() {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "push {push_id} not queued after {secs} s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Render-and-sign throughput without HTTP or database: the worker's inner loop.
fn render_figures(out: &mut Vec<Figure>) -> anyhow::Result<()> {
    use flotte_profiles::template::{DeviceVars, ProfileTemplate, RenderContext, SchoolVars};
    let dir = tempfile::tempdir()?;
    let now = Utc::now();
    let ca = flotte_pki::CertificateAuthority::load_or_create(dir.path(), "Bench", now)?;
    let signer = ca.issue_signing_certificate("bench signing", now, 30)?;
    let signer_key = signer.key_pem.clone().unwrap_or_default();
    let chain = vec![ca.issuing_pem(), ca.root_pem()];
    let template: ProfileTemplate = serde_json::from_value(device_template("de.flotte.bench"))?;
    let context = |i: usize| RenderContext {
        platform: Platform::Apple,
        namespace: flotte_profiles::apple::ProfileNamespace::from_dns_name("bench.example"),
        person: None,
        device: DeviceVars {
            serial_number: Some(format!("BENCH{i:07}")),
            ..DeviceVars::default()
        },
        school: Some(SchoolVars {
            name: "Benchmark-Schule".into(),
            code: "BENCH".into(),
        }),
        root_ca_der: ca.root_der(),
        person_identity: None,
        device_identity: None,
    };
    let n = 400;
    let started = Instant::now();
    let mut rendered = Vec::with_capacity(n);
    for i in 0..n {
        rendered.push(template.render(&context(i))?);
    }
    let render_rate = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for r in &rendered {
        let config = r.apple_mobileconfig().unwrap_or_default();
        flotte_pki::sign_attached(config, &signer.cert_pem, &signer_key, &chain)?;
    }
    let sign_rate = n as f64 / started.elapsed().as_secs_f64();
    let both = 1.0 / (1.0 / render_rate + 1.0 / sign_rate);
    out.push(Figure::new(
        "render a per-device template (root CA + lock screen, Apple)",
        render_rate,
        "profiles/s",
        format!("{n} devices, one core"),
    ));
    out.push(Figure::new(
        "sign a rendered profile (CMS, RSA-2048)",
        sign_rate,
        "profiles/s",
        "one core",
    ));
    out.push(Figure::new(
        "render and sign, per device",
        both,
        "profiles/s",
        "one core; school-wide templates render once per batch",
    ));
    // A pupil's Wi-Fi: a fresh EAP-TLS certificate (RSA key), its PKCS#12, render, sign.
    let wifi: ProfileTemplate =
        serde_json::from_value(pupil_wifi_template("de.flotte.bench.wifi"))?;
    let m = 20;
    let started = Instant::now();
    for i in 0..m {
        let mut request = flotte_pki::ClientCertificateRequest::new(format!("pupil{i}"), 365);
        request.uri_sans = vec![format!("urn:uuid:{}", uuid::Uuid::new_v4())];
        let issued = ca.issue_client_certificate(&request, now)?;
        let p12 = flotte_pki::pkcs12(
            &issued.cert_pem,
            issued.key_pem.as_deref().unwrap_or_default(),
            &[ca.issuing_pem()],
            "bench",
            "pw",
        )?;
        let mut ctx = context(i);
        ctx.person = Some(flotte_profiles::template::PersonVars {
            username: format!("pupil{i}"),
            mail: None,
            given_name: "P".into(),
            family_name: "Q".into(),
            external_id: uuid::Uuid::new_v4(),
            class: None,
        });
        ctx.person_identity = Some(flotte_profiles::template::IssuedIdentity {
            certificate_der: issued.cert_der.clone(),
            pkcs12: p12,
            password: "pw".into(),
        });
        let r = wifi.render(&ctx)?;
        flotte_pki::sign_attached(
            r.apple_mobileconfig().unwrap_or_default(),
            &signer.cert_pem,
            &signer_key,
            &chain,
        )?;
    }
    out.push(Figure::new(
        "pupil Wi-Fi: issue EAP-TLS certificate, PKCS#12, render, sign",
        m as f64 / started.elapsed().as_secs_f64(),
        "profiles/s",
        format!("{m} pupils, one core; RSA-2048 key generation dominates"),
    ));
    Ok(())
}

/// Drive simulated iPads woken by APNs through their sessions, `connections` at a time.
async fn acknowledge_all(ipads: Vec<SimIpad>, connections: usize) -> usize {
    let queue = Arc::new(tokio::sync::Mutex::new(ipads));
    let handled = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let queue = queue.clone();
        let handled = handled.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(mut ipad) = queue.lock().await.pop() else {
                    break;
                };
                let seen = ipad.session().await;
                handled.fetch_add(seen.len(), Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    handled.load(Ordering::Relaxed)
}

/// One bulk push to `n` simulated devices; simulators acknowledge when `acknowledge`.
async fn push_figures(
    pg: Option<&str>,
    n: usize,
    acknowledge: bool,
    out: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let backend = if pg.is_some() { "PostgreSQL" } else { "SQLite" };
    let apns = ApnsStandIn::start().await;
    let env = TestEnv::on(pg).await;
    let mut settings = env.settings();
    apns.configure(&mut settings);
    settings.log_level = "warn".into();
    // Measure what the machine does, not the configured pace (200/s by default).
    settings.apns.rate_per_sec = 100_000;
    settings.retention.command_days = 0;
    settings.retention.job_days = 0;
    let app = TestApp::spawn_in(&env, settings).await;
    let school = app.create_school("BENCH", "Benchmark-Schule").await;
    let setup = Instant::now();
    let ipads = if acknowledge {
        enrolled_sim_ipads(&app, &school, &apns.topic, n, 5_000_000).await?
    } else {
        let ids = insert_enrolled_devices(&app.store, &school, Platform::Apple, n, "BULK").await?;
        give_push_tokens(&app.store, &ids, &apns.topic).await?;
        Vec::new()
    };
    eprintln!(
        "profiles: {n} devices set up in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let (status, profile) = app
        .post_json(
            "/api/v1/profiles",
            &school_template("de.flotte.bench.schule", "Schulportal"),
        )
        .await;
    anyhow::ensure!(status.is_success(), "profile: {profile}");
    let started = Instant::now();
    let (status, push) = app
        .post_json(
            "/api/v1/pushes",
            &serde_json::json!({
                "profile": "de.flotte.bench.schule",
                "scope": { "kind": "school", "id": "BENCH" },
            }),
        )
        .await;
    anyhow::ensure!(status.is_success(), "push: {push}");
    let accepted = started.elapsed();
    let push_id = push["id"].as_str().unwrap_or_default().to_owned();
    wait_queued(&app, &push_id, 7200).await;
    let queued = started.elapsed();
    // APNs wake-ups are measured for at most `FLOTTE_BENCH_PUSH_SECS` (default 600): the
    // rate is what matters, and the row says how many were sent in that time.
    let push_secs: u64 = std::env::var("FLOTTE_BENCH_PUSH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let deadline = Instant::now() + Duration::from_secs(push_secs);
    while (apns.pushes().len()) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pushed = started.elapsed();
    let pushes = apns.pushes().len();
    let label = |what: &str| format!("{backend}, {n} devices, {what}");
    out.push(Figure::new(
        label("push accepted (targets recorded)"),
        accepted.as_secs_f64(),
        "s",
        "POST /api/v1/pushes",
    ));
    out.push(Figure::new(
        label("until every command is queued"),
        queued.as_secs_f64(),
        "s",
        format!("{:.0} devices/s", n as f64 / queued.as_secs_f64()),
    ));
    out.push(Figure::new(
        label("APNs pushes to the stand-in"),
        pushes as f64 / pushed.as_secs_f64(),
        "pushes/s",
        if pushes >= n {
            format!(
                "{pushes} pushes, all sent after {:.1} s",
                pushed.as_secs_f64()
            )
        } else {
            format!(
                "only {pushes} of {n} sent within {:.0} s; measurement stopped there",
                pushed.as_secs_f64()
            )
        },
    ));
    if acknowledge {
        let sims: Vec<SimIpad> = ipads.into_iter().map(|(_, ipad)| ipad).collect();
        let handled = acknowledge_all(sims, 32).await;
        let deadline = Instant::now() + Duration::from_secs(3600);
        loop {
            let (_, body) = app.get_json(&format!("/api/v1/pushes/{push_id}")).await;
            if body["status"] == "completed" || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let acknowledged = started.elapsed();
        let (_, body) = app.get_json(&format!("/api/v1/pushes/{push_id}")).await;
        out.push(Figure::new(
            label("until every simulator acknowledged"),
            acknowledged.as_secs_f64(),
            "s",
            format!(
                "{} acknowledged ({handled} commands handled; 32 simulators at a time, signing \
                 on the same machine)",
                body["counts"]["acknowledged"]
            ),
        ));
    }
    // The baseline: the same number of command rows written in one transaction, with no
    // planning, rendering, signing, targets or wake-ups. Measured after the push, on the same
    // database, so that the ratio says what the fan-out costs over the bare inserts.
    let ids = device_ids(&app.store, n).await?;
    let payload = one_payload_of(&app.store, &push_id).await?;
    let baseline = Instant::now();
    bare_command_inserts(&app.store, &ids, &payload).await?;
    let baseline = baseline.elapsed();
    out.push(Figure::new(
        label("baseline: the same command rows inserted bare"),
        baseline.as_secs_f64(),
        "s",
        format!(
            "the push took {:.1}× as long until queued",
            queued.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
        ),
    ));
    command::Entity::delete_many()
        .filter(command::Column::CreatedBy.eq("baseline"))
        .exec(app.store.connection())
        .await?;

    // Prune with zero retention: what stays is what the queues need.
    app.store
        .enqueue_job(
            &flotte_core::jobs::PruneTables {
                requested_by: format!("bench-{push_id}"),
            },
            Utc::now(),
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows = app.store.queue_table_rows().await?;
    let summary = ["commands", "pushes", "push_targets", "jobs"]
        .iter()
        .map(|t| format!("{t} {}", rows.get(*t).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ");
    let total: i64 = ["commands", "pushes", "push_targets", "jobs"]
        .iter()
        .map(|t| rows.get(*t).copied().unwrap_or(0))
        .sum();
    out.push(Figure::new(
        label("rows left in the queue tables after pruning"),
        total as f64,
        "rows",
        summary,
    ));
    app.stop().await;
    Ok(())
}

/// Up to `n` device ids of the app.
async fn device_ids(store: &Store, n: usize) -> anyhow::Result<Vec<String>> {
    use sea_orm::QuerySelect;
    let ids: Vec<String> = device::Entity::find()
        .select_only()
        .column(device::Column::Id)
        .limit(n as u64)
        .into_tuple()
        .all(store.connection())
        .await?;
    Ok(ids)
}

/// The payload of one of a push's commands (the baseline writes rows of the same size).
async fn one_payload_of(store: &Store, push_id: &str) -> anyhow::Result<String> {
    use sea_orm::QuerySelect;
    let payload: Option<String> = command::Entity::find()
        .select_only()
        .column(command::Column::Payload)
        .filter(command::Column::PushId.eq(push_id))
        .limit(1)
        .into_tuple()
        .one(store.connection())
        .await?;
    Ok(payload.unwrap_or_default())
}

/// One command row per device, in one transaction, as plainly as sea-orm writes them.
async fn bare_command_inserts(store: &Store, ids: &[String], payload: &str) -> anyhow::Result<()> {
    use sea_orm::TransactionTrait;
    let now = Utc::now();
    let txn = store.connection().begin().await?;
    let rows: Vec<command::ActiveModel> = ids
        .iter()
        .map(|device_id| command::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string().to_uppercase()),
            device_id: Set(device_id.clone()),
            request_type: Set("InstallProfile".into()),
            payload: Set(payload.to_owned()),
            status: Set("cancelled".into()),
            created_by: Set("baseline".into()),
            push_id: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            sent_at: Set(None),
            finished_at: Set(Some(now)),
            result: Set(None),
            error: Set(None),
        })
        .collect();
    for chunk in rows.chunks(500) {
        command::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// The whole benchmark: render and sign rates, then one bulk push per size. Simulators
/// acknowledge up to `FLOTTE_BENCH_ACK_LIMIT` devices (default 10,000); above it only the
/// queueing and the APNs pushes are measured.
pub async fn run(pg: Option<&str>, sizes: &[usize]) -> anyhow::Result<Vec<Figure>> {
    let mut out = Vec::new();
    if pg.is_none() {
        render_figures(&mut out)?;
    }
    let ack_limit: usize = std::env::var("FLOTTE_BENCH_ACK_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    for &n in sizes {
        eprintln!(
            "profiles: bulk push to {n} devices on {}",
            if pg.is_some() { "PostgreSQL" } else { "SQLite" }
        );
        push_figures(pg, n, n <= ack_limit, &mut out).await?;
    }
    Ok(out)
}

/// Commands of a push per device: the proof that nothing was sent twice.
pub async fn commands_per_device(
    store: &Store,
    push_id: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let conn = store.connection();
    let placeholder = if matches!(conn.get_database_backend(), sea_orm::DbBackend::Postgres) {
        "$1"
    } else {
        "?"
    };
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            format!(
                "SELECT device_id, COUNT(*) AS n FROM commands WHERE push_id = {placeholder} \
                 GROUP BY device_id"
            ),
            [push_id.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<String>("", "device_id")?,
                r.try_get::<i64>("", "n")?,
            ))
        })
        .collect()
}

/// The workers that ran jobs of `queue` (apalis' `lock_by`).
pub async fn workers_of(
    store: &Store,
    queue: &str,
) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let conn = store.connection();
    let (table, placeholder) =
        if matches!(conn.get_database_backend(), sea_orm::DbBackend::Postgres) {
            ("apalis.jobs", "$1")
        } else {
            ("Jobs", "?")
        };
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            format!(
                "SELECT DISTINCT lock_by FROM {table} WHERE job_type = {placeholder} \
                 AND lock_by IS NOT NULL"
            ),
            [queue.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String>("", "lock_by")?))
        .collect()
}

/// A device's queued commands as the queue stores them: request type and payload.
pub async fn queued_payloads(
    store: &Store,
    device_id: &str,
) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let conn = store.connection();
    let placeholder = if matches!(conn.get_database_backend(), sea_orm::DbBackend::Postgres) {
        "$1"
    } else {
        "?"
    };
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            format!(
                "SELECT request_type, payload FROM commands WHERE device_id = {placeholder} \
                 AND status = 'queued' ORDER BY created_at"
            ),
            [device_id.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let payload: String = r.try_get("", "payload")?;
            Ok((
                r.try_get::<String>("", "request_type")?,
                serde_json::from_str(&payload)?,
            ))
        })
        .collect()
}
