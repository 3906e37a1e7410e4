//! The LDAP adapter against a real slapd with a UCS@school-shaped directory,
//! and the sync planner over what it reads.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flotte_core::auth::{AuthError, StaffAuthenticator};
use flotte_core::directory::{
    ClassRef, Deletions, DirPerson, DirectorySnapshot, GroupKind, KnownDirectory, LoanAlert,
    LoanAlertReason, PersonField, Role, SchoolRole, SyncPlan, SyncPolicy, plan_sync,
};
use flotte_directory::{
    ChangeCookie, ChangeMethod, DirectoryError, LdapAuthenticator, LdapSettings, authenticate,
    is_member_of, is_technician, read_changes_since, read_snapshot, supports_content_sync,
};
use flotte_tests::slapd::{
    BASE_DN, CitySpec, ContentSync, Fixtures, LIMITED_SERVICE_DN, LIMITED_SERVICE_PASSWORD, Slapd,
    TECHNICIAN_GROUP_DN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Everyone the edge-case directory should yield: no exam account, no
/// guardian, no global technician.
const SCHOOL_USERS: [&str; 17] = [
    "anna.mueller",
    "ben.schulz",
    "carla.weber",
    "deniz.yilmaz",
    "emil.expired",
    "frieda.future",
    "gustav.locked",
    "hanna.mover",
    "ida.rename",
    "jonas.leaver",
    "lena.lehrer",
    "max.multi",
    "mia.mitarbeiter",
    "ole.legacy",
    "paul.grund",
    "rita.real",
    "sam.admin",
];

fn edge_slapd(mode: ContentSync) -> Slapd {
    Slapd::builder()
        .ldif(&Fixtures::edge_cases().ldif)
        .content_sync(mode)
        .start()
}

fn person<'a>(snapshot: &'a DirectorySnapshot, username: &str) -> &'a DirPerson {
    snapshot
        .people
        .iter()
        .find(|p| p.username == username)
        .unwrap_or_else(|| panic!("{username} not in the snapshot"))
}

fn role(school_code: &str, role: Role) -> SchoolRole {
    SchoolRole {
        school_code: school_code.to_owned(),
        role,
    }
}

fn class(school_code: &str, name: &str) -> ClassRef {
    ClassRef {
        school_code: school_code.to_owned(),
        name: name.to_owned(),
    }
}

fn dn(uid: &str, container: &str, school: &str) -> String {
    format!("uid={uid},{container},ou={school},{BASE_DN}")
}

