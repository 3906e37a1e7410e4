//! The web UI for school staff: its forms' protection (CSRF, sessions) over plain
//! HTTPS, and the staff's work driven in headless Chromium: sign in, scan, lend,
//! print the agreement, take back, the overdue list, a class set, labels.

use crate::loans::{Fixture, PASSWORD, in_days};
use flotte_tests::browser::Browser;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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

fn cookie_value(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

fn hidden_csrf(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("a csrf_token field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Sign in through the form; returns the session cookie header and the CSRF token.
async fn sign_in(client: &reqwest::Client, f: &Fixture, username: &str) -> (String, String) {
    let page = client.get(f.app.url("/login")).send().await.unwrap();
    let login_cookie = cookie_value(&page, "flotte_login_csrf");
    let token = hidden_csrf(&page.text().await.unwrap());
    let signed_in = client
        .post(f.app.url("/login"))
        .header("cookie", format!("flotte_login_csrf={login_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("username", username),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let session = format!(
        "flotte_session={}",
        cookie_value(&signed_in, "flotte_session")
    );
    let start = client
        .get(f.app.url("/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::OK);
    let csrf = hidden_csrf(&start.text().await.unwrap());
    (session, csrf)
}

async fn post_form(
    client: &reqwest::Client,
    f: &Fixture,
    cookie: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(f.app.url(path))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(fields))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn forged_or_missing_csrf_tokens_and_expired_sessions_change_nothing() {
    let f = Fixture::start().await;
    let client = flotte_tests::app::https_client_without_redirects(
        &std::fs::read(f.app.data_path("ca.pem")).unwrap(),
    );
    let (session, csrf) = sign_in(&client, &f, "lena.lehrer").await;
    let (_, anna) = f.app.get_json("/api/v1/people/anna.muster").await;
    let anna = anna["id"].as_str().unwrap().to_owned();
    let due = in_days(30);
    let lend = |token: Option<&'static str>| {
        let mut fields = vec![
            ("device", "GYM1-0001"),
            ("person", anna.as_str()),
            ("due", due.as_str()),
            ("accessories", "Ladegerät"),
            ("accessories", "Stift"),
            ("condition", "good"),
        ];
        if let Some(t) = token {
            fields.push(("csrf_token", t));
        }
        fields
    };

    for forged in [lend(None), lend(Some("forged-token"))] {
        let refused = post_form(&client, &f, &session, "/loans", &forged).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused.text().await.unwrap().contains("CSRF"));
    }
    assert_eq!(f.count("SELECT COUNT(*) AS n FROM loans").await, 0);

    let mut good = lend(None);
    good.push(("csrf_token", csrf.as_str()));
    let lent = post_form(&client, &f, &session, "/loans", &good).await;
    assert_eq!(lent.status(), StatusCode::SEE_OTHER);
    let location = lent.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("?done=lent"), "{location}");
    let loan_id = location
        .trim_start_matches("/loans/")
        .trim_end_matches("?done=lent")
        .to_owned();
    let (_, loan) = f.app.get_json(&format!("/api/v1/loans/{loan_id}")).await;
    assert_eq!(loan["accessories"], json!(["Ladegerät", "Stift"]));
    assert_eq!(loan["lent_by"], "lena.lehrer");

    // The same device again: refused in German, naming the open loan.
    let again = post_form(&client, &f, &session, "/loans", &good).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let page = again.text().await.unwrap();
    assert!(page.contains("bereits ausgeliehen"), "{page}");
    assert!(page.contains(&loan_id), "{page}");
    assert!(page.contains("Es wurde nichts geändert."));

    // A return with a forged token changes nothing.
    let ret = format!("/loans/{loan_id}/return");
    let refused = post_form(
        &client,
        &f,
        &session,
        &ret,
        &[
            ("condition", "good"),
            ("erase", "no"),
            ("csrf_token", "nope"),
        ],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        f.count("SELECT COUNT(*) AS n FROM loans WHERE returned_at IS NULL")
            .await,
        1
    );

    // Staff of another school get "not found" for the device, and nothing happens.
    let (gerd_session, gerd_csrf) = sign_in(&client, &f, "gerd.grund").await;
    let (_, greta) = f.app.get_json("/api/v1/people/greta.garten").await;
    let foreign = post_form(
        &client,
        &f,
        &gerd_session,
        "/loans",
        &[
            ("device", "GYM1-0002"),
            ("person", greta["id"].as_str().unwrap()),
            ("due", &due),
            ("csrf_token", &gerd_csrf),
        ],
    )
    .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    assert!(
        foreign
            .text()
            .await
            .unwrap()
            .contains("wurde nicht gefunden")
    );
    let page = client
        .get(f.app.url(&format!("/loans/{loan_id}")))
        .header("cookie", &gerd_session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        StatusCode::NOT_FOUND,
        "another school's loan"
    );

    // An expired session: pages send the browser to sign in, forms do nothing.
    let now = chrono::Utc::now();
    let (_, lena) = f.app.get_json("/api/v1/people/lena.lehrer").await;
    f.app
        .store
        .create_session(
            "expired-session-secret",
            &flotte_storage::NewSession {
                csrf_token: "expired-csrf".into(),
                role: "staff".into(),
                name: "lena.lehrer".into(),
                person_id: lena["id"].as_str().map(str::to_owned),
                expires_at: now - chrono::Duration::minutes(1),
            },
            now - chrono::Duration::hours(10),
        )
        .await
        .unwrap();
    let expired = "flotte_session=expired-session-secret";
    let page = client
        .get(f.app.url("/loans"))
        .header("cookie", expired)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/login");
    let late = post_form(
        &client,
        &f,
        expired,
        &ret,
        &[
            ("condition", "good"),
            ("erase", "no"),
            ("csrf_token", "expired-csrf"),
        ],
    )
    .await;
    assert_eq!(late.status(), StatusCode::SEE_OTHER);
    assert_eq!(late.headers()["location"], "/login");
    assert_eq!(
        f.count("SELECT COUNT(*) AS n FROM loans WHERE returned_at IS NULL")
            .await,
        1,
        "the expired session returned nothing"
    );

    // Without saying whether to erase the iPad, nothing happens.
    let undecided = post_form(
        &client,
        &f,
        &session,
        &ret,
        &[("condition", "good"), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(undecided.status(), StatusCode::BAD_REQUEST);
    assert!(
        undecided
            .text()
            .await
            .unwrap()
            .contains("ob das Gerät beim Zurücknehmen gelöscht werden soll")
    );
    assert_eq!(
        f.count("SELECT COUNT(*) AS n FROM loans WHERE returned_at IS NULL")
            .await,
        1
    );

    // With the right token the return goes through; the erase was declined.
    let back = post_form(
        &client,
        &f,
        &session,
        &ret,
        &[
            ("condition", "worn"),
            ("accessories", "Ladegerät"),
            ("erase", "no"),
            ("csrf_token", &csrf),
        ],
    )
    .await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let (_, loan) = f.app.get_json(&format!("/api/v1/loans/{loan_id}")).await;
    assert_eq!(loan["status"], "returned");
    assert_eq!(loan["erase_command_id"], Value::Null);
}

async fn browser_sign_in(b: &Browser, f: &Fixture, username: &str) {
    b.goto(&f.app.url("/login")).await.unwrap();
    b.type_into("#username", username).await.unwrap();
    b.type_into("#password", PASSWORD).await.unwrap();
    b.click("main button[type=submit]").await.unwrap();
    b.wait_for(".cards", 10).await.unwrap();
}

#[tokio::test]
async fn staff_lend_print_take_back_and_see_overdue_loans_in_chromium() {
    let f = Fixture::start().await;
    let b = Browser::start().await.expect("chromium starts");
    browser_sign_in(&b, &f, "lena.lehrer").await;
    assert_eq!(b.url().await.unwrap(), f.app.url("/"));
    b.screenshot("start").await.unwrap();

    // The scan field has the focus: a scanner types the tag and Enter.
    assert_eq!(b.focused_id().await.unwrap(), "scan");
    b.type_into_focus("GYM1-0005\u{E007}").await.unwrap();
    b.wait_for("a.button[href$='/lend']", 10).await.unwrap();
    let text = b.page_text().await.unwrap();
    assert!(
        text.contains("Gerät GYM1-0005") && text.contains("verfügbar"),
        "{text}"
    );

    // Lend: find the pupil by name, the form is filled with the defaults.
    b.click("a.button[href$='/lend']").await.unwrap();
    b.wait_for("#q", 10).await.unwrap();
    assert_eq!(b.focused_id().await.unwrap(), "q");
    b.type_into_focus("Muster\u{E007}").await.unwrap();
    b.wait_for("input[name=person]:checked", 10).await.unwrap();
    b.screenshot("lend").await.unwrap();
    b.click("#lend").await.unwrap();
    b.wait_for(".notice.ok", 10).await.unwrap();
    let text = b.page_text().await.unwrap();
    assert!(text.contains("Das Gerät ist ausgeliehen."), "{text}");
    assert!(text.contains("Anna Muster (7b)"), "{text}");
    let loan_url = b.url().await.unwrap().replace("?done=lent", "");
    b.screenshot("loan").await.unwrap();

    // The agreement for the parents, styled for print.
    b.click("a[href$='/agreement']").await.unwrap();
    b.wait_for("article.agreement", 10).await.unwrap();
    let text = b.page_text().await.unwrap();
    for expected in [
        "Leihvertrag",
        "Anna Muster, Klasse 7b",
        "DMP000000005",
        "GYM1-0005",
        "Ladegerät, Hülle, Stift",
        "Unterschrift Erziehungsberechtigte:r",
        "unentgeltlich",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    b.screenshot("agreement").await.unwrap();
    let print = b
        .post_cdp("Emulation.setEmulatedMedia", json!({ "media": "print" }))
        .await;
    if print.is_ok() {
        let header = b
            .execute("return getComputedStyle(document.querySelector('header.top')).display;")
            .await
            .unwrap();
        assert_eq!(header, "none", "the print view has no navigation");
        // Roughly an A4 page, to see the whole agreement.
        b.set_window(900, 1300).await.unwrap();
        b.screenshot("agreement-print").await.unwrap();
        b.set_window(1366, 768).await.unwrap();
        b.post_cdp("Emulation.setEmulatedMedia", json!({ "media": "" }))
            .await
            .unwrap();
    }

    // Take it back, confirming the erase.
    b.goto(&loan_url).await.unwrap();
    b.click("#condition option[value=worn]").await.unwrap();
    b.click("#erase-yes").await.unwrap();
    b.click("#take-back").await.unwrap();
    b.wait_for(".notice.ok", 10).await.unwrap();
    let text = b.page_text().await.unwrap();
    assert!(text.contains("Das Gerät ist zurückgenommen."), "{text}");
    assert!(text.contains("Löschbefehl an das Gerät gesendet"), "{text}");

    // The overdue list of the school.
    let (status, late) = f
        .lend(
            &f.lena,
            json!({ "device": "GYM1-0006", "person": "ben.beispiel", "due_date": in_days(3) }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    f.sql(
        "UPDATE loans SET due_at = ? WHERE id = ?",
        vec![
            (chrono::Utc::now() - chrono::Duration::days(2)).into(),
            late["id"].as_str().unwrap().to_owned().into(),
        ],
    )
    .await;
    b.goto(&f.app.url("/")).await.unwrap();
    b.click("a.card.bad").await.unwrap();
    b.wait_for("tr.overdue", 10).await.unwrap();
    let text = b.page_text().await.unwrap();
    assert!(
        text.contains("Beispiel, Ben") && text.contains("überfällig"),
        "{text}"
    );
    assert!(
        !text.contains("Muster, Anna"),
        "returned loans are not overdue"
    );
    b.screenshot("overdue").await.unwrap();

    // On a tablet the same page fits the width.
    b.set_window(820, 1180).await.unwrap();
    b.goto(&f.app.url("/loans?status=overdue")).await.unwrap();
    let fits = b
        .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
        .await
        .unwrap();
    assert_eq!(fits, true, "no sideways scrolling on a tablet");
    b.screenshot("overdue-tablet").await.unwrap();

    // English on request, and back on the same page.
    b.click("header a[href^='/lang']").await.unwrap();
    b.wait_for("html[lang=en]", 10).await.unwrap();
    let text = b.page_text().await.unwrap();
    assert!(
        text.contains("Overdue loans") && text.contains("overdue"),
        "{text}"
    );
    assert!(b.url().await.unwrap().ends_with("/loans?status=overdue"));
    b.quit().await.unwrap();
}

#[tokio::test]
async fn a_class_set_is_scanned_paired_and_lent_in_chromium_with_labels() {
    let f = Fixture::start().await;
    let b = Browser::start().await.expect("chromium starts");
    browser_sign_in(&b, &f, "tom.tafel").await;
    b.goto(&f.app.url("/bulk")).await.unwrap();
    let options = b.find_all("#class option").await.unwrap();
    let mut chosen = false;
    for (i, o) in options.iter().enumerate() {
        if b.text(o).await.unwrap().contains("7b") {
            b.click(&format!("#class option:nth-child({})", i + 1))
                .await
                .unwrap();
            chosen = true;
        }
    }
    assert!(chosen, "class 7b is offered");
    b.click("form.filters button").await.unwrap();
    b.wait_for("#devices", 10).await.unwrap();
    assert_eq!(b.focused_id().await.unwrap(), "devices");
    // Three scans, one of them a label's QR code (its URL).
    b.type_into_focus(&format!(
        "GYM1-0001\n{}\nDMP000000003\n",
        f.app.url("/d/GYM1-0002")
    ))
    .await
    .unwrap();
    b.click("#preview").await.unwrap();
    b.wait_for("#confirm", 10).await.unwrap();
    let pairing = b
        .execute(
            "return [...document.querySelectorAll('select[name^=pair_]')].map(s => \
             s.closest('tr').querySelector('label').textContent + ' = ' + s.selectedOptions[0].textContent);",
        )
        .await
        .unwrap();
    let pairing: Vec<String> = serde_json::from_value(pairing).unwrap();
    assert_eq!(pairing.len(), 3, "{pairing:?}");
    assert!(
        pairing[0].starts_with("Beispiel, Ben = GYM1-0001"),
        "{pairing:?}"
    );
    assert!(
        pairing[1].starts_with("Christ, Carla = GYM1-0002"),
        "{pairing:?}"
    );
    assert!(
        pairing[2].starts_with("Muster, Anna = GYM1-0003"),
        "{pairing:?}"
    );
    b.screenshot("bulk-preview").await.unwrap();
    b.click("#confirm").await.unwrap();
    b.wait_for("#print-all", 10).await.unwrap();
    assert!(
        b.page_text()
            .await
            .unwrap()
            .contains("Die Geräte sind ausgeliehen. (3)")
    );
    let (_, open) = f
        .call(&f.tom, Method::GET, "/api/v1/loans?class=7b", None)
        .await;
    assert_eq!(open.as_array().unwrap().len(), 3, "{open}");
    b.click("#print-all").await.unwrap();
    b.wait_for("article.agreement", 10).await.unwrap();
    assert_eq!(b.find_all("article.agreement").await.unwrap().len(), 3);

    // Asset labels with QR codes for the school's devices.
    b.goto(&f.app.url("/labels?school=gym1")).await.unwrap();
    b.wait_for(".label svg", 10).await.unwrap();
    assert_eq!(b.find_all(".label svg path").await.unwrap().len(), 8);
    let text = b.page_text().await.unwrap();
    assert!(
        text.contains("GYM1-0100") && text.contains("SN PF3LAP01"),
        "{text}"
    );
    b.screenshot("labels").await.unwrap();
    b.quit().await.unwrap();
}

#[tokio::test]
async fn technicians_check_and_import_a_delivery_list_through_the_form() {
    let f = Fixture::start().await;
    let hash = flotte_server::local_auth::hash_password(PASSWORD).unwrap();
    let actor = flotte_core::audit::AuditEntry::new("test", "account.set_password", "");
    f.app
        .store
        .set_local_account("it.service", &hash, true, &actor, chrono::Utc::now())
        .await
        .unwrap();
    let client = flotte_tests::app::https_client_without_redirects(
        &std::fs::read(f.app.data_path("ca.pem")).unwrap(),
    );
    let (session, csrf) = sign_in(&client, &f, "it.service").await;
    let list = "Seriennummer;Modell;Plattform;Inventarnummer;Schule\n\
        DMP000000031;iPad 11;iPadOS;GS2-0031;gs2\n\
        DMP000000001;iPad 10 (2022);iPadOS;GYM1-0001;gym1\n";
    let devices = "SELECT COUNT(*) AS n FROM devices";
    let checked = post_form(
        &client,
        &f,
        &session,
        "/register/import",
        &[("csv", list), ("mode", "check"), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(checked.status(), StatusCode::OK);
    let page = checked.text().await.unwrap();
    assert!(page.contains("Noch ist nichts geändert"), "{page}");
    assert!(page.contains("1 neu, 1 geändert, 0 unverändert"), "{page}");
    assert_eq!(f.count(devices).await, 9);

    let applied = post_form(
        &client,
        &f,
        &session,
        "/register/import",
        &[("csv", list), ("mode", "apply"), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(applied.status(), StatusCode::OK);
    assert!(
        applied
            .text()
            .await
            .unwrap()
            .contains("Die Lieferliste ist eingelesen.")
    );
    assert_eq!(f.count(devices).await, 10);

    let bad = "serial_number,platform,school,purchase_date\nX1,apple,gym1,gestern\n";
    let refused = post_form(
        &client,
        &f,
        &session,
        "/register/import",
        &[("csv", bad), ("mode", "apply"), ("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("Zeile 2") && page.contains("gestern"),
        "{page}"
    );
    assert_eq!(f.count(devices).await, 10);

    // Staff do not import delivery lists.
    let (lena, _) = sign_in(&client, &f, "lena.lehrer").await;
    let page = client
        .get(f.app.url("/register/import"))
        .header("cookie", &lena)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
}
