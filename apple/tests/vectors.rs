//! Parsing real device messages (`shared/vectors/apple`), error cases and round trips.

use std::path::PathBuf;

use flotte_apple::{
    AppleError, Authenticate, CheckinMessage, CommandReport, DeclarativeManagement,
    DeviceInfoResult, ErrorChainItem, InstalledApplication, InstalledProfile, Status, TokenUpdate,
    parse_checkin, parse_report,
};
use plist::{Dictionary, Value};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/apple")
}

fn vector(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

fn plist_bytes(dict: Dictionary) -> Vec<u8> {
    let mut out = Vec::new();
    Value::Dictionary(dict).to_writer_xml(&mut out).unwrap();
    out
}

fn dict(entries: &[(&str, Value)]) -> Dictionary {
    entries
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect()
}

#[test]
fn every_apple_plist_vector_parses_and_survives_a_round_trip() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(vectors_dir()).expect("shared/vectors/apple is readable") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|ext| ext.to_str()) != Some("plist") {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        let root = Value::from_reader_xml(body.as_slice()).unwrap();
        let is_checkin = root.as_dictionary().unwrap().contains_key("MessageType");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if is_checkin {
            let message = parse_checkin(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            let again = parse_checkin(&message.to_plist()).unwrap();
            assert_eq!(again, message, "{name} changed in a round trip");
        } else {
            let report = parse_report(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            let again = parse_report(&report.to_plist()).unwrap();
            assert_eq!(again, report, "{name} changed in a round trip");
        }
        checked.push(name);
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "checkin-authenticate-ipad.plist",
            "checkin-tokenupdate-ipad.plist",
            "mdm-signature-body.plist",
            "report-deviceinformation-acknowledged.plist",
            "report-error-errorchain.plist",
            "report-error-invalid-request-type-macos.plist",
        ]
    );
}

#[test]
fn ipad_authenticate_yields_its_identity() {
    let message = parse_checkin(&vector("checkin-authenticate-ipad.plist")).unwrap();
    let CheckinMessage::Authenticate(auth) = &message else {
        panic!("expected Authenticate, got {message:?}");
    };
    assert_eq!(
        auth.udid.as_deref(),
        Some("663b07bb783e9ade1dae4fbb92ea12afc0ce5b69")
    );
    assert_eq!(auth.serial_number.as_deref(), Some("F5JM992LF193"));
    assert_eq!(auth.product_name.as_deref(), Some("iPad2,5"));
    assert_eq!(auth.os_version.as_deref(), Some("9.3.5"));
    assert_eq!(auth.build_version.as_deref(), Some("13G36"));
    assert_eq!(
        auth.topic,
        "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9"
    );
    assert!(
        auth.extra.is_empty(),
        "unexpected extra keys {:?}",
        auth.extra
    );
    assert_eq!(message.message_type(), "Authenticate");
    assert_eq!(message.udid(), auth.udid.as_deref());
}

#[test]
fn ipad_token_update_yields_push_credentials() {
    let message = parse_checkin(&vector("checkin-tokenupdate-ipad.plist")).unwrap();
    let CheckinMessage::TokenUpdate(update) = message else {
        panic!("expected TokenUpdate");
    };
    assert_eq!(
        update.token_hex(),
        "47e8eec062c2f729ec1703c1b3e18f1971d85f00be76445d34080baa701b5f51"
    );
    assert_eq!(update.push_magic, "CEFDF0BD-E342-4A27-8742-E930EA116B0A");
    assert_eq!(update.awaiting_configuration, Some(false));
    let unlock = update.unlock_token.expect("the iPad sends an UnlockToken");
    assert!(
        unlock.starts_with(b"DATA"),
        "unlock token keychain blob starts with DATA"
    );
    assert_eq!(
        update.udid.as_deref(),
        Some("663b07bb783e9ade1dae4fbb92ea12afc0ce5b69")
    );
}