#[tokio::test]
async fn the_edge_case_directory_reads_as_the_directory_means_it() {
    let slapd = edge_slapd(ContentSync::PresentPhase);
    let snapshot = read_snapshot(&slapd.settings()).await.expect("read");

    assert!(snapshot.complete);
    assert!(snapshot.problems.is_empty(), "{:?}", snapshot.problems);
    assert!(snapshot.held_back.is_empty());

    let schools: Vec<(&str, &str)> = snapshot
        .schools
        .iter()
        .map(|s| (s.code.as_str(), s.display_name.as_str()))
        .collect();
    assert_eq!(
        schools,
        vec![
            ("gs2", "Grundschule Nord"),
            ("gym1", "Gymnasium Mitte"),
            ("rs3", "Regionalschule Süd"),
        ]
    );

    let names: BTreeSet<&str> = snapshot
        .people
        .iter()
        .map(|p| p.username.as_str())
        .collect();
    assert_eq!(names, SCHOOL_USERS.into_iter().collect::<BTreeSet<_>>());
    assert_eq!(snapshot.people.len(), 17, "one entry per person");

    let anna = person(&snapshot, "anna.mueller");
    assert_eq!(
        (anna.given_name.as_str(), anna.family_name.as_str()),
        ("Anna", "Müller")
    );
    assert_eq!(
        anna.mail.as_deref(),
        Some("anna.mueller@gym1.schule.example")
    );
    assert_eq!(anna.memberships, vec![role("gym1", Role::Pupil)]);
    assert_eq!(anna.classes, vec![class("gym1", "5a")]);
    assert!(!anna.disabled);
    assert!(
        anna.group_dns
            .iter()
            .any(|g| g.starts_with("cn=gym1-musik,cn=schueler,cn=groups")),
        "{:?}",
        anna.group_dns
    );

    // Disabled by each mechanism on its own; locked and future expiry are not.
    for (username, disabled) in [
        ("ben.schulz", true),     // shadowExpire: 1 (+ Samba, Kerberos)
        ("carla.weber", true),    // sambaAcctFlags D only
        ("deniz.yilmaz", true),   // krb5KDCFlags 254 only
        ("emil.expired", true),   // shadowExpire in the past
        ("jonas.leaver", true),   // leaver in the grace period
        ("frieda.future", false), // shadowExpire in 2079
        ("gustav.locked", false), // locked is not disabled
    ] {
        assert_eq!(person(&snapshot, username).disabled, disabled, "{username}");
    }
    assert_eq!(person(&snapshot, "deniz.yilmaz").family_name, "Yılmaz");

    assert_eq!(
        person(&snapshot, "ole.legacy").memberships,
        vec![role("gym1", Role::Pupil)]
    );
    let lena = person(&snapshot, "lena.lehrer");
    assert_eq!(
        lena.memberships,
        vec![role("gs2", Role::Teacher), role("gym1", Role::Teacher)]
    );
    assert_eq!(lena.classes, vec![class("gs2", "4a"), class("gym1", "5a")]);
    assert!(lena.group_dns.iter().any(|g| g == TECHNICIAN_GROUP_DN));
    assert_eq!(
        person(&snapshot, "max.multi").memberships,
        vec![role("gym1", Role::Teacher), role("gym1", Role::Staff)]
    );
    assert_eq!(
        person(&snapshot, "mia.mitarbeiter").memberships,
        vec![role("gym1", Role::Staff)]
    );
    assert_eq!(
        person(&snapshot, "sam.admin").memberships,
        vec![role("rs3", Role::SchoolAdmin)]
    );
    assert_eq!(
        person(&snapshot, "rita.real").mail.as_deref(),
        Some("rita.real@example.org")
    );

    let classes: BTreeSet<(String, String)> = snapshot
        .classes
        .iter()
        .map(|c| (c.school_code.clone(), c.name.clone()))
        .collect();
    let expected: BTreeSet<(String, String)> =
        [("gs2", "4a"), ("gym1", "5a"), ("gym1", "5b"), ("rs3", "7c")]
            .into_iter()
            .map(|(s, n)| (s.to_owned(), n.to_owned()))
            .collect();
    assert_eq!(classes, expected);
    let class_5a = snapshot
        .classes
        .iter()
        .find(|c| c.name == "5a")
        .expect("5a");
    assert_eq!(
        class_5a.member_external_ids.len(),
        5,
        "4 pupils and a teacher"
    );
    assert_eq!(snapshot.workgroups.len(), 1);
    let musik = &snapshot.workgroups[0];
    assert_eq!(
        (musik.name.as_str(), musik.kind),
        ("musik", GroupKind::Workgroup)
    );
    let max = person(&snapshot, "max.multi").external_id;
    assert_eq!(musik.member_external_ids.len(), 2);
    assert!(musik.member_external_ids.contains(&max));
}

