//! Profile templates: save-time validation, per-device rendering and the checksum. The golden
//! renderings of the example template (`testdata/templates/schulnetz.json`) are checked with
//! all other golden files in `golden.rs`.

mod common;

use std::collections::BTreeSet;

use common::{parse_document, parse_xml, pupil_identity};
use flotte_core::assignment::profile_version_uuid;
use flotte_core::device::Platform;
use flotte_profiles::apple::ProfileNamespace;
use flotte_profiles::template::{
    IdentityKind, IssuedIdentity, ProfileTemplate, RenderContext, RenderedOutput, RenderedProfile,
    SchoolVars, TemplateError, Variable,
};
use flotte_profiles::windows::{SequentialCmdIds, Thumbprint};
use plist::Value;
use serde_json::json;

const SCHULNETZ: &str = common::SCHULNETZ_TEMPLATE;

fn schulnetz() -> ProfileTemplate {
    common::schulnetz_template()
}

fn from_json(value: serde_json::Value) -> ProfileTemplate {
    serde_json::from_value(value).unwrap()
}

/// A small template around one payload.
fn with_payloads(platforms: &str, payloads: serde_json::Value) -> ProfileTemplate {
    from_json(json!({
        "identifier": "de.flotte.test",
        "display_name": "Test",
        "platforms": platforms,
        "payloads": payloads,
    }))
}

fn context(platform: Platform) -> RenderContext {
    common::template_context(platform)
}

/// Every `<Item>` of the rendered commands, including those inside an `<Atomic>`.
fn items(xml: &str) -> Vec<common::Element> {
    fn collect(element: &common::Element, out: &mut Vec<common::Element>) {
        for child in &element.children {
            if child.name == "Item" {
                out.push(child.clone());
            } else if child.name != "CmdID" {
                collect(child, out);
            }
        }
    }
    let mut out = Vec::new();
    for command in parse_xml(xml) {
        collect(&command, &mut out);
    }
    out
}

fn mobileconfig(rendered: &RenderedProfile) -> plist::Dictionary {
    plist::from_bytes(rendered.apple_mobileconfig().expect("an Apple rendering")).unwrap()
}