#[test]
fn device_information_report_yields_the_real_values() {
    let report = parse_report(&vector("report-deviceinformation-acknowledged.plist")).unwrap();
    assert_eq!(report.status, Status::Acknowledged);
    assert_eq!(
        report.command_uuid.as_deref(),
        Some("76eda240-5488-4989-8339-f2ae160113c4")
    );
    assert_eq!(report.request_type.as_deref(), Some("DeviceInformation"));
    let info = DeviceInfoResult::from_report(&report).expect("QueryResponses present");
    // The vector is trimmed upstream: it answers only HostName and UDID (a Mac).
    assert_eq!(
        info.udid.as_deref(),
        Some("66ADE930-5FDF-5EC4-8429-15640684C489")
    );
    assert_eq!(info.host_name.as_deref(), Some("fruit.example.com"));
    assert_eq!(info.serial_number, None);
    assert_eq!(info.os_version, None);
}

#[test]
fn error_reports_yield_their_error_chain() {
    let report = parse_report(&vector("report-error-errorchain.plist")).unwrap();
    assert_eq!(report.status, Status::Error);
    assert_eq!(
        report.error_chain,
        [ErrorChainItem {
            error_code: -909,
            error_domain: "NSOSStatusErrorDomain".to_owned(),
            localized_description: Some(" <NSOSStatusErrorDomain:-909>".to_owned()),
            us_english_description: None,
        }]
    );

    let report = parse_report(&vector("report-error-invalid-request-type-macos.plist")).unwrap();
    let first = &report.error_chain[0];
    assert_eq!(first.error_code, 12021);
    assert_eq!(first.error_domain, "MCMDMErrorDomain");
    assert_eq!(
        first.us_english_description.as_deref(),
        Some("“OSUpdateStatus” is not a valid request type.")
    );
}

#[test]
fn idle_report_needs_no_command_uuid() {
    let report = parse_report(&vector("mdm-signature-body.plist")).unwrap();
    assert_eq!(
        report,
        CommandReport::idle("D4D56083-BFB0-5047-8BDF-2727BACDC59B")
    );
}

#[test]
fn binary_plists_are_accepted() {
    let value =
        Value::from_reader_xml(vector("checkin-authenticate-ipad.plist").as_slice()).unwrap();
    let mut binary = Vec::new();
    value.to_writer_binary(&mut binary).unwrap();
    let message = parse_checkin(&binary).unwrap();
    assert_eq!(
        message.udid(),
        Some("663b07bb783e9ade1dae4fbb92ea12afc0ce5b69")
    );
}

#[test]
fn malformed_bodies_are_rejected_with_a_reason() {
    assert!(matches!(
        parse_checkin(b"this is not a plist"),
        Err(AppleError::MalformedPlist(_))
    ));
    assert!(matches!(
        parse_report(b""),
        Err(AppleError::MalformedPlist(_))
    ));
    let array = br#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><array/></plist>"#;
    assert_eq!(parse_checkin(array), Err(AppleError::NotADictionary));
}

#[test]
fn checkin_without_or_with_unknown_message_type_is_rejected() {
    let body = plist_bytes(dict(&[("UDID", "abc".into())]));
    assert_eq!(parse_checkin(&body), Err(AppleError::MissingMessageType));

    let body = plist_bytes(dict(&[
        ("MessageType", "Teleport".into()),
        ("UDID", "abc".into()),
    ]));
    let error = parse_checkin(&body).unwrap_err();
    assert_eq!(error, AppleError::UnknownMessageType("Teleport".to_owned()));
    assert_eq!(error.to_string(), "unknown MessageType \"Teleport\"");

    let body = plist_bytes(dict(&[("MessageType", Value::Integer(3.into()))]));
    assert!(matches!(
        parse_checkin(&body),
        Err(AppleError::InvalidMessage { context, .. }) if context == "MessageType"
    ));
}

#[test]
fn checkin_without_device_identifier_is_rejected() {
    let body = plist_bytes(dict(&[
        ("MessageType", "Authenticate".into()),
        ("Topic", "com.apple.mgmt.test".into()),
    ]));
    let error = parse_checkin(&body).unwrap_err();
    assert_eq!(error, AppleError::MissingUdid("Authenticate"));
    assert_eq!(
        error.to_string(),
        "missing UDID (and no EnrollmentID) in Authenticate"
    );
}