#[tokio::test]
async fn plans_over_ldap_snapshots_add_everyone_then_track_the_changes() {
    let fixture = Fixtures::edge_cases();
    let slapd = Slapd::builder().ldif(&fixture.ldif).start();
    let settings = slapd.settings();
    let first = read_snapshot(&settings).await.expect("first read");

    let initial =
        plan_sync(&KnownDirectory::default(), &first, &SyncPolicy::default()).expect("plan");
    assert_eq!(initial.people_added.len(), 17);
    assert_eq!(initial.schools_added.len(), 3);
    assert_eq!(initial.groups_added.len(), 5);
    assert_eq!(initial.report().added, 17);

    slapd.modify(&fixture.changes);
    let second = read_snapshot(&settings).await.expect("second read");
    assert!(
        second.complete && second.problems.is_empty(),
        "{:?}",
        second.problems
    );

    let mut known = KnownDirectory::from_snapshot(&first);
    let jonas = person(&first, "jonas.leaver").external_id;
    known
        .people
        .iter_mut()
        .filter(|p| p.external_id == jonas)
        .for_each(|p| p.has_open_loan = true);
    let plan = plan_sync(&known, &second, &SyncPolicy::default()).expect("plan");
    assert_edge_changes(&first, &plan);
}

/// What the edge-case `changes` must look like in a plan, whichever way
/// they were read.
fn assert_edge_changes(first: &DirectorySnapshot, plan: &SyncPlan) {
    let id = |username: &str| person(first, username).external_id;

    assert!(plan.people_added.is_empty(), "{:?}", plan.people_added);
    assert_eq!(plan.people_departed, vec![id("jonas.leaver")]);
    assert_eq!(
        plan.loan_alerts,
        vec![LoanAlert {
            external_id: id("jonas.leaver"),
            username: "jonas.leaver".to_owned(),
            reason: LoanAlertReason::Departed,
        }]
    );
    assert_eq!(plan.people_disabled, vec![id("frieda.future")]);
    assert_eq!(plan.people_reenabled, vec![id("ben.schulz")]);

    let changed = |username: &str| {
        plan.people_changed
            .iter()
            .find(|c| c.person.external_id == id(username))
            .unwrap_or_else(|| panic!("{username} not changed: {:?}", plan.people_changed))
    };
    assert_eq!(
        changed("hanna.mover").fields,
        vec![
            PersonField::SchoolRoles {
                added: vec![role("gs2", Role::Pupil)],
                removed: vec![role("gym1", Role::Pupil)],
            },
            PersonField::Classes {
                added: vec![class("gs2", "4a")],
                removed: vec![class("gym1", "5a")],
            },
        ]
    );
    assert_eq!(
        changed("ida.rename").fields,
        vec![
            PersonField::Username {
                from: "ida.rename".to_owned(),
                to: "ida.neumann".to_owned()
            },
            PersonField::Name,
            PersonField::Mail,
            PersonField::Classes {
                added: vec![class("gym1", "6b")],
                removed: vec![class("gym1", "5b")],
            },
        ]
    );
    for classmate in ["carla.weber", "deniz.yilmaz"] {
        assert_eq!(
            changed(classmate).fields,
            vec![PersonField::Classes {
                added: vec![class("gym1", "6b")],
                removed: vec![class("gym1", "5b")],
            }]
        );
    }
    assert_eq!(plan.people_changed.len(), 4, "{:?}", plan.people_changed);

    assert_eq!(plan.groups_renamed.len(), 1);
    assert_eq!(
        (&plan.groups_renamed[0].from, &plan.groups_renamed[0].to),
        (&class("gym1", "5b"), &class("gym1", "6b"))
    );
    assert!(plan.groups_added.is_empty() && plan.groups_removed.is_empty());
    let mut memberships: Vec<(Vec<_>, Vec<_>)> = plan
        .memberships
        .iter()
        .map(|m| (m.added.clone(), m.removed.clone()))
        .collect();
    memberships.sort();
    let mut left_5a = vec![id("hanna.mover"), id("jonas.leaver")];
    left_5a.sort();
    assert_eq!(
        memberships,
        vec![(vec![], left_5a), (vec![id("hanna.mover")], vec![])]
    );
    let report = plan.report();
    assert_eq!(
        (
            report.added,
            report.changed,
            report.disabled,
            report.reenabled,
            report.departed
        ),
        (0, 4, 1, 1, 1)
    );
}

