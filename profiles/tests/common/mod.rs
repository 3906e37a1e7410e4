//! Fixtures and helpers shared by the profile tests.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::path::{Path, PathBuf};

use flotte_core::device::Platform;
use flotte_profiles::apple::{
    AppRating, InnerAuthentication, LockScreenMessage, MailAccount, MailAccountType,
    MailAuthentication, MailServer, MdmEnrollment, MdmServerCapability, Pkcs12Identity, Profile,
    ProfileNamespace, Restrictions, RootCertificate, Scep, ScepSubjectAltName, ServerTrust,
    WebClip, Wifi, WifiEncryption, WifiSecurity,
};
use flotte_profiles::template::{
    DeviceVars, IssuedIdentity, PersonVars, ProfileTemplate, RenderContext, RenderedOutput,
    SchoolVars,
};
use flotte_profiles::windows::{SyncMlCommand, render_commands};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};
use uuid::Uuid;

pub const ORG: &str = "Schulträger Musterstadt";

pub fn namespace() -> ProfileNamespace {
    ProfileNamespace::from_uuid(Uuid::from_u128(0x6f1c_2a9e_5b3d_4c71_8e0f_a1b2_c3d4_e5f6))
}

/// Stand-ins for a DER certificate and a PKCS#12 file: the builders carry bytes without
/// parsing them, so any bytes do.
pub fn radius_ca_der() -> Vec<u8> {
    b"0\x82\x01\x0a fake DER of the RADIUS root CA".to_vec()
}

pub fn pkcs12_bytes() -> Vec<u8> {
    b"0\x82\x02\x0b fake PKCS#12 of a device identity".to_vec()
}

pub fn png_icon() -> Vec<u8> {
    b"\x89PNG\r\n\x1a\n fake icon".to_vec()
}

pub fn eap_trust() -> ServerTrust {
    ServerTrust {
        anchor_certificates: vec!["radius-ca".to_owned()],
        server_names: vec!["radius.schule.example".to_owned()],
    }
}

pub fn root_certificate() -> RootCertificate {
    RootCertificate {
        der: radius_ca_der(),
        file_name: Some("radius-ca.cer".to_owned()),
    }
}

pub fn wifi_eap_tls_profile() -> Profile {
    Profile::new(
        namespace(),
        "de.musterstadt.wifi.schulnetz",
        "WLAN Schulnetz",
    )
    .organization(ORG)
    .description("Schulnetz mit Gerätezertifikat (EAP-TLS)")
    .removal_disallowed(true)
    .with_payload("radius-ca", root_certificate())
    .with_payload(
        "identity",
        Pkcs12Identity {
            pkcs12: pkcs12_bytes(),
            password: Some("einmalig".to_owned()),
            file_name: Some("device.p12".to_owned()),
        },
    )
    .with_payload(
        "wifi",
        Wifi {
            ssid: "Schulnetz".to_owned(),
            hidden_network: false,
            auto_join: true,
            security: WifiSecurity::EapTls {
                encryption: WifiEncryption::Wpa2,
                identity: "identity".to_owned(),
                user_name: None,
                trust: eap_trust(),
            },
        },
    )
}

pub fn wifi_peap_profile() -> Profile {
    Profile::new(
        namespace(),
        "de.musterstadt.wifi.lehrkraefte",
        "WLAN Lehrkräfte",
    )
    .organization(ORG)
    .with_payload("radius-ca", root_certificate())
    .with_payload(
        "wifi",
        Wifi {
            ssid: "Lehrkräfte".to_owned(),
            hidden_network: true,
            auto_join: true,
            security: WifiSecurity::Peap {
                encryption: WifiEncryption::Wpa3,
                user_name: Some("m.muster".to_owned()),
                password: None,
                outer_identity: Some("anonymous@schule.example".to_owned()),
                inner_authentication: Some(InnerAuthentication::Mschapv2),
                trust: eap_trust(),
            },
        },
    )
}

pub fn wifi_psk_profile() -> Profile {
    Profile::new(namespace(), "de.musterstadt.wifi.gaeste", "WLAN Gäste")
        .organization(ORG)
        .with_named_payload(
            "wifi",
            "Gäste & Besucher",
            Wifi {
                ssid: "Gäste & <Besucher>".to_owned(),
                hidden_network: false,
                auto_join: false,
                security: WifiSecurity::Personal {
                    encryption: WifiEncryption::Any,
                    password: "Sommer&Sonne<2025>".to_owned(),
                },
            },
        )
}

pub fn root_certificate_profile() -> Profile {
    Profile::new(namespace(), "de.musterstadt.cert.root", "Schul-CA")
        .organization(ORG)
        .with_payload("root", root_certificate())
}