#[test]
fn user_enrollment_checkin_is_identified_by_enrollment_id() {
    let body = plist_bytes(dict(&[
        ("MessageType", "CheckOut".into()),
        ("EnrollmentID", "user-enrolment-1".into()),
    ]));
    let message = parse_checkin(&body).unwrap();
    assert_eq!(message.udid(), None);
    assert_eq!(message.enrollment_id(), Some("user-enrolment-1"));
}

#[test]
fn token_update_without_token_names_the_missing_key() {
    let body = plist_bytes(dict(&[
        ("MessageType", "TokenUpdate".into()),
        ("UDID", "abc".into()),
        ("Topic", "com.apple.mgmt.test".into()),
        ("PushMagic", "magic".into()),
    ]));
    let error = parse_checkin(&body).unwrap_err();
    let AppleError::InvalidMessage { context, reason } = &error else {
        panic!("expected InvalidMessage, got {error:?}");
    };
    assert_eq!(context, "TokenUpdate");
    assert_eq!(reason, "missing field `Token`");
    assert_eq!(
        error.to_string(),
        "invalid TokenUpdate: missing field `Token`"
    );
}

#[test]
fn token_update_with_a_string_token_is_rejected() {
    let body = plist_bytes(dict(&[
        ("MessageType", "TokenUpdate".into()),
        ("UDID", "abc".into()),
        ("Topic", "com.apple.mgmt.test".into()),
        ("PushMagic", "magic".into()),
        ("Token", "not data".into()),
    ]));
    assert_eq!(
        parse_checkin(&body).unwrap_err().to_string(),
        "invalid TokenUpdate: invalid type: string \"not data\", expected data"
    );
}

#[test]
fn report_without_or_with_unknown_status_is_rejected() {
    let body = plist_bytes(dict(&[("UDID", "abc".into())]));
    assert_eq!(parse_report(&body), Err(AppleError::MissingStatus));

    let body = plist_bytes(dict(&[("Status", "Maybe".into()), ("UDID", "abc".into())]));
    let error = parse_report(&body).unwrap_err();
    assert_eq!(error, AppleError::UnknownStatus("Maybe".to_owned()));
    assert_eq!(error.to_string(), "unknown Status \"Maybe\"");
}

#[test]
fn report_without_udid_or_command_uuid_is_rejected() {
    let body = plist_bytes(dict(&[("Status", "Idle".into())]));
    assert_eq!(
        parse_report(&body),
        Err(AppleError::MissingUdid("command report"))
    );

    let body = plist_bytes(dict(&[
        ("Status", "Acknowledged".into()),
        ("UDID", "abc".into()),
    ]));
    assert_eq!(
        parse_report(&body),
        Err(AppleError::MissingCommandUuid("Acknowledged"))
    );
}

#[test]
fn unknown_checkin_keys_are_kept_and_written_back() {
    let body = plist_bytes(dict(&[
        ("MessageType", "Authenticate".into()),
        ("UDID", "66ADE930-5FDF-5EC4-8429-15640684C489".into()),
        ("Topic", "com.apple.mgmt.test".into()),
        ("Challenge", Value::Data(vec![1, 2, 3])),
        ("FutureKey", Value::Boolean(true)),
    ]));
    let message = parse_checkin(&body).unwrap();
    assert_eq!(
        message.extra().get("Challenge"),
        Some(&Value::Data(vec![1, 2, 3]))
    );
    assert_eq!(
        message.extra().get("FutureKey"),
        Some(&Value::Boolean(true))
    );
    assert!(!message.extra().contains_key("MessageType"));

    let rewritten = Value::from_reader_xml(message.to_plist().as_slice()).unwrap();
    let original = Value::from_reader_xml(body.as_slice()).unwrap();
    let sorted = |value: Value| {
        let mut dict = value.into_dictionary().unwrap();
        dict.sort_keys();
        dict
    };
    assert_eq!(sorted(rewritten), sorted(original));
}