#[tokio::test]
async fn an_unmappable_entry_is_held_back_not_departed() {
    let slapd = edge_slapd(ContentSync::PresentPhase);
    let settings = slapd.settings();
    let first = read_snapshot(&settings).await.expect("read");
    let paul = person(&first, "paul.grund").external_id;

    slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nadd: uid\nuid: paul.grund2\n-\n",
        dn("paul.grund", "cn=schueler,cn=users", "gs2")
    ));
    let second = read_snapshot(&settings).await.expect("read");
    assert!(second.complete, "an id was read, so nothing is missing");
    assert_eq!(second.held_back, vec![paul]);
    assert!(
        second.problems[0].contains("uid has 2 values"),
        "{:?}",
        second.problems
    );

    let plan = plan_sync(
        &KnownDirectory::from_snapshot(&first),
        &second,
        &SyncPolicy::default(),
    )
    .expect("plan");
    assert!(plan.people_departed.is_empty());
    assert!(
        plan.memberships.is_empty(),
        "paul stays in 4a: {:?}",
        plan.memberships
    );
    assert_eq!(plan.report().errors, 1);
}

#[tokio::test]
async fn a_wrong_service_password_is_refused_as_a_configuration_error() {
    let slapd = Slapd::start();
    let mut settings = slapd.settings();
    settings.bind_password = "wrong".to_owned();
    let err = read_snapshot(&settings).await.unwrap_err();
    assert!(matches!(err, DirectoryError::ServiceBind { .. }), "{err}");
    assert!(err.to_string().contains("invalidCredentials"), "{err}");

    settings.bind_password = String::new();
    let err = read_snapshot(&settings).await.unwrap_err();
    assert!(
        matches!(err, DirectoryError::Config(_)),
        "an empty password is an anonymous bind: {err}"
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_fast() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let settings = LdapSettings::new(format!("ldap://127.0.0.1:{port}"), "cn=x", "pw", BASE_DN);
    let started = Instant::now();
    let err = read_snapshot(&settings).await.unwrap_err();
    assert!(matches!(err, DirectoryError::Connect { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// A server that accepts connections and, if `answer_binds`, answers every
/// bind with success, but never answers anything else.
pub(crate) async fn silent_server(answer_binds: bool) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = stream.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some((len, msg_id, op)) = ber_message(&buf) {
                        if answer_binds && op == 0x60 {
                            let mut body = vec![0x02, msg_id.len() as u8];
                            body.extend_from_slice(&msg_id);
                            // BindResponse: success, no matched DN, no message.
                            body.extend_from_slice(&[
                                0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
                            ]);
                            let mut reply = vec![0x30, body.len() as u8];
                            reply.extend(body);
                            if stream.write_all(&reply).await.is_err() {
                                return;
                            }
                        }
                        buf.drain(..len);
                    }
                }
            });
        }
    });
    port
}