fn payload_content(profile: &plist::Dictionary) -> Vec<plist::Dictionary> {
    profile["PayloadContent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|payload| payload.as_dictionary().unwrap().clone())
        .collect()
}

fn payload_of_type(profile: &plist::Dictionary, payload_type: &str) -> plist::Dictionary {
    payload_content(profile)
        .into_iter()
        .find(|payload| payload["PayloadType"].as_string() == Some(payload_type))
        .unwrap_or_else(|| panic!("no {payload_type} payload"))
}

// ---------------------------------------------------------------------------------------------
// Save-time validation

#[test]
fn the_example_template_is_valid_and_round_trips_through_json() {
    let template = schulnetz();
    template.validate().unwrap();
    let json = serde_json::to_string(&template).unwrap();
    assert_eq!(
        serde_json::from_str::<ProfileTemplate>(&json).unwrap(),
        template
    );
}

#[test]
fn an_unknown_variable_is_rejected_with_its_name_and_path() {
    let mut value: serde_json::Value = serde_json::from_str(SCHULNETZ).unwrap();
    value["payloads"][0]["payload"]["security"]["user_name"] = json!("{{person.email}}");
    let error = from_json(value).validate().unwrap_err();
    assert_eq!(
        error,
        TemplateError::UnknownVariable {
            name: "person.email".to_owned(),
            path: "payloads[0].payload.security.user_name".to_owned(),
        }
    );
    let message = error.to_string();
    assert!(message.contains("person.email"), "{message}");
    assert!(
        message.contains("person.mail"),
        "lists the known names: {message}"
    );
}

#[test]
fn unknown_variables_are_found_in_fields_the_platform_does_not_render() {
    // `windows_title` is not rendered for Apple, yet an Apple-only template must not keep a
    // typo there either.
    let template = with_payloads(
        "apple",
        json!([{"key": "notice", "payload": {
            "type": "lock-screen", "footnote": "Schule", "windows_title": "{{school.nmae}}"
        }}]),
    );
    assert_eq!(
        template.validate().unwrap_err(),
        TemplateError::UnknownVariable {
            name: "school.nmae".to_owned(),
            path: "payloads[0].payload.windows_title".to_owned(),
        }
    );
}

#[test]
fn a_malformed_placeholder_is_rejected_with_its_path_and_offset() {
    let template = with_payloads(
        "apple",
        json!([{"key": "notice", "payload": {
            "type": "lock-screen", "footnote": "Eigentum {school.name}}"
        }}]),
    );
    match template.validate().unwrap_err() {
        TemplateError::MalformedPlaceholder { path, offset, .. } => {
            assert_eq!(path, "payloads[0].payload.footnote");
            assert_eq!(offset, 21);
        }
        other => panic!("expected a malformed placeholder, got {other:?}"),
    }
    let unclosed = from_json(json!({
        "identifier": "de.flotte.test",
        "display_name": "WLAN {{school.name",
        "platforms": "apple",
        "payloads": [{"key": "n", "payload": {"type": "lock-screen", "footnote": "x"}}],
    }));
    assert!(matches!(
        unclosed.validate().unwrap_err(),
        TemplateError::MalformedPlaceholder { path, .. } if path == "display_name"
    ));
}

#[test]
fn invalid_payload_values_are_rejected_at_save() {
    // The pre-shared key is too short: the Apple and Windows builders' own checks run at save.
    for platforms in ["apple", "windows"] {
        let template = with_payloads(
            platforms,
            json!([{"key": "guests", "payload": {
                "type": "wifi", "ssid": "Gäste",
                "security": {"mode": "psk", "password": "short"}
            }}]),
        );
        let error = template.validate().unwrap_err();
        assert!(
            matches!(
                error,
                TemplateError::Apple(_) | TemplateError::Windows { .. }
            ),
            "{platforms}: {error:?}"
        );
        assert!(error.to_string().contains("8 to 63"), "{error}");
    }
}

#[test]
fn certificate_references_must_exist_and_have_the_right_type() {
    let missing_identity = with_payloads(
        "both",
        json!([
            {"key": "ca", "payload": {"type": "root-ca", "ca": "flotte-root"}},
            {"key": "wifi", "payload": {"type": "wifi", "ssid": "Schulnetz", "security": {
                "mode": "eap-tls", "identity": "pupil",
                "trust": {"root_cas": ["ca"], "server_names": ["radius.example"]}
            }}}
        ]),
    );
    assert_eq!(
        missing_identity.validate().unwrap_err(),
        TemplateError::UnknownReference {
            path: "payloads[1].payload.security.identity".to_owned(),
            key: "pupil".to_owned(),
            expected: "client-identity",
        }
    );

    let anchor_is_not_a_ca = with_payloads(
        "apple",
        json!([
            {"key": "pupil", "payload": {"type": "client-identity", "certificate": "per-person"}},
            {"key": "wifi", "payload": {"type": "wifi", "ssid": "Schulnetz", "security": {
                "mode": "eap-tls", "identity": "pupil",
                "trust": {"root_cas": ["pupil"], "server_names": ["radius.example"]}
            }}}
        ]),
    );
    assert!(matches!(
        anchor_is_not_a_ca.validate().unwrap_err(),
        TemplateError::UnknownReference { expected: "root-ca", path, .. }
            if path == "payloads[1].payload.security.trust.root_cas[0]"
    ));

    let no_trust = with_payloads(
        "apple",
        json!([{"key": "wifi", "payload": {"type": "wifi", "ssid": "Schulnetz", "security": {
            "mode": "peap", "trust": {"root_cas": [], "server_names": ["radius.example"]}
        }}}]),
    );
    assert!(matches!(
        no_trust.validate().unwrap_err(),
        TemplateError::Invalid { path, .. } if path == "payloads[0].payload.security.trust.root_cas"
    ));
}

#[test]
fn inline_certificates_must_be_one_pem_certificate() {
    let pem = |text: &str| {
        with_payloads(
            "apple",
            json!([{"key": "ca", "payload": {"type": "root-ca", "ca": {"pem": text}}}]),
        )
    };
    for bad in [
        "MIIBCg==",
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----\nMIIBCg==\n-----END CERTIFICATE-----\n\
         -----BEGIN CERTIFICATE-----\nMIIBCg==\n-----END CERTIFICATE-----",
    ] {
        assert!(
            matches!(
                pem(bad).validate().unwrap_err(),
                TemplateError::Invalid { path, .. } if path == "payloads[0].payload.ca.pem"
            ),
            "{bad:?}"
        );
    }
    pem("-----BEGIN CERTIFICATE-----\nMIIBCg==\n-----END CERTIFICATE-----")
        .validate()
        .unwrap();
}

#[test]
fn apple_only_payloads_are_refused_for_windows() {
    let clip = json!({"key": "clip", "payload": {
        "type": "web-clip", "url": "https://lernplattform.example", "label": "Lernen"
    }});
    assert!(matches!(
        with_payloads("both", json!([clip])).validate().unwrap_err(),
        TemplateError::Unsupported { platform: Platform::Windows, path, .. } if path == "payloads[0].payload"
    ));
    with_payloads("apple", json!([clip])).validate().unwrap();

    let wpa3 = json!([{"key": "wifi", "payload": {"type": "wifi", "ssid": "Neu", "security": {
        "mode": "psk", "encryption": "wpa3", "password": "lang genug"
    }}}]);
    assert!(matches!(
        with_payloads("windows", wpa3.clone())
            .validate()
            .unwrap_err(),
        TemplateError::Unsupported {
            platform: Platform::Windows,
            ..
        }
    ));
    with_payloads("apple", wpa3).validate().unwrap();

    let restrictions = json!([{"key": "r", "payload": {
        "type": "restrictions", "apple": {"allow_camera": false}
    }}]);
    assert!(matches!(
        with_payloads("both", restrictions).validate().unwrap_err(),
        TemplateError::Invalid { path, .. } if path == "payloads[0].payload.windows"
    ));
}

#[test]
fn a_device_name_alone_cannot_be_tracked_on_apple_devices() {
    let name =
        json!([{"key": "name", "payload": {"type": "device-name", "name": "{{device.serial}}"}}]);
    assert!(matches!(
        with_payloads("apple", name.clone()).validate().unwrap_err(),
        TemplateError::Invalid { path, .. } if path == "payloads"
    ));
    with_payloads("windows", name).validate().unwrap();
}

#[test]
fn keys_must_be_unique_and_singletons_single() {
    let duplicate = with_payloads(
        "apple",
        json!([
            {"key": "ca", "payload": {"type": "root-ca", "ca": "flotte-root"}},
            {"key": "ca", "payload": {"type": "lock-screen", "footnote": "x"}}
        ]),
    );
    assert!(matches!(
        duplicate.validate().unwrap_err(),
        TemplateError::Invalid { path, .. } if path == "payloads[1].key"
    ));
    let two_names = with_payloads(
        "windows",
        json!([
            {"key": "a", "payload": {"type": "device-name", "name": "a"}},
            {"key": "b", "payload": {"type": "device-name", "name": "b"}}
        ]),
    );
    assert!(two_names.validate().is_err());
    let bad_identifier = from_json(json!({
        "identifier": "de.flotte.{{school.code}}",
        "display_name": "x",
        "platforms": "apple",
        "payloads": [{"key": "n", "payload": {"type": "lock-screen", "footnote": "x"}}],
    }));
    assert!(matches!(
        bad_identifier.validate().unwrap_err(),
        TemplateError::Invalid { path, .. } if path == "identifier"
    ));
}

#[test]
fn misspelt_fields_are_refused_when_the_json_is_read() {
    let mut value: serde_json::Value = serde_json::from_str(SCHULNETZ).unwrap();
    value["payloads"][5]["payload"]["apple"]["allow_airdrop"] = json!(false);
    let error = serde_json::from_value::<ProfileTemplate>(value).unwrap_err();
    assert!(error.to_string().contains("allow_airdrop"), "{error}");

    let mut value: serde_json::Value = serde_json::from_str(SCHULNETZ).unwrap();
    value["payloads"][0]["payload"]["ssdi"] = json!("x");
    let error = serde_json::from_value::<ProfileTemplate>(value).unwrap_err();
    assert!(error.to_string().contains("ssdi"), "{error}");

    let mut value: serde_json::Value = serde_json::from_str(SCHULNETZ).unwrap();
    value["payloads"][0]["payload"]["security"]["password"] = json!("x");
    let error = serde_json::from_value::<ProfileTemplate>(value).unwrap_err();
    assert!(error.to_string().contains("password"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// What a template needs

#[test]
fn the_caller_learns_which_variables_and_certificates_a_template_needs() {
    let template = schulnetz();
    assert_eq!(
        template.template_variables_used(),
        BTreeSet::from([
            Variable::PersonMail,
            Variable::PersonGivenName,
            Variable::PersonFamilyName,
            Variable::DeviceAssetTag,
            Variable::SchoolName,
            Variable::SchoolCode,
        ])
    );
    assert_eq!(
        template.required_identities(),
        BTreeSet::from([IdentityKind::PerPerson])
    );
    assert!(template.needs_person());

    let device_only = with_payloads(
        "windows",
        json!([
            {"key": "device", "payload": {"type": "client-identity", "certificate": "per-device"}},
            {"key": "name", "payload": {"type": "device-name", "name": "{{school.code}}-{{device.serial}}"}}
        ]),
    );
    assert!(!device_only.needs_person());
    assert_eq!(
        device_only.required_identities(),
        BTreeSet::from([IdentityKind::PerDevice])
    );
}

// ---------------------------------------------------------------------------------------------
// Rendering

#[test]
fn the_ssid_resolves_per_school_on_both_platforms() {
    let template = schulnetz();
    let apple = template.render(&context(Platform::Apple)).unwrap();
    let profile = mobileconfig(&apple);
    let wifi = payload_of_type(&profile, "com.apple.wifi.managed");
    assert_eq!(wifi["SSID_STR"].as_string(), Some("Schule-gym1"));
    assert_eq!(
        wifi["PayloadDisplayName"].as_string(),
        Some("WLAN Schule-gym1")
    );
    let eap = wifi["EAPClientConfiguration"].as_dictionary().unwrap();
    assert_eq!(
        eap["UserName"].as_string(),
        Some("max.muster@gym1.schule.example")
    );
    assert_eq!(
        eap["TLSTrustedServerNames"].as_array().unwrap()[0].as_string(),
        Some("radius.gym1.schule.example")
    );
    assert_eq!(
        profile["PayloadDisplayName"].as_string(),
        Some("WLAN Gymnasium Am Markt")
    );

    let other_school = RenderContext {
        school: Some(SchoolVars {
            name: "Grundschule Süd".to_owned(),
            code: "gs2".to_owned(),
        }),
        ..context(Platform::Windows)
    };
    let windows = template.render(&other_school).unwrap();
    let xml = windows.windows_xml().unwrap();
    let wifi_item = items(&xml)
        .into_iter()
        .find(|item| item.path(&["Target", "LocURI"]).text.contains("/WiFi/"))
        .expect("a WiFi CSP item");
    assert_eq!(
        wifi_item.path(&["Target", "LocURI"]).text,
        "./Device/Vendor/MSFT/WiFi/Profile/Schule-gs2/WlanXml"
    );
    let wlan = parse_document(&wifi_item.child("Data").text);
    assert_eq!(wlan.child("name").text, "Schule-gs2");
}

#[test]
fn resolved_values_are_xml_escaped_for_windows() {
    let template = schulnetz();
    let mut ctx = context(Platform::Windows);
    let person = ctx.person.as_mut().unwrap();
    person.given_name = "Lena & Tom".to_owned();
    person.family_name = "<Müller> \"Söhne\"".to_owned();
    let rendered = template.render(&ctx).unwrap();
    let xml = rendered.windows_xml().unwrap();
    assert!(xml.contains("Lena &amp; Tom &lt;Müller&gt;"), "{xml}");
    assert!(!xml.contains("<Müller>"));

    let notice = items(&xml)
        .into_iter()
        .find(|item| {
            item.path(&["Target", "LocURI"])
                .text
                .ends_with("InteractiveLogon_MessageTextForUsersAttemptingToLogOn")
        })
        .expect("the sign-in notice");
    assert_eq!(
        notice.child("Data").text,
        "Leihgerät von Lena & Tom <Müller> \"Söhne\", Gymnasium Am Markt\nInventar 0815"
    );

    // The same values survive the Apple plist round trip.
    let apple = template
        .render(&RenderContext {
            platform: Platform::Apple,
            ..ctx
        })
        .unwrap();
    let lock = payload_of_type(&mobileconfig(&apple), "com.apple.shareddeviceconfiguration");
    assert_eq!(
        lock["LockScreenFootnote"].as_string(),
        Some("Leihgerät von Lena & Tom <Müller> \"Söhne\", Gymnasium Am Markt")
    );
}

#[test]
fn directory_values_are_never_read_as_placeholders() {
    let mut ctx = context(Platform::Apple);
    ctx.person.as_mut().unwrap().given_name = "{{device.serial}}".to_owned();
    let rendered = schulnetz().render(&ctx).unwrap();
    let lock = payload_of_type(
        &mobileconfig(&rendered),
        "com.apple.shareddeviceconfiguration",
    );
    assert_eq!(
        lock["LockScreenFootnote"].as_string(),
        Some("Leihgerät von {{device.serial}} Muster, Gymnasium Am Markt")
    );
}

#[test]
fn a_value_with_control_characters_is_refused() {
    let mut ctx = context(Platform::Apple);
    ctx.device.asset_tag = Some("08\u{0}15".to_owned());
    assert_eq!(
        schulnetz().render(&ctx).unwrap_err(),
        TemplateError::UnencodableValue {
            variable: Variable::DeviceAssetTag,
            path: "payloads[4].payload.asset_tag".to_owned(),
        }
    );
}

#[test]
fn a_per_person_template_without_a_pupil_names_the_missing_variable() {
    let ctx = RenderContext {
        person: None,
        person_identity: None,
        ..context(Platform::Apple)
    };
    let error = schulnetz().render(&ctx).unwrap_err();
    assert_eq!(
        error,
        TemplateError::MissingValue {
            variable: Variable::PersonMail,
            path: "payloads[0].payload.security.user_name".to_owned(),
        }
    );
    assert!(error.to_string().contains("person.mail"), "{error}");

    // With the person but without their certificate, the identity is what is missing.
    let no_certificate = RenderContext {
        person_identity: None,
        ..context(Platform::Windows)
    };
    assert_eq!(
        schulnetz().render(&no_certificate).unwrap_err(),
        TemplateError::MissingIdentity {
            kind: IdentityKind::PerPerson,
            path: "payloads[3].payload".to_owned(),
        }
    );

    let no_root = RenderContext {
        root_ca_der: Vec::new(),
        ..context(Platform::Apple)
    };
    assert!(matches!(
        schulnetz().render(&no_root).unwrap_err(),
        TemplateError::MissingRootCa { path } if path == "payloads[2].payload"
    ));
}

#[test]
fn a_template_renders_only_for_its_platforms() {
    let apple_only = with_payloads(
        "apple",
        json!([{"key": "n", "payload": {"type": "lock-screen", "footnote": "x"}}]),
    );
    assert_eq!(
        apple_only.render(&context(Platform::Windows)).unwrap_err(),
        TemplateError::NotForPlatform(Platform::Windows)
    );
}

#[test]
fn the_checksum_ignores_how_the_certificate_was_packed() {
    let template = schulnetz();
    for platform in [Platform::Apple, Platform::Windows] {
        let first = template.render(&context(platform)).unwrap();
        let repacked = RenderContext {
            person_identity: Some(pupil_identity(
                b"0 PKCS#12 packed again, new salt",
                "second",
            )),
            ..context(platform)
        };
        let second = template.render(&repacked).unwrap();
        assert_eq!(first.checksum, second.checksum, "{platform}");
        assert_ne!(first.output, second.output, "the bytes sent do differ");
        assert_eq!(first.checksum.len(), 64);
        assert!(
            first
                .checksum
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );

        // Rendering is deterministic.
        assert_eq!(template.render(&context(platform)).unwrap(), first);
    }
}

#[test]
fn the_checksum_changes_with_what_the_device_would_see() {
    let template = schulnetz();
    let base = template.render(&context(Platform::Apple)).unwrap().checksum;

    let renewed = RenderContext {
        person_identity: Some(IssuedIdentity {
            certificate_der: b"0\x82 renewed certificate, serial 4712".to_vec(),
            ..pupil_identity(b"0 PKCS#12 packed once", "first")
        }),
        ..context(Platform::Apple)
    };
    let mut moved = context(Platform::Apple);
    moved.school.as_mut().unwrap().code = "gym2".to_owned();
    let mut edited = schulnetz();
    edited.removal_disallowed = Some(false);
    let new_root = RenderContext {
        root_ca_der: b"0\x82 rotated Flotte root CA".to_vec(),
        ..context(Platform::Apple)
    };

    let checksums = [
        template.render(&renewed).unwrap().checksum,
        template.render(&moved).unwrap().checksum,
        edited.render(&context(Platform::Apple)).unwrap().checksum,
        template.render(&new_root).unwrap().checksum,
        template
            .render(&context(Platform::Windows))
            .unwrap()
            .checksum,
    ];
    let distinct: BTreeSet<_> = checksums.iter().chain([&base]).collect();
    assert_eq!(distinct.len(), checksums.len() + 1, "{checksums:?}");
}

#[test]
fn apple_profile_list_reveals_the_version_while_payloads_keep_their_uuids() {
    let template = schulnetz();
    let first = template.render(&context(Platform::Apple)).unwrap();
    let mut moved = context(Platform::Apple);
    moved.school.as_mut().unwrap().code = "gym2".to_owned();
    let second = template.render(&moved).unwrap();

    for rendered in [&first, &second] {
        let profile = mobileconfig(rendered);
        let uuid = profile_version_uuid(&rendered.checksum);
        assert_eq!(
            profile["PayloadUUID"].as_string(),
            Some(uuid.hyphenated().to_string().to_uppercase().as_str())
        );
        assert!(matches!(
            &rendered.output,
            RenderedOutput::Apple { payload_uuid, .. } if *payload_uuid == uuid
        ));
        assert_eq!(
            profile["PayloadIdentifier"].as_string(),
            Some("de.flotte.wifi.schulnetz")
        );
    }
    let (a, b) = (mobileconfig(&first), mobileconfig(&second));
    assert_ne!(a["PayloadUUID"], b["PayloadUUID"]);
    let inner = |profile: &plist::Dictionary| -> Vec<(Value, Value)> {
        payload_content(profile)
            .into_iter()
            .map(|payload| {
                (
                    payload["PayloadIdentifier"].clone(),
                    payload["PayloadUUID"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(inner(&a), inner(&b), "payloads are replaced in place");
}

#[test]
fn the_device_name_travels_as_a_settings_command_on_apple() {
    let rendered = schulnetz().render(&context(Platform::Apple)).unwrap();
    let RenderedOutput::Apple { commands, .. } = &rendered.output else {
        panic!("expected an Apple rendering");
    };
    assert_eq!(commands.len(), 1);
    let dictionary = commands[0].to_command_dictionary();
    let settings = dictionary["Settings"].as_array().unwrap();
    assert_eq!(
        settings[0].as_dictionary().unwrap()["DeviceName"].as_string(),
        Some("gym1-0815")
    );
}

#[test]
fn windows_installs_certificates_before_the_wifi_profile_and_can_undo_it() {
    let rendered = schulnetz().render(&context(Platform::Windows)).unwrap();
    let RenderedOutput::Windows {
        commands,
        removal,
        probe_uris,
    } = &rendered.output
    else {
        panic!("expected a Windows rendering");
    };
    let targets: Vec<String> = commands
        .iter()
        .map(|command| command.target_uris()[0].to_owned())
        .collect();
    let position = |needle: &str| {
        targets
            .iter()
            .position(|uri| uri.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in {targets:?}"))
    };
    assert!(position("RootCATrustedCertificates") < position("ClientCertificateInstall"));
    assert!(position("ClientCertificateInstall") < position("/WiFi/"));

    // The pupil's certificate goes to the user store, named by its thumbprint, and the
    // WLAN profile presents user credentials.
    let thumbprint = Thumbprint::of_der(&pupil_identity(b"", "").certificate_der);
    let pfx_node = format!(
        "./User/Vendor/MSFT/ClientCertificateInstall/PFXCertInstall/{}",
        thumbprint.as_str()
    );
    assert!(
        targets.iter().any(|uri| uri.starts_with(&pfx_node)),
        "{targets:?}"
    );
    let xml = rendered.windows_xml().unwrap();
    assert!(xml.contains("&lt;authMode&gt;user&lt;/authMode&gt;"));

    assert_eq!(
        probe_uris,
        &[
            pfx_node.clone(),
            "./Device/Vendor/MSFT/WiFi/Profile/Schule-gym1/WlanXml".to_owned()
        ]
    );
    let removed: Vec<&str> = removal
        .iter()
        .flat_map(|command| command.target_uris())
        .collect();
    assert!(removed.contains(&pfx_node.as_str()));
    // WiFi CSP: the profile node goes when its WlanXml node is deleted.
    assert!(removed.contains(&"./Device/Vendor/MSFT/WiFi/Profile/Schule-gym1/WlanXml"));
    assert!(removed.contains(&"./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera"));
    assert!(
        !removed
            .iter()
            .any(|uri| uri.contains("RootCATrustedCertificates")),
        "shared root CAs stay"
    );
    assert!(
        removal
            .iter()
            .all(|command| command.element_name() == "Delete")
    );
}

#[test]
fn windows_commands_can_be_renumbered_with_queue_ids() {
    let rendered = schulnetz().render(&context(Platform::Windows)).unwrap();
    let commands = rendered.windows_commands().unwrap();
    let mut ids = SequentialCmdIds::new("q42-", 1).unwrap();
    let renumbered: Vec<_> = commands
        .iter()
        .map(|command| command.renumbered(&mut ids))
        .collect();
    let xml = flotte_profiles::windows::render_commands(&renumbered);
    let ids_in_order: Vec<String> = parse_xml(&xml)
        .iter()
        .flat_map(|command| {
            let mut ids = vec![command.child("CmdID").text.clone()];
            ids.extend(
                command
                    .children
                    .iter()
                    .filter(|child| child.name != "CmdID" && child.name != "Item")
                    .map(|inner| inner.child("CmdID").text.clone()),
            );
            ids
        })
        .collect();
    let expected: Vec<String> = (1..=ids_in_order.len())
        .map(|n| format!("q42-{n}"))
        .collect();
    assert_eq!(ids_in_order, expected);
    for (old, new) in commands.iter().zip(&renumbered) {
        assert_eq!(old.target_uris(), new.target_uris());
    }
}

#[test]
fn rendered_output_keeps_secrets_out_of_debug_text() {
    let rendered = schulnetz().render(&context(Platform::Apple)).unwrap();
    let text = format!("{rendered:?}");
    assert!(text.contains("bytes"), "{text}");
    assert!(!text.contains("first"), "{text}");
    let identity = format!("{:?}", pupil_identity(b"secret", "hunter2"));
    assert!(!identity.contains("hunter2"), "{identity}");
}

#[test]
fn a_namespace_is_only_about_payload_uuids_not_the_version() {
    // Two organisations rendering the same template get different payload UUIDs but the
    // version UUID still follows the checksum (which includes those UUIDs).
    let template = schulnetz();
    let other = RenderContext {
        namespace: ProfileNamespace::from_dns_name("andere-stadt.example"),
        ..context(Platform::Apple)
    };
    let a = template.render(&context(Platform::Apple)).unwrap();
    let b = template.render(&other).unwrap();
    assert_ne!(a.checksum, b.checksum);
    let profile = mobileconfig(&b);
    assert_eq!(
        profile["PayloadUUID"].as_string().unwrap(),
        profile_version_uuid(&b.checksum)
            .hyphenated()
            .to_string()
            .to_uppercase()
    );
}