pub fn pkcs12_profile() -> Profile {
    Profile::new(
        namespace(),
        "de.musterstadt.cert.identity",
        "Geräteidentität",
    )
    .organization(ORG)
    .with_payload(
        "identity",
        Pkcs12Identity {
            pkcs12: pkcs12_bytes(),
            password: Some("geheim".to_owned()),
            file_name: None,
        },
    )
}

pub fn scep() -> Scep {
    Scep {
        url: "https://mdm.schule.example/scep".to_owned(),
        name: Some("flotte".to_owned()),
        subject: vec![
            ("O".to_owned(), ORG.to_owned()),
            ("CN".to_owned(), "%SerialNumber%".to_owned()),
        ],
        challenge: Some("one-time-challenge".to_owned()),
        key_size: 2048,
        key_usage: Some(5),
        ca_fingerprint: Some(vec![0xa9, 0x99, 0x3e, 0x36]),
        retries: Some(3),
        retry_delay: Some(10),
        subject_alt_name: Some(ScepSubjectAltName {
            dns_name: Some("ipad.schule.example".to_owned()),
            ..ScepSubjectAltName::default()
        }),
    }
}

pub fn scep_profile() -> Profile {
    Profile::new(
        namespace(),
        "de.musterstadt.cert.scep",
        "Gerätezertifikat (SCEP)",
    )
    .organization(ORG)
    .with_payload("scep", scep())
}

pub fn web_clip_profile() -> Profile {
    Profile::new(
        namespace(),
        "de.musterstadt.webclip.vertretungsplan",
        "Vertretungsplan",
    )
    .organization(ORG)
    .with_payload(
        "clip",
        WebClip {
            url: "https://schule.example/plan?klasse=5a&tag=heute".to_owned(),
            label: "Vertretungsplan".to_owned(),
            is_removable: false,
            full_screen: true,
            icon: Some(png_icon()),
            precomposed: Some(true),
            ignore_manifest_scope: None,
        },
    )
}

pub fn all_restrictions() -> Restrictions {
    Restrictions {
        allow_camera: Some(true),
        allow_screen_shot: Some(true),
        allow_remote_screen_observation: Some(true),
        allow_app_installation: Some(false),
        allow_ui_app_installation: Some(false),
        allow_app_removal: Some(false),
        allow_in_app_purchases: Some(false),
        allow_explicit_content: Some(false),
        allow_bookstore_erotica: Some(false),
        allow_erase_content_and_settings: Some(false),
        force_automatic_date_and_time: Some(true),
        allow_account_modification: Some(false),
        allow_device_name_modification: Some(false),
        allow_passcode_modification: Some(true),
        allow_wallpaper_modification: Some(true),
        allow_safari: Some(true),
        allow_air_drop: Some(false),
        allow_game_center: Some(false),
        allow_multiplayer_gaming: Some(false),
        allow_adding_game_center_friends: Some(false),
        allow_assistant: Some(false),
        allow_cloud_backup: Some(false),
        allow_ui_configuration_profile_installation: Some(false),
        allow_enterprise_app_trust: Some(false),
        allow_vpn_creation: Some(false),
        allow_app_clips: Some(false),
        allow_enabling_restrictions: Some(false),
        allow_bluetooth_modification: Some(true),
        allow_diagnostic_submission: Some(false),
        force_wifi_to_allowed_networks_only: Some(false),
        force_wifi_power_on: Some(true),
        force_encrypted_backup: Some(true),
        force_classroom_automatically_join_classes: Some(true),
        force_classroom_unprompted_app_and_device_lock: Some(true),
        force_classroom_unprompted_screen_observation: Some(true),
        force_classroom_request_permission_to_leave_classes: Some(true),
        rating_apps: Some(AppRating::Age12),
        rating_region: Some("de".to_owned()),
    }
}

pub fn restrictions_profile() -> Profile {
    Profile::new(
        namespace(),
        "de.musterstadt.restrictions.schueler",
        "Einschränkungen Schüler",
    )
    .organization(ORG)
    .removal_disallowed(true)
    .with_payload("restrictions", all_restrictions())
}