/// Total length, message id bytes and operation tag of the first complete
/// LDAPMessage in `buf`.
fn ber_message(buf: &[u8]) -> Option<(usize, Vec<u8>, u8)> {
    if buf.len() < 2 || buf[0] != 0x30 {
        return None;
    }
    let (content_len, header) = if buf[1] < 0x80 {
        (buf[1] as usize, 2)
    } else {
        let n = (buf[1] & 0x7f) as usize;
        let bytes = buf.get(2..2 + n)?;
        (
            bytes.iter().fold(0usize, |acc, b| acc << 8 | *b as usize),
            2 + n,
        )
    };
    let total = header + content_len;
    if buf.len() < total || buf.get(header)? != &0x02 {
        return None;
    }
    let id_len = *buf.get(header + 1)? as usize;
    let msg_id = buf.get(header + 2..header + 2 + id_len)?.to_vec();
    let op = *buf.get(header + 2 + id_len)?;
    Some((total, msg_id, op))
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let port = silent_server(false).await;
    let mut settings = LdapSettings::new(format!("ldap://127.0.0.1:{port}"), "cn=x", "pw", BASE_DN);
    settings.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = read_snapshot(&settings).await.unwrap_err();
    assert!(
        matches!(&err, DirectoryError::Timeout { operation, .. } if operation.contains("bind")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_search_that_stalls_times_out_and_fails_the_read() {
    let port = silent_server(true).await;
    let mut settings = LdapSettings::new(format!("ldap://127.0.0.1:{port}"), "cn=x", "pw", BASE_DN);
    settings.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = read_snapshot(&settings).await.unwrap_err();
    assert!(
        matches!(&err, DirectoryError::Timeout { operation, .. } if operation == "the school search"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_referral_ends_the_read_instead_of_being_followed() {
    let slapd = Slapd::builder()
        .ldif(&Fixtures::edge_cases().ldif)
        .ldif(&format!(
            "dn: ou=bezirk-ost,{BASE_DN}\nobjectClass: referral\nobjectClass: extensibleObject\n\
             ou: bezirk-ost\nref: ldap://ldap.bezirk-ost.example/ou=bezirk-ost,{BASE_DN}\n"
        ))
        .start();
    let err = read_snapshot(&slapd.settings()).await.unwrap_err();
    let DirectoryError::Referral { refs, .. } = &err else {
        panic!("expected a referral error, got {err}");
    };
    assert!(
        refs.iter().any(|r| r.contains("ldap.bezirk-ost.example")),
        "{refs:?}"
    );
}

#[tokio::test]
async fn a_size_limit_fails_the_read() {
    let slapd = edge_slapd(ContentSync::PresentPhase);
    let mut settings = slapd.settings();
    settings.bind_dn = LIMITED_SERVICE_DN.to_owned();
    settings.bind_password = LIMITED_SERVICE_PASSWORD.to_owned();
    let err = read_snapshot(&settings).await.unwrap_err();
    assert!(matches!(err, DirectoryError::Ldap { rc: 4, .. }), "{err}");
    assert!(err.to_string().contains("sizeLimitExceeded"), "{err}");
}

#[tokio::test]
async fn logins_are_checked_against_the_directory() {
    let slapd = edge_slapd(ContentSync::PresentPhase);
    let settings = slapd.settings();
    let snapshot = read_snapshot(&settings).await.expect("read");

    let anna = authenticate(&settings, "Anna.Mueller", "pw-anna.mueller")
        .await
        .expect("anna logs in");
    assert_eq!(anna.username, "anna.mueller");
    assert_eq!(
        anna.external_id,
        person(&snapshot, "anna.mueller").external_id
    );
    assert_eq!(anna.dn, dn("anna.mueller", "cn=schueler,cn=users", "gym1"));

    for (username, password) in [
        ("anna.mueller", "wrong"),
        ("nobody", "pw-nobody"),
        ("anna.mueller", ""),
        ("", "pw-anna.mueller"),
        ("exam-anna.mueller", "pw-exam-anna.mueller"),
        ("anna.mueller)(uid=*", "pw-anna.mueller"),
    ] {
        let err = authenticate(&settings, username, password)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DirectoryError::InvalidCredentials),
            "{username}/{password}: {err}"
        );
    }
    let err = authenticate(&settings, "ben.schulz", "pw-ben.schulz")
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::AccountDisabled), "{err}");
    let tech = authenticate(&settings, "tech.nik", "pw-tech.nik")
        .await
        .expect("technician");
    assert_eq!(tech.dn, format!("uid=tech.nik,cn=users,{BASE_DN}"));
}

#[tokio::test]
async fn technician_group_membership_is_checked() {
    let slapd = edge_slapd(ContentSync::PresentPhase);
    let settings = slapd.settings();
    let tech = format!("uid=tech.nik,cn=users,{BASE_DN}");
    let lena = dn("lena.lehrer", "cn=lehrer,cn=users", "gym1");
    let anna = dn("anna.mueller", "cn=schueler,cn=users", "gym1");
    assert!(
        is_member_of(&settings, &tech, TECHNICIAN_GROUP_DN)
            .await
            .expect("check")
    );
    assert!(is_technician(&settings, &lena).await.expect("check"));
    assert!(!is_technician(&settings, &anna).await.expect("check"));

    let err = is_member_of(&settings, &tech, &format!("cn=nope,cn=groups,{BASE_DN}"))
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Config(_)), "{err}");
    let mut unconfigured = settings.clone();
    unconfigured.technician_group_dn = None;
    assert!(!is_technician(&unconfigured, &tech).await.expect("check"));
}