#[test]
fn messages_built_by_a_simulator_parse_back_unchanged() {
    let messages = [
        CheckinMessage::Authenticate(Authenticate {
            topic: "com.apple.mgmt.External.test".to_owned(),
            udid: Some("00008120-001A2B3C4D5E6F70".to_owned()),
            serial_number: Some("DMPXK0ABCDEF".to_owned()),
            product_name: Some("iPad13,18".to_owned()),
            os_version: Some("18.1".to_owned()),
            build_version: Some("22B83".to_owned()),
            ..Authenticate::default()
        }),
        CheckinMessage::TokenUpdate(TokenUpdate {
            topic: "com.apple.mgmt.External.test".to_owned(),
            udid: Some("00008120-001A2B3C4D5E6F70".to_owned()),
            token: vec![0xde, 0xad, 0xbe, 0xef],
            push_magic: "8B0E2F5A-0000-4000-8000-000000000001".to_owned(),
            unlock_token: Some(vec![0; 16]),
            awaiting_configuration: Some(true),
            ..TokenUpdate::default()
        }),
        CheckinMessage::DeclarativeManagement(DeclarativeManagement {
            udid: Some("00008120-001A2B3C4D5E6F70".to_owned()),
            endpoint: "status".to_owned(),
            data: Some(br#"{"StatusItems":{}}"#.to_vec()),
            ..DeclarativeManagement::default()
        }),
    ];
    for message in messages {
        let bytes = message.to_plist();
        assert!(bytes.starts_with(b"<?xml"));
        assert_eq!(parse_checkin(&bytes).unwrap(), message);
    }
}

#[test]
fn reports_with_results_survive_a_round_trip() {
    let date = plist::Date::from_xml_format("2024-09-01T08:30:00Z").unwrap();
    let mut report = CommandReport::acknowledged("udid-1", "cmd-1");
    report.request_type = Some("DeviceInformation".to_owned());
    report.query_responses = Some(dict(&[
        ("SerialNumber", "DMPXK0ABCDEF".into()),
        ("DeviceCapacity", Value::Real(64.0)),
        ("IsSupervised", Value::Boolean(true)),
        ("LastCloudBackupDate", Value::Date(date)),
        ("PushToken", Value::Data(vec![9, 8, 7])),
    ]));
    report.extra = dict(&[("Nested", Value::Dictionary(dict(&[("Deep", 1.into())])))]);
    let bytes = report.to_plist();
    assert_eq!(parse_report(&bytes).unwrap(), report);

    let error = CommandReport::error(
        "udid-1",
        "cmd-2",
        vec![ErrorChainItem {
            error_code: 12021,
            error_domain: "MCMDMErrorDomain".to_owned(),
            localized_description: Some("nope".to_owned()),
            us_english_description: Some("nope".to_owned()),
        }],
    );
    assert_eq!(parse_report(&error.to_plist()).unwrap(), error);
    let not_now = CommandReport::not_now("udid-1", "cmd-3");
    assert_eq!(
        parse_report(&not_now.to_plist()).unwrap().status,
        Status::NotNow
    );
}

#[test]
fn device_information_is_extracted_into_typed_fields() {
    let mut report = CommandReport::acknowledged("udid-1", "cmd-1");
    report.query_responses = Some(dict(&[
        ("UDID", "udid-1".into()),
        ("SerialNumber", "DMPXK0ABCDEF".into()),
        ("Model", "MK2K3FD".into()),
        ("ModelName", "iPad".into()),
        ("ProductName", "iPad12,1".into()),
        ("OSVersion", "17.6.1".into()),
        ("BuildVersion", "21G93".into()),
        ("DeviceCapacity", Value::Real(59.55)),
        ("AvailableDeviceCapacity", Value::Integer(41.into())),
        ("BatteryLevel", Value::Real(0.82)),
        ("DeviceName", "Klasse-5a-07".into()),
        ("WiFiMAC", "a4:83:e7:00:11:22".into()),
        ("IsSupervised", Value::Boolean(true)),
    ]));
    let info = DeviceInfoResult::from_report(&report).unwrap();
    assert_eq!(
        info,
        DeviceInfoResult {
            udid: Some("udid-1".to_owned()),
            serial_number: Some("DMPXK0ABCDEF".to_owned()),
            model: Some("MK2K3FD".to_owned()),
            model_name: Some("iPad".to_owned()),
            product_name: Some("iPad12,1".to_owned()),
            os_version: Some("17.6.1".to_owned()),
            build_version: Some("21G93".to_owned()),
            device_capacity_gb: Some(59.55),
            available_capacity_gb: Some(41.0),
            battery_level: Some(0.82),
            device_name: Some("Klasse-5a-07".to_owned()),
            wifi_mac: Some("a4:83:e7:00:11:22".to_owned()),
            is_supervised: Some(true),
            host_name: None,
        }
    );
    assert_eq!(
        DeviceInfoResult::from_report(&CommandReport::idle("u")),
        None
    );
}

#[test]
fn profile_list_is_extracted_and_incomplete_entries_are_named() {
    let mut report = CommandReport::acknowledged("udid-1", "cmd-1");
    report.profile_list = Some(vec![
        dict(&[
            ("PayloadIdentifier", "de.schule.wifi".into()),
            ("PayloadUUID", "5A3C8F2E-0000-5000-8000-000000000001".into()),
            ("PayloadDisplayName", "WLAN".into()),
            ("PayloadVersion", 1.into()),
        ]),
        dict(&[
            ("PayloadIdentifier", "de.schule.mdm".into()),
            ("PayloadUUID", "5A3C8F2E-0000-5000-8000-000000000002".into()),
        ]),
    ]);
    let profiles = InstalledProfile::from_report(&report).unwrap();
    assert_eq!(
        profiles,
        [
            InstalledProfile {
                identifier: "de.schule.wifi".to_owned(),
                uuid: "5A3C8F2E-0000-5000-8000-000000000001".to_owned(),
                display_name: Some("WLAN".to_owned()),
                version: Some(1),
            },
            InstalledProfile {
                identifier: "de.schule.mdm".to_owned(),
                uuid: "5A3C8F2E-0000-5000-8000-000000000002".to_owned(),
                display_name: None,
                version: None,
            },
        ]
    );

    report.profile_list = Some(vec![dict(&[("PayloadIdentifier", "x".into())])]);
    let error = InstalledProfile::from_report(&report).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid ProfileList[0]: PayloadUUID is missing or not a string"
    );
    assert!(InstalledProfile::from_report(&CommandReport::idle("u")).is_err());
}