pub fn mail_profile() -> Profile {
    Profile::new(
        namespace(),
        "de.musterstadt.mail.lehrkraft",
        "Dienstliche E-Mail",
    )
    .organization(ORG)
    .with_payload(
        "mail",
        MailAccount {
            account_type: MailAccountType::Imap,
            account_description: Some("Schulmail".to_owned()),
            account_name: Some("Maria Muster".to_owned()),
            email_address: Some("m.muster@schule.example".to_owned()),
            incoming: MailServer {
                host_name: "imap.schule.example".to_owned(),
                port: Some(993),
                use_ssl: true,
                username: Some("m.muster".to_owned()),
                authentication: MailAuthentication::Password,
                password: None,
            },
            outgoing: MailServer {
                host_name: "smtp.schule.example".to_owned(),
                port: Some(587),
                use_ssl: true,
                username: Some("m.muster".to_owned()),
                authentication: MailAuthentication::Password,
                password: None,
            },
            outgoing_password_same_as_incoming: Some(true),
            prevent_move: Some(true),
        },
    )
}

pub fn lock_screen_profile() -> Profile {
    Profile::new(namespace(), "de.musterstadt.lockscreen", "Sperrbildschirm")
        .organization(ORG)
        .with_payload(
            "lockscreen",
            LockScreenMessage {
                footnote: Some("Gefunden? Bitte im Sekretariat abgeben: 0123 456789".to_owned()),
                asset_tag: Some("INV-2025-0042".to_owned()),
            },
        )
}

pub fn enrollment_profile() -> Profile {
    Profile::new(namespace(), "de.musterstadt.mdm", "Geräteverwaltung")
        .organization(ORG)
        .description("Verwaltung der Schul-iPads")
        .with_payload("scep", scep())
        .with_payload(
            "mdm",
            MdmEnrollment {
                server_url: "https://mdm.schule.example/mdm/connect".to_owned(),
                check_in_url: Some("https://mdm.schule.example/mdm/checkin".to_owned()),
                topic: "com.apple.mgmt.External.6b1f0d2a-2f8e-4c1e-9d3a-0123456789ab".to_owned(),
                identity: "scep".to_owned(),
                sign_message: true,
                access_rights: MdmEnrollment::ALL_ACCESS_RIGHTS,
                check_out_when_removed: true,
                server_capabilities: vec![
                    MdmServerCapability::PerUserConnections,
                    MdmServerCapability::BootstrapToken,
                ],
                use_development_apns: None,
            },
        )
}

/// The example template of `testdata/templates`, which also documents the JSON form.
pub const SCHULNETZ_TEMPLATE: &str = include_str!("../../testdata/templates/schulnetz.json");

pub fn schulnetz_template() -> ProfileTemplate {
    serde_json::from_str(SCHULNETZ_TEMPLATE).unwrap()
}

/// A pupil's certificate, packed as PKCS#12 with `password`.
pub fn pupil_identity(pkcs12: &[u8], password: &str) -> IssuedIdentity {
    IssuedIdentity {
        certificate_der: b"0\x82 certificate of max.muster, serial 4711".to_vec(),
        pkcs12: pkcs12.to_vec(),
        password: password.to_owned(),
    }
}

/// Max Muster of the Gymnasium Am Markt, with his loaned device.
pub fn template_context(platform: Platform) -> RenderContext {
    RenderContext {
        platform,
        namespace: namespace(),
        person: Some(PersonVars {
            username: "max.muster".to_owned(),
            mail: Some("max.muster@gym1.schule.example".to_owned()),
            given_name: "Max".to_owned(),
            family_name: "Muster".to_owned(),
            external_id: Uuid::parse_str("5b0a1f7e-2c3d-4e5f-8a9b-0c1d2e3f4a5b").unwrap(),
            class: Some("5a".to_owned()),
        }),
        device: DeviceVars {
            serial_number: Some("DMPXK2ABCD12".to_owned()),
            udid: None,
            name: Some("iPad von Max".to_owned()),
            asset_tag: Some("0815".to_owned()),
            model: Some("iPad13,18".to_owned()),
        },
        school: Some(SchoolVars {
            name: "Gymnasium Am Markt".to_owned(),
            code: "gym1".to_owned(),
        }),
        root_ca_der: b"0\x82 Flotte root CA".to_vec(),
        person_identity: Some(pupil_identity(b"0 PKCS#12 packed once", "first")),
        device_identity: None,
    }
}

/// The example template rendered for both platforms, by golden file name.
pub fn template_golden_outputs() -> Vec<(String, Vec<u8>)> {
    let template = schulnetz_template();
    let apple = template.render(&template_context(Platform::Apple)).unwrap();
    let windows = template
        .render(&template_context(Platform::Windows))
        .unwrap();
    let RenderedOutput::Windows { removal, .. } = &windows.output else {
        panic!("expected a Windows rendering");
    };
    let xml = |commands: &[SyncMlCommand]| format!("{}\n", render_commands(commands)).into_bytes();
    vec![
        (
            "templates/schulnetz.mobileconfig".to_owned(),
            apple.apple_mobileconfig().unwrap().to_vec(),
        ),
        (
            "templates/schulnetz-windows.xml".to_owned(),
            xml(windows.windows_commands().unwrap()),
        ),
        (
            "templates/schulnetz-windows-removal.xml".to_owned(),
            xml(removal),
        ),
        (
            "templates/schulnetz.checksums".to_owned(),
            format!("apple {}\nwindows {}\n", apple.checksum, windows.checksum).into_bytes(),
        ),
    ]
}