#[tokio::test]
async fn the_staff_authenticator_port_signs_in_against_the_directory() {
    let slapd = edge_slapd(ContentSync::PresentPhase);
    let port = LdapAuthenticator::new(slapd.settings());
    let tech = port
        .authenticate("tech.nik", "pw-tech.nik")
        .await
        .expect("tech");
    assert!(tech.is_technician);
    assert_eq!(tech.person_id, None);
    let lena = port
        .authenticate("lena.lehrer", "pw-lena.lehrer")
        .await
        .expect("lena");
    assert!(lena.is_technician);
    let anna = port
        .authenticate("anna.mueller", "pw-anna.mueller")
        .await
        .expect("anna");
    assert!(!anna.is_technician);
    assert_eq!(anna.username, "anna.mueller");
    for (username, password) in [("anna.mueller", "nope"), ("ben.schulz", "pw-ben.schulz")] {
        assert_eq!(
            port.authenticate(username, password).await,
            Err(AuthError::InvalidCredentials),
            "{username}"
        );
    }
    let mut down = slapd.settings();
    down.bind_password = "wrong".to_owned();
    let err = LdapAuthenticator::new(down)
        .authenticate("anna.mueller", "pw-anna.mueller")
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Unavailable(_)), "{err}");
}

/// Reads everything, applies the edge-case changes, reads the changes and
/// plans over `known + changes`; returns the first full snapshot, the
/// batch and the plan.
async fn incremental_round(
    mode: ContentSync,
) -> (DirectorySnapshot, flotte_directory::ChangeBatch, SyncPlan) {
    let fixture = Fixtures::edge_cases();
    let slapd = Slapd::builder()
        .ldif(&fixture.ldif)
        .content_sync(mode)
        .start();
    let settings = slapd.settings();
    assert_eq!(
        supports_content_sync(&settings).await.expect("root DSE"),
        mode != ContentSync::Off
    );

    let first = read_snapshot(&settings).await.expect("full read");
    let initial = read_changes_since(&settings, None)
        .await
        .expect("initial changes");
    assert_eq!(initial.changes.people.len(), 17);
    assert!(matches!(initial.changes.deletions, Deletions::AllExcept(_)));
    // group_dns only come from full reads; everything else must agree.
    let without_group_dns = |people: &[DirPerson]| {
        people
            .iter()
            .cloned()
            .map(|p| DirPerson {
                group_dns: Vec::new(),
                ..p
            })
            .collect::<Vec<_>>()
    };
    let from_changes = KnownDirectory::default().with_changes(&initial.changes);
    assert_eq!(
        without_group_dns(&from_changes.people),
        without_group_dns(&first.people),
        "an initial load equals a full read"
    );

    let idle = read_changes_since(&settings, Some(&initial.cookie))
        .await
        .expect("idle");
    let idle_plan = plan_sync(
        &KnownDirectory::from_snapshot(&first),
        &KnownDirectory::from_snapshot(&first).with_changes(&idle.changes),
        &SyncPolicy::default(),
    )
    .expect("idle plan");
    assert!(idle_plan.is_empty(), "nothing changed: {idle_plan:?}");

    slapd.modify(&fixture.changes);
    let cookie: ChangeCookie = initial
        .cookie
        .to_string()
        .parse()
        .expect("cookie round trip");
    let batch = read_changes_since(&settings, Some(&cookie))
        .await
        .expect("changes");

    let mut known = KnownDirectory::from_snapshot(&first);
    let jonas = person(&first, "jonas.leaver").external_id;
    for p in known.people.iter_mut().filter(|p| p.external_id == jonas) {
        p.has_open_loan = true;
    }
    let merged = known.with_changes(&batch.changes);
    let plan = plan_sync(&known, &merged, &SyncPolicy::default()).expect("plan");
    (first, batch, plan)
}