#[test]
fn installed_applications_are_extracted() {
    let mut report = CommandReport::acknowledged("udid-1", "cmd-1");
    report.installed_application_list = Some(vec![dict(&[
        ("Identifier", "com.apple.Keynote".into()),
        ("Name", "Keynote".into()),
        ("ShortVersion", "14.2".into()),
        ("Version", "7035.0.161".into()),
        ("BundleSize", Value::Integer(712_000_000.into())),
    ])]);
    let apps = InstalledApplication::from_report(&report).unwrap();
    assert_eq!(apps[0].identifier.as_deref(), Some("com.apple.Keynote"));
    assert_eq!(apps[0].short_version.as_deref(), Some("14.2"));
    assert_eq!(apps[0].bundle_size, Some(712_000_000));
}

#[test]
fn messages_round_trip_through_json_for_storage() {
    let message = parse_checkin(&vector("checkin-tokenupdate-ipad.plist")).unwrap();
    let json = serde_json::to_string(&message).unwrap();
    assert!(json.contains(r#""MessageType":"TokenUpdate""#), "{json}");
    let back: CheckinMessage = serde_json::from_str(&json).unwrap();
    assert_eq!(back, message);

    let report = parse_report(&vector("report-error-errorchain.plist")).unwrap();
    let back: CommandReport =
        serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(back, report);
}