/// Every Apple profile case, by golden file name.
pub fn apple_profiles() -> Vec<(&'static str, Profile)> {
    vec![
        ("wifi-eap-tls", wifi_eap_tls_profile()),
        ("wifi-peap", wifi_peap_profile()),
        ("wifi-psk", wifi_psk_profile()),
        ("root-certificate", root_certificate_profile()),
        ("pkcs12-identity", pkcs12_profile()),
        ("scep", scep_profile()),
        ("web-clip", web_clip_profile()),
        ("restrictions", restrictions_profile()),
        ("mail", mail_profile()),
        ("lock-screen-message", lock_screen_profile()),
        ("mdm-enrollment", enrollment_profile()),
    ]
}

/// Compares `actual` with `testdata/golden/<name>`, or rewrites the file when the environment
/// has `UPDATE_GOLDEN=1`. Returns a description of the mismatch instead of panicking, so a
/// test can report every stale file at once.
pub fn check_golden(name: &str, actual: &[u8]) -> Result<(), String> {
    let path = golden_dir().join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|value| value == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return Ok(());
    }
    let expected = std::fs::read(&path).map_err(|error| {
        format!(
            "{name}: cannot read {} ({error}); run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    })?;
    if expected == actual {
        return Ok(());
    }
    let expected = String::from_utf8_lossy(&expected);
    let actual = String::from_utf8_lossy(actual);
    let line = expected
        .lines()
        .zip(actual.lines())
        .position(|(e, a)| e != a)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    Err(format!(
        "{name} differs from its golden file at line {}:\n  golden: {:?}\n  actual: {:?}\n(run with UPDATE_GOLDEN=1 after checking the change)",
        line + 1,
        expected.lines().nth(line).unwrap_or("<end of file>"),
        actual.lines().nth(line).unwrap_or("<end of file>"),
    ))
}

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden")
}

/// A parsed XML element, with entity references resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn child(&self, name: &str) -> &Element {
        self.children
            .iter()
            .find(|child| child.name == name)
            .unwrap_or_else(|| panic!("<{}> has no <{name}>", self.name))
    }

    /// Follows a path of child names.
    pub fn path(&self, names: &[&str]) -> &Element {
        names.iter().fold(self, |element, name| element.child(name))
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Parses XML (a document or a sequence of top-level elements) with quick-xml, the way a
/// device's parser would, and returns the top-level elements.
pub fn parse_xml(xml: &str) -> Vec<Element> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = vec![Element {
        name: String::new(),
        attributes: Vec::new(),
        children: Vec::new(),
        text: String::new(),
    }];
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(start) => stack.push(Element {
                name: start.name().into_inner().to_owned(),
                attributes: start
                    .attributes()
                    .map(|attribute| {
                        let attribute = attribute.unwrap();
                        (
                            attribute.key.into_inner().to_owned(),
                            attribute
                                .normalized_value(XmlVersion::Implicit1_0)
                                .unwrap()
                                .into_owned(),
                        )
                    })
                    .collect(),
                children: Vec::new(),
                text: String::new(),
            }),
            Event::Empty(empty) => {
                let element = Element {
                    name: empty.name().into_inner().to_owned(),
                    attributes: Vec::new(),
                    children: Vec::new(),
                    text: String::new(),
                };
                stack.last_mut().unwrap().children.push(element);
            }
            Event::End(_) => {
                let element = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(element);
            }
            Event::Text(text) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&text.xml10_content()),
            Event::CData(data) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&data.xml10_content()),
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().unwrap() {
                    Some(character) => character.to_string(),
                    None => resolve_predefined_entity(&reference)
                        .unwrap_or_else(|| panic!("unknown entity &{};", &*reference))
                        .to_owned(),
                };
                stack.last_mut().unwrap().text.push_str(&resolved);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let root = stack.pop().unwrap();
    root.children
}

/// Parses a single XML document and returns its root element.
pub fn parse_document(xml: &str) -> Element {
    let mut elements = parse_xml(xml);
    assert_eq!(elements.len(), 1, "expected one root element");
    elements.remove(0)
}