fn changed_usernames(batch: &flotte_directory::ChangeBatch) -> BTreeSet<String> {
    batch
        .changes
        .people
        .iter()
        .map(|p| p.username.clone())
        .collect()
}

#[tokio::test]
async fn content_sync_with_a_present_phase_sees_changes_and_deletions() {
    let (first, batch, plan) = incremental_round(ContentSync::PresentPhase).await;
    assert_eq!(batch.method, ChangeMethod::ContentSync);
    assert!(matches!(batch.cookie, ChangeCookie::ContentSync(_)));
    assert_eq!(
        changed_usernames(&batch),
        ["ben.schulz", "frieda.future", "hanna.mover", "ida.neumann"]
            .map(str::to_owned)
            .into()
    );
    let Deletions::AllExcept(present) = &batch.changes.deletions else {
        panic!("expected a present set, got {:?}", batch.changes.deletions);
    };
    assert!(!present.contains(&person(&first, "jonas.leaver").external_id));
    assert!(present.contains(&person(&first, "anna.mueller").external_id));
    assert_edge_changes(&first, &plan);
}

#[tokio::test]
async fn content_sync_with_a_session_log_lists_deletions() {
    let (first, batch, plan) = incremental_round(ContentSync::DeletePhase).await;
    assert_eq!(batch.method, ChangeMethod::ContentSync);
    assert_eq!(
        batch.changes.deletions,
        Deletions::Listed([person(&first, "jonas.leaver").external_id].into())
    );
    assert_edge_changes(&first, &plan);
}

#[tokio::test]
async fn without_content_sync_modify_timestamps_find_changes_but_not_deletions() {
    let (first, batch, plan) = incremental_round(ContentSync::Off).await;
    assert_eq!(batch.method, ChangeMethod::ModifyTimestamp);
    assert!(matches!(batch.cookie, ChangeCookie::ModifyTimestamp(_)));
    assert_eq!(batch.changes.deletions, Deletions::Unknown);
    assert_eq!(
        changed_usernames(&batch),
        ["ben.schulz", "frieda.future", "hanna.mover", "ida.neumann"]
            .map(str::to_owned)
            .into()
    );
    // Deletions need the next full read; everything else is seen. Jonas is
    // still "there", but the class he was removed from says he left it.
    assert!(plan.people_departed.is_empty());
    let changed: BTreeSet<&str> = plan
        .people_changed
        .iter()
        .map(|c| c.person.username.as_str())
        .collect();
    assert_eq!(
        changed,
        [
            "carla.weber",
            "deniz.yilmaz",
            "hanna.mover",
            "ida.neumann",
            "jonas.leaver"
        ]
        .into()
    );
    assert_eq!(
        plan.people_disabled,
        vec![person(&first, "frieda.future").external_id]
    );
    assert_eq!(plan.groups_renamed.len(), 1);
}

#[tokio::test]
async fn a_content_sync_cookie_is_refused_by_a_server_without_it() {
    let slapd = edge_slapd(ContentSync::Off);
    let err = read_changes_since(
        &slapd.settings(),
        Some(&ChangeCookie::ContentSync(b"rid=000".to_vec())),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DirectoryError::Cookie(_)), "{err}");
}

#[tokio::test]
async fn tls_trusts_the_configured_ca_only() {
    let slapd = Slapd::builder()
        .ldif(&Fixtures::edge_cases().ldif)
        .tls()
        .start();
    let ca = slapd.ca_pem().expect("CA").to_owned();

    let mut starttls = slapd.settings();
    starttls.starttls = true;
    starttls.ca_cert_pem = Some(ca.clone());
    let snapshot = read_snapshot(&starttls).await.expect("StartTLS read");
    assert_eq!(snapshot.people.len(), 17);

    let mut ldaps = slapd.settings();
    ldaps.url = slapd.ldaps_url().expect("ldaps url");
    ldaps.ca_cert_pem = Some(ca);
    let anna = authenticate(&ldaps, "anna.mueller", "pw-anna.mueller").await;
    assert!(anna.is_ok(), "{anna:?}");

    let stranger = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("foreign CA")
        .cert
        .pem();
    ldaps.ca_cert_pem = Some(stranger);
    let err = read_snapshot(&ldaps).await.unwrap_err();
    assert!(matches!(err, DirectoryError::Connect { .. }), "{err}");

    ldaps.ca_cert_pem = Some("not a certificate".to_owned());
    let err = read_snapshot(&ldaps).await.unwrap_err();
    assert!(matches!(err, DirectoryError::Config(_)), "{err}");
}

/// The city-sized directory: 57 schools, 30,000 pupils, 3,000 teachers,
/// about 1,100 classes. About 5 s in a debug build (timings on stderr with
/// `--nocapture`).
#[tokio::test]
async fn a_city_sized_directory_reads_completely() {
    let spec = CitySpec::luebeck();
    let generated = Instant::now();
    let city = Fixtures::city(&spec);
    let generate = generated.elapsed();
    let slapd = Slapd::builder()
        .ldif(&city.ldif)
        .content_sync(ContentSync::Off)
        .start();
    let mut settings = slapd.settings();
    settings.page_size = 1000;
    settings.timeout = Duration::from_secs(30);
    settings.technician_group_dn = None;

    let read = Instant::now();
    let snapshot = read_snapshot(&settings).await.expect("city read");
    let read = read.elapsed();
    let planned = Instant::now();
    let plan = plan_sync(
        &KnownDirectory::default(),
        &snapshot,
        &SyncPolicy::default(),
    )
    .expect("plan");
    let planned = planned.elapsed();
    let timings = slapd.timings();
    eprintln!(
        "city: {} entries, generate {generate:?}, slapadd {:?}, slapd start {:?}, full read {read:?}, plan {planned:?}",
        timings.entries, timings.load, timings.start
    );

    assert!(
        snapshot.complete && snapshot.problems.is_empty(),
        "{:?}",
        &snapshot.problems[..3.min(snapshot.problems.len())]
    );
    assert_eq!(snapshot.schools.len(), spec.schools);
    assert_eq!(snapshot.people.len(), spec.pupils + spec.teachers);
    assert_eq!(snapshot.classes.len(), city.classes);
    assert_eq!(
        snapshot.people.iter().filter(|p| p.disabled).count(),
        city.disabled
    );
    assert_eq!(plan.people_added.len(), spec.pupils + spec.teachers);
}

#[tokio::test]
async fn the_edge_case_server_is_up_in_well_under_a_few_seconds() {
    let slapd = edge_slapd(ContentSync::PresentPhase);
    let timings = slapd.timings();
    eprintln!(
        "edge cases: {} entries, slapadd {:?}, slapd start {:?}",
        timings.entries, timings.load, timings.start
    );
    assert!(
        timings.load + timings.start < Duration::from_secs(2),
        "{timings:?}"
    );
    assert!(read_snapshot(&slapd.settings()).await.is_ok());
}
